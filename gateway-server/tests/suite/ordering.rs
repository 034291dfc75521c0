//! Out-of-order provider webhooks: a stale snapshot never overwrites newer
//! state, and merchants never hear a false `payment.failed` or
//! `payment.pending`. Each case is delivered in both orders.

use std::time::Duration;

use awc::http::StatusCode;
use gateway_core::{EventKind, EventObject, IntentStatus, PaymentErrorDetails, ProviderEvent};

use super::webhooks::{deliver_mock, poll_status, wait_until_processed};
use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

/// A 3-D Secure payment (pending) with a merchant endpoint: the server, its
/// receiver and secret, the payment id and intent, and the intent's events so far.
async fn three_d_secure_payment() -> (TestServer, Receiver, String, String, String, Vec<ProviderEvent>) {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    let payment = server
        .pay(&payment_body(
            "25.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    assert_eq!(payment["status"], "pending");
    let id = payment["id"].as_str().unwrap().to_owned();
    let intent = payment["provider_ref"].as_str().unwrap().to_owned();
    let events = server.mock.take_events();
    (server, receiver, secret, id, intent, events)
}

/// `event` as an older state of its intent: another id and type, and `status`.
fn stale_copy(event: &ProviderEvent, id: &str, event_type: &str, status: IntentStatus) -> ProviderEvent {
    let mut stale = event.clone();
    stale.id = id.to_owned();
    stale.event_type = event_type.to_owned();
    if let EventObject::Intent { intent } = &mut stale.object {
        intent.status = status;
        intent.next_action = None;
        intent.amount_received = 0;
        if status == IntentStatus::RequiresPaymentMethod {
            intent.payment_method = None;
            intent.last_payment_error = Some(PaymentErrorDetails {
                code: Some("card_declined".to_owned()),
                decline_code: Some("generic_decline".to_owned()),
                message: "Your card was declined.".to_owned(),
            });
        }
    }
    stale
}

/// Delivers `events` one after the other, each processed before the next.
async fn deliver_in_order(server: &TestServer, events: &[ProviderEvent]) {
    for (done, event) in events.iter().enumerate() {
        assert_eq!(deliver_mock(server, event).await, StatusCode::OK);
        wait_until_processed(server, done as i64 + 1).await;
    }
}

/// The merchant webhook types received, once deliveries settled.
async fn merchant_event_types(receiver: &Receiver, secret: &str, at_least: usize) -> Vec<String> {
    receiver.wait_for(at_least, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    receiver
        .hits()
        .iter()
        .map(|hit| verify(secret, hit)["type"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn stale_processing_and_failed_events_never_undo_a_success_in_either_order() {
    for stale_first in [true, false] {
        let (server, receiver, secret, id, intent, events) = three_d_secure_payment().await;
        let requires_action = events
            .iter()
            .find(|event| event.event_type == "payment_intent.requires_action")
            .expect("the requires_action event")
            .clone();
        server.mock.complete_authentication(&intent, true).unwrap();
        let succeeded = server
            .mock
            .take_events()
            .into_iter()
            .find(|event| event.event_type == "payment_intent.succeeded")
            .unwrap();
        // An earlier attempt's states, delivered late.
        let processing = stale_copy(
            &requires_action,
            "evt_stale_processing",
            "payment_intent.processing",
            IntentStatus::Processing,
        );
        let failed = stale_copy(
            &requires_action,
            "evt_stale_failed",
            "payment_intent.payment_failed",
            IntentStatus::RequiresPaymentMethod,
        );
        let mut watch = server.bus().watch_all();
        let order = if stale_first {
            vec![requires_action, processing, failed, succeeded]
        } else {
            vec![succeeded, failed, processing, requires_action]
        };
        deliver_in_order(&server, &order).await;
        let read = poll_status(&server, &id, "completed").await;
        assert_eq!(read["intent_status"], "succeeded");
        assert_eq!(
            merchant_event_types(&receiver, &secret, 2).await,
            ["payment.pending", "payment.completed"],
            "stale first: {stale_first}"
        );
        let mut kinds = Vec::new();
        while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(100), watch.next()).await {
            kinds.push(change.kind);
        }
        assert_eq!(kinds, [EventKind::Succeeded], "stale first: {stale_first}");
        server.stop().await;
    }
}

#[actix_web::test]
async fn a_failed_payment_is_not_made_pending_by_a_late_event_in_either_order() {
    for late_last in [true, false] {
        let (server, receiver, secret, id, intent, events) = three_d_secure_payment().await;
        let requires_action = events
            .iter()
            .find(|event| event.event_type == "payment_intent.requires_action")
            .expect("the requires_action event")
            .clone();
        // The customer fails 3-D Secure.
        server.mock.complete_authentication(&intent, false).unwrap();
        let failed = server
            .mock
            .take_events()
            .into_iter()
            .find(|event| event.event_type == "payment_intent.payment_failed")
            .unwrap();
        let order = if late_last {
            vec![failed, requires_action]
        } else {
            vec![requires_action, failed]
        };
        deliver_in_order(&server, &order).await;
        let read = poll_status(&server, &id, "failed").await;
        assert_eq!(read["intent_status"], "requires_payment_method");
        assert_eq!(
            merchant_event_types(&receiver, &secret, 2).await,
            ["payment.pending", "payment.failed"],
            "late event last: {late_last}"
        );
        server.stop().await;
    }
}
