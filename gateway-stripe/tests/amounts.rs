//! Amounts against a local stub: the exact wire amount each operation sends
//! for currencies whose Stripe wire amount is not their ISO 4217 minor unit,
//! amounts read back into ISO units, and refusals that send nothing.

mod common;

use common::{intent, key, pairs, provider, requests, resource, sorted_form, stub, with, QUICK};
use gateway_core::{
    CaptureIntent, CreateIntent, CreateRefund, Currency, Money, PaymentProvider, ProviderError,
    ProviderErrorKind, UpdateIntent,
};
use serde_json::json;
use wiremock::MockServer;

fn money(decimal: &str, code: &str) -> Money {
    Money::parse(decimal, Currency::from_code(code).unwrap()).unwrap()
}

fn refused(error: ProviderError) -> (String, String) {
    match error {
        ProviderError::InvalidRequest {
            code: Some(code),
            param: Some(param),
            ..
        } => (code, param),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn mga_500_00_reaches_stripe_as_500_and_comes_back_as_50000_minor_units() {
    let server = MockServer::start().await;
    let body = intent(json!({
        "id": "pi_mga", "amount": 500, "amount_received": 500, "amount_capturable": 0,
        "currency": "mga", "status": "succeeded",
    }));
    stub(&server, "POST", "/v1/payment_intents", 200, body).await;
    let stripe = provider(&server, 0, QUICK);
    let created = stripe
        .create_intent(CreateIntent::new(money("500.00", "MGA")), &key("k-mga"))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        sorted_form(&sent[0]),
        pairs(&[
            ("amount", "500"),
            ("currency", "mga"),
            ("capture_method", "automatic"),
            ("confirm", "false")
        ])
    );
    assert_eq!((created.amount, created.amount_received), (50_000, 50_000));
    assert_eq!(created.amount_money().unwrap(), money("500.00", "MGA"));
}

#[tokio::test]
async fn isk_500_reaches_stripe_as_50000_and_comes_back_as_500() {
    let server = MockServer::start().await;
    let body = intent(json!({"id": "pi_isk", "amount": 50_000, "currency": "isk"}));
    stub(&server, "POST", "/v1/payment_intents/pi_isk", 200, body).await;
    let stripe = provider(&server, 0, QUICK);
    let update = UpdateIntent {
        amount: Some(money("500", "ISK")),
        ..UpdateIntent::default()
    };
    let updated = stripe
        .update_intent("pi_isk", update, &key("k-isk"))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        sorted_form(&sent[0]),
        pairs(&[("amount", "50000"), ("currency", "isk")])
    );
    assert_eq!(updated.amount, 500);
}

#[tokio::test]
async fn what_stripe_would_refuse_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let stripe = provider(&server, 0, QUICK);
    for (amount, code, expected) in [
        ("0.49", "USD", "amount_too_small"),
        ("49", "JPY", "amount_too_small"),
        ("1000000.00", "USD", "amount_too_large"),
        ("1.234", "KWD", "invalid_charge_amount"),
        ("500.50", "MGA", "invalid_charge_amount"),
    ] {
        let error = stripe
            .create_intent(CreateIntent::new(money(amount, code)), &key("k-refused"))
            .await
            .unwrap_err();
        assert_eq!(
            refused(error),
            (expected.to_owned(), "amount".to_owned()),
            "{amount} {code}"
        );
        let update = UpdateIntent {
            amount: Some(money(amount, code)),
            ..UpdateIntent::default()
        };
        let error = stripe
            .update_intent("pi_any", update, &key("k-refused-update"))
            .await
            .unwrap_err();
        assert_eq!(refused(error).0, expected, "{amount} {code}");
    }
    assert!(requests(&server).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn partial_captures_and_refunds_send_the_intent_currency_s_wire_units() {
    let server = MockServer::start().await;
    let held = intent(json!({
        "id": "pi_isk", "amount": 50_000, "amount_capturable": 50_000, "currency": "isk",
        "status": "requires_capture", "capture_method": "manual",
    }));
    stub(&server, "GET", "/v1/payment_intents/pi_isk", 200, held).await;
    let captured = intent(json!({
        "id": "pi_isk", "amount": 50_000, "amount_received": 30_000, "currency": "isk",
        "status": "succeeded", "capture_method": "manual",
    }));
    stub(
        &server,
        "POST",
        "/v1/payment_intents/pi_isk/capture",
        200,
        captured,
    )
    .await;
    let refund = with(
        resource("refund"),
        json!({"id": "re_isk", "amount": 10_000, "currency": "isk", "payment_intent": "pi_isk"}),
    );
    stub(&server, "POST", "/v1/refunds", 200, refund).await;
    let stripe = provider(&server, 0, QUICK);

    let capture = CaptureIntent {
        amount_to_capture: Some(300),
    };
    let intent = stripe
        .capture_intent("pi_isk", capture, &key("k-capture"))
        .await
        .unwrap();
    assert_eq!(intent.amount_received, 300);
    let refund = stripe
        .create_refund(CreateRefund::partial("pi_isk", 100), &key("k-refund"))
        .await
        .unwrap();
    assert_eq!((refund.amount, refund.currency.code()), (100, "ISK"));

    let sent = requests(&server).await;
    let routes: Vec<_> = sent
        .iter()
        .map(|request| format!("{} {}", request.method, request.url.path()))
        .collect();
    assert_eq!(
        routes,
        [
            "GET /v1/payment_intents/pi_isk",
            "POST /v1/payment_intents/pi_isk/capture",
            "GET /v1/payment_intents/pi_isk",
            "POST /v1/refunds",
        ]
    );
    assert_eq!(sorted_form(&sent[1]), pairs(&[("amount_to_capture", "30000")]));
    assert_eq!(
        sorted_form(&sent[3]),
        pairs(&[("payment_intent", "pi_isk"), ("amount", "10000")])
    );
}

#[tokio::test]
async fn a_refused_capture_or_refund_amount_sends_no_write() {
    let server = MockServer::start().await;
    let held = intent(json!({
        "id": "pi_kwd", "amount": 5_000, "amount_capturable": 5_000, "amount_received": 0,
        "currency": "kwd", "status": "requires_capture", "capture_method": "manual",
    }));
    stub(&server, "GET", "/v1/payment_intents/pi_kwd", 200, held).await;
    let stripe = provider(&server, 0, QUICK);
    let capture = CaptureIntent {
        amount_to_capture: Some(4_995),
    };
    let error = stripe
        .capture_intent("pi_kwd", capture, &key("k-capture"))
        .await
        .unwrap_err();
    assert_eq!(
        refused(error),
        ("invalid_charge_amount".to_owned(), "amount_to_capture".to_owned())
    );
    let error = stripe
        .create_refund(CreateRefund::partial("pi_kwd", 5), &key("k-refund"))
        .await
        .unwrap_err();
    assert_eq!(
        refused(error),
        ("invalid_charge_amount".to_owned(), "amount".to_owned())
    );
    let sent = requests(&server).await;
    assert!(
        sent.iter().all(|request| request.method.as_str() == "GET"),
        "only the currency was read"
    );
}

#[tokio::test]
async fn an_amount_stripe_could_not_have_sent_leaves_the_outcome_unknown() {
    // ISK on the wire always ends in 00; anything else cannot be stored as ISK.
    let server = MockServer::start().await;
    let body = intent(json!({"id": "pi_odd", "amount": 50_050, "currency": "isk"}));
    stub(&server, "GET", "/v1/payment_intents/pi_odd", 200, body).await;
    let stripe = provider(&server, 0, QUICK);
    let error = stripe.retrieve_intent("pi_odd").await.unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error:?}");
}
