//! `Idempotency-Key`: replay, mismatch, per-merchant keys, concurrent
//! duplicates, and a lost provider response retried without a second charge.

use awc::http::StatusCode;
use gateway_core::mock::Fault;

use crate::common::{payment_body, TestServer, ALL_SCOPES};

#[actix_web::test]
async fn replays_the_stored_response_and_refuses_a_different_body() {
    let server = TestServer::start().await;
    let body = payment_body("10.00", "pm_card_visa", "");
    let first = server.post_idem("/v1/payments", "order-1", &body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.replayed);
    let second = server.post_idem("/v1/payments", "order-1", &body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.replayed, "Idempotent-Replayed: true");
    assert_eq!(second.body, first.body);
    assert_eq!(server.stats().calls("create_intent"), 1);
    assert_eq!(server.payment_count().await, 1);
    assert_eq!(first.data()["idempotency_key"], "order-1");
    let different = server
        .post_idem(
            "/v1/payments",
            "order-1",
            &payment_body("11.00", "pm_card_visa", ""),
        )
        .await;
    assert_eq!(different.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(different.code(), "idempotency_key_reused");
    // The same key on another endpoint is a different request too.
    let id = first.data()["id"].as_str().unwrap();
    let elsewhere = server
        .post_idem("/v1/refunds", "order-1", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(elsewhere.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Declines are replayed as declines.
    let declined = payment_body("10.00", "pm_card_chargeDeclined", "");
    let d1 = server.post_idem("/v1/payments", "order-2", &declined).await;
    let d2 = server.post_idem("/v1/payments", "order-2", &declined).await;
    assert_eq!(
        (d1.status, d2.status),
        (StatusCode::PAYMENT_REQUIRED, StatusCode::PAYMENT_REQUIRED)
    );
    assert!(d2.replayed);
    assert_eq!(d1.body, d2.body);
    // Invalid keys.
    let long = "k".repeat(256);
    for key in [long.as_str(), "has space"] {
        let reply = server.post_idem("/v1/payments", key, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key}");
        assert_eq!(reply.code(), "idempotency_key_invalid");
    }
    server.stop().await;
}

#[actix_web::test]
async fn keys_are_per_merchant() {
    let server = TestServer::start().await;
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let body = payment_body("10.00", "pm_card_visa", "");
    let mine = server.post_idem("/v1/payments", "shared-key", &body).await;
    let theirs = server
        .send(
            "POST",
            "/v1/payments",
            Some(&other),
            &[("Idempotency-Key", "shared-key")],
            Some(&body),
        )
        .await;
    assert_eq!((mine.status, theirs.status), (StatusCode::OK, StatusCode::OK));
    assert!(!theirs.replayed);
    assert_ne!(mine.data()["id"], theirs.data()["id"]);
    assert_ne!(mine.data()["provider_ref"], theirs.data()["provider_ref"]);
    assert_eq!(server.stats().executed("create_intent"), 2);
    server.stop().await;
}

#[actix_web::test]
async fn twenty_concurrent_duplicates_make_one_provider_call() {
    let server = TestServer::start().await;
    let body = payment_body("33.00", "pm_card_visa", "");
    let requests = (0..20).map(|_| server.post_idem("/v1/payments", "burst-1", &body));
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|reply| reply.status == StatusCode::OK));
    let first_id = &replies[0].data()["id"];
    assert!(replies.iter().all(|reply| &reply.data()["id"] == first_id));
    assert_eq!(replies.iter().filter(|reply| !reply.replayed).count(), 1);
    let stats = server.stats();
    assert_eq!(stats.calls("create_intent"), 1, "{stats:?}");
    assert_eq!(stats.charges_made, 1);
    assert_eq!(server.payment_count().await, 1);
    server.stop().await;
}

#[actix_web::test]
async fn a_lost_provider_response_is_retried_without_a_second_charge() {
    let server = TestServer::start().await;
    let body = payment_body("45.00", "pm_card_visa", "");
    // The provider charges, then the response is lost: the merchant sees 503 and nothing is stored.
    server.mock.inject_fault(Fault::LostResponse);
    let lost = server.post_idem("/v1/payments", "retry-me", &body).await;
    assert_eq!(lost.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.stats().charges_made, 1);
    assert_eq!(server.payment_count().await, 0);
    // The retry reuses the derived provider key: the provider replays, no second charge.
    let retry = server.post_idem("/v1/payments", "retry-me", &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(!retry.replayed);
    let stats = server.stats();
    assert_eq!(stats.charges_made, 1, "{stats:?}");
    assert_eq!(stats.replays, 1);
    assert_eq!(server.payment_count().await, 1);
    server.stop().await;
}

#[actix_web::test]
async fn many_concurrent_distinct_payments_are_all_stored() {
    let server = TestServer::start().await;
    let bodies: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("k-{i}"),
                payment_body(&format!("{}.00", i + 1), "pm_card_visa", ""),
            )
        })
        .collect();
    let requests = bodies
        .iter()
        .map(|(key, body)| server.post_idem("/v1/payments", key, body));
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|reply| reply.status == StatusCode::OK));
    assert_eq!(server.payment_count().await, 60);
    assert_eq!(server.stats().executed("create_intent"), 60);
    let server = server.restart().await;
    for (reply, (key, body)) in replies.iter().zip(&bodies) {
        let again = server.post_idem("/v1/payments", key, body).await;
        assert!(again.replayed);
        assert_eq!(again.data()["id"], reply.data()["id"]);
    }
    server.stop().await;
}
