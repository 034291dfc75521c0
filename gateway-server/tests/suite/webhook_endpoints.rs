//! Several webhook endpoints per merchant (`/v1/webhook-endpoints`): filters,
//! disabling, per-endpoint backoff, secret rotation with a grace period, and
//! `PUT /v1/merchant/webhook` as the first endpoint's shorthand.

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::common::merchant_endpoint::{fast, set_webhook, Receiver};
use crate::common::{payment_body, Reply, TestServer, ALL_SCOPES};

/// Whether `hit`'s `Gateway-Signature` verifies with `secrets` (any of them).
fn verifies(secrets: &[&str], hit: &(Instant, String, String)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    gateway_core::signature::verify_header(&hit.1, hit.2.as_bytes(), &secrets, Duration::from_secs(300), now)
        .is_ok()
}

/// The event type of a hit's body.
fn type_of(hit: &(Instant, String, String)) -> String {
    let body: Value = serde_json::from_str(&hit.2).unwrap();
    body["type"].as_str().unwrap().to_owned()
}

/// Creates an endpoint with `body`; returns its id and secret.
async fn create(server: &TestServer, idempotency_key: &str, body: Value) -> (String, String) {
    let reply = server
        .post_idem("/v1/webhook-endpoints", idempotency_key, &body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let secret = reply.data()["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (reply.data()["id"].as_str().unwrap().to_owned(), secret)
}

async fn patch(server: &TestServer, id: &str, body: Value) -> Reply {
    server
        .send(
            "PATCH",
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&server.key),
            &[],
            Some(&body.to_string()),
        )
        .await
}

#[actix_web::test]
async fn each_endpoint_receives_only_its_types_and_a_disabled_one_nothing() {
    let (completed, failed, disabled) = (
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
    );
    let server = TestServer::start_with(fast).await;
    let body =
        json!({"url": completed.url, "enabled_events": ["payment.completed"], "description": "orders"});
    let (completed_id, completed_secret) = create(&server, "ep-1", body.clone()).await;
    // A replay is the same endpoint, without the secret.
    let replay = server
        .post_idem("/v1/webhook-endpoints", "ep-1", &body.to_string())
        .await;
    assert!(replay.replayed);
    assert_eq!(replay.data()["id"], completed_id.as_str());
    assert!(replay.data().get("secret").is_none(), "{}", replay.text);
    let (_, failed_secret) = create(
        &server,
        "ep-2",
        json!({"url": failed.url, "enabled_events": ["payment.failed", "payment.failed"]}),
    )
    .await;
    let (disabled_id, _) = create(&server, "ep-3", json!({"url": disabled.url})).await;
    let off = patch(&server, &disabled_id, json!({"enabled": false})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.data()["enabled"], false);
    assert_eq!(
        off.data()["enabled_events"],
        json!(["*"]),
        "absent fields unchanged"
    );

    // Secrets are never shown again.
    let list = server.get("/v1/webhook-endpoints").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let endpoints = list.data()["data"].as_array().unwrap().clone();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0]["id"], completed_id.as_str(), "oldest first");
    assert_eq!(endpoints[0]["description"], "orders");
    assert_eq!(endpoints[1]["enabled_events"], json!(["payment.failed"]));
    for text in [
        list.text.clone(),
        server
            .get(&format!("/v1/webhook-endpoints/{completed_id}"))
            .await
            .text,
    ] {
        assert!(!text.contains("whsec_") && !text.contains("\"secret\""), "{text}");
    }

    server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    let declined = server
        .post(
            "/v1/payments",
            &payment_body("6.00", "pm_card_chargeDeclined", ""),
        )
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    let got = completed.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(type_of(&got[0]), "payment.completed");
    assert!(verifies(&[&completed_secret], &got[0]));
    assert!(
        !verifies(&[&failed_secret], &got[0]),
        "each endpoint its own secret"
    );
    let got = failed.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(type_of(&got[0]), "payment.failed");
    assert!(verifies(&[&failed_secret], &got[0]));
    // The events went everywhere they should (the disabled endpoint has none).
    let events = server.get("/v1/events?limit=10").await;
    for event in events.data()["data"].as_array().unwrap() {
        let detail = server
            .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
            .await;
        let deliveries = detail.data()["deliveries"].as_array().unwrap().clone();
        assert_eq!(deliveries.len(), 1, "{}", detail.text);
        assert_ne!(deliveries[0]["endpoint_id"], disabled_id.as_str());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(disabled.hits().is_empty(), "a disabled endpoint receives nothing");
    assert_eq!(completed.hits().len(), 1);
    assert_eq!(failed.hits().len(), 1);

    // Bad filters name the parameter.
    for bad in [json!(["payment.exploded"]), json!([])] {
        let reply = server
            .post(
                "/v1/webhook-endpoints",
                &json!({"url": completed.url, "enabled_events": bad}).to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.body["error"]["param"], "enabled_events");
    }
    let reply = patch(&server, &completed_id, json!({"enabled_events": ["nope"]})).await;
    assert_eq!(reply.body["error"]["param"], "enabled_events");
    let reply = server.post("/v1/webhook-endpoints", "{}").await;
    assert_eq!(reply.body["error"]["param"], "url");
    server.stop().await;
}

#[actix_web::test]
async fn a_dead_endpoint_backed_off_does_not_hold_back_the_merchants_healthy_one() {
    let dead = Receiver::start(&[503; 200]).await;
    let healthy = Receiver::start(&[]).await;
    let server = TestServer::start_with(|config| {
        fast(config);
        config.webhook_limits.endpoint_failures = 1;
        config.webhook_delivery.first_retry = Duration::from_secs(30);
        config.webhook_delivery.max_delay = Duration::from_secs(60);
    })
    .await;
    // The dead endpoint fails once and is backed off (for about 30 s).
    let (dead_id, _) = create(&server, "dead", json!({"url": dead.url})).await;
    server.pay(&payment_body("1.00", "pm_card_visa", "")).await;
    assert_eq!(dead.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let endpoint_path = format!("/v1/webhook-endpoints/{dead_id}");
    let mut endpoint = Value::Null;
    for _ in 0..400 {
        endpoint = server.get(&endpoint_path).await.data().clone();
        if endpoint["backed_off_until"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(endpoint["backed_off_until"].is_string(), "{endpoint}");
    assert_eq!(endpoint["consecutive_failures"], 1);
    // A healthy endpoint of the same merchant gets every event meanwhile (a
    // liveness bound), while the dead one gets none of its new deliveries.
    create(&server, "healthy", json!({"url": healthy.url})).await;
    for n in 0..5 {
        server
            .pay(&payment_body(&format!("{}.00", n + 2), "pm_card_visa", ""))
            .await;
    }
    let hits = healthy.wait_for(5, Duration::from_secs(15)).await;
    assert_eq!(hits.len(), 5);
    assert_eq!(
        dead.hits().len(),
        1,
        "backed off: nothing tried before its retry time"
    );
    // Deleting it gives up its pending deliveries.
    let deleted = server.delete(&format!("/v1/webhook-endpoints/{dead_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let failed = server.get("/v1/webhook-deliveries?status=failed&limit=100").await;
    let failed = failed.data()["data"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 6, "the retrying one and the five held back");
    assert!(failed.iter().all(
        |d| d["last_error"] == "the webhook endpoint was deleted" && d["endpoint_id"] == dead_id.as_str()
    ));
    let again = server.get(&format!("/v1/webhook-endpoints/{dead_id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let retry = server
        .post(
            &format!(
                "/v1/webhook-deliveries/{}/retry",
                failed[0]["id"].as_str().unwrap()
            ),
            "",
        )
        .await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.text);
    assert_eq!(retry.code(), "endpoint_deleted");
    server.stop().await;
}

#[actix_web::test]
async fn a_rotated_secret_signs_with_both_during_the_grace_period_then_only_the_new() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let (id, old) = create(&server, "rotating", json!({"url": receiver.url})).await;
    let path = format!("/v1/webhook-endpoints/{id}/rotate-secret");
    let rotated = server
        .post_idem(&path, "rotate-1", r#"{"grace_period_secs": 3600}"#)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new = rotated.data()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated.data()["previous_secret_expires_at"].is_string());
    let replay = server
        .post_idem(&path, "rotate-1", r#"{"grace_period_secs": 3600}"#)
        .await;
    assert!(replay.replayed);
    assert!(
        replay.data().get("secret").is_none(),
        "shown once: {}",
        replay.text
    );

    server.pay(&payment_body("11.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].1.matches("v1=").count(), 2, "{}", hits[0].1);
    assert!(
        verifies(&[&old], &hits[0]),
        "a receiver knowing the old secret only"
    );
    assert!(
        verifies(&[&new], &hits[0]),
        "a receiver knowing the new secret only"
    );

    // A rotation without grace: the replaced secrets stop at once.
    let now = server.post(&path, r#"{"grace_period_secs": 0}"#).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.text);
    let newest = now.data()["secret"].as_str().unwrap().to_owned();
    server.pay(&payment_body("12.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].1.matches("v1=").count(), 1, "{}", hits[1].1);
    assert!(verifies(&[&newest], &hits[1]));
    assert!(
        !verifies(&[&old, &new], &hits[1]),
        "the old secrets no longer sign"
    );

    // The grace period is at most 7 days; an empty body takes the default.
    let long = server.post(&path, r#"{"grace_period_secs": 604801}"#).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.body["error"]["param"], "grace_period_secs");
    let default = server.post(&path, "").await;
    assert_eq!(default.status, StatusCode::OK, "{}", default.text);
    let unknown = server
        .post("/v1/webhook-endpoints/we_nothing/rotate-secret", "")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn the_merchant_webhook_is_the_first_endpoint_and_endpoints_are_the_merchants_own() {
    let (first, second) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &first.url).await;
    let list = server.get("/v1/webhook-endpoints").await;
    let endpoints = list.data()["data"].as_array().unwrap().clone();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["url"], first.url.as_str());
    assert_eq!(endpoints[0]["enabled_events"], json!(["*"]));
    let first_id = endpoints[0]["id"].as_str().unwrap().to_owned();
    let (second_id, _) = create(&server, "second", json!({"url": second.url})).await;
    // PUT changes the first endpoint only; the merchant shows its URL.
    let moved = server
        .put(
            "/v1/merchant/webhook",
            &json!({"webhook_url": second.url}).to_string(),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert!(moved.data().get("signing_secret").is_none());
    let one = server.get(&format!("/v1/webhook-endpoints/{first_id}")).await;
    assert_eq!(one.data()["url"], second.url.as_str());
    assert_eq!(
        server.get("/v1/merchant").await.data()["webhook_url"],
        second.url.as_str()
    );
    let back = server
        .put(
            "/v1/merchant/webhook",
            &json!({"webhook_url": first.url}).to_string(),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK);
    server.pay(&payment_body("13.00", "pm_card_visa", "")).await;
    let hits = first.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        verifies(&[&secret], &hits[0]),
        "the shorthand's secret signs the first endpoint"
    );
    assert_eq!(second.wait_for(1, Duration::from_secs(10)).await.len(), 1);

    // Another merchant cannot see, change or delete them.
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let path = format!("/v1/webhook-endpoints/{first_id}");
    assert_eq!(server.get_as(&other, &path).await.status, StatusCode::NOT_FOUND);
    let theirs = server.send("DELETE", &path, Some(&other), &[], None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let listed = server.get_as(&other, "/v1/webhook-endpoints").await;
    assert_eq!(listed.data()["data"], json!([]));
    // Reading needs merchant:read, writing merchant:write.
    let (_, reader) = server.merchant("webhooks:read").await;
    assert_eq!(
        server.get_as(&reader, "/v1/webhook-endpoints").await.status,
        StatusCode::FORBIDDEN
    );
    let (_, read_only) = server.merchant("merchant:read").await;
    let refused = server
        .post_as(
            &read_only,
            "/v1/webhook-endpoints",
            &json!({"url": first.url}).to_string(),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // DELETE /v1/merchant/webhook deletes the first; the next becomes first.
    let deleted = server.delete("/v1/merchant/webhook").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.data()["webhook_url"], second.url.as_str());
    assert_eq!(server.get(&path).await.status, StatusCode::NOT_FOUND);
    let rest = server.get("/v1/webhook-endpoints").await;
    assert_eq!(rest.data()["data"][0]["id"], second_id.as_str());

    // At most 16 endpoints.
    for n in 1..16 {
        create(&server, &format!("many-{n}"), json!({"url": second.url})).await;
    }
    let full = server
        .post("/v1/webhook-endpoints", &json!({"url": second.url}).to_string())
        .await;
    assert_eq!(full.status, StatusCode::CONFLICT, "{}", full.text);
    assert_eq!(full.code(), "too_many_endpoints");
    server.stop().await;
}

/// Many endpoints of one merchant keep the delivery worker at its in-flight
/// cap, each delivery reading its endpoint and secrets from the database
/// while the worker claims the next ones. Every delivery arrives and the API
/// keeps answering: deliveries in flight go on while the worker waits for
/// its claim (they once stalled each other, and every request, for the 30 s
/// connection pool timeout).
#[actix_web::test]
async fn deliveries_at_the_in_flight_cap_do_not_starve_the_connection_pool() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    const ENDPOINTS: usize = 12;
    for n in 0..ENDPOINTS {
        create(&server, &format!("cap-{n}"), json!({"url": receiver.url})).await;
    }
    const PAYMENTS: usize = 3;
    for _ in 0..PAYMENTS {
        server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    }
    let expected = ENDPOINTS * PAYMENTS;
    // Well under the pool's 30 s acquire timeout that a stall waits out.
    let got = receiver.wait_for(expected, Duration::from_secs(15)).await;
    assert_eq!(got.len(), expected, "every endpoint received every event");
    let events = server.get("/v1/events?limit=10").await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    server.stop().await;
}

/// Disabling an endpoint gives up its pending deliveries (as Stripe stops
/// sending to a disabled endpoint); resending the event sends it again.
#[actix_web::test]
async fn disabling_an_endpoint_gives_up_its_pending_deliveries() {
    let failing = Receiver::start(&[503]).await;
    let server = TestServer::start_with(|config| {
        fast(config);
        // The retry after the first 503 is long past the test.
        config.webhook_delivery.first_retry = Duration::from_secs(60);
        config.webhook_delivery.max_delay = Duration::from_secs(120);
    })
    .await;
    let (id, _) = create(&server, "to-disable", json!({"url": failing.url})).await;
    server.pay(&payment_body("3.00", "pm_card_visa", "")).await;
    assert_eq!(failing.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let deliveries = "/v1/webhook-deliveries?limit=10";
    let mut pending = Value::Null;
    for _ in 0..400 {
        pending = server.get(deliveries).await.data()["data"][0].clone();
        if pending["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["attempts"], 1, "{pending}");

    let off = patch(&server, &id, json!({"enabled": false})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    let given_up = server.get(deliveries).await.data()["data"][0].clone();
    assert_eq!(given_up["id"], pending["id"]);
    assert_eq!(given_up["status"], "failed", "{given_up}");
    assert_eq!(given_up["last_error"], "the webhook endpoint was disabled");
    // Disabling again changes nothing; the merchant can resend to it by name.
    let again = patch(&server, &id, json!({"enabled": false, "description": "off"})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let event_id = given_up["event_id"].as_str().unwrap();
    let resent = server
        .post_idem(
            &format!("/v1/events/{event_id}/resend"),
            "resend-disabled",
            &json!({"endpoint_id": id}).to_string(),
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    assert_eq!(failing.wait_for(2, Duration::from_secs(10)).await.len(), 2);
    server.stop().await;
}
