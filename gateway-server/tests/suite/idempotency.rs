//! `Idempotency-Key`: replay, mismatch, per-merchant keys, concurrent
//! duplicates, and a lost provider response retried without a second charge.

use std::time::Duration;

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
    // The intent is created (no fault), then the confirm charges and its response is lost.
    server.mock.inject_fault(Fault::Slow(Duration::ZERO));
    server.mock.inject_fault(Fault::LostResponse);
    let lost = server.post_idem("/v1/payments", "retry-me", &body).await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    let payment = lost.data().clone();
    assert_eq!(
        (payment["status"].as_str(), payment["awaiting_provider"].as_bool()),
        (Some("pending"), Some(true))
    );
    assert_eq!(server.stats().charges_made, 1);
    assert_eq!(
        server.payment_count().await,
        1,
        "the row was written before the charge"
    );
    // The retry, its body serialized another way, resumes the same payment with the same
    // provider keys: the provider replays the confirm, no second charge.
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&body).unwrap()).unwrap();
    let retry = server.post_idem("/v1/payments", "retry-me", &reserialized).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(!retry.replayed);
    assert_eq!(retry.data()["id"], payment["id"]);
    assert_eq!(retry.data()["status"], "completed");
    assert_eq!(retry.data()["awaiting_provider"], false);
    let stats = server.stats();
    assert_eq!(stats.charges_made, 1, "{stats:?}");
    assert_eq!(stats.replays, 1);
    assert_eq!(server.payment_count().await, 1);
    // From now on the answer is stored and replayed.
    let again = server.post_idem("/v1/payments", "retry-me", &body).await;
    assert!(again.replayed);
    assert_eq!(again.data()["id"], payment["id"]);
    server.stop().await;
}

#[actix_web::test]
async fn a_different_body_under_a_key_whose_outcome_is_unknown_is_refused() {
    let server = TestServer::start().await;
    let body = payment_body("45.00", "pm_card_visa", "");
    server.mock.inject_fault(Fault::Slow(Duration::ZERO));
    server.mock.inject_fault(Fault::LostResponse);
    let lost = server.post_idem("/v1/payments", "ambiguous", &body).await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    // Another amount under the same key is another request, even though the first has no answer.
    let other = server
        .post_idem(
            "/v1/payments",
            "ambiguous",
            &payment_body("46.00", "pm_card_visa", ""),
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.text);
    assert_eq!(other.code(), "idempotency_key_reused");
    let stats = server.stats();
    assert_eq!(
        (stats.charges_made, stats.calls("create_intent")),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(server.payment_count().await, 1);
    server.stop().await;
}

#[actix_web::test]
async fn an_unknown_outcome_without_a_key_is_resolved_by_reconciliation() {
    let server = TestServer::start().await;
    server.mock.inject_fault(Fault::Slow(Duration::ZERO));
    server.mock.inject_fault(Fault::LostResponse);
    let lost = server
        .post("/v1/payments", &payment_body("12.00", "pm_card_visa", ""))
        .await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    let id = lost.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.stats().charges_made, 1);
    assert_eq!(server.resolve_unknown_outcomes().await, 1);
    let payment = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(payment.data()["status"], "completed", "{}", payment.text);
    assert_eq!(payment.data()["awaiting_provider"], false);
    assert_eq!(server.stats().charges_made, 1);
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

#[actix_web::test]
async fn a_rate_limit_on_the_retry_keeps_an_unknown_capture_and_refund_unresolved() {
    let server = TestServer::start().await;
    let held = server
        .pay(&payment_body(
            "20.00",
            "pm_card_visa",
            r#""capture_method": "manual""#,
        ))
        .await;
    let id = held["id"].as_str().unwrap().to_owned();
    let capture = format!("/v1/payments/{id}/capture");
    // The capture runs, its answer is lost; the retry is rate-limited: that says nothing of the first.
    server.mock.inject_fault_on("capture_intent", Fault::LostResponse);
    let lost = server.post_idem(&capture, "cap-1", "{}").await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    server.mock.inject_fault_on("capture_intent", Fault::RateLimited);
    let limited = server.post_idem(&capture, "cap-1", "{}").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.text);
    let other = server.post_idem(&capture, "cap-2", "{}").await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert_eq!(
        other.code(),
        "payment_outcome_unknown",
        "a new key waits for the unknown capture"
    );
    let done = server.post_idem(&capture, "cap-1", "{}").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.data()["status"], "completed");
    assert_eq!(server.stats().executed("capture_intent"), 1);

    // The same for a refund: the rate-limited retry does not release what the first may have refunded.
    let body = format!(r#"{{"payment_id": "{id}", "amount": "5.00"}}"#);
    server.mock.inject_fault_on("create_refund", Fault::LostResponse);
    let lost = server.post_idem("/v1/refunds", "ref-1", &body).await;
    assert_eq!(lost.status, StatusCode::ACCEPTED, "{}", lost.text);
    server.mock.inject_fault_on("create_refund", Fault::RateLimited);
    let limited = server.post_idem("/v1/refunds", "ref-1", &body).await;
    assert_eq!(limited.status, StatusCode::ACCEPTED, "{}", limited.text);
    assert_eq!(limited.data()["awaiting_provider"], true);
    let all = format!(r#"{{"payment_id": "{id}"}}"#);
    let rest = server.post_idem("/v1/refunds", "ref-2", &all).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(
        rest.data()["amount"],
        "15.00",
        "the unknown refund still holds its 5.00"
    );
    let done = server.post_idem("/v1/refunds", "ref-1", &body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(server.stats().executed("create_refund"), 2);
    server.stop().await;
}
