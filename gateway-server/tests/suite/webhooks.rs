//! Inbound provider webhooks, outbound merchant webhooks, reconciliation and
//! live status, through the real HTTP server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gateway_core::{EventKind, IntentStatus, ProviderEvent};
use gateway_server::{Config, ServerBuilder};
use serde_json::Value;

use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

pub(super) async fn merchant_id(server: &TestServer) -> String {
    server.get("/v1/merchant").await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts an event of the gateway-wide mock account as its webhook, to the
/// gateway-wide endpoint (a merchant's own endpoint takes only the
/// webhooks of its own account).
pub(super) async fn deliver_mock(server: &TestServer, event: &ProviderEvent) -> awc::http::StatusCode {
    let request = server.mock.webhook_request(event, 0);
    let body = String::from_utf8(request.body.clone()).unwrap();
    let signature = request.header("Mock-Signature").unwrap().to_owned();
    server
        .send(
            "POST",
            "/v1/webhooks/mock",
            None,
            &[("Mock-Signature", &signature)],
            Some(&body),
        )
        .await
        .status
}

pub(super) async fn poll_status(server: &TestServer, id: &str, want: &str) -> Value {
    for _ in 0..200 {
        // The list does not refresh from the provider, unlike GET /v1/payments/{id}.
        let list = server.get("/v1/payments?limit=100").await;
        let found = list.data()["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap();
        if found["status"] == want {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("payment {id} never became {want}");
}

/// Runs `work` on its own runtime and thread (the server's runtime is busy serving).
fn on_own_runtime<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}

/// The first column of the first row of `sql`, on the server's database (SQLite or PostgreSQL).
pub(super) fn db_count(server: &TestServer, sql: &str) -> i64 {
    db_count_at(&server.config.database_url, sql)
}

/// [`db_count`] on the database at `url`.
pub(super) fn db_count_at(url: &str, sql: &str) -> i64 {
    let url = url.to_owned();
    let sql = sql.to_owned();
    on_own_runtime(async move {
        use sqlx::{Connection, Row};
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(&sql)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get::<i64, _>(0)
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(&sql)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    })
}

#[actix_web::test]
async fn api_changes_reach_the_bus_exactly_once() {
    let server = TestServer::start().await;
    let mut watch = server.bus().watch_all();
    let payment = server.pay(&payment_body("12.00", "pm_card_visa", "")).await;
    let mut seen = Vec::new();
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        seen.push(change);
    }
    let kinds: Vec<EventKind> = seen.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Succeeded], "{seen:?}");
    for change in &seen {
        assert_eq!(change.context.source, gateway_core::ChangeSource::Api);
        assert!(change.context.local);
        assert_eq!(
            change.context.merchant.as_deref(),
            Some(merchant_id(&server).await.as_str())
        );
        assert_eq!(change.intent.id, payment["provider_ref"]);
    }
    assert_ne!(seen[0].context.event_id, seen[1].context.event_id);
    server.stop().await;
}

#[actix_web::test]
async fn a_webhook_delivered_five_times_is_processed_and_sent_once() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    let payment = server
        .pay(&payment_body(
            "30.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    assert_eq!(payment["status"], "pending");
    let pending = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(verify(&secret, &pending[0])["type"], "payment.pending");

    let intent = payment["provider_ref"].as_str().unwrap();
    server.mock.take_events();
    server.mock.complete_authentication(intent, true).unwrap();
    let event = server
        .mock
        .take_events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .expect("succeeded event");
    let mut watch = server.bus().watch_all();
    for _ in 0..5 {
        assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    }
    let id = payment["id"].as_str().unwrap();
    poll_status(&server, id, "completed").await;
    let hits = receiver.wait_for(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut published = Vec::new();
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(100), watch.next()).await {
        published.push(change);
    }
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].kind, EventKind::Succeeded);
    assert_eq!(published[0].context.event_id, event.id);
    assert_eq!(published[0].context.source, gateway_core::ChangeSource::Webhook);
    let hits_now = receiver.hits();
    assert_eq!(hits_now.len(), 2, "one payment.pending, one payment.completed");
    let completed = verify(&secret, &hits[1]);
    assert_eq!(completed["type"], "payment.completed");
    assert_eq!(completed["data"]["payment"]["id"], id);
    assert_eq!(completed["data"]["payment"]["status"], "completed");
    assert!(
        completed["sequence"].as_i64().unwrap() > verify(&secret, &pending[0])["sequence"].as_i64().unwrap()
    );
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_events"), 1);
    server.stop().await;
}

#[actix_web::test]
async fn a_late_processing_event_does_not_move_a_succeeded_payment_back() {
    let server = TestServer::start_with(fast).await;
    let payment = server.pay(&payment_body("9.00", "pm_card_visa", "")).await;
    let mut event = server
        .mock
        .take_events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .unwrap();
    event.id = "evt_late_processing".into();
    event.event_type = "payment_intent.processing".into();
    let gateway_core::EventObject::Intent { intent } = &mut event.object else {
        panic!("a payment_intent event carries its intent");
    };
    intent.status = IntentStatus::Processing;
    intent.amount_received = 0;
    assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    wait_until_processed(&server, 1).await;
    let id = payment["id"].as_str().unwrap();
    // The list shows the stored row (GET /v1/payments/{id} would refresh a processing one).
    let list = server.get("/v1/payments?limit=100").await;
    let now = list.data()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == id)
        .cloned()
        .expect("the payment is listed");
    assert_eq!(now["status"], "completed");
    assert_eq!(now["intent_status"], "succeeded");
    server.stop().await;
}

/// Headers and body of one request.
type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>);

#[actix_web::test]
async fn bad_webhooks_are_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let path = "/v1/webhooks/mock";
    server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    let event = server.mock.take_events().pop().unwrap();
    let request = server.mock.webhook_request(&event, 0);
    let body = String::from_utf8(request.body.clone()).unwrap();
    let secret = request.header("Mock-Signature").unwrap().to_owned();
    let garbage = "x".repeat(1 << 20);
    let cases: Vec<Case<'_>> = vec![
        (vec![("Mock-Signature", "whsec_wrong")], Some(&body)),
        (vec![], Some(&body)),
        (vec![("Mock-Signature", secret.as_str())], Some("")),
        (vec![("Mock-Signature", secret.as_str())], Some(&garbage)),
        (vec![("Mock-Signature", secret.as_str())], Some("{not json")),
        (
            vec![
                ("Mock-Signature", secret.as_str()),
                ("Content-Type", "text/plain"),
            ],
            Some(&body),
        ),
    ];
    for (headers, body) in cases {
        let reply = server.send("POST", path, None, &headers, body).await;
        assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.text);
        assert_eq!(reply.body["success"], false, "{}", reply.text);
    }
    let unknown = server
        .send(
            "POST",
            "/v1/webhooks/mock/no-such-merchant",
            None,
            &[("Mock-Signature", secret.as_str())],
            Some(&body),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_events"), 0);
    let metrics = server.send("GET", "/metrics", None, &[], None).await;
    assert!(metrics
        .text
        .contains("gateway_webhooks_total{direction=\"inbound\",outcome=\"refused\"}"));
    assert!(!metrics.text.contains(&secret));
    server.stop().await;
}

#[actix_web::test]
async fn every_stripe_vector_through_the_endpoint() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/stripe-webhook-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("the shared Stripe webhook vectors must exist");
    let vectors: Value = serde_json::from_str(&text).unwrap();
    let vectors = vectors["vectors"].as_array().unwrap();
    let secret = vectors[0]["secret"].as_str().unwrap().to_owned();
    let now = vectors[0]["now"].as_i64().unwrap();
    let mut settings = gateway_core::ProviderConfig::new();
    settings.set("secret_key", "sk_test_vectors");
    settings.set("webhook_secrets", secret.clone());
    // No test reaches Stripe: retrievals go to a closed local port and fail.
    settings.set("api_base", "http://127.0.0.1:9");
    settings.set("max_retries", "0");
    settings.set("timeout_ms", "200");
    let stripe = gateway_core::build_provider("stripe", &settings).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".to_owned(),
        database_url: format!("sqlite://{}", dir.path().join("gateway.db").display()),
        master_key: Some("0123456789abcdef".repeat(4)),
        workers: 2,
        log_level: "warn".to_owned(),
        ..Config::default()
    };
    let server = ServerBuilder::new(config.clone())
        .provider(stripe)
        .clock(Arc::new(move || now))
        .start()
        .await
        .unwrap();
    let client = awc::Client::default();
    let mut ok_ids = std::collections::BTreeSet::new();
    for vector in vectors {
        assert_eq!(vector["now"].as_i64(), Some(now));
        assert_eq!(vector["secret"].as_str(), Some(secret.as_str()));
        let payload = vector["payload"].as_str().unwrap().to_owned();
        let response = client
            .post(format!("http://{}/v1/webhooks/stripe", server.addr()))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Stripe-Signature", vector["header"].as_str().unwrap()))
            .send_body(payload.clone())
            .await
            .unwrap();
        let expect = vector["expect"].as_str().unwrap();
        if expect == "ok" {
            assert_eq!(response.status(), StatusCode::OK, "{}", vector["name"]);
            let event: Value = serde_json::from_str(&payload).unwrap();
            ok_ids.insert(event["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{}", vector["name"]);
        }
    }
    let db = dir.path().join("gateway.db").display().to_string();
    let stored = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await.unwrap();
            sqlx::query("SELECT event_id FROM webhook_events WHERE provider = 'stripe' AND account = '' ORDER BY event_id")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect::<Vec<_>>()
        })
    })
    .join()
    .unwrap();
    assert_eq!(
        stored,
        ok_ids.into_iter().collect::<Vec<_>>(),
        "each verified event stored once"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_failing_endpoint_gets_growing_delays_then_exactly_one_delivery() {
    let receiver = Receiver::start(&[503, 503, 503]).await;
    let server = TestServer::start_with(fast).await;
    let secret = set_webhook(&server, &receiver.url).await;
    let payment = server.pay(&payment_body("20.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 4);
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "{gaps:?}");
    let bodies: Vec<Value> = hits.iter().map(|hit| verify(&secret, hit)).collect();
    assert!(bodies
        .iter()
        .all(|b| b["id"] == bodies[0]["id"] && b["type"] == "payment.completed"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.hits().len(), 4, "nothing after the 2xx");
    let list = server
        .get(&format!(
            "/v1/webhook-deliveries?payment_id={}",
            payment["id"].as_str().unwrap()
        ))
        .await;
    let deliveries = list.data()["data"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "delivered");
    assert_eq!(deliveries[0]["attempts"], 4);
    let id = deliveries[0]["id"].as_str().unwrap();
    let one = server.get(&format!("/v1/webhook-deliveries/{id}")).await;
    let log = one.data()["attempt_log"].as_array().unwrap().clone();
    let statuses: Vec<i64> = log.iter().map(|a| a["http_status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);
    assert!(log[0]["error"].as_str().unwrap().contains("503"));
    // The delivery names its event: the payload's id.
    let event_id = deliveries[0]["event_id"].as_str().unwrap().to_owned();
    assert!(
        event_id.starts_with("evt_") && id.starts_with("whd_"),
        "{event_id} {id}"
    );
    assert_eq!(verify(&secret, &hits[0])["id"], event_id.as_str());
    assert!(deliveries[0]["endpoint_id"].as_str().unwrap().starts_with("we_"));
    // A manual retry sends it again (same event id).
    let retried = server
        .post(&format!("/v1/webhook-deliveries/{id}/retry"), "")
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    let hits = receiver.wait_for(5, Duration::from_secs(5)).await;
    assert_eq!(verify(&secret, &hits[4])["id"], event_id.as_str());
    // Scopes: reading needs webhooks:read.
    let (_, reader) = server.merchant("payments:read").await;
    assert_eq!(
        server.get_as(&reader, "/v1/webhook-deliveries").await.status,
        StatusCode::FORBIDDEN
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_delivery_survives_a_crash_between_attempts() {
    let receiver = Receiver::start(&[503]).await;
    let server = TestServer::start_with(|config| {
        fast(config);
        config.webhook_delivery.first_retry = Duration::from_millis(1500);
    })
    .await;
    let secret = set_webhook(&server, &receiver.url).await;
    server.pay(&payment_body("20.00", "pm_card_visa", "")).await;
    let first = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    let server = server.crash_and_restart().await;
    let hits = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(verify(&secret, &hits[0])["id"], verify(&secret, &hits[1])["id"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.hits().len(), 2, "delivered once after the restart");
    let list = server.get("/v1/webhook-deliveries?status=delivered").await;
    assert_eq!(list.data()["data"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn an_event_stored_before_a_crash_is_processed_after_restart() {
    let server = TestServer::start_with(|config| {
        fast(config);
        config.webhook_sweep_interval = Duration::from_secs(3600);
    })
    .await;
    let merchant = merchant_id(&server).await;
    let payment = server
        .pay(&payment_body(
            "40.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    let intent = payment["provider_ref"].as_str().unwrap();
    server.mock.complete_authentication(intent, true).unwrap();
    let event = server
        .mock
        .take_events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .unwrap();
    // As if the process died right after storing the event and answering 2xx.
    let body = serde_json::to_vec(&event).unwrap();
    db_exec(
        &server,
        "INSERT INTO webhook_events (provider, account, event_id, event_type, body, received_at) \
         VALUES ('mock', $1, $2, 'payment_intent.succeeded', $3, 0)",
        vec![merchant.clone(), event.id.clone()],
        body,
    );
    let id = payment["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(poll_status(&server, &id, "pending").await["status"], "pending");
    let server = server.restart().await;
    poll_status(&server, &id, "completed").await;
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NOT NULL"
        ),
        1
    );
    server.stop().await;
}

/// Runs `sql` with `texts` then `blob` bound (`$1`, `$2`, … on both backends), on the server's database.
fn db_exec(server: &TestServer, sql: &str, texts: Vec<String>, blob: Vec<u8>) {
    let url = server.config.database_url.clone();
    let sql = sql.to_owned();
    on_own_runtime(async move {
        use sqlx::Connection;
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut query = sqlx::query(&sql);
            for text in texts {
                query = query.bind(text);
            }
            query.bind(blob).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let mut query = sqlx::query(&sql);
            for text in texts {
                query = query.bind(text);
            }
            query.bind(blob).execute(&mut conn).await.unwrap();
        }
    });
}

#[actix_web::test]
async fn wait_returns_when_the_payment_completes_and_reconciliation_heals_a_missed_webhook() {
    let server = TestServer::start_with(|config| {
        fast(config);
        config.reconcile.after = Duration::from_millis(300);
        config.reconcile.interval = Duration::from_millis(100);
    })
    .await;
    let payment = server
        .pay(&payment_body(
            "15.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let intent = payment["provider_ref"].as_str().unwrap().to_owned();
    let quick = server.get(&format!("/v1/payments/{id}/wait?timeout=0")).await;
    assert_eq!(quick.data()["status"], "pending");
    let started = Instant::now();
    let mock = server.mock.clone();
    actix_web::rt::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The customer finishes 3-D Secure; no webhook is delivered: reconciliation finds it.
        mock.complete_authentication(&intent, true).unwrap();
    });
    let waited = server.get(&format!("/v1/payments/{id}/wait?timeout=20")).await;
    assert_eq!(waited.data()["status"], "completed", "{}", waited.text);
    assert!(started.elapsed() < Duration::from_secs(15));
    let sse = server.get(&format!("/v1/payments/{id}/events")).await;
    assert_eq!(sse.content_type.as_deref(), Some("text/event-stream"));
    assert!(sse.text.starts_with("event: payment\n"), "{}", sse.text);
    assert!(sse.text.contains("\"status\":\"completed\""));
    let bad = server.get(&format!("/v1/payments/{id}/wait?timeout=600")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[actix_web::test]
async fn an_intent_whose_creation_reply_was_lost_is_adopted_by_its_draft_payment() {
    let server = TestServer::start_with(fast).await;
    // The intent names its gateway payment in its metadata (as every intent
    // the gateway creates does), so the event is kept, not set aside as not ours.
    let body = payment_body(
        "33.00",
        "pm_card_threeDSecure2Required",
        r#""return_url": "https://shop.example/back", "metadata": {"gateway_payment_id": "pay_not_stored_yet"}"#,
    );
    // The provider creates the intent but the gateway never hears back: the draft waits.
    server.mock.inject_fault(gateway_core::mock::Fault::LostResponse);
    let lost = server.post_idem("/v1/payments", "order-unknown-1", &body).await;
    assert_eq!(lost.status, StatusCode::SERVICE_UNAVAILABLE, "{}", lost.text);
    let id = lost.body["error"]["payment_id"]
        .as_str()
        .expect("the draft's id")
        .to_owned();
    let draft = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(
        (
            draft.data()["provider_ref"].as_str(),
            draft.data()["awaiting_provider"].as_bool()
        ),
        (Some(""), Some(true))
    );
    // The intent's creation event names the draft in its metadata: the draft adopts it.
    let created = server.mock.take_events();
    let event = created
        .iter()
        .find(|e| e.event_type == "payment_intent.created")
        .expect("a creation event");
    let intent = event.intent().unwrap().id.clone();
    assert_eq!(
        event.intent().unwrap().metadata.get("gateway_payment_id"),
        Some(&id)
    );
    assert_eq!(deliver_mock(&server, event).await, StatusCode::OK);
    wait_until_processed(&server, 1).await;
    let adopted = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(
        adopted.data()["provider_ref"],
        intent.as_str(),
        "{}",
        adopted.text
    );
    assert_eq!(adopted.data()["awaiting_provider"], false);
    // The merchant retries: the same payment is confirmed as first asked, and 3-D Secure follows.
    let retried = server.post_idem("/v1/payments", "order-unknown-1", &body).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.data()["id"], id.as_str());
    assert_eq!(retried.data()["intent_status"], "requires_action");
    server.mock.complete_authentication(&intent, true).unwrap();
    let succeeded = server
        .mock
        .take_events()
        .into_iter()
        .find(|e| e.event_type == "payment_intent.succeeded")
        .expect("the success event");
    assert_eq!(deliver_mock(&server, &succeeded).await, StatusCode::OK);
    poll_status(&server, &id, "completed").await;
    assert_eq!(server.stats().charges_made, 1);
    assert_eq!(
        server.stats().calls("create_intent"),
        1,
        "the retry did not create another intent"
    );
    server.stop().await;
}

#[actix_web::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let server = TestServer::start().await;
    let event = ProviderEvent {
        id: "evt_customer_created".into(),
        provider: "mock".into(),
        event_type: "customer.created".into(),
        created: 1_700_000_000,
        object: gateway_core::EventObject::Unhandled,
    };
    let mut watch = server.bus().watch_all();
    assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    assert_eq!(deliver_mock(&server, &event).await, StatusCode::OK);
    wait_until_processed(&server, 1).await;
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_events"), 1);
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NOT NULL"
        ),
        1
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), watch.next())
            .await
            .is_err(),
        "nothing published"
    );
    server.stop().await;
}
/// Waits (up to 1 s) until `count` stored inbound events are processed; fails the test otherwise.
pub(super) async fn wait_until_processed(server: &TestServer, count: i64) {
    let processed = || {
        db_count(
            server,
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NOT NULL",
        )
    };
    for _ in 0..50 {
        if processed() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(processed(), count, "stored inbound events processed within 1 s");
}

/// Polls a delivery until it has `status`.
async fn delivery_with_status(server: &TestServer, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.get(&format!("/v1/webhook-deliveries/{id}")).await;
        if reply.data()["status"] == status || Instant::now() > deadline {
            assert_eq!(reply.data()["status"], status, "{}", reply.text);
            return reply.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_delivery_retry_honours_the_idempotency_key() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    set_webhook(&server, &receiver.url).await;
    let payment = server.pay(&payment_body("7.00", "pm_card_visa", "")).await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let list = server
        .get(&format!(
            "/v1/webhook-deliveries?payment_id={}",
            payment["id"].as_str().unwrap()
        ))
        .await;
    let id = list.data()["data"][0]["id"].as_str().unwrap().to_owned();
    delivery_with_status(&server, &id, "delivered").await;
    let retry = format!("/v1/webhook-deliveries/{id}/retry");
    let bad = server.post_idem(&retry, "not a key", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "idempotency_key_invalid");
    let first = server.post_idem(&retry, "retry-once", "").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(!first.replayed);
    assert_eq!(first.data()["status"], "pending");
    assert!(first.data()["next_attempt_at"].is_string());
    assert_eq!(receiver.wait_for(2, Duration::from_secs(5)).await.len(), 2);
    delivery_with_status(&server, &id, "delivered").await;
    // The same key again: the stored answer, and nothing sent again.
    let again = server.post_idem(&retry, "retry-once", "").await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.replayed);
    assert_eq!(again.text, first.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.hits().len(), 2, "a replayed retry sends nothing");
    // The key belongs to that request: on another path it is refused.
    let other = server
        .post_idem("/v1/webhook-deliveries/evt_other/retry", "retry-once", "")
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency_key_reused");
    // A new key retries again.
    let fresh = server.post_idem(&retry, "retry-twice", "").await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(!fresh.replayed);
    assert_eq!(receiver.wait_for(3, Duration::from_secs(5)).await.len(), 3);
    server.stop().await;
}
