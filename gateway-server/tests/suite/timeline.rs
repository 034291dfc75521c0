//! `GET /v1/payments/{id}/timeline`: a payment's history through the real
//! server — API requests (replays and refusals too), provider calls, provider
//! webhooks (duplicates too), status changes, handler outcomes and merchant
//! deliveries — bounded per payment, another merchant's unseen, no secret.

use std::time::Duration;

use awc::http::StatusCode;
use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};
use gateway_core::mock::Fault;
use serde_json::Value;

use super::webhooks::{deliver_mock, poll_status};
use crate::common::merchant_endpoint::{fast, set_webhook, Receiver};
use crate::common::{payment_body, TestServer};

/// The metadata that makes [`refuse_flagged_orders`] fail.
const FAIL_FLAG: &str = r#""metadata": {"timeline_handler": "fail"}"#;

/// A plugin handler every server of this test binary runs: it fails (and is
/// retried once) for payments flagged by [`FAIL_FLAG`], and succeeds for the others.
#[payment_handler(name = "timeline_order_book", retries = 1)]
async fn refuse_flagged_orders(event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    if event.intent.metadata.get("timeline_handler").map(String::as_str) == Some("fail") {
        return Err(HandlerError::new("the order book refused the payment"));
    }
    Ok(())
}

/// The timeline's entries (the whole answer is checked to be a list).
async fn timeline(server: &TestServer, id: &str) -> (Value, Vec<Value>) {
    let reply = server.get(&format!("/v1/payments/{id}/timeline")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let data = reply.data().clone();
    assert_eq!(data["object"], "list");
    let entries = data["data"].as_array().expect("entries").clone();
    for entry in &entries {
        assert!(
            entry["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{entry}"
        );
    }
    (data, entries)
}

/// Polls the timeline until `done` holds (bounded).
async fn timeline_until(server: &TestServer, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..200 {
        let (_, entries) = timeline(server, id).await;
        if done(&entries) {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, entries) = timeline(server, id).await;
    panic!("the timeline never got there: {entries:#?}");
}

/// What an entry must be, and what it is called in a failure.
type Check<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

/// Whether `entries` hold, in this order, an entry matching each check.
fn in_order(entries: &[Value], checks: &[Check<'_>]) -> Result<(), String> {
    let mut rest = entries.iter();
    for (what, check) in checks {
        if !rest.any(check) {
            return Err(format!("no {what} in order in {entries:#?}"));
        }
    }
    Ok(())
}

fn is(entry: &Value, kind: &str) -> bool {
    entry["type"] == kind
}

fn call(entry: &Value, operation: &str, outcome: &str) -> bool {
    is(entry, "provider_call")
        && entry["operation"] == operation
        && entry["outcome"] == outcome
        && entry["latency_ms"].as_u64().is_some()
}

fn moved(entry: &Value, to: &str, source: &str) -> bool {
    is(entry, "status_changed") && entry["to"]["status"] == to && entry["source"] == source
}

fn request(entry: &Value, path: &str, status: u16, replayed: bool) -> bool {
    is(entry, "api_request")
        && entry["method"] == "POST"
        && entry["path"] == path
        && entry["status"] == status
        && entry["replayed"] == replayed
}

#[actix_web::test]
async fn a_payment_timeline_shows_its_requests_calls_changes_and_deliveries_in_order() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    set_webhook(&server, &receiver.url).await;
    let body = payment_body("10.00", "pm_card_visa", "");
    let created = server.post_idem("/v1/payments", "tl-create", &body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    let replay = server.post_idem("/v1/payments", "tl-create", &body).await;
    assert!(replay.replayed);
    // A refused request about the payment is recorded too.
    let capture = server.post(&format!("/v1/payments/{id}/capture"), "{}").await;
    assert_eq!(capture.status, StatusCode::CONFLICT, "{}", capture.text);
    let refund = server
        .post_idem(
            "/v1/refunds",
            "tl-refund",
            &format!(r#"{{"payment_id": "{id}", "amount": "4.00"}}"#),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    receiver.wait_for(2, Duration::from_secs(10)).await;

    let entries = timeline_until(&server, &id, |entries| {
        entries
            .iter()
            .filter(|e| is(e, "delivery") && e["status"] == "delivered")
            .count()
            >= 2
            && entries.iter().any(|e| is(e, "handler"))
    })
    .await;
    let capture_path = format!("/v1/payments/{id}/capture");
    in_order(
        &entries,
        &[
            ("the create request", &|e| {
                request(e, "/v1/payments", 200, false) && e["idempotency_key"] == "tl-create"
            }),
            ("the intent's creation", &|e| call(e, "create_intent", "ok")),
            ("the new payment", &|e| {
                moved(e, "pending", "api")
                    && e["from"].is_null()
                    && e["to"]["intent_status"] == "requires_confirmation"
            }),
            ("the confirm", &|e| call(e, "confirm_intent", "ok")),
            ("the completion", &|e| {
                moved(e, "completed", "api")
                    && e["from"]["intent_status"] == "requires_confirmation"
                    && e["to"]["intent_status"] == "succeeded"
            }),
            ("the replay", &|e| {
                request(e, "/v1/payments", 200, true) && e["idempotency_key"] == "tl-create"
            }),
            ("the refused capture", &|e| {
                request(e, &capture_path, 409, false) && e["idempotency_key"].is_null()
            }),
            ("the refund request", &|e| request(e, "/v1/refunds", 200, false)),
            ("the provider refund", &|e| call(e, "create_refund", "ok")),
            ("the partial refund", &|e| {
                moved(e, "partially_refunded", "api") && e["from"]["status"] == "completed"
            }),
        ],
    )
    .unwrap();
    let deliveries: Vec<&Value> = entries.iter().filter(|e| is(e, "delivery")).collect();
    assert!(deliveries.iter().any(|d| d["event_type"] == "payment.completed"));
    for delivery in &deliveries {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_http_status"], 200);
    }
    let handler = entries.iter().find(|e| is(e, "handler")).unwrap();
    assert_eq!(handler["handler"], "timeline_order_book");
    assert_eq!(handler["outcome"], "succeeded");
    assert_eq!(handler["attempts"], 1);
    // The delivery of the completion comes after the completion itself.
    let completed_at = entries.iter().position(|e| moved(e, "completed", "api")).unwrap();
    let delivered_at = entries
        .iter()
        .position(|e| is(e, "delivery") && e["event_type"] == "payment.completed")
        .unwrap();
    assert!(delivered_at > completed_at, "{entries:#?}");

    // Another merchant sees none of it; an unknown payment is a 404 as well.
    let (_, other_key) = server.merchant("payments:read").await;
    let foreign = server
        .get_as(&other_key, &format!("/v1/payments/{id}/timeline"))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    assert_eq!(foreign.code(), "resource_missing");
    let unknown = server.get("/v1/payments/pay_nope/timeline").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn a_three_d_secure_payment_shows_its_webhook_and_a_duplicate_of_it() {
    let server = TestServer::start_with(fast).await;
    let created = server
        .post_idem(
            "/v1/payments",
            "tl-3ds",
            &payment_body(
                "30.00",
                "pm_card_threeDSecure2Required",
                r#""return_url": "https://shop.example/back""#,
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let payment = created.data().clone();
    assert_eq!(payment["status"], "pending");
    let client_secret = payment["client_secret"]
        .as_str()
        .expect("a client secret")
        .to_owned();
    let id = payment["id"].as_str().unwrap().to_owned();
    let intent = payment["provider_ref"].as_str().unwrap();
    server.mock.take_events();
    server.mock.complete_authentication(intent, true).unwrap();
    let event = server
        .mock
        .take_events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .expect("succeeded event");
    assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    poll_status(&server, &id, "completed").await;

    let entries = timeline_until(&server, &id, |entries| {
        entries.iter().any(|e| moved(e, "completed", "webhook"))
    })
    .await;
    in_order(
        &entries,
        &[
            ("the new payment", &|e| moved(e, "pending", "api")),
            ("the confirm", &|e| call(e, "confirm_intent", "ok")),
            ("the wait for the customer", &|e| {
                moved(e, "pending", "api") && e["to"]["intent_status"] == "requires_action"
            }),
            ("the webhook", &|e| {
                is(e, "webhook_received")
                    && e["event_id"] == event.id.as_str()
                    && e["event_type"] == "payment_intent.succeeded"
                    && e["duplicate"] == false
            }),
            ("the completion", &|e| {
                moved(e, "completed", "webhook") && e["from"]["intent_status"] == "requires_action"
            }),
        ],
    )
    .unwrap();

    // The same event again: stored once, applied once, and on the timeline as a duplicate.
    assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    let entries = timeline_until(&server, &id, |entries| {
        entries
            .iter()
            .any(|e| is(e, "webhook_received") && e["duplicate"] == true)
    })
    .await;
    let received: Vec<&Value> = entries.iter().filter(|e| is(e, "webhook_received")).collect();
    assert_eq!(received.len(), 2, "{entries:#?}");
    assert_eq!(received[1]["event_id"], event.id.as_str());
    assert_eq!(
        entries
            .iter()
            .filter(|e| moved(e, "completed", "webhook"))
            .count(),
        1,
        "applied once"
    );

    // No secret anywhere in the answer.
    let text = server.get(&format!("/v1/payments/{id}/timeline")).await.text;
    assert!(!text.contains(&client_secret), "{text}");
    assert!(!text.contains(&server.key), "{text}");
    assert!(!text.contains("client_secret"), "{text}");
    server.stop().await;
}

#[actix_web::test]
async fn a_failing_handler_shows_its_error_and_attempts() {
    let server = TestServer::start().await;
    let payment = server
        .pay(&payment_body("12.00", "pm_card_visa", FAIL_FLAG))
        .await;
    let id = payment["id"].as_str().unwrap();
    let entries = timeline_until(&server, id, |entries| entries.iter().any(|e| is(e, "handler"))).await;
    let handler = entries.iter().find(|e| is(e, "handler")).unwrap();
    assert_eq!(handler["handler"], "timeline_order_book");
    assert_eq!(handler["outcome"], "failed");
    assert_eq!(handler["attempts"], 2, "the first attempt and its one retry");
    assert!(
        handler["error"]
            .as_str()
            .is_some_and(|error| error.contains("the order book refused the payment")),
        "{handler}"
    );
    let completed = entries.iter().position(|e| moved(e, "completed", "api")).unwrap();
    let handled = entries.iter().position(|e| is(e, "handler")).unwrap();
    assert!(handled > completed, "{entries:#?}");
    server.stop().await;
}

#[actix_web::test]
async fn an_outcome_the_provider_left_unknown_shows_as_unknown() {
    let server = TestServer::start().await;
    server
        .mock
        .inject_fault_on("confirm_intent", Fault::TimeoutAfterSend);
    let reply = server
        .post_idem(
            "/v1/payments",
            "tl-unknown",
            &payment_body("15.00", "pm_card_visa", ""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let id = reply.data()["id"].as_str().unwrap().to_owned();
    let (_, entries) = timeline(&server, &id).await;
    in_order(
        &entries,
        &[
            ("the request, answered 202", &|e| {
                request(e, "/v1/payments", 202, false)
            }),
            ("the creation", &|e| call(e, "create_intent", "ok")),
            ("the unknown confirm", &|e| {
                call(e, "confirm_intent", "unknown") && e["error_kind"].is_null()
            }),
        ],
    )
    .unwrap();
    assert!(
        !entries.iter().any(|e| moved(e, "failed", "api")),
        "an unknown outcome is never a failure: {entries:#?}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_provider_call_past_the_provider_timeout_is_abandoned_as_unknown_and_resolved() {
    let server = TestServer::start_with(|config| config.provider_timeout = Duration::from_secs(1)).await;
    // The confirm would answer after 30 s: the gateway stops waiting at 1 s.
    server
        .mock
        .inject_fault_on("confirm_intent", Fault::Slow(Duration::from_secs(30)));
    let reply = server
        .post_idem(
            "/v1/payments",
            "tl-bound",
            &payment_body("16.00", "pm_card_visa", ""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.data()["awaiting_provider"], true, "{}", reply.text);
    let id = reply.data()["id"].as_str().unwrap().to_owned();
    let (_, entries) = timeline(&server, &id).await;
    let confirm = entries
        .iter()
        .find(|e| call(e, "confirm_intent", "unknown"))
        .unwrap_or_else(|| panic!("an unknown confirm: {entries:#?}"));
    let latency = confirm["latency_ms"].as_i64().unwrap();
    assert!(
        (1000..30_000).contains(&latency),
        "abandoned at the bound: {confirm}"
    );
    // Resolving asks the provider: the abandoned confirm never ran there, so
    // the payment waits for the client's retry, never failed.
    assert!(server.resolve_unknown_outcomes().await >= 1);
    let payment = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(payment.status, StatusCode::OK, "{}", payment.text);
    assert_eq!(payment.data()["status"], "pending", "{}", payment.text);
    assert_eq!(
        payment.data()["intent_status"],
        "requires_confirmation",
        "{}",
        payment.text
    );
    assert_eq!(
        payment.data()["awaiting_provider"],
        false,
        "resolved: {}",
        payment.text
    );
    assert_eq!(payment.data()["amount_received"], "0.00");
    server.stop().await;
}

#[actix_web::test]
async fn replays_stop_growing_a_timeline_at_its_cap_but_status_changes_still_count() {
    /// `app::timeline::CAP`.
    const CAP: usize = 200;
    let server = TestServer::start().await;
    let body = payment_body("20.00", "pm_card_visa", r#""capture_method": "manual""#);
    let created = server.post_idem("/v1/payments", "tl-flood", &body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.data()["intent_status"], "requires_capture");
    let (data, _) = timeline(&server, &id).await;
    assert_eq!(data["truncated"], false);
    for _ in 0..(CAP + 10) {
        let replay = server.post_idem("/v1/payments", "tl-flood", &body).await;
        assert!(replay.replayed, "{}", replay.text);
    }
    let captured = server.post(&format!("/v1/payments/{id}/capture"), "{}").await;
    assert_eq!(captured.status, StatusCode::OK, "{}", captured.text);
    let (data, entries) = timeline(&server, &id).await;
    assert_eq!(data["truncated"], true);
    let others = entries.iter().filter(|e| !is(e, "status_changed")).count();
    assert_eq!(others, CAP, "the cap holds: {} entries", entries.len());
    assert!(
        entries.last().is_some_and(|e| moved(e, "completed", "api")),
        "the capture's status change is still recorded: {:#?}",
        entries.last()
    );
    // More replays change nothing.
    server.post_idem("/v1/payments", "tl-flood", &body).await;
    let (_, again) = timeline(&server, &id).await;
    assert_eq!(again.len(), entries.len());
    server.stop().await;
}
