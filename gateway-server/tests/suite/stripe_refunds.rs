//! Stripe's refund events through the server, against a local Stripe stub
//! (no test reaches Stripe): `refund.failed` gives a refund's amount back,
//! and refunds made in Stripe's dashboard, announced by `refund.created` and
//! `charge.refund.updated`, count once each.

use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::StatusCode;
use serde_json::{json, Value};

use super::stripe_webhooks::fixture_intent;
use super::webhooks::{db_count, merchant_id, wait_until_processed};
use crate::common::TestServer;

const SECRET: &str = "whsec_merchant_refunds";

/// A refund as Stripe shows it: its fixture with `changes`.
fn fixture_refund(changes: Value) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/stripe-openapi/fixtures3.json"
    );
    let text = std::fs::read_to_string(path).expect("Stripe's fixtures3.json must exist");
    let fixtures: Value = serde_json::from_str(&text).unwrap();
    let mut refund = fixtures["resources"]["refund"].clone();
    for (key, value) in changes.as_object().unwrap() {
        refund[key] = value.clone();
    }
    refund
}

/// A Stripe stub whose intent `pi_stub_refunds` (25.00) succeeds, and whose
/// refunds API answers a succeeded 10.00 refund `re_stub_api`.
async fn stripe_stub() -> String {
    let intent = fixture_intent(json!({
        "id": "pi_stub_refunds", "status": "succeeded", "amount": 2500, "amount_received": 2500,
        "currency": "usd", "payment_method": "pm_card_visa"
    }));
    let refund = fixture_refund(json!({
        "id": "re_stub_api", "amount": 1000, "payment_intent": "pi_stub_refunds", "status": "succeeded"
    }));
    let server = HttpServer::new(move || {
        let (intent, refund) = (intent.clone(), refund.clone());
        let answer = move |body: Value| {
            move || {
                let body = body.clone();
                async move { HttpResponse::Ok().json(body) }
            }
        };
        App::new()
            .route("/v1/payment_intents", web::post().to(answer(intent.clone())))
            .route("/v1/payment_intents/{id}", web::get().to(answer(intent.clone())))
            .route("/v1/payment_intents/{id}", web::post().to(answer(intent.clone())))
            .route(
                "/v1/payment_intents/{id}/confirm",
                web::post().to(answer(intent.clone())),
            )
            .route("/v1/refunds", web::post().to(answer(refund.clone())))
            .route("/v1/refunds/{id}", web::get().to(answer(refund.clone())))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    base
}

/// Posts a Stripe event about `refund`, signed for the merchant's endpoint.
async fn deliver_stripe(server: &TestServer, merchant: &str, id: &str, event_type: &str, refund: Value) {
    let event = json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": 1_700_000_100,
        "type": event_type, "data": {"object": refund}
    })
    .to_string();
    let header = crate::common::stripe_signature(&event, SECRET);
    let reply = server
        .send(
            "POST",
            &format!("/v1/webhooks/stripe/{merchant}"),
            None,
            &[("Stripe-Signature", &header)],
            Some(&event),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Polls the payment until its `amount_refunded` is `want` (5 s at most).
async fn refunded_becomes(server: &TestServer, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = server.get("/v1/payments?limit=10").await;
        let payment = list.data()["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap();
        if payment["amount_refunded"] == want || Instant::now() > deadline {
            assert_eq!(payment["amount_refunded"], want, "{payment}");
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[actix_web::test]
async fn stripe_refund_events_settle_api_and_dashboard_refunds() {
    let base = stripe_stub().await;
    // The endpoint settings are the operator's: merchant accounts take them.
    let server = TestServer::start_with(|config| {
        let stripe = config.providers.entry("stripe".to_owned()).or_default();
        stripe.insert("api_base".to_owned(), base.clone());
        stripe.insert("max_retries".to_owned(), "0".to_owned());
    })
    .await;
    let merchant = merchant_id(&server).await;
    let configured = server
        .put(
            "/v1/merchant/providers",
            &json!({"provider": "stripe", "stripe": {
                "secret_key": "sk_test_stub", "webhook_secret": SECRET}})
            .to_string(),
        )
        .await;
    assert_eq!(configured.status, StatusCode::OK, "{}", configured.text);
    let payment = server
        .pay(r#"{"amount": "25.00", "currency": "USD", "provider": "stripe", "payment_method": "pm_card_visa"}"#)
        .await;
    assert_eq!(payment["status"], "completed", "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": "10.00"}}"#),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(refund.data()["provider_ref"], "re_stub_api");
    refunded_becomes(&server, &id, "10.00").await;

    // The bank returns the API's refund: `refund.failed`.
    let failed = fixture_refund(json!({
        "id": "re_stub_api", "amount": 1000, "payment_intent": "pi_stub_refunds",
        "status": "failed", "failure_reason": "expired_or_canceled_card"
    }));
    deliver_stripe(&server, &merchant, "evt_refund_failed", "refund.failed", failed).await;
    let read = refunded_becomes(&server, &id, "0.00").await;
    assert_eq!(read["status"], "completed");
    let stored = server
        .get(&format!("/v1/refunds/{}", refund.data()["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored.data()["status"], "failed");

    // Two refunds made in Stripe's dashboard, each announced twice.
    let dashboard = |refund_id: &str, amount: i64, status: &str| {
        fixture_refund(json!({
            "id": refund_id, "amount": amount, "payment_intent": "pi_stub_refunds", "status": status
        }))
    };
    for (event_id, event_type, refund) in [
        (
            "evt_dash_1_created",
            "refund.created",
            dashboard("re_dash_1", 500, "pending"),
        ),
        (
            "evt_dash_2_created",
            "refund.created",
            dashboard("re_dash_2", 700, "pending"),
        ),
        (
            "evt_dash_1_updated",
            "charge.refund.updated",
            dashboard("re_dash_1", 500, "succeeded"),
        ),
        (
            "evt_dash_2_updated",
            "refund.updated",
            dashboard("re_dash_2", 700, "succeeded"),
        ),
    ] {
        deliver_stripe(&server, &merchant, event_id, event_type, refund).await;
    }
    wait_until_processed(&server, 5).await;
    let read = refunded_becomes(&server, &id, "12.00").await;
    assert_eq!(read["status"], "partially_refunded");
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM refunds"), 3);
    // A late, stale `refund.created` of the failed refund does not count it again.
    let stale = dashboard("re_stub_api", 1000, "pending");
    deliver_stripe(&server, &merchant, "evt_stale_created", "refund.created", stale).await;
    wait_until_processed(&server, 6).await;
    refunded_becomes(&server, &id, "12.00").await;
    server.stop().await;
}
