//! The events API (`GET /v1/events`, `GET /v1/events/{id}`, `POST
//! /v1/events/{id}/resend`) and the retention of events, through the real server.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::Value;

use super::webhooks::db_count;
use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer, ALL_SCOPES};

/// The `data` array of a list answer.
fn items(reply: &crate::common::Reply) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.data()["data"].as_array().expect("a list").clone()
}

/// The ids of a list answer's items.
fn ids_of(reply: &crate::common::Reply) -> Vec<String> {
    items(reply)
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn events_are_stored_without_an_endpoint_and_listed_by_filter_and_page() {
    let server = TestServer::start().await;
    let mut completed = Vec::new();
    for amount in ["1.00", "2.00", "3.00"] {
        let payment = server.pay(&payment_body(amount, "pm_card_visa", "")).await;
        completed.push(payment["id"].as_str().unwrap().to_owned());
    }
    let declined = server
        .post(
            "/v1/payments",
            &payment_body("4.00", "pm_card_chargeDeclined", ""),
        )
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED, "{}", declined.text);

    // No endpoint is configured, yet every event is stored.
    let all = server.get("/v1/events?limit=100").await;
    let events = items(&all);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "payment.failed",
            "payment.completed",
            "payment.completed",
            "payment.completed"
        ],
        "newest first"
    );
    let first = &events[3];
    assert!(first["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(first["object"], "event");
    assert_eq!(first["payment_id"], completed[0].as_str());
    assert_eq!(first["data"]["payment"]["id"], completed[0].as_str());
    assert_eq!(first["data"]["payment"]["status"], "completed");
    assert!(events
        .windows(2)
        .all(|pair| pair[0]["sequence"].as_i64() > pair[1]["sequence"].as_i64()));
    assert!(
        first.get("deliveries").is_none(),
        "the list leaves deliveries out"
    );
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_deliveries"), 0);

    // Filters: type, payment, created range.
    let failed = server.get("/v1/events?type=payment.failed").await;
    assert_eq!(items(&failed).len(), 1);
    let of_payment = server
        .get(&format!("/v1/events?payment_id={}", completed[1]))
        .await;
    assert_eq!(items(&of_payment).len(), 1);
    assert_eq!(items(&of_payment)[0]["payment_id"], completed[1].as_str());
    let created = first["created_at"].as_str().unwrap();
    let since = server
        .get(&format!("/v1/events?since={created}&type=payment.completed"))
        .await;
    assert_eq!(items(&since).len(), 3, "since is inclusive");
    let future = server.get("/v1/events?since=2999-01-01T00:00:00Z").await;
    assert!(items(&future).is_empty());
    let past = server.get("/v1/events?until=2000-01-01T00:00:00Z").await;
    assert!(items(&past).is_empty());
    let bad = server.get("/v1/events?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["param"], "since");

    // Pages of two, walked with the cursor: every event once.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            None => "/v1/events?limit=2".to_owned(),
            Some(cursor) => format!("/v1/events?limit=2&cursor={cursor}"),
        };
        let page = server.get(&path).await;
        walked.extend(ids_of(&page));
        cursor = page.data()["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            assert_eq!(page.data()["has_more"], false);
            break;
        }
    }
    assert_eq!(walked, ids_of(&all));
    let unknown = server.get("/v1/events?cursor=evt_nothing").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // Another merchant sees none of them, and one of them is a 404 to it.
    let (_, other) = server.merchant(ALL_SCOPES).await;
    assert!(items(&server.get_as(&other, "/v1/events").await).is_empty());
    let id = first["id"].as_str().unwrap();
    let foreign = server.get_as(&other, &format!("/v1/events/{id}")).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    assert_eq!(foreign.code(), "resource_missing");
    // Reading events needs webhooks:read.
    let (_, reader) = server.merchant("payments:read").await;
    assert_eq!(
        server.get_as(&reader, "/v1/events").await.status,
        StatusCode::FORBIDDEN
    );
    let one = server.get(&format!("/v1/events/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.data()["deliveries"], serde_json::json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn an_event_lists_its_deliveries_with_their_attempts() {
    let receiver = Receiver::start(&[503]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    let payment = server.pay(&payment_body("7.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 2, "a 503, then the retry");
    let body = verify(&secret, &hits[1]);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(hits[0].2, hits[1].2, "every attempt sends the same bytes");
    // The event's detail: its deliveries, each with its attempts, once recorded.
    let mut detail = Value::Null;
    for _ in 0..200 {
        let reply = server.get(&format!("/v1/events/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        detail = reply.data().clone();
        if detail["deliveries"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(detail["type"], "payment.completed");
    assert_eq!(detail["payment_id"], payment["id"]);
    assert_eq!(detail["sequence"], body["sequence"]);
    assert_eq!(detail["data"], body["data"], "the payload's data");
    let deliveries = detail["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["event_id"], id.as_str());
    assert_eq!(deliveries[0]["status"], "delivered");
    let statuses: Vec<i64> = deliveries[0]["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["http_status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 200]);
    server.stop().await;
}

#[actix_web::test]
async fn a_resend_is_a_new_delivery_of_the_same_event_and_payload() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    server.pay(&payment_body("8.00", "pm_card_visa", "")).await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    let id = verify(&secret, &first[0])["id"].as_str().unwrap().to_owned();

    let path = format!("/v1/events/{id}/resend");
    let resent = server.post_idem(&path, "resend-1", "").await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    assert_eq!(resent.data()["id"], id.as_str());
    let deliveries = resent.data()["deliveries"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 2, "the first delivery and the new one");
    assert_ne!(deliveries[0]["id"], deliveries[1]["id"]);
    assert_eq!(deliveries[1]["status"], "pending");
    let hits = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].2, hits[0].2, "the same payload");
    assert_eq!(verify(&secret, &hits[1])["id"], id.as_str());
    // The same Idempotency-Key is the same resend: replayed, nothing sent.
    let replay = server.post_idem(&path, "resend-1", "").await;
    assert!(replay.replayed);
    assert_eq!(replay.body, resent.body);
    // To one endpoint by id; an unknown endpoint or event is a 404.
    let endpoint = deliveries[0]["endpoint_id"].as_str().unwrap();
    let to_one = server
        .post(&path, &format!(r#"{{"endpoint_id": "{endpoint}"}}"#))
        .await;
    assert_eq!(to_one.status, StatusCode::OK, "{}", to_one.text);
    assert_eq!(receiver.wait_for(3, Duration::from_secs(10)).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 3, "the replay sent nothing");
    let no_endpoint = server.post(&path, r#"{"endpoint_id": "we_nothing"}"#).await;
    assert_eq!(no_endpoint.status, StatusCode::NOT_FOUND, "{}", no_endpoint.text);
    let no_event = server.post("/v1/events/evt_nothing/resend", "").await;
    assert_eq!(no_event.status, StatusCode::NOT_FOUND);
    // Without an endpoint that would take it: 409 with a clear code.
    let deleted = server.delete("/v1/merchant/webhook").await;
    assert_eq!(deleted.status, StatusCode::OK);
    let nowhere = server.post(&path, "").await;
    assert_eq!(nowhere.status, StatusCode::CONFLICT, "{}", nowhere.text);
    assert_eq!(nowhere.code(), "no_matching_endpoint");
    // Resending needs merchant:write.
    let (_, reader) = server.merchant("webhooks:read").await;
    assert_eq!(
        server.post_as(&reader, &path, "").await.status,
        StatusCode::FORBIDDEN
    );
    server.stop().await;
}

#[actix_web::test]
async fn old_events_are_pruned_unless_a_delivery_is_pending() {
    let receiver = Receiver::start(&[503; 20]).await;
    let server = TestServer::start_with(|config| {
        fast(config);
        config.webhook_delivery.first_retry = Duration::from_secs(600);
    })
    .await;
    // One event without an endpoint, one whose delivery keeps failing.
    let quiet = server.pay(&payment_body("9.00", "pm_card_visa", "")).await;
    set_webhook(&server, &receiver.url).await;
    let busy = server.pay(&payment_body("9.50", "pm_card_visa", "")).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let event_of = |payment: &Value| {
        let path = format!("/v1/events?payment_id={}", payment["id"].as_str().unwrap());
        let server = &server;
        async move { ids_of(&server.get(&path).await)[0].clone() }
    };
    let (quiet_event, busy_event) = (event_of(&quiet).await, event_of(&busy).await);
    // Recent events stay.
    assert_eq!(server.prune_now().await.events, 0);
    // Made old (as if stored long ago).
    db_count(&server, "UPDATE events SET created_at = 1 RETURNING seq");
    let pruned = server.prune_now().await;
    assert_eq!(pruned.events, 1, "{pruned:?}");
    let gone = server.get(&format!("/v1/events/{quiet_event}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let kept = server.get(&format!("/v1/events/{busy_event}")).await;
    assert_eq!(kept.status, StatusCode::OK, "its delivery is still pending");
    server.stop().await;
}
