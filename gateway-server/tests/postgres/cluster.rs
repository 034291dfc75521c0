//! Several gateway instances on one PostgreSQL database: idempotency keys
//! shared between them, the cluster event bus (`LISTEN/NOTIFY`), cached
//! configuration forgotten on every instance when it changes, and merchant
//! webhooks sent from one outbox. SQLite is one process's database, so these
//! run only in the `postgres` binary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use gateway_core::{
    ChangeSource, Currency, EventBus, EventKind, HandlerFuture, HandlerOptions, IntentChange,
    IntentChangeContext, IntentStatus, Money, PaymentIntent,
};
use gateway_server::cluster::ClusterRelay;
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::postgres::fresh_database;
use crate::common::{payment_body, TestServer, ALL_SCOPES};

fn intent(id: &str, status: IntentStatus) -> PaymentIntent {
    let received = if status == IntentStatus::Succeeded {
        1000
    } else {
        0
    };
    PaymentIntent::fixture(id, Money::from_minor(1000, Currency::USD).unwrap())
        .status(status)
        .received(received)
        .build()
}

/// A change as an instance that received it publishes it (`local = true`).
fn change(event_id: &str, kind: EventKind, intent: PaymentIntent) -> IntentChange {
    IntentChange::new(
        kind,
        intent,
        Some(IntentStatus::Processing),
        IntentChangeContext {
            event_id: event_id.to_owned(),
            source: ChangeSource::Webhook,
            local: true,
            received_at: 0,
            merchant: None,
        },
    )
}

type Seen = Arc<Mutex<Vec<(&'static str, String, bool)>>>;

/// A bus whose handlers record (handler, event id, local): `every` runs for
/// every change, `here_only` only for changes received on this instance.
fn recording_bus() -> (EventBus, Seen) {
    let seen: Seen = Arc::default();
    let record = |name: &'static str, seen: Seen| {
        move |change: gateway_core::SharedChange, _ctx| -> HandlerFuture {
            seen.lock()
                .unwrap()
                .push((name, change.context.event_id.clone(), change.context.local));
            Box::pin(async { Ok(()) })
        }
    };
    let here_only = HandlerOptions {
        local_only: true,
        ..HandlerOptions::DEFAULT
    };
    let bus = EventBus::builder()
        .handler(
            "every",
            None,
            HandlerOptions::DEFAULT,
            record("every", seen.clone()),
        )
        .handler("here_only", None, here_only, record("here_only", seen.clone()))
        .build()
        .unwrap();
    (bus, seen)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap()
}

#[actix_web::test]
async fn one_idempotency_key_sent_to_two_instances_makes_one_provider_call() {
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let body = payment_body("21.00", "pm_card_visa", "");
    let requests = (0..12).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.post_idem("/v1/payments", "both-instances", &body)
    });
    let replies = futures_util::future::join_all(requests).await;
    assert!(
        replies.iter().all(|reply| reply.status == StatusCode::OK),
        "{replies:?}"
    );
    let id = &replies[0].data()["id"];
    assert!(replies.iter().all(|reply| &reply.data()["id"] == id));
    assert_eq!(replies.iter().filter(|reply| !reply.replayed).count(), 1);
    let stats = a.stats();
    assert_eq!(stats.calls("create_intent"), 1, "{stats:?}");
    assert_eq!(stats.charges_made, 1);
    assert_eq!(b.payment_count().await, 1);
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn the_lease_of_a_dead_instance_runs_out() {
    let server = TestServer::start().await;
    let database = server.postgres.clone().unwrap();
    let mut db = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let merchant: String = sqlx::query("SELECT id FROM merchants")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    // An instance took the key and died: its lease runs out in 1.5 s.
    let expires = "(extract(epoch from clock_timestamp()) * 1000)::bigint + 1500";
    sqlx::query(&format!(
        "INSERT INTO leases (name, owner, expires_at) VALUES ($1, 'dead-instance', {expires})"
    ))
    .bind(format!("idempotency:{merchant}:orphaned"))
    .execute(&mut db)
    .await
    .unwrap();
    let started = Instant::now();
    let reply = server
        .post_idem(
            "/v1/payments",
            "orphaned",
            &payment_body("5.00", "pm_card_visa", ""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!reply.replayed);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(server.stats().calls("create_intent"), 1);
    // Released once done (the retention worker's own lease aside).
    let left: i64 = sqlx::query("SELECT COUNT(*) FROM leases WHERE name LIKE 'idempotency:%'")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_published_on_one_instance_reach_the_other_with_local_false() {
    let database = fresh_database().await;
    let (bus_a, seen_a) = recording_bus();
    let (bus_b, seen_b) = recording_bus();
    let relay_a = ClusterRelay::start(bus_a.clone(), pool(&database.url).await)
        .await
        .unwrap();
    let relay_b = ClusterRelay::start(bus_b.clone(), pool(&database.url).await)
        .await
        .unwrap();
    assert_ne!(relay_a.instance_id(), relay_b.instance_id());

    let mut watch_b = bus_b.watch_all();
    let waiting = {
        let bus_b = bus_b.clone();
        tokio::spawn(async move {
            bus_b
                .wait_for_payment("pi_cluster_1", Duration::from_secs(10))
                .await
        })
    };
    // A large intent: far past NOTIFY's 8000-byte payload limit.
    let mut paid = intent("pi_cluster_1", IntentStatus::Succeeded);
    paid.description = Some("x".repeat(20_000));
    let _ = bus_a.publish(change("evt_1", EventKind::Succeeded, paid.clone()));

    let arrived = tokio::time::timeout(Duration::from_secs(10), watch_b.next())
        .await
        .expect("the change reaches B")
        .unwrap();
    assert_eq!(arrived.context.event_id, "evt_1");
    assert!(
        !arrived.context.local,
        "a change from another instance is not local"
    );
    assert_eq!(arrived.intent, paid);
    let resolved = waiting.await.unwrap().expect("wait_for_payment on B resolves");
    assert_eq!(resolved.id, "pi_cluster_1");

    bus_a.idle().await;
    eventually("B's handlers", || seen_b.lock().unwrap().len() == 1).await;
    bus_b.idle().await;
    // A ran both handlers locally; B ran only the one that is not local-only, with local = false.
    let mut on_a = seen_a.lock().unwrap().clone();
    on_a.sort();
    assert_eq!(
        on_a,
        [
            ("every", "evt_1".to_owned(), true),
            ("here_only", "evt_1".to_owned(), true)
        ]
    );
    assert_eq!(*seen_b.lock().unwrap(), [("every", "evt_1".to_owned(), false)]);

    // B's changes reach A too, and nobody gets its own back.
    let _ = bus_b.publish(change(
        "evt_2",
        EventKind::Canceled,
        intent("pi_cluster_2", IntentStatus::Canceled),
    ));
    eventually("B's change on A", || {
        seen_a
            .lock()
            .unwrap()
            .contains(&("every", "evt_2".to_owned(), false))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen_a.lock().unwrap().len(), 3);
    assert_eq!(seen_b.lock().unwrap().len(), 3);
    drop((relay_a, relay_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listen_connection_is_reestablished_and_missed_events_caught_up() {
    let database = fresh_database().await;
    let (bus_a, _) = recording_bus();
    let (bus_b, seen_b) = recording_bus();
    let _relay_a = ClusterRelay::start(bus_a.clone(), pool(&database.url).await)
        .await
        .unwrap();
    let _relay_b = ClusterRelay::start(bus_b.clone(), pool(&database.url).await)
        .await
        .unwrap();
    let admin = pool(&database.url).await;
    let listeners = || async {
        sqlx::query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&admin)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i32, _>(0))
        .collect::<Vec<_>>()
    };
    let before = listeners().await;
    assert_eq!(before.len(), 2, "one LISTEN connection per relay");
    // Drop every LISTEN connection, and publish while they are gone.
    for pid in &before {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&admin)
            .await
            .unwrap();
    }
    for i in 0..20 {
        let _ = bus_a.publish(change(
            &format!("evt_lost_{i}"),
            EventKind::Succeeded,
            intent(&format!("pi_lost_{i}"), IntentStatus::Succeeded),
        ));
    }
    eventually("the missed events on B", || {
        seen_b
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _, _)| *name == "every")
            .count()
            == 20
    })
    .await;
    // The relays listen again, on new connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = listeners().await;
        if after.len() == 2 && after.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LISTEN was not re-established: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And new events arrive through them.
    let _ = bus_a.publish(change(
        "evt_after",
        EventKind::Succeeded,
        intent("pi_after", IntentStatus::Succeeded),
    ));
    eventually("an event after reconnecting", || {
        seen_b
            .lock()
            .unwrap()
            .iter()
            .any(|(_, id, local)| id == "evt_after" && !local)
    })
    .await;
}

#[actix_web::test]
async fn two_server_instances_share_their_bus_events() {
    // Every server on PostgreSQL relays its own bus: no wiring by hand.
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let payment = a
        .pay(&payment_body("12.00", "pm_card_threeDSecure2Required", ""))
        .await;
    let intent_id = payment["provider_ref"].as_str().unwrap().to_owned();
    let mut seen_on_b = b.bus().watch_all();
    let waiting = {
        let bus_b = b.bus().clone();
        let intent_id = intent_id.clone();
        actix_web::rt::spawn(async move { bus_b.wait_for_payment(&intent_id, Duration::from_secs(10)).await })
    };
    // What A publishes once the webhook for this payment reached it.
    let _ = a.bus().publish(change(
        "evt_webhook_1",
        EventKind::Succeeded,
        intent(&intent_id, IntentStatus::Succeeded),
    ));
    let resolved = waiting.await.unwrap().expect("B's wait resolves");
    assert_eq!(resolved.status, IntentStatus::Succeeded);
    let relayed = loop {
        let change = tokio::time::timeout(Duration::from_secs(10), seen_on_b.next())
            .await
            .expect("B sees the change")
            .expect("B's bus is open");
        if change.event_id() == "evt_webhook_1" {
            break change;
        }
    };
    assert!(
        !relayed.context.local,
        "a change received by A arrives on B with local = false"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn refunds_of_one_payment_on_two_instances_are_all_counted() {
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let payment = a.pay(&payment_body("60.00", "pm_card_visa", "")).await;
    let id = payment["id"].as_str().unwrap();
    let body = format!(r#"{{"payment_id": "{id}", "amount": "10.00"}}"#);
    let refunds = (0..6).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.post("/v1/refunds", &body)
    });
    let replies = futures_util::future::join_all(refunds).await;
    assert!(
        replies.iter().all(|reply| reply.status == StatusCode::OK),
        "{replies:?}"
    );
    // Without a lock across instances, two would read the same amount refunded and one refund would be lost.
    let read = b.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["amount_refunded"], "60.00");
    assert_eq!(read.data()["status"], "refunded");
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn two_instances_send_each_merchant_webhook_exactly_once() {
    let receiver = Receiver::start(&[]).await;
    let a = TestServer::start_with(fast).await;
    let secret = set_webhook(&a, &receiver.url).await;
    let b = a.another_instance().await;
    // Payments through both instances; both delivery workers claim from one outbox.
    for index in 0..10 {
        let server = if index % 2 == 0 { &a } else { &b };
        server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    }
    let hits = receiver.wait_for(10, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), hits.len(), "nothing sent again after delivery");
    let ids: std::collections::BTreeSet<String> = hits_after
        .iter()
        .map(|hit| verify(&secret, hit)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "ten payments, ten webhooks");
    assert_eq!(hits_after.len(), 10, "each sent exactly once");
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn when_one_instance_dies_the_other_finishes_its_deliveries() {
    // The merchant's endpoint fails at first, so deliveries are mid-retry when A dies.
    let receiver = Receiver::start(&[503, 503, 503]).await;
    let a = TestServer::start_with(fast).await;
    let secret = set_webhook(&a, &receiver.url).await;
    let b = a.another_instance().await;
    let payment = a.pay(&payment_body("7.00", "pm_card_visa", "")).await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(!first.is_empty(), "a first attempt was made");
    drop(a); // A crashes: whatever it claimed is freed when its lease runs out.
    let hits = receiver.wait_for(4, Duration::from_secs(30)).await;
    assert_eq!(hits.len(), 4, "three failures, then one success");
    let bodies: Vec<Value> = hits.iter().map(|hit| verify(&secret, hit)).collect();
    assert!(bodies.iter().all(|body| body["id"] == bodies[0]["id"]));
    assert_eq!(bodies[0]["data"]["payment"]["id"], payment["id"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.hits().len(), 4, "nothing after the 2xx");
    let list = b
        .get(&format!(
            "/v1/webhook-deliveries?payment_id={}",
            payment["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list.data()["data"][0]["status"], "delivered");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_starts_while_a_transaction_is_open_does_not_miss_its_row() {
    let database = fresh_database().await;
    // A relay creates the table; it publishes nothing itself.
    let (bus_a, _) = recording_bus();
    let _relay_a = ClusterRelay::start(bus_a, pool(&database.url).await)
        .await
        .unwrap();
    let insert = "INSERT INTO cluster_events (origin, payload, created_at) \
                  VALUES ('gw_elsewhere', $1, (extract(epoch from clock_timestamp()) * 1000)::bigint) \
                  RETURNING id";
    let payload = |event_id: &str, intent_id: &str| {
        serde_json::to_string(&change(
            event_id,
            EventKind::Succeeded,
            intent(intent_id, IntentStatus::Succeeded),
        ))
        .unwrap()
    };
    // An instance's insert takes its id, and its transaction stays open…
    let mut slow = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut open = slow.begin().await.unwrap();
    let late: i64 = sqlx::query(insert)
        .bind(payload("evt_late", "pi_late"))
        .fetch_one(&mut *open)
        .await
        .unwrap()
        .get(0);
    // …while another commits a row with a higher id.
    let mut quick = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let early: i64 = sqlx::query(insert)
        .bind(payload("evt_early", "pi_early"))
        .fetch_one(&mut quick)
        .await
        .unwrap()
        .get(0);
    assert!(late < early, "ids are taken in order: {late} < {early}");
    // B starts now: the newest row it sees is `early`, and `late` is not visible yet.
    let (bus_b, seen_b) = recording_bus();
    let _relay_b = ClusterRelay::start(bus_b, pool(&database.url).await)
        .await
        .unwrap();
    open.commit().await.unwrap();
    eventually("the row committed after B started", || {
        seen_b
            .lock()
            .unwrap()
            .contains(&("every", "evt_late".to_owned(), false))
    })
    .await;
    // What was committed before B started is not B's to replay.
    assert!(
        !seen_b
            .lock()
            .unwrap()
            .iter()
            .any(|(_, event_id, _)| event_id == "evt_early"),
        "{:?}",
        seen_b.lock().unwrap()
    );
}

/// How soon a change made through one instance must reach the others.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Runs `check` until it holds; fails once [`PROPAGATION`] has passed.
async fn within_a_second<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let started = Instant::now();
        if check().await {
            return;
        }
        assert!(started < deadline, "{what}: not within {PROPAGATION:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id of the merchant's key that starts with `key`'s prefix.
async fn key_id(server: &TestServer, key: &str) -> String {
    let keys = server.get_as(key, "/v1/merchant/api_keys").await;
    keys.data()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| key.starts_with(row["prefix"].as_str().unwrap()))
        .expect("the key is listed")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Revokes `key` through `server`, with the key itself.
async fn revoke(server: &TestServer, key: &str) {
    let id = key_id(server, key).await;
    let revoked = server
        .send(
            "DELETE",
            &format!("/v1/merchant/api_keys/{id}"),
            Some(key),
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
}

#[actix_web::test]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other_within_a_second() {
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let (_, key) = a.merchant(ALL_SCOPES).await;
    // B has checked the key and trusts it from its cache.
    assert_eq!(b.get_as(&key, "/v1/payments").await.status, StatusCode::OK);
    revoke(&a, &key).await;
    assert_eq!(
        a.get_as(&key, "/v1/payments").await.status,
        StatusCode::UNAUTHORIZED
    );
    within_a_second("B refuses the revoked key", || async {
        b.get_as(&key, "/v1/payments").await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn an_event_stream_on_another_instance_ends_when_its_key_is_revoked() {
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let (_, key) = a.merchant(ALL_SCOPES).await;
    let payment = a
        .post_as(
            &key,
            "/v1/payments",
            &payment_body(
                "15.00",
                "pm_card_threeDSecure2Required",
                r#""return_url": "https://shop.example/back""#,
            ),
        )
        .await;
    let payment = payment.data()["id"].as_str().unwrap().to_owned();
    let mut stream = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .get(b.url(&format!("/v1/payments/{payment}/events")))
        .insert_header(("X-API-Key", key.as_str()))
        .send()
        .await
        .expect("stream opened on B");
    assert_eq!(stream.status(), StatusCode::OK);
    let reading = actix_web::rt::spawn(async move {
        let body = tokio::time::timeout(Duration::from_secs(15), stream.body().limit(1 << 20)).await;
        body.map(|body| String::from_utf8_lossy(&body.unwrap_or_default()).into_owned())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    revoke(&a, &key).await;
    let revoked_at = Instant::now();
    let text = reading.await.unwrap().expect("B's stream ended");
    assert!(
        revoked_at.elapsed() < Duration::from_secs(4),
        "B's stream ended {:?} after the revocation on A",
        revoked_at.elapsed()
    );
    assert!(
        text.contains("event: end\n") && text.contains("invalid_api_key"),
        "{text}"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn a_key_revoked_with_the_command_line_is_refused_by_running_servers_within_a_second() {
    let a = TestServer::start().await;
    let (merchant, key) = a.merchant(ALL_SCOPES).await;
    assert_eq!(a.get_as(&key, "/v1/payments").await.status, StatusCode::OK);
    let id = key_id(&a, &key).await;
    let url = a.config.database_url.clone();
    let output = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["apikey", "revoke", "--merchant", &merchant, "--id", &id])
            .env("GATEWAY_DATABASE_URL", url)
            .env("GATEWAY_LOG_LEVEL", "warn")
            .env_remove("GATEWAY_CONFIG")
            .output()
            .expect("gateway runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("at once"), "{stderr}");
    within_a_second("the server refuses the key revoked elsewhere", || async {
        a.get_as(&key, "/v1/payments").await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    a.stop().await;
}

#[actix_web::test]
async fn credentials_stored_through_one_instance_are_used_by_the_other_within_a_second() {
    let a = TestServer::start().await;
    let b = a.another_instance().await;
    let body = payment_body("9.00", "pm_card_visa", "");
    // B charges on the gateway-wide account (and remembers the merchant has none of its own).
    b.pay(&body).await;
    assert_eq!(a.stats().calls("create_intent"), 1);
    let stored = a
        .put(
            "/v1/merchant/providers",
            r#"{"provider": "mock", "mock": {"seed": "7"}}"#,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    within_a_second("B charges on the merchant's own account", || async {
        let before = a.stats().calls("create_intent");
        b.pay(&body).await;
        a.stats().calls("create_intent") == before
    })
    .await;
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn a_webhook_url_changed_on_one_instance_is_where_the_other_delivers_within_a_second() {
    let first = Receiver::start(&[]).await;
    let second = Receiver::start(&[]).await;
    let a = TestServer::start_with(fast).await;
    set_webhook(&a, &first.url).await;
    let b = a.another_instance().await;
    let body = payment_body("4.00", "pm_card_visa", "");
    let delivered_to = |payment: Value| {
        let b = &b;
        async move {
            let path = format!(
                "/v1/webhook-deliveries?payment_id={}",
                payment["id"].as_str().unwrap()
            );
            b.get(&path).await.data()["data"][0]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    // B sends to the first URL (and keeps it in its cache).
    assert_eq!(delivered_to(b.pay(&body).await).await, first.url);
    assert_eq!(first.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    let changed = a
        .put(
            "/v1/merchant/webhook",
            &format!(r#"{{"webhook_url": "{}"}}"#, second.url),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    within_a_second("B delivers to the new URL", || async {
        delivered_to(b.pay(&body).await).await == second.url
    })
    .await;
    assert!(
        !second.wait_for(1, Duration::from_secs(10)).await.is_empty(),
        "the new URL received the event"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_web::test]
async fn an_endpoint_added_or_filtered_on_one_instance_is_what_the_other_delivers_to_within_a_second() {
    let receiver = Receiver::start(&[]).await;
    let a = TestServer::start_with(fast).await;
    let b = a.another_instance().await;
    let body = payment_body("5.00", "pm_card_visa", "");
    let deliveries_of = |payment: Value| {
        let b = &b;
        async move {
            let path = format!(
                "/v1/webhook-deliveries?payment_id={}",
                payment["id"].as_str().unwrap()
            );
            b.get(&path).await.data()["data"].as_array().unwrap().len()
        }
    };
    // B has read (and cached) that the merchant has no endpoint.
    assert_eq!(deliveries_of(b.pay(&body).await).await, 0);
    let created = a
        .post(
            "/v1/webhook-endpoints",
            &format!(r#"{{"url": "{}"}}"#, receiver.url),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    within_a_second("B delivers to the new endpoint", || async {
        deliveries_of(b.pay(&body).await).await == 1
    })
    .await;
    // A filter set through A: B stops sending payment.completed to it.
    let filtered = a
        .send(
            "PATCH",
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&a.key),
            &[],
            Some(r#"{"enabled_events": ["payment.failed"]}"#),
        )
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.text);
    within_a_second("B applies the new filter", || async {
        deliveries_of(b.pay(&body).await).await == 0
    })
    .await;
    b.stop().await;
    a.stop().await;
}
