//! The Stripe transport against a local stub: one deadline per call, retries
//! only of what Stripe documents as safe, and honest errors when an answer is
//! lost, refused or unreadable. Short timeouts; no timing assertions beyond
//! "it returned the error".

mod common;

use std::time::Duration;

use common::{header, intent, key, provider, requests, resource, stripe_error, stub, with, QUICK};
use gateway_core::{
    CaptureIntent, ConfirmIntent, CreateIntent, CreateRefund, Currency, Money, PaymentProvider,
    ProviderError, ProviderErrorKind,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Short enough for a test, long enough for a local answer.
const SHORT: Duration = Duration::from_millis(400);

fn paid_request() -> CreateIntent {
    let mut request = CreateIntent::new(Money::parse("10.99", Currency::USD).unwrap());
    request.payment_method = Some("pm_card_visa".into());
    request.confirm = true;
    request
}

#[tokio::test]
async fn a_stripe_that_never_answers_costs_one_deadline_and_leaves_the_outcome_unknown() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent(json!({"id": "pi_late"})))
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&server)
        .await;
    // Retries allowed, but a timeout is never retried: the request may have run.
    let stripe = provider(&server, 3, SHORT);
    let error = stripe
        .create_intent(paid_request(), &key("k-late"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::OutcomeUnknown { status: None, .. }),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn the_deadline_covers_retries_and_the_pauses_between_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_busy/capture"))
        .respond_with(ResponseTemplate::new(429).set_body_json(stripe_error(
            json!({"type": "invalid_request_error", "code": "lock_timeout", "message": "Try again later."}),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_busy/capture"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent(json!({"id": "pi_busy", "status": "succeeded"})))
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&server)
        .await;
    // The retry after the lock timeout hangs: the one deadline ends the call.
    let stripe = provider(&server, 5, SHORT);
    let error = stripe
        .capture_intent("pi_busy", CaptureIntent::default(), &key("k-busy"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error:?}");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|request| header(request, "idempotency-key") == Some("k-busy")));

    // A pause that would pass the deadline is not taken: the answer in hand is returned.
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/v1/refunds",
        429,
        stripe_error(
            json!({"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}),
        ),
    )
    .await;
    let mut stripe_config = gateway_stripe::StripeConfig::new("sk_test_stub_key").with_api_base(server.uri());
    stripe_config.max_retries = 5;
    stripe_config.retry_backoff = Duration::from_secs(60);
    stripe_config.timeout = SHORT;
    let stripe = gateway_stripe::StripeProvider::new(stripe_config).unwrap();
    let error = stripe
        .create_refund(CreateRefund::full("pi_paid"), &key("k-limited"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::RateLimited, "{error:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_2xx_with_an_unreadable_body_is_outcome_unknown_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_garbled/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"id\": \"pi_garbled\", \"obj"))
        .mount(&server)
        .await;
    let stripe = provider(&server, 3, QUICK);
    let error = stripe
        .confirm_intent("pi_garbled", ConfirmIntent::default(), &key("k-garbled"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_5xx_is_not_retried_under_the_same_key() {
    for status in [500, 503] {
        let server = MockServer::start().await;
        stub(
            &server,
            "POST",
            "/v1/payment_intents",
            status,
            stripe_error(json!({"type": "api_error", "message": "Something went wrong."})),
        )
        .await;
        let stripe = provider(&server, 3, QUICK);
        let error = stripe
            .create_intent(paid_request(), &key("k-500"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Unavailable { status: Some(s), .. } if s == status),
            "{error:?}"
        );
        assert!(error.outcome_unknown(), "a 5xx never says the charge failed");
        assert_eq!(
            requests(&server).await.len(),
            1,
            "Stripe would replay the stored {status}"
        );
    }
}

#[tokio::test]
async fn a_proxy_error_page_is_unavailable_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .mount(&server)
        .await;
    let stripe = provider(&server, 3, QUICK);
    let error = stripe
        .create_refund(CreateRefund::full("pi_paid"), &key("k-proxy"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { status: None, .. }),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn reads_retry_a_5xx_until_max_retries() {
    let server = MockServer::start().await;
    stub(
        &server,
        "GET",
        "/v1/payment_intents/pi_flaky",
        502,
        stripe_error(json!({"type": "api_error", "message": "Bad gateway"})),
    )
    .await;
    let stripe = provider(&server, 2, QUICK);
    let error = stripe.retrieve_intent("pi_flaky").await.unwrap_err();
    assert!(
        matches!(
            error,
            ProviderError::Unavailable {
                status: Some(502),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 3, "one try and two retries");
}

#[tokio::test]
async fn a_rate_limit_and_a_key_in_use_are_retried_with_the_same_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(429).set_body_json(stripe_error(
            json!({"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(409).set_body_json(stripe_error(json!({
            "type": "invalid_request_error", "code": "idempotency_key_in_use",
            "message": "There is currently another in-progress request using this Idempotent Key."
        }))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let refund = with(
        resource("refund"),
        json!({"id": "re_after_retries", "payment_intent": "pi_paid"}),
    );
    stub(&server, "POST", "/v1/refunds", 200, refund).await;
    let stripe = provider(&server, 3, QUICK);
    let refund = stripe
        .create_refund(CreateRefund::full("pi_paid"), &key("k-retry"))
        .await
        .unwrap();
    assert_eq!(refund.id, "re_after_retries");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 3);
    assert!(sent
        .iter()
        .all(|request| header(request, "idempotency-key") == Some("k-retry")));
    assert!(
        sent.windows(2).all(|two| two[0].body == two[1].body),
        "the same parameters"
    );
}

#[tokio::test]
async fn an_invalid_request_is_sent_once() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_bad/confirm",
        400,
        stripe_error(json!({"type": "invalid_request_error", "code": "parameter_missing", "param": "payment_method", "message": "Missing payment method."})),
    )
    .await;
    let stripe = provider(&server, 3, QUICK);
    let error = stripe
        .confirm_intent("pi_bad", ConfirmIntent::default(), &key("k-400"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { param: Some(ref p), .. } if p == "payment_method")
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_connection_never_opened_is_unavailable_not_unknown() {
    // Bind then drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config =
        gateway_stripe::StripeConfig::new("sk_test_x").with_api_base(format!("http://127.0.0.1:{port}"));
    config.max_retries = 2;
    config.retry_backoff = Duration::from_millis(10);
    config.timeout = QUICK;
    let stripe = gateway_stripe::StripeProvider::new(config).unwrap();
    let error = stripe
        .create_intent(paid_request(), &key("k-refused"))
        .await
        .unwrap_err();
    // Nothing was sent, so the outcome is known: no charge (and retrying was safe).
    assert!(
        matches!(error, ProviderError::Unavailable { status: None, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("nothing was sent"), "{error}");
}
