//! The refund lifecycle through the real server: refunds that fail after they
//! were counted give their amount back (webhook and reconciliation), each
//! provider refund counts once, and refunds made outside the gateway count.

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gateway_core::{CreateRefund, EventKind, EventObject, IdempotencyKey, PaymentProvider, RefundStatus};
use serde_json::Value;

use super::webhooks::{db_count, deliver_mock, poll_status, wait_until_processed};
use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

/// The types of the merchant webhooks `receiver` got, in order.
fn merchant_event_types(secret: &str, receiver: &Receiver) -> Vec<String> {
    receiver
        .hits()
        .iter()
        .map(|hit| verify(secret, hit)["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `path` until `field` is `want` (5 s at most).
async fn poll_field(server: &TestServer, path: &str, field: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = server.get(path).await;
        if reply.data()[field] == want || Instant::now() > deadline {
            assert_eq!(reply.data()[field], want, "{}", reply.text);
            return reply.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn dashboard_key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("dashboard-{name}")).unwrap()
}

#[actix_web::test]
async fn a_refund_that_fails_later_gives_its_amount_back_and_the_merchant_hears_of_it() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    let payment = server.pay(&payment_body("20.00", "pm_card_refundFail", "")).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": "8.00"}}"#),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(
        refund.data()["status"],
        "completed",
        "this card's refunds start succeeded"
    );
    let refund_id = refund.data()["id"].as_str().unwrap().to_owned();
    let provider_ref = refund.data()["provider_ref"].as_str().unwrap().to_owned();
    let created = server
        .mock
        .take_events()
        .into_iter()
        .find(|event| event.event_type == "charge.refunded")
        .expect("the refund's event");
    assert_eq!(
        server.get(&format!("/v1/payments/{id}")).await.data()["amount_refunded"],
        "8.00"
    );

    // The customer's bank returns the refund; the provider says so by webhook,
    // twice, and the refund's first (now stale) event arrives after it.
    let mut watch = server.bus().watch_all();
    let settled = server.mock.settle_refund(&provider_ref).unwrap();
    assert_eq!(settled.status, RefundStatus::Failed);
    let failed = server.mock.take_events().pop().expect("charge.refund.updated");
    assert_eq!(failed.event_type, "charge.refund.updated");
    for event in [&failed, &failed, &created] {
        assert_eq!(deliver_mock(&server, event).await, StatusCode::OK);
    }
    wait_until_processed(&server, 2).await;
    let read = poll_status(&server, &id, "completed").await;
    assert_eq!(read["amount_refunded"], "0.00");
    let stored = server.get(&format!("/v1/refunds/{refund_id}")).await;
    assert_eq!(stored.data()["status"], "failed");
    assert_eq!(stored.data()["failure_reason"], "expired_or_canceled_card");

    let hits = receiver.wait_for(3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        merchant_event_types(&secret, &receiver),
        ["payment.completed", "payment.partially_refunded", "refund.failed"]
    );
    let refunded = verify(&secret, &hits[1]);
    assert_eq!(refunded["data"]["refund"]["id"], refund_id.as_str());
    assert_eq!(refunded["data"]["refund"]["status"], "completed");
    let refund_failed = verify(&secret, &hits[2]);
    assert_eq!(refund_failed["data"]["payment"]["amount_refunded"], "0.00");
    assert_eq!(refund_failed["data"]["payment"]["status"], "completed");
    assert_eq!(refund_failed["data"]["refund"]["id"], refund_id.as_str());
    assert_eq!(refund_failed["data"]["refund"]["status"], "failed");
    assert_eq!(
        refund_failed["data"]["refund"]["failure_reason"],
        "expired_or_canceled_card"
    );
    assert!(verify(&secret, &hits[0])["data"].get("refund").is_none());
    let mut published = Vec::new();
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(100), watch.next()).await {
        published.push(change);
    }
    let kinds: Vec<EventKind> = published.iter().map(|change| change.kind).collect();
    assert_eq!(kinds, [EventKind::RefundFailed], "{published:?}");
    assert_eq!(
        published[0].refund.as_ref().map(|refund| refund.status),
        Some(RefundStatus::Failed)
    );

    // What failed is refundable again: the whole 20.00.
    let again = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.data()["amount"], "20.00");
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["amount_refunded"], "20.00");
    assert_eq!(read.data()["status"], "refunded");
    server.stop().await;
}

#[actix_web::test]
async fn two_dashboard_refunds_of_one_charge_count_as_two_and_each_once() {
    let server = TestServer::start_with(fast).await;
    let payment = server.pay(&payment_body("30.00", "pm_card_visa", "")).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let intent = payment["provider_ref"].as_str().unwrap().to_owned();
    server.mock.take_events();
    // Two refunds made in the provider's dashboard: the gateway hears of them by webhook only.
    for (name, amount) in [("one", 500), ("two", 700)] {
        server
            .mock
            .create_refund(CreateRefund::partial(&intent, amount), &dashboard_key(name))
            .await
            .unwrap();
    }
    let events = server.mock.take_events();
    assert_eq!(events.len(), 2);
    // Each delivered twice, and the first again under another event of its
    // own (Stripe announces one refund by several event types).
    let mut same_refund = events[0].clone();
    same_refund.id = "evt_same_refund_again".to_owned();
    same_refund.event_type = "refund.created".to_owned();
    for event in [&events[0], &events[1], &events[1], &events[0], &same_refund] {
        assert_eq!(deliver_mock(&server, event).await, StatusCode::OK);
    }
    wait_until_processed(&server, 3).await;
    let read = poll_status(&server, &id, "partially_refunded").await;
    assert_eq!(read["amount_refunded"], "12.00");
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM refunds"), 2);

    // A refund through the API is checked against what the dashboard took.
    let too_much = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": "18.01"}}"#),
        )
        .await;
    assert_eq!(
        too_much.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        too_much.text
    );
    let rest = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(rest.data()["amount"], "18.00");
    // Its own webhook, arriving after the API stored it, does not count it again.
    let own = server.mock.take_events().pop().expect("the API refund's event");
    assert_eq!(deliver_mock(&server, &own).await, StatusCode::OK);
    wait_until_processed(&server, 4).await;
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["amount_refunded"], "30.00");
    assert_eq!(read.data()["status"], "refunded");
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM refunds"), 3);
    server.stop().await;
}

#[actix_web::test]
async fn reconciliation_settles_refunds_whose_webhooks_never_came() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(|config| {
        fast(config);
        config.reconcile.after = Duration::from_millis(300);
        config.reconcile.interval = Duration::from_millis(100);
    })
    .await;
    let secret = set_webhook(&server, &receiver.url).await;

    // A pending refund that succeeds at the bank.
    let pending_card = server
        .pay(&payment_body("10.00", "pm_card_pendingRefund", ""))
        .await;
    let pending_id = pending_card["id"].as_str().unwrap().to_owned();
    let refund = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{pending_id}"}}"#))
        .await;
    assert_eq!(refund.data()["status"], "pending", "{}", refund.text);
    let refund_path = format!("/v1/refunds/{}", refund.data()["id"].as_str().unwrap());
    let read = server.get(&format!("/v1/payments/{pending_id}")).await;
    assert_eq!(
        read.data()["amount_refunded"],
        "10.00",
        "a pending refund holds its amount"
    );
    server
        .mock
        .settle_refund(refund.data()["provider_ref"].as_str().unwrap())
        .unwrap();
    poll_field(&server, &refund_path, "status", "completed").await;
    let read = server.get(&format!("/v1/payments/{pending_id}")).await;
    assert_eq!(read.data()["amount_refunded"], "10.00");

    // A dashboard refund announced pending, that fails at the bank with no webhook.
    let failing_card = server.pay(&payment_body("10.00", "pm_card_refundFail", "")).await;
    let failing_id = failing_card["id"].as_str().unwrap().to_owned();
    let intent = failing_card["provider_ref"].as_str().unwrap().to_owned();
    server.mock.take_events();
    let dashboard = server
        .mock
        .create_refund(CreateRefund::partial(&intent, 400), &dashboard_key("failing"))
        .await
        .unwrap();
    let mut announced = server.mock.take_events().pop().unwrap();
    announced.id = "evt_refund_created_pending".to_owned();
    announced.event_type = "refund.created".to_owned();
    if let EventObject::Refund { refund } = &mut announced.object {
        refund.status = RefundStatus::Pending;
    }
    assert_eq!(deliver_mock(&server, &announced).await, StatusCode::OK);
    let read = poll_status(&server, &failing_id, "partially_refunded").await;
    assert_eq!(read["amount_refunded"], "4.00");
    server.mock.settle_refund(&dashboard.id).unwrap();
    let read = poll_status(&server, &failing_id, "completed").await;
    assert_eq!(read["amount_refunded"], "0.00");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !merchant_event_types(&secret, &receiver).contains(&"refund.failed".to_owned())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let types = merchant_event_types(&secret, &receiver);
    assert_eq!(
        types.iter().filter(|kind| *kind == "refund.failed").count(),
        1,
        "{types:?}"
    );
    server.stop().await;
}
