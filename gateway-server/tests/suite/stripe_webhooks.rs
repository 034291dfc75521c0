//! Stripe webhooks through the server against a local Stripe stub (no test
//! reaches Stripe): an event in an old API version's shape, missing the
//! fields the gateway needs, is resolved by retrieving the intent.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::common::TestServer;

pub(super) fn fixture_intent(changes: Value) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/stripe-openapi/fixtures3.json"
    );
    let text = std::fs::read_to_string(path).expect("Stripe's fixtures3.json must exist");
    let fixtures: Value = serde_json::from_str(&text).unwrap();
    let mut intent = fixtures["resources"]["payment_intent"].clone();
    let object = intent.as_object_mut().unwrap();
    for (key, value) in [
        ("last_payment_error", Value::Null),
        ("next_action", Value::Null),
        ("processing", Value::Null),
    ] {
        object.insert(key.to_owned(), value);
    }
    for (key, value) in changes.as_object().unwrap() {
        object.insert(key.clone(), value.clone());
    }
    intent
}

/// A Stripe stub: creating an intent answers `requires_action`; retrieving it
/// answers what `current` holds.
async fn stripe_stub(current: Arc<Mutex<Value>>) -> String {
    // The gateway creates the intent unconfirmed, then confirms it.
    let unconfirmed = fixture_intent(json!({
        "id": "pi_stub_old", "status": "requires_confirmation", "amount": 2500, "currency": "usd",
        "payment_method": "pm_card_visa"
    }));
    let confirmed = fixture_intent(json!({
        "id": "pi_stub_old", "status": "requires_action", "amount": 2500, "currency": "usd",
        "payment_method": "pm_card_visa",
        "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop.example/back"}}
    }));
    let server = HttpServer::new(move || {
        let unconfirmed = unconfirmed.clone();
        let confirmed = confirmed.clone();
        let current = current.clone();
        App::new()
            .route(
                "/v1/payment_intents",
                web::post().to(move || {
                    let unconfirmed = unconfirmed.clone();
                    async move { HttpResponse::Ok().json(unconfirmed) }
                }),
            )
            .route(
                "/v1/payment_intents/{id}/confirm",
                web::post().to(move || {
                    let confirmed = confirmed.clone();
                    async move { HttpResponse::Ok().json(confirmed) }
                }),
            )
            .route(
                "/v1/payment_intents/{id}",
                web::get().to(move || {
                    let current = current.clone();
                    async move { HttpResponse::Ok().json(current.lock().unwrap().clone()) }
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    base
}

#[actix_web::test]
async fn an_old_api_version_event_missing_fields_is_resolved_through_the_provider() {
    let current = Arc::new(Mutex::new(Value::Null));
    let base = stripe_stub(current.clone()).await;
    // The endpoint settings are the operator's: merchant accounts take them.
    let server = TestServer::start_with(|config| {
        let stripe = config.providers.entry("stripe".to_owned()).or_default();
        stripe.insert("api_base".to_owned(), base.clone());
        stripe.insert("max_retries".to_owned(), "0".to_owned());
    })
    .await;
    let merchant = server.get("/v1/merchant").await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = "whsec_merchant_own";
    let configured = server
        .put(
            "/v1/merchant/providers",
            &json!({"provider": "stripe", "stripe": {
                "secret_key": "sk_test_stub", "webhook_secret": secret}})
            .to_string(),
        )
        .await;
    assert_eq!(configured.status, StatusCode::OK, "{}", configured.text);
    let payment = server
        .pay(r#"{"amount": "25.00", "currency": "USD", "provider": "stripe", "payment_method": "pm_card_visa", "return_url": "https://shop.example/back"}"#)
        .await;
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["provider_ref"], "pi_stub_old");

    // Stripe now says succeeded; the event comes in a 2019 shape with only the id and status.
    *current.lock().unwrap() = fixture_intent(json!({
        "id": "pi_stub_old", "status": "succeeded", "amount": 2500, "amount_received": 2500,
        "currency": "usd", "payment_method": "pm_card_visa"
    }));
    let event = json!({
        "id": "evt_old_shape", "object": "event", "api_version": "2019-02-19", "created": 1_700_000_000,
        "type": "payment_intent.succeeded", "request": "req_old_style",
        "data": {"object": {"id": "pi_stub_old", "object": "payment_intent", "status": "succeeded"}}
    })
    .to_string();
    let header = crate::common::stripe_signature(&event, secret);
    let path = format!("/v1/webhooks/stripe/{merchant}");
    let reply = server
        .send(
            "POST",
            &path,
            None,
            &[("Stripe-Signature", &header)],
            Some(&event),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // The same event signed with the gateway-wide endpoint's (absent) secret is refused there.
    let global = server
        .send(
            "POST",
            "/v1/webhooks/stripe",
            None,
            &[("Stripe-Signature", &header)],
            Some(&event),
        )
        .await;
    assert!(global.status.is_client_error());

    let id = payment["id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..200 {
        let list = server.get("/v1/payments?limit=10").await;
        status = list.data()["data"][0]["status"].clone();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status, "completed");
    let shown = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(shown.data()["amount_received"], "25.00");
    server.stop().await;
}
