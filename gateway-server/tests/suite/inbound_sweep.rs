//! The inbound sweep: events of intents the gateway did not create are
//! finished at once; events it must keep retrying back off instead of being
//! retried at every sweep.

use std::time::Duration;

use awc::http::StatusCode;
use gateway_core::{
    CreateIntent, CreateRefund, Currency, IdempotencyKey, Money, PaymentProvider,
    GATEWAY_PAYMENT_METADATA_KEY,
};

use super::webhooks::{db_count, deliver_mock, wait_until_processed};
use crate::common::TestServer;

/// A confirmed Visa charge made on the provider account directly, not through the gateway.
fn charge_made_elsewhere(amount: &str) -> CreateIntent {
    let mut request = CreateIntent::new(Money::parse(amount, Currency::USD).unwrap());
    request.payment_method = Some("pm_card_visa".to_owned());
    request.confirm = true;
    request
}

#[actix_web::test]
async fn events_of_intents_the_gateway_did_not_create_are_finished_at_once() {
    let server = TestServer::start_with(|config| {
        config.webhook_sweep_interval = Duration::from_millis(50);
    })
    .await;
    // Another application on the same account: an intent and a refund of it.
    let key = |name: &str| IdempotencyKey::new(format!("elsewhere-{name}")).unwrap();
    let intent = server
        .mock
        .create_intent(charge_made_elsewhere("12.00"), &key("charge"))
        .await
        .unwrap();
    server
        .mock
        .create_refund(CreateRefund::partial(&intent.id, 100), &key("refund"))
        .await
        .unwrap();
    let events = server.mock.take_events();
    assert_eq!(events.len(), 3, "created, succeeded, charge.refunded");
    for event in &events {
        assert_eq!(deliver_mock(&server, event).await, StatusCode::OK);
    }
    wait_until_processed(&server, 3).await;
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NOT NULL AND attempts = 0 \
             AND last_error LIKE 'not ours%'"
        ),
        3,
        "finished on the first attempt, not retried"
    );
    assert_eq!(server.payment_count().await, 0);
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM refunds"), 0);
    server.stop().await;
}

#[actix_web::test]
async fn an_event_naming_a_gateway_payment_with_no_row_is_retried_with_backoff() {
    let server = TestServer::start_with(|config| {
        config.webhook_sweep_interval = Duration::from_millis(50);
    })
    .await;
    let mut request = charge_made_elsewhere("9.00");
    request.metadata.insert(
        GATEWAY_PAYMENT_METADATA_KEY.to_owned(),
        "pay_without_a_row".to_owned(),
    );
    server
        .mock
        .create_intent(request, &IdempotencyKey::new("lost-reply").unwrap())
        .await
        .unwrap();
    let succeeded = server.mock.take_events().pop().unwrap();
    assert_eq!(deliver_mock(&server, &succeeded).await, StatusCode::OK);
    // With a 50 ms sweep, a retry at every sweep would be ~30 attempts in
    // 1.5 s; the backoff (1 s, then 2 s) allows two.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL"
        ),
        1,
        "kept for a later attempt"
    );
    let attempts = db_count(&server, "SELECT MAX(attempts) FROM webhook_events");
    assert!((1..=2).contains(&attempts), "{attempts} attempts");
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_events WHERE next_attempt_at > received_at"
        ),
        1,
        "its next attempt is scheduled ahead"
    );
    server.stop().await;
}
