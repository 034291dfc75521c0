//! StripeProvider against a local HTTP stub whose bodies are Stripe's own
//! fixtures: the exact requests each operation sends, how responses map, and
//! each error class (retries and deadlines: `transport.rs`; wire amounts:
//! `amounts.rs`). No test leaves 127.0.0.1.

mod common;

use common::{
    header, intent, key, pairs, provider, requests, resource, sorted_form, stripe_error, stub, with, QUICK,
};
use gateway_core::{
    CancelIntent, CaptureIntent, CaptureMethod, ConfirmIntent, CreateCustomer, CreateIntent, CreateRefund,
    Currency, IntentStatus, Money, NextAction, PaymentProvider, ProviderError, ProviderErrorKind,
    RefundStatus, UpdateIntent,
};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn create_intent_sends_every_parameter_and_the_idempotency_key() {
    let server = MockServer::start().await;
    let body = intent(json!({
        "id": "pi_create", "amount": 5000, "currency": "usd", "capture_method": "manual",
        "status": "requires_capture", "amount_capturable": 5000, "customer": "cus_1",
        "payment_method": "pm_1", "metadata": {"order_id": "ord_42"}, "description": "Order 42",
    }));
    stub(&server, "POST", "/v1/payment_intents", 200, body).await;
    let stripe = provider(&server, 0, QUICK);

    let mut request = CreateIntent::new(Money::parse("50.00", Currency::USD).unwrap());
    request.capture_method = CaptureMethod::Manual;
    request.confirm = true;
    request.customer = Some("cus_1".into());
    request.payment_method = Some("pm_1".into());
    request.off_session = true;
    request.return_url = Some("https://shop.example/return".into());
    request.metadata.insert("order_id".into(), "ord_42".into());
    request.description = Some("Order 42".into());
    request.statement_descriptor_suffix = Some("ORD42".into());
    request.receipt_email = Some("buyer@example.com".into());
    let created = stripe
        .create_intent(request, &key("order-42-create"))
        .await
        .unwrap();

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let sent = &sent[0];
    assert_eq!(header(sent, "idempotency-key"), Some("order-42-create"));
    assert_eq!(header(sent, "authorization"), Some("Bearer sk_test_stub_key"));
    assert_eq!(
        header(sent, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(header(sent, "stripe-version").is_some());
    assert_eq!(
        sorted_form(sent),
        pairs(&[
            ("amount", "5000"),
            ("currency", "usd"),
            ("capture_method", "manual"),
            ("confirm", "true"),
            ("customer", "cus_1"),
            ("payment_method", "pm_1"),
            ("off_session", "true"),
            ("return_url", "https://shop.example/return"),
            ("metadata[order_id]", "ord_42"),
            ("description", "Order 42"),
            ("statement_descriptor_suffix", "ORD42"),
            ("receipt_email", "buyer@example.com"),
        ])
    );

    assert_eq!(created.id, "pi_create");
    assert_eq!(created.provider, "stripe");
    assert_eq!(created.amount, 5000);
    assert_eq!(created.amount_capturable, 5000);
    assert_eq!(created.currency, Currency::USD);
    assert_eq!(created.status, IntentStatus::RequiresCapture);
    assert_eq!(created.capture_method, CaptureMethod::Manual);
    assert_eq!(created.customer.as_deref(), Some("cus_1"));
    assert_eq!(created.payment_method.as_deref(), Some("pm_1"));
    assert_eq!(created.order_id(), Some("ord_42"));
    assert_eq!(created.description.as_deref(), Some("Order 42"));
    assert!(created.client_secret.is_some());
}

#[tokio::test]
async fn a_minimal_create_sends_only_what_is_set() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents",
        200,
        intent(json!({"amount": 1200, "currency": "jpy"})),
    )
    .await;
    let stripe = provider(&server, 0, QUICK);
    let created = stripe
        .create_intent(
            CreateIntent::new(Money::parse("1200", Currency::JPY).unwrap()),
            &key("k-min"),
        )
        .await
        .unwrap();
    assert_eq!(created.currency, Currency::JPY);
    assert_eq!(created.status, IntentStatus::RequiresPaymentMethod);
    let sent = requests(&server).await;
    assert_eq!(
        sorted_form(&sent[0]),
        pairs(&[
            ("amount", "1200"),
            ("currency", "jpy"),
            ("capture_method", "automatic"),
            ("confirm", "false")
        ])
    );
}

#[tokio::test]
async fn retrieve_update_confirm_capture_cancel() {
    let server = MockServer::start().await;
    let id = "pi_life";
    stub(
        &server,
        "GET",
        "/v1/payment_intents/pi_life",
        200,
        intent(json!({"id": id})),
    )
    .await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_life",
        200,
        intent(json!({"id": id, "amount": 7000, "metadata": {"order_id": "ord_1", "note": "x"}})),
    )
    .await;
    let redirect = json!({
        "type": "redirect_to_url",
        "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/abc", "return_url": "https://shop.example/back"}
    });
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_life/confirm",
        200,
        intent(json!({"id": id, "status": "requires_action", "next_action": redirect, "payment_method": "pm_card"})),
    )
    .await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_life/capture",
        200,
        intent(json!({"id": id, "status": "succeeded", "amount": 7000, "amount_received": 4000, "capture_method": "manual"})),
    )
    .await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_life/cancel",
        200,
        intent(json!({"id": id, "status": "canceled", "cancellation_reason": "duplicate"})),
    )
    .await;
    let stripe = provider(&server, 0, QUICK);

    let fetched = stripe.retrieve_intent(id).await.unwrap();
    assert_eq!(fetched.id, id);
    assert_eq!(fetched.amount, 1099);

    let mut metadata = gateway_core::Metadata::new();
    metadata.insert("note".into(), "x".into());
    let update = UpdateIntent {
        amount: Some(Money::parse("70.00", Currency::USD).unwrap()),
        metadata: Some(metadata),
        description: Some("bigger".into()),
    };
    let updated = stripe.update_intent(id, update, &key("k-update")).await.unwrap();
    assert_eq!(updated.amount, 7000);
    assert_eq!(updated.metadata.get("note").map(String::as_str), Some("x"));

    let confirm = ConfirmIntent {
        payment_method: Some("pm_card".into()),
        return_url: Some("https://shop.example/back".into()),
        off_session: false,
    };
    let confirmed = stripe
        .confirm_intent(id, confirm, &key("k-confirm"))
        .await
        .unwrap();
    assert_eq!(confirmed.status, IntentStatus::RequiresAction);
    assert_eq!(
        confirmed.next_action,
        Some(NextAction::RedirectToUrl {
            url: "https://hooks.stripe.com/3ds/abc".into(),
            return_url: Some("https://shop.example/back".into()),
        })
    );

    let captured = stripe
        .capture_intent(
            id,
            CaptureIntent {
                amount_to_capture: Some(4000),
            },
            &key("k-capture"),
        )
        .await
        .unwrap();
    assert_eq!(
        (captured.status, captured.amount_received),
        (IntentStatus::Succeeded, 4000)
    );

    let canceled = stripe
        .cancel_intent(
            id,
            CancelIntent {
                reason: Some("duplicate".into()),
            },
            &key("k-cancel"),
        )
        .await
        .unwrap();
    assert_eq!(canceled.status, IntentStatus::Canceled);
    assert_eq!(canceled.cancellation_reason.as_deref(), Some("duplicate"));

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 6);
    assert_eq!(sent[0].method.as_str(), "GET");
    assert_eq!(header(&sent[0], "idempotency-key"), None, "reads carry no key");
    assert!(sent[0].body.is_empty());
    assert_eq!(header(&sent[1], "idempotency-key"), Some("k-update"));
    assert_eq!(
        sorted_form(&sent[1]),
        pairs(&[
            ("amount", "7000"),
            ("currency", "usd"),
            ("metadata[note]", "x"),
            ("description", "bigger")
        ])
    );
    assert_eq!(header(&sent[2], "idempotency-key"), Some("k-confirm"));
    assert_eq!(
        sorted_form(&sent[2]),
        pairs(&[
            ("payment_method", "pm_card"),
            ("return_url", "https://shop.example/back")
        ])
    );
    // A partial capture reads the intent's currency first, to send Stripe's wire units.
    assert_eq!(
        (sent[3].method.as_str(), sent[3].url.path()),
        ("GET", "/v1/payment_intents/pi_life")
    );
    assert_eq!(header(&sent[4], "idempotency-key"), Some("k-capture"));
    assert_eq!(sorted_form(&sent[4]), pairs(&[("amount_to_capture", "4000")]));
    assert_eq!(header(&sent[5], "idempotency-key"), Some("k-cancel"));
    assert_eq!(
        sorted_form(&sent[5]),
        pairs(&[("cancellation_reason", "duplicate")])
    );
}

#[tokio::test]
async fn confirm_off_session_and_bad_cancel_reason() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_off/confirm",
        200,
        intent(json!({"id": "pi_off", "status": "succeeded"})),
    )
    .await;
    let stripe = provider(&server, 0, QUICK);
    let confirm = ConfirmIntent {
        payment_method: None,
        return_url: None,
        off_session: true,
    };
    stripe
        .confirm_intent("pi_off", confirm, &key("k-off"))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(sorted_form(&sent[0]), pairs(&[("off_session", "true")]));

    let error = stripe
        .cancel_intent(
            "pi_off",
            CancelIntent {
                reason: Some("bored".into()),
            },
            &key("k-bad"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { param: Some(ref p), .. } if p == "cancellation_reason")
    );
    assert_eq!(requests(&server).await.len(), 1, "refused before any request");
}

#[tokio::test]
async fn refunds_full_and_partial() {
    let server = MockServer::start().await;
    let refund = with(
        resource("refund"),
        json!({"id": "re_1", "amount": 400, "payment_intent": "pi_paid", "reason": "requested_by_customer", "metadata": {"ticket": "T-9"}}),
    );
    stub(&server, "POST", "/v1/refunds", 200, refund).await;
    let paid = intent(json!({"id": "pi_paid", "status": "succeeded", "amount_received": 1099}));
    stub(&server, "GET", "/v1/payment_intents/pi_paid", 200, paid).await;
    let stripe = provider(&server, 0, QUICK);
    let mut request = CreateRefund::partial("pi_paid", 400);
    request.reason = Some("requested_by_customer".into());
    request.metadata.insert("ticket".into(), "T-9".into());
    let created = stripe.create_refund(request, &key("k-refund")).await.unwrap();
    assert_eq!(created.id, "re_1");
    assert_eq!(created.payment_intent, "pi_paid");
    assert_eq!(created.amount, 400);
    assert_eq!(created.currency, Currency::USD);
    assert_eq!(created.status, RefundStatus::Succeeded);
    assert_eq!(created.reason.as_deref(), Some("requested_by_customer"));
    assert_eq!(created.metadata.get("ticket").map(String::as_str), Some("T-9"));

    stripe
        .create_refund(CreateRefund::full("pi_paid"), &key("k-refund-full"))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        sent.len(),
        3,
        "the partial refund read the intent's currency first"
    );
    assert_eq!(sent[0].method.as_str(), "GET");
    let sent = &sent[1..];
    assert_eq!(header(&sent[0], "idempotency-key"), Some("k-refund"));
    assert_eq!(
        sorted_form(&sent[0]),
        pairs(&[
            ("payment_intent", "pi_paid"),
            ("amount", "400"),
            ("reason", "requested_by_customer"),
            ("metadata[ticket]", "T-9")
        ])
    );
    assert_eq!(sorted_form(&sent[1]), pairs(&[("payment_intent", "pi_paid")]));
}

#[tokio::test]
async fn retrieve_refund_expands_the_charge_when_the_intent_is_not_named() {
    let server = MockServer::start().await;
    // The fixture refund names a charge but no payment intent.
    let bare = with(resource("refund"), json!({"id": "re_bare", "status": "pending"}));
    let charge = with(resource("charge"), json!({"payment_intent": "pi_from_charge"}));
    let expanded = with(bare.clone(), json!({"charge": charge}));
    Mock::given(method("GET"))
        .and(path("/v1/refunds/re_bare"))
        .and(wiremock::matchers::query_param("expand[0]", "charge"))
        .respond_with(ResponseTemplate::new(200).set_body_json(expanded))
        .mount(&server)
        .await;
    stub(&server, "GET", "/v1/refunds/re_bare", 200, bare).await;
    let stripe = provider(&server, 0, QUICK);
    let refund = stripe.retrieve_refund("re_bare").await.unwrap();
    assert_eq!(refund.payment_intent, "pi_from_charge");
    assert_eq!(refund.status, RefundStatus::Pending);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn customers_and_saved_cards() {
    let server = MockServer::start().await;
    let customer = with(
        resource("customer"),
        json!({"id": "cus_9", "email": "buyer@example.com", "name": "Buyer", "metadata": {"user": "u1"}}),
    );
    stub(&server, "POST", "/v1/customers", 200, customer).await;
    let attached = with(
        resource("payment_method"),
        json!({"id": "pm_saved", "customer": "cus_9"}),
    );
    stub(
        &server,
        "POST",
        "/v1/payment_methods/pm_card_visa/attach",
        200,
        attached.clone(),
    )
    .await;
    let second = with(attached.clone(), json!({"id": "pm_second"}));
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_9/payment_methods"))
        .and(wiremock::matchers::query_param("starting_after", "pm_saved"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [second], "has_more": false, "url": "/v1/customers/cus_9/payment_methods"
        })))
        .mount(&server)
        .await;
    stub(
        &server,
        "GET",
        "/v1/customers/cus_9/payment_methods",
        200,
        json!({"object": "list", "data": [attached], "has_more": true, "url": "/v1/customers/cus_9/payment_methods"}),
    )
    .await;
    let detached = with(
        resource("payment_method"),
        json!({"id": "pm_saved", "customer": null}),
    );
    stub(
        &server,
        "POST",
        "/v1/payment_methods/pm_saved/detach",
        200,
        detached,
    )
    .await;
    let stripe = provider(&server, 0, QUICK);

    let mut request = CreateCustomer {
        email: Some("buyer@example.com".into()),
        name: Some("Buyer".into()),
        ..CreateCustomer::default()
    };
    request.metadata.insert("user".into(), "u1".into());
    let customer = stripe.create_customer(request, &key("k-cus")).await.unwrap();
    assert_eq!(customer.id, "cus_9");
    assert_eq!(customer.email.as_deref(), Some("buyer@example.com"));
    assert_eq!(customer.metadata.get("user").map(String::as_str), Some("u1"));

    let saved = stripe
        .attach_payment_method("cus_9", "pm_card_visa", &key("k-attach"))
        .await
        .unwrap();
    assert_eq!(saved.id, "pm_saved");
    assert_eq!(saved.customer.as_deref(), Some("cus_9"));
    let card = saved.card.expect("card details");
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert_eq!((card.exp_month, card.exp_year), (8, 2030));
    assert_eq!(card.funding.as_deref(), Some("credit"));
    assert_eq!(card.country.as_deref(), Some("US"));

    let listed = stripe.list_payment_methods("cus_9").await.unwrap();
    let ids: Vec<_> = listed.iter().map(|method| method.id.as_str()).collect();
    assert_eq!(ids, ["pm_saved", "pm_second"]);

    let gone = stripe
        .detach_payment_method("pm_saved", &key("k-detach"))
        .await
        .unwrap();
    assert_eq!(gone.customer, None);

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 5);
    assert_eq!(header(&sent[0], "idempotency-key"), Some("k-cus"));
    assert_eq!(
        sorted_form(&sent[0]),
        pairs(&[
            ("email", "buyer@example.com"),
            ("name", "Buyer"),
            ("metadata[user]", "u1")
        ])
    );
    assert_eq!(header(&sent[1], "idempotency-key"), Some("k-attach"));
    assert_eq!(sorted_form(&sent[1]), pairs(&[("customer", "cus_9")]));
    let query: Vec<_> = sent[2]
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(query.contains(&("type".into(), "card".into())), "{query:?}");
    assert!(query.contains(&("limit".into(), "100".into())), "{query:?}");
    assert_eq!(header(&sent[2], "idempotency-key"), None);
    assert_eq!(header(&sent[4], "idempotency-key"), Some("k-detach"));
}

fn decline_body(code: &str, decline_code: Option<&str>) -> Value {
    let failed = intent(json!({
        "id": "pi_declined", "status": "requires_payment_method",
        "last_payment_error": {"type": "card_error", "code": code, "decline_code": decline_code, "message": "Your card was declined."}
    }));
    stripe_error(json!({
        "type": "card_error", "code": code, "decline_code": decline_code,
        "message": "Your card was declined.", "charge": "ch_1", "payment_intent": failed,
        "doc_url": "https://stripe.com/docs/error-codes/card-declined"
    }))
}

#[tokio::test]
async fn declines_keep_codes_and_the_intent_and_are_not_retried() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_declined/confirm",
        402,
        decline_body("card_declined", Some("insufficient_funds")),
    )
    .await;
    let stripe = provider(&server, 3, QUICK);
    let error = stripe
        .confirm_intent("pi_declined", ConfirmIntent::default(), &key("k-decline"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::CardDeclined);
    assert_eq!(error.provider_code(), Some("card_declined"));
    assert_eq!(error.decline_code(), Some("insufficient_funds"));
    let intent = error.intent().expect("the intent rides along");
    assert_eq!(intent.id, "pi_declined");
    assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
    let last = intent.last_payment_error.as_ref().unwrap();
    assert_eq!(last.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(requests(&server).await.len(), 1, "a decline is final");
}

#[tokio::test]
async fn each_error_class_over_http() {
    let server = MockServer::start().await;
    let routes: &[(&str, u16, Value)] = &[
        (
            "/v1/payment_intents/pi_auth/confirm",
            402,
            decline_body("authentication_required", Some("authentication_required")),
        ),
        (
            "/v1/payment_intents/pi_cvc/confirm",
            402,
            decline_body("incorrect_cvc", None),
        ),
        (
            "/v1/payment_intents/pi_exp/confirm",
            402,
            decline_body("expired_card", None),
        ),
        (
            "/v1/payment_intents/pi_param/confirm",
            400,
            stripe_error(
                json!({"type": "invalid_request_error", "code": "parameter_missing", "param": "payment_method", "message": "Missing payment method."}),
            ),
        ),
        (
            "/v1/payment_intents/pi_idem/confirm",
            400,
            stripe_error(
                json!({"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters."}),
            ),
        ),
        (
            "/v1/payment_intents/pi_missing/confirm",
            404,
            stripe_error(
                json!({"type": "invalid_request_error", "code": "resource_missing", "param": "intent", "message": "No such payment_intent: 'pi_missing'"}),
            ),
        ),
        (
            "/v1/payment_intents/pi_busy/confirm",
            429,
            stripe_error(
                json!({"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}),
            ),
        ),
        (
            "/v1/payment_intents/pi_down/confirm",
            500,
            stripe_error(json!({"type": "api_error", "message": "Something went wrong."})),
        ),
        (
            "/v1/payment_intents/pi_key/confirm",
            401,
            stripe_error(
                json!({"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****_key"}),
            ),
        ),
    ];
    for (route, status, body) in routes {
        stub(&server, "POST", route, *status, body.clone()).await;
    }
    let stripe = provider(&server, 0, QUICK);
    let confirm = |id: &'static str| {
        let stripe = stripe.clone();
        async move {
            stripe
                .confirm_intent(id, ConfirmIntent::default(), &key("k-err"))
                .await
                .unwrap_err()
        }
    };

    let auth = confirm("pi_auth").await;
    assert_eq!(auth.kind(), ProviderErrorKind::AuthenticationRequired);
    assert_eq!(auth.intent().map(|i| i.id.as_str()), Some("pi_declined"));
    let cvc = confirm("pi_cvc").await;
    assert_eq!(
        (cvc.kind(), cvc.provider_code()),
        (ProviderErrorKind::CardDeclined, Some("incorrect_cvc"))
    );
    let expired = confirm("pi_exp").await;
    assert_eq!(
        (expired.kind(), expired.provider_code()),
        (ProviderErrorKind::CardDeclined, Some("expired_card"))
    );
    match confirm("pi_param").await {
        ProviderError::InvalidRequest { code, param, .. } => {
            assert_eq!(code.as_deref(), Some("parameter_missing"));
            assert_eq!(param.as_deref(), Some("payment_method"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        confirm("pi_idem").await.kind(),
        ProviderErrorKind::IdempotencyConflict
    );
    let missing = confirm("pi_missing").await;
    assert_eq!(
        (missing.kind(), missing.provider_code()),
        (ProviderErrorKind::NotFound, Some("resource_missing"))
    );
    let busy = confirm("pi_busy").await;
    assert_eq!(busy.kind(), ProviderErrorKind::RateLimited);
    let down = confirm("pi_down").await;
    assert!(
        matches!(
            down,
            ProviderError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{down:?}"
    );
    let bad_key = confirm("pi_key").await;
    assert_eq!(bad_key.kind(), ProviderErrorKind::Other);
    assert!(!bad_key.to_string().contains("sk_test_stub_key"));
}
