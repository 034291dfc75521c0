//! The limits that keep one merchant or one client from taking the server:
//! the per-merchant rate limit, failed authentications per address, and
//! the cap, duration and revocation of event streams and long polls. (The
//! slow-client deadlines are in `sqlite/slow_clients.rs`: one binary is enough.)

use std::time::{Duration, Instant};

use awc::http::StatusCode;

use crate::common::{payment_body, TestServer, ALL_SCOPES};

/// A payment that stays pending (3-D Secure never completed).
async fn pending_payment(server: &TestServer) -> String {
    let payment = server
        .pay(&payment_body(
            "15.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    assert_eq!(payment["status"], "pending", "{payment}");
    payment["id"].as_str().unwrap().to_owned()
}

/// A new key of the sandbox merchant with `scopes`: (key, key id).
async fn new_key(server: &TestServer, scopes: &str) -> (String, String) {
    let created = server
        .post("/v1/merchant/api_keys", &format!(r#"{{"scopes": {scopes}}}"#))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    (
        created.data()["key"].as_str().unwrap().to_owned(),
        created.data()["id"].as_str().unwrap().to_owned(),
    )
}

/// A response whose body is still to be read.
trait Body: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin {}

impl<S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin> Body
    for S
{
}

/// Opens an event stream with `key`: the response, its head read.
async fn open_stream(server: &TestServer, key: &str, id: &str) -> awc::ClientResponse<impl Body> {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .get(server.url(&format!("/v1/payments/{id}/events")))
        .insert_header(("X-API-Key", key))
        .send()
        .await
        .expect("stream opened")
}

/// Reads a stream to its end, within `within`: its text.
async fn read_to_end(mut response: awc::ClientResponse<impl Body>, within: Duration) -> String {
    let body = tokio::time::timeout(within, response.body().limit(1 << 20))
        .await
        .expect("the stream ended in time")
        .expect("stream read");
    String::from_utf8_lossy(&body).into_owned()
}

#[actix_web::test]
async fn all_keys_of_a_merchant_share_one_rate_limit() {
    let server = TestServer::start_with(|config| {
        config.rate_limit_per_second = 1;
        config.rate_limit_burst = 8;
    })
    .await;
    let (second, _) = new_key(&server, r#"["payments:read"]"#).await;
    let (third, _) = new_key(&server, r#"["payments:read"]"#).await;
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let keys = [server.key.as_str(), second.as_str(), third.as_str()];
    let started = Instant::now();
    let mut passed = 2; // the two key creations
    let mut limited = None;
    for n in 0..40 {
        let reply = server.get_as(keys[n % 3], "/v1/payments").await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        passed += 1;
    }
    let limited = limited.expect("the merchant's keys together reach its limit");
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.retry_after.is_some());
    let allowed = 8 + started.elapsed().as_secs() as usize + 1;
    assert!(
        passed <= allowed,
        "{passed} requests passed, at most {allowed} expected"
    );
    // Another merchant has a bucket of its own.
    assert_eq!(server.get_as(&other, "/v1/payments").await.status, StatusCode::OK);
    server.stop().await;
}

#[actix_web::test]
async fn invalid_keys_from_one_address_are_limited() {
    let server = TestServer::start_with(|config| config.auth_failures_per_minute = 5).await;
    // A valid key, already verified, is not held up by the others' failures.
    assert_eq!(server.get("/v1/payments").await.status, StatusCode::OK);
    for n in 0..5 {
        let reply = server.get_as(&format!("sk_wrong_{n}"), "/v1/payments").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    let refused = server.get_as("sk_wrong_again", "/v1/payments").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.code(), "too_many_failed_authentications");
    assert!(refused
        .retry_after
        .is_some_and(|seconds| seconds.parse::<u64>().unwrap() >= 1));
    assert_eq!(server.get("/v1/payments").await.status, StatusCode::OK);
    server.stop().await;
}

#[actix_web::test]
async fn a_merchant_holds_at_most_its_cap_of_streams_and_long_polls() {
    let server = TestServer::start_with(|config| config.live_per_merchant = 2).await;
    let id = pending_payment(&server).await;
    let first = open_stream(&server, &server.key, &id).await;
    let second = open_stream(&server, &server.key, &id).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = server.get(&format!("/v1/payments/{id}/events")).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.text);
    assert_eq!(third.code(), "too_many_live_requests");
    assert!(third.retry_after.is_some());
    let poll = server.get(&format!("/v1/payments/{id}/wait?timeout=1")).await;
    assert_eq!(poll.status, StatusCode::TOO_MANY_REQUESTS, "{}", poll.text);
    // A settled payment's wait holds no place: it answers at once.
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let others = server.send("GET", "/v1/payments", Some(&other), &[], None).await;
    assert_eq!(others.status, StatusCode::OK);
    drop((first, second));
    server.stop().await;
}

#[actix_web::test]
async fn a_stream_ends_when_its_key_is_revoked() {
    let server = TestServer::start().await;
    let id = pending_payment(&server).await;
    let (key, key_id) = new_key(&server, r#"["payments:read"]"#).await;
    let stream = open_stream(&server, &key, &id).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let reading = actix_web::rt::spawn(read_to_end(stream, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked_at = Instant::now();
    let revoked = server.delete(&format!("/v1/merchant/api_keys/{key_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let text = reading.await.unwrap();
    assert!(
        revoked_at.elapsed() < Duration::from_secs(4),
        "ended {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert!(text.starts_with("event: payment\n"), "{text}");
    assert!(
        text.contains("event: end\n") && text.contains("invalid_api_key"),
        "{text}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_stream_ends_at_its_longest_duration_and_when_the_server_stops() {
    let server = TestServer::start_with(|config| config.live_stream_max = Duration::from_secs(1)).await;
    let id = pending_payment(&server).await;
    let started = Instant::now();
    let text = read_to_end(
        open_stream(&server, &server.key, &id).await,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text.contains("event: end\n") && text.contains("stream_expired"),
        "{text}"
    );
    server.stop().await;

    // A stream still open does not hold up a graceful stop.
    let server = TestServer::start().await;
    let id = pending_payment(&server).await;
    let stream = open_stream(&server, &server.key, &id).await;
    let reading = actix_web::rt::spawn(read_to_end(stream, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    server.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    let text = reading.await.unwrap();
    assert!(text.contains("server_stopping"), "{text}");
}
