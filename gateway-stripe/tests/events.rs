//! Webhook events → provider events, from Stripe's fixture event and objects,
//! in the current shape, in older API versions' shapes, and of unknown types.

mod common;

use std::time::Duration;

use common::{intent, resource, with};
use gateway_core::{
    CaptureMethod, EventObject, IntentStatus, NextAction, PaymentProvider, ProviderEvent, RefundStatus,
    WebhookRequest,
};
use gateway_stripe::{generate_test_header, StripeConfig, StripeProvider};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_events_test";
const NOW: i64 = 1_795_780_824;

fn stripe(server: &MockServer) -> StripeProvider {
    let mut config = StripeConfig::new("sk_test_events")
        .with_webhook_secrets(SECRET)
        .with_api_base(server.uri());
    config.max_retries = 0;
    config.timeout = Duration::from_secs(5);
    StripeProvider::new(config).unwrap()
}

/// Stripe's fixture event with `type` and `data.object` replaced.
fn event(event_type: &str, object: Value) -> Value {
    with(
        resource("event"),
        json!({
            "id": format!("evt_{}", event_type.replace('.', "_")),
            "type": event_type,
            "created": NOW - 5,
            "api_version": "2024-06-20",
            "data": {"object": object},
        }),
    )
}

/// Signs `event`, verifies it and interprets it, as the gateway does.
async fn deliver(stripe: &StripeProvider, event: &Value) -> ProviderEvent {
    let body = serde_json::to_vec(event).unwrap();
    let header = generate_test_header(&body, SECRET, NOW - 2);
    let request = WebhookRequest::new(body, NOW).with_header("Stripe-Signature", header);
    let verified = stripe.verify_webhook(&request).expect("signature verifies");
    assert_eq!(verified.event_id, event["id"].as_str().unwrap());
    stripe
        .interpret_webhook(&verified)
        .await
        .expect("event interprets")
}

fn intent_of(event: &ProviderEvent) -> &gateway_core::PaymentIntent {
    event
        .intent()
        .unwrap_or_else(|| panic!("not an intent event: {event:?}"))
}

#[tokio::test]
async fn every_payment_intent_event_type_maps_to_its_new_state() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    let base = json!({"id": "pi_evt", "amount": 5000, "metadata": {"order_id": "ord_9"}});

    let created = deliver(&stripe, &event("payment_intent.created", intent(base.clone()))).await;
    assert_eq!(created.provider, "stripe");
    assert_eq!(created.event_type, "payment_intent.created");
    assert_eq!(created.created, NOW - 5);
    assert_eq!(intent_of(&created).status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(intent_of(&created).order_id(), Some("ord_9"));

    let processing = with(intent(base.clone()), json!({"status": "processing"}));
    let processing = deliver(&stripe, &event("payment_intent.processing", processing)).await;
    assert_eq!(intent_of(&processing).status, IntentStatus::Processing);

    let action = with(
        intent(base.clone()),
        json!({"status": "requires_action", "next_action": {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure_2/x", "return_url": "https://shop.example/r"}
        }}),
    );
    let action = deliver(&stripe, &event("payment_intent.requires_action", action)).await;
    assert_eq!(intent_of(&action).status, IntentStatus::RequiresAction);
    assert!(matches!(
        &intent_of(&action).next_action,
        Some(NextAction::RedirectToUrl { url, .. }) if url == "https://hooks.stripe.com/3d_secure_2/x"
    ));

    let capturable = with(
        intent(base.clone()),
        json!({"status": "requires_capture", "capture_method": "manual", "amount_capturable": 5000}),
    );
    let capturable = deliver(
        &stripe,
        &event("payment_intent.amount_capturable_updated", capturable),
    )
    .await;
    let held = intent_of(&capturable);
    assert_eq!(
        (held.status, held.amount_capturable),
        (IntentStatus::RequiresCapture, 5000)
    );
    assert_eq!(held.capture_method, CaptureMethod::Manual);

    let succeeded = with(
        intent(base.clone()),
        json!({"status": "succeeded", "amount_received": 5000}),
    );
    let succeeded = deliver(&stripe, &event("payment_intent.succeeded", succeeded)).await;
    assert_eq!(intent_of(&succeeded).status, IntentStatus::Succeeded);
    assert_eq!(intent_of(&succeeded).amount_received, 5000);

    let failed = with(
        intent(base.clone()),
        json!({"status": "requires_payment_method", "last_payment_error": {
            "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."
        }}),
    );
    let failed = deliver(&stripe, &event("payment_intent.payment_failed", failed)).await;
    let error = intent_of(&failed)
        .last_payment_error
        .as_ref()
        .expect("last error");
    assert_eq!(error.code.as_deref(), Some("card_declined"));
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(error.message, "Your card has insufficient funds.");

    let canceled = with(
        intent(base),
        json!({"status": "canceled", "cancellation_reason": "abandoned"}),
    );
    let canceled = deliver(&stripe, &event("payment_intent.canceled", canceled)).await;
    assert_eq!(intent_of(&canceled).status, IntentStatus::Canceled);
    assert_eq!(
        intent_of(&canceled).cancellation_reason.as_deref(),
        Some("abandoned")
    );

    let sent = server.received_requests().await.unwrap();
    assert!(sent.is_empty(), "complete events need no API call");
}

#[tokio::test]
async fn refund_events() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    let refund = with(
        resource("refund"),
        json!({"id": "re_evt", "amount": 300, "payment_intent": "pi_paid", "status": "pending"}),
    );
    let created = deliver(&stripe, &event("refund.created", refund.clone())).await;
    let mapped = created.refund().expect("a refund event");
    assert_eq!(
        (mapped.id.as_str(), mapped.payment_intent.as_str()),
        ("re_evt", "pi_paid")
    );
    assert_eq!((mapped.amount, mapped.status), (300, RefundStatus::Pending));

    let updated = with(
        refund,
        json!({"status": "failed", "failure_reason": "expired_or_canceled_card"}),
    );
    let updated = deliver(&stripe, &event("refund.updated", updated)).await;
    let mapped = updated.refund().unwrap();
    assert_eq!(mapped.status, RefundStatus::Failed);
    assert_eq!(mapped.failure_reason.as_deref(), Some("expired_or_canceled_card"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn event_amounts_are_read_in_iso_minor_units() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    // Stripe writes ISK 500 as 50000 and MGA 500.00 as 500.
    let isk = intent(json!({
        "id": "pi_isk", "currency": "isk", "amount": 50_000, "amount_received": 50_000,
        "amount_capturable": 0, "status": "succeeded",
    }));
    let succeeded = deliver(&stripe, &event("payment_intent.succeeded", isk)).await;
    let paid = intent_of(&succeeded);
    assert_eq!((paid.amount, paid.amount_received), (500, 500));
    let refund = with(
        resource("refund"),
        json!({"id": "re_mga", "amount": 500, "currency": "mga", "payment_intent": "pi_mga", "status": "succeeded"}),
    );
    let refunded = deliver(&stripe, &event("refund.created", refund)).await;
    assert_eq!(refunded.refund().unwrap().amount, 50_000);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn charge_refunded_in_an_older_shape_reads_the_charges_refund_list() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    // Older API versions embed the refunds; older refunds do not name the intent.
    let older = with(
        resource("refund"),
        json!({"id": "re_old", "amount": 100, "created": 1_700_000_000}),
    );
    let newer = with(
        resource("refund"),
        json!({"id": "re_new", "amount": 250, "created": 1_700_000_100}),
    );
    let mut older = older;
    older.as_object_mut().unwrap().remove("payment_intent");
    let mut newer = newer;
    newer.as_object_mut().unwrap().remove("payment_intent");
    let charge = with(
        resource("charge"),
        json!({
            "payment_intent": "pi_charged", "amount_refunded": 350, "refunded": false,
            "refunds": {"object": "list", "data": [older, newer], "has_more": false, "url": "/v1/charges/ch_1/refunds"}
        }),
    );
    let mut old_event = event("charge.refunded", charge);
    old_event["api_version"] = "2019-02-19".into();
    old_event["request"] = "req_old_style".into();
    let mapped = deliver(&stripe, &old_event).await;
    let refund = mapped.refund().expect("the newest refund");
    assert_eq!((refund.id.as_str(), refund.amount), ("re_new", 250));
    assert_eq!(refund.payment_intent, "pi_charged");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn charge_refunded_without_embedded_refunds_lists_them_through_the_api() {
    let server = MockServer::start().await;
    let listed = with(
        resource("refund"),
        json!({"id": "re_listed", "amount": 500, "payment_intent": "pi_charged"}),
    );
    Mock::given(method("GET"))
        .and(path("/v1/refunds"))
        .and(query_param("charge", "ch_1PgafuB7WZ01zgkWXYmPNZs8"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [listed], "has_more": false, "url": "/v1/refunds"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let stripe = stripe(&server);
    let mut charge = with(
        resource("charge"),
        json!({"payment_intent": "pi_charged", "refunded": true}),
    );
    // Current API versions no longer embed `refunds` in charges.
    charge.as_object_mut().unwrap().remove("refunds");
    let mapped = deliver(&stripe, &event("charge.refunded", charge)).await;
    let refund = mapped.refund().unwrap();
    assert_eq!(
        (refund.id.as_str(), refund.amount, refund.payment_intent.as_str()),
        ("re_listed", 500, "pi_charged")
    );
}

#[tokio::test]
async fn an_old_api_version_intent_is_understood_without_the_api() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    // 2019-era shape: a `charges` list instead of `latest_charge`, `request` as a string,
    // and none of the fields added since.
    let mut old = intent(json!({
        "id": "pi_2019", "status": "succeeded", "amount": 2500, "amount_received": 2500,
        "charges": {"object": "list", "data": [resource("charge")], "has_more": false, "total_count": 1, "url": "/v1/charges?payment_intent=pi_2019"},
        "source": null,
    }));
    for newer_field in [
        "latest_charge",
        "payment_method_configuration_details",
        "managed_payments",
        "customer_account",
        "excluded_payment_method_types",
        "amount_details",
        "automatic_payment_methods",
    ] {
        old.as_object_mut().unwrap().remove(newer_field);
    }
    let mut old_event = event("payment_intent.succeeded", old);
    old_event["api_version"] = "2019-02-19".into();
    old_event["request"] = "req_2019".into();
    let mapped = deliver(&stripe, &old_event).await;
    let intent = intent_of(&mapped);
    assert_eq!(
        (intent.id.as_str(), intent.status, intent.amount_received),
        ("pi_2019", IntentStatus::Succeeded, 2500)
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_2018_api_version_intent_with_source_statuses_is_understood() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    // Before 2019-02-11: `requires_source_action` and `next_source_action.authorize_with_url`.
    let mut old = intent(json!({
        "id": "pi_2018", "status": "requires_source_action", "next_action": null,
        "next_source_action": {"type": "authorize_with_url", "authorize_with_url": {
            "url": "https://hooks.stripe.com/redirect/authenticate/src_1", "return_url": "https://shop.example/back"
        }},
        "charges": {"object": "list", "data": [], "has_more": false, "total_count": 0, "url": "/v1/charges?payment_intent=pi_2018"},
    }));
    old.as_object_mut().unwrap().remove("next_action");
    old.as_object_mut().unwrap().remove("latest_charge");
    let mut old_event = event("payment_intent.requires_action", old);
    old_event["api_version"] = "2018-11-08".into();
    old_event["request"] = "req_2018".into();
    let mapped = deliver(&stripe, &old_event).await;
    let intent = intent_of(&mapped);
    assert_eq!(intent.status, IntentStatus::RequiresAction);
    assert_eq!(
        intent.next_action,
        Some(NextAction::RedirectToUrl {
            url: "https://hooks.stripe.com/redirect/authenticate/src_1".into(),
            return_url: Some("https://shop.example/back".into()),
        })
    );
    let source_status = common::intent(json!({"id": "pi_2018b", "status": "requires_source"}));
    let mapped = deliver(&stripe, &event("payment_intent.created", source_status)).await;
    assert_eq!(intent_of(&mapped).status, IntentStatus::RequiresPaymentMethod);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_object_lacking_needed_fields_is_retrieved_through_the_api() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_thin"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(json!({
            "id": "pi_thin", "status": "requires_capture", "capture_method": "manual",
            "amount": 800, "amount_capturable": 800
        }))))
        .expect(1)
        .mount(&server)
        .await;
    let stripe = stripe(&server);
    // A thin object: no status, no amounts (a version that left them out, or a snapshot trimmed).
    let thin = json!({"id": "pi_thin", "object": "payment_intent", "currency": "usd"});
    let mapped = deliver(&stripe, &event("payment_intent.amount_capturable_updated", thin)).await;
    let intent = intent_of(&mapped);
    assert_eq!(
        (intent.status, intent.amount_capturable),
        (IntentStatus::RequiresCapture, 800)
    );

    // The same for a refund object without its status or intent.
    let refund = with(
        resource("refund"),
        json!({"id": "re_thin", "payment_intent": "pi_thin"}),
    );
    Mock::given(method("GET"))
        .and(path("/v1/refunds/re_thin"))
        .respond_with(ResponseTemplate::new(200).set_body_json(refund))
        .expect(1)
        .mount(&server)
        .await;
    let thin_refund = json!({"id": "re_thin", "object": "refund"});
    let mapped = deliver(&stripe, &event("refund.updated", thin_refund)).await;
    assert_eq!(mapped.refund().unwrap().status, RefundStatus::Succeeded);
}

#[tokio::test]
async fn unknown_types_are_acknowledged_as_unhandled() {
    let server = MockServer::start().await;
    let stripe = stripe(&server);
    // The fixture event itself: a `plan.created`.
    let fixture = resource("event");
    let mapped = deliver(&stripe, &fixture).await;
    assert_eq!(mapped.object, EventObject::Unhandled);
    assert_eq!(mapped.event_type, "plan.created");
    assert_eq!(mapped.id, fixture["id"].as_str().unwrap());

    // The fixture charge has no payment intent: a legacy charge, not one of the gateway's.
    let legacy = deliver(&stripe, &event("charge.refunded", resource("charge"))).await;
    assert_eq!(legacy.object, EventObject::Unhandled);

    let customer = deliver(&stripe, &event("customer.created", resource("customer"))).await;
    assert_eq!(customer.object, EventObject::Unhandled);
    let future = deliver(
        &stripe,
        &event("payment_intent.some_future_type", resource("customer")),
    )
    .await;
    assert_eq!(
        future.object,
        EventObject::Unhandled,
        "an intent type carrying another object"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn every_signed_vector_event_interprets() {
    let server = MockServer::start().await;
    // The charge.refunded vector carries a charge without embedded refunds: listed through the API.
    let listed = with(resource("refund"), json!({"id": "re_vector", "amount": 2500}));
    Mock::given(method("GET"))
        .and(path("/v1/refunds"))
        .and(query_param("charge", "ch_KDFq1Y3gqSmPsSCdLKRcAQX9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [listed], "has_more": false, "url": "/v1/refunds"
        })))
        .mount(&server)
        .await;
    let vectors = common::fixture_json("stripe-webhook-vectors.json");
    let mut interpreted = 0;
    for vector in vectors["vectors"].as_array().unwrap() {
        if vector["expect"] != "ok" {
            continue;
        }
        let mut config = StripeConfig::new("sk_test_events")
            .with_webhook_secrets(vector["secret"].as_str().unwrap())
            .with_api_base(server.uri());
        config.max_retries = 0;
        let stripe = StripeProvider::new(config).unwrap();
        let payload = vector["payload"].as_str().unwrap();
        let request = WebhookRequest::new(payload.as_bytes().to_vec(), vector["now"].as_i64().unwrap())
            .with_header("Stripe-Signature", vector["header"].as_str().unwrap());
        let verified = stripe.verify_webhook(&request).unwrap();
        let mapped = stripe.interpret_webhook(&verified).await.unwrap();
        let event: Value = serde_json::from_str(payload).unwrap();
        let object = &event["data"]["object"];
        match object["object"].as_str().unwrap() {
            "payment_intent" => {
                let intent = intent_of(&mapped);
                assert_eq!(intent.id, object["id"].as_str().unwrap());
                assert_eq!(intent.status.as_str(), object["status"].as_str().unwrap());
                assert_eq!(intent.amount, object["amount"].as_i64().unwrap());
                assert_eq!(
                    intent.amount_received,
                    object["amount_received"].as_i64().unwrap()
                );
                assert_eq!(
                    intent.amount_capturable,
                    object["amount_capturable"].as_i64().unwrap()
                );
                assert_eq!(
                    intent.currency.code().to_ascii_lowercase(),
                    object["currency"].as_str().unwrap()
                );
                assert_eq!(intent.order_id(), object["metadata"]["order_id"].as_str());
                assert_eq!(
                    intent
                        .last_payment_error
                        .as_ref()
                        .and_then(|e| e.decline_code.as_deref()),
                    object["last_payment_error"]["decline_code"].as_str()
                );
            }
            "charge" => {
                let refund = mapped.refund().expect("charge.refunded carries the refund");
                assert_eq!(refund.payment_intent, object["payment_intent"].as_str().unwrap());
                assert_eq!(refund.amount, 2500);
            }
            other => panic!("unexpected object {other}"),
        }
        assert_eq!(mapped.created, event["created"].as_i64().unwrap());
        interpreted += 1;
    }
    assert!(interpreted >= 7, "{interpreted}");
}
