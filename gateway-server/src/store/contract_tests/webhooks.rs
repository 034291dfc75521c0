//! The contract of inbound events, the outbox, leases, and the migration
//! that added `provider_refund_id` (with [`migrate_from`], an older schema).

use std::borrow::Cow;

use sqlx::Connection;

use super::*;
use crate::store::{postgres, sqlite};

pub(super) async fn inbound_events_are_stored_once_and_finished_once(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertWebhookEvent(Box::new(event("evt_1", NOW))),
            Change::InsertWebhookEvent(Box::new(event("evt_2", NOW + 1))),
        ])
        .await
        .unwrap();
    // The same event again is acknowledged, not stored twice.
    let mut again = event("evt_1", NOW + 50);
    again.event_type = "changed".to_owned();
    store
        .commit(vec![Change::InsertWebhookEvent(Box::new(again))])
        .await
        .unwrap();
    let stored = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(stored.key, event_key("evt_1"));
    assert_eq!(
        (stored.event_type.as_str(), stored.received_at),
        ("payment_intent.succeeded", NOW)
    );
    assert_eq!(stored.body, event("evt_1", 0).body);
    let other_account = EventKey {
        account: "m1".to_owned(),
        ..event_key("evt_1")
    };
    assert!(store.webhook_event(&other_account).await.unwrap().is_none());
    let pending = store.unprocessed_webhook_events(NOW, 10).await.unwrap();
    assert_eq!(ids(&pending, |e| &e.key.event_id), ["evt_1", "evt_2"]);

    store
        .commit(vec![Change::WebhookEventFailed {
            key: event_key("evt_1"),
            error: "provider down".to_owned(),
            retry_at: NOW,
        }])
        .await
        .unwrap();
    let failed = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(
        (failed.attempts, failed.last_error.as_deref()),
        (1, Some("provider down"))
    );
    assert_eq!(failed.processed_at, None);

    let finish = |at| Change::FinishWebhookEvent {
        key: event_key("evt_1"),
        at,
        note: None,
    };
    store.commit(vec![finish(NOW + 5)]).await.unwrap();
    let done = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(done.processed_at, Some(NOW + 5));
    assert_eq!(
        done.last_error.as_deref(),
        Some("provider down"),
        "no note keeps the last error"
    );
    assert_eq!(
        ids(&store.unprocessed_webhook_events(NOW, 10).await.unwrap(), |e| &e
            .key
            .event_id),
        ["evt_2"]
    );

    // Finishing again conflicts, and takes the rest of its commit with it.
    let twice = store
        .commit(vec![
            Change::SaveIdempotency(record("m1", "effect", 200, 1)),
            finish(NOW + 9),
        ])
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert!(store.idempotency("m1", "effect").await.unwrap().is_none());
    let lone = store.commit(vec![finish(NOW + 9)]).await;
    assert!(matches!(lone, Err(StoreError::Conflict(_))), "{lone:?}");
    let still = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(still.processed_at, Some(NOW + 5));
    store
        .commit(vec![Change::FinishWebhookEvent {
            key: event_key("evt_2"),
            at: NOW + 6,
            note: Some("ignored: unknown payment".to_owned()),
        }])
        .await
        .unwrap();
    let noted = store.webhook_event(&event_key("evt_2")).await.unwrap().unwrap();
    assert_eq!(noted.last_error.as_deref(), Some("ignored: unknown payment"));
    assert!(store
        .unprocessed_webhook_events(NOW, 10)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn deliveries_are_claimed_until_their_claim_expires(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertDelivery(Box::new(delivery("evt_a", "pay_1", "payment.completed", NOW))),
            Change::InsertDelivery(Box::new(delivery("evt_b", "pay_1", "payment.refunded", NOW + 1))),
            Change::InsertDelivery(Box::new(delivery(
                "evt_later",
                "pay_2",
                "payment.completed",
                NOW + 1_000,
            ))),
        ])
        .await
        .unwrap();
    // The same change and type again adds nothing.
    let mut duplicate = delivery("evt_dup", "pay_1", "payment.completed", NOW);
    duplicate.source_event = "bus-evt_a".to_owned();
    store
        .commit(vec![Change::InsertDelivery(Box::new(duplicate))])
        .await
        .unwrap();
    assert!(store.delivery("m1", "evt_dup").await.unwrap().is_none());

    let claimed = store.claim_deliveries(NOW + 10, NOW + 100, 1, 10).await.unwrap();
    assert_eq!(
        ids(&claimed, |d| &d.id),
        ["evt_a"],
        "oldest due first, at most the limit"
    );
    assert_eq!(claimed[0].status, DeliveryStatus::Pending);
    assert!(claimed[0].seq > 0);
    let rest = store.claim_deliveries(NOW + 10, NOW + 100, 10, 10).await.unwrap();
    assert_eq!(
        ids(&rest, |d| &d.id),
        ["evt_b"],
        "claimed rows and rows not due are left"
    );
    assert!(store
        .claim_deliveries(NOW + 50, NOW + 150, 10, 10)
        .await
        .unwrap()
        .is_empty());
    // A claim that ran out (its worker died) frees the row.
    let expired = store
        .claim_deliveries(NOW + 101, NOW + 200, 10, 10)
        .await
        .unwrap();
    assert_eq!(ids(&expired, |d| &d.id), ["evt_a", "evt_b"]);
    assert!(store
        .claim_deliveries(NOW + 150, NOW + 250, 10, 10)
        .await
        .unwrap()
        .is_empty());
    let all = store
        .claim_deliveries(NOW + 1_000, NOW + 2_000, 10, 10)
        .await
        .unwrap();
    assert_eq!(ids(&all, |d| &d.id), ["evt_a", "evt_b", "evt_later"]);
}

/// Commits one attempt and what it leaves its delivery as.
async fn commit_attempt(store: &Opened, attempt: AttemptRow, outcome: DeliveryOutcome) {
    store
        .commit(vec![Change::RecordAttempt { attempt, outcome }])
        .await
        .unwrap();
}

pub(super) async fn attempts_move_deliveries_and_retries_requeue_them(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertDelivery(Box::new(delivery("evt_a", "pay_1", "payment.completed", NOW))),
            Change::InsertDelivery(Box::new(delivery("evt_b", "pay_1", "payment.refunded", NOW))),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_deliveries(NOW, NOW + 100_000, 10, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    commit_attempt(
        &store,
        attempt("evt_a", 1, None),
        DeliveryOutcome::RetryAt(NOW + 500),
    )
    .await;
    let retrying = store.delivery("m1", "evt_a").await.unwrap().unwrap();
    assert_eq!(retrying.status, DeliveryStatus::Pending);
    assert_eq!((retrying.attempts, retrying.next_attempt_at), (1, NOW + 500));
    assert_eq!(retrying.last_error.as_deref(), Some("connection refused"));
    // Recording released the claim: due again at its retry time.
    assert_eq!(
        ids(
            &store
                .claim_deliveries(NOW + 500, NOW + 600, 10, 10)
                .await
                .unwrap(),
            |d| &d.id
        ),
        ["evt_a"]
    );

    // The same attempt recorded twice (a retried commit) is one attempt.
    commit_attempt(
        &store,
        attempt("evt_a", 2, Some(500)),
        DeliveryOutcome::RetryAt(NOW + 900),
    )
    .await;
    commit_attempt(
        &store,
        attempt("evt_a", 2, Some(503)),
        DeliveryOutcome::RetryAt(NOW + 900),
    )
    .await;
    commit_attempt(&store, attempt("evt_a", 3, Some(200)), DeliveryOutcome::Delivered).await;
    let delivered = store.delivery("m1", "evt_a").await.unwrap().unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(
        (delivered.attempts, delivered.delivered_at, delivered.last_status),
        (3, Some(NOW + 3), Some(200))
    );
    let attempts = store.delivery_attempts(&["evt_a"]).await.unwrap();
    let shape: Vec<(i64, Option<i64>)> = attempts.iter().map(|a| (a.attempt, a.http_status)).collect();
    assert_eq!(shape, [(1, None), (2, Some(503)), (3, Some(200))]);
    assert_eq!((attempts[0].latency_ms, attempts[0].at), (12, NOW + 1));
    // A finished delivery takes no more attempts.
    commit_attempt(&store, attempt("evt_a", 4, None), DeliveryOutcome::GaveUp).await;
    assert_eq!(
        store.delivery("m1", "evt_a").await.unwrap().unwrap().status,
        DeliveryStatus::Delivered
    );

    commit_attempt(&store, attempt("evt_b", 1, Some(410)), DeliveryOutcome::GaveUp).await;
    let failed = store.delivery("m1", "evt_b").await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.delivered_at),
        (DeliveryStatus::Failed, None)
    );
    // A manual retry queues a finished delivery again, not a pending one.
    let retry = |id: &str, at| Change::RetryDelivery {
        merchant_id: "m1".to_owned(),
        id: id.to_owned(),
        at,
    };
    store.commit(vec![retry("evt_b", NOW + 2_000)]).await.unwrap();
    let queued = store.delivery("m1", "evt_b").await.unwrap().unwrap();
    assert_eq!(
        (queued.status, queued.next_attempt_at),
        (DeliveryStatus::Pending, NOW + 2_000)
    );
    store.commit(vec![retry("evt_b", NOW + 9_000)]).await.unwrap();
    assert_eq!(
        store
            .delivery("m1", "evt_b")
            .await
            .unwrap()
            .unwrap()
            .next_attempt_at,
        NOW + 2_000
    );
    assert_eq!(
        ids(
            &store
                .claim_deliveries(NOW + 2_000, NOW + 2_100, 10, 10)
                .await
                .unwrap(),
            |d| &d.id
        ),
        ["evt_b"]
    );
}

pub(super) async fn delivery_filters_and_pagination(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![
        Change::InsertMerchant(merchant("m1")),
        Change::InsertMerchant(merchant("m2")),
    ];
    for (id, payment_id, event_type) in [
        ("evt_1", "pay_1", "payment.completed"),
        ("evt_2", "pay_2", "payment.completed"),
        ("evt_3", "pay_1", "payment.refunded"),
        ("evt_4", "pay_2", "payment.failed"),
    ] {
        changes.push(Change::InsertDelivery(Box::new(delivery(
            id, payment_id, event_type, NOW,
        ))));
    }
    let mut foreign = delivery("evt_other", "pay_9", "payment.completed", NOW);
    foreign.merchant_id = "m2".to_owned();
    changes.push(Change::InsertDelivery(Box::new(foreign)));
    changes.push(Change::RecordAttempt {
        attempt: attempt("evt_2", 1, Some(200)),
        outcome: DeliveryOutcome::Delivered,
    });
    store.commit(changes).await.unwrap();
    let list = |filter: DeliveryFilter| {
        let store = store.store.clone();
        async move {
            let rows = store
                .deliveries("m1", &DeliveryFilter { limit: 10, ..filter })
                .await
                .unwrap();
            ids(&rows, |row| &row.id)
        }
    };
    assert_eq!(
        list(DeliveryFilter::default()).await,
        ["evt_4", "evt_3", "evt_2", "evt_1"]
    );
    let delivered = DeliveryFilter {
        status: Some(DeliveryStatus::Delivered),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(delivered).await, ["evt_2"]);
    let pending = DeliveryFilter {
        status: Some(DeliveryStatus::Pending),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(pending).await, ["evt_4", "evt_3", "evt_1"]);
    let completed = DeliveryFilter {
        event_type: Some("payment.completed".to_owned()),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(completed).await, ["evt_2", "evt_1"]);
    let of_payment = DeliveryFilter {
        payment_id: Some("pay_1".to_owned()),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(of_payment).await, ["evt_3", "evt_1"]);
    let first = store
        .deliveries(
            "m1",
            &DeliveryFilter {
                limit: 3,
                ..DeliveryFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&first, |row| &row.id), ["evt_4", "evt_3", "evt_2"]);
    let next = DeliveryFilter {
        before_seq: Some(first[2].seq),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(next).await, ["evt_1"]);
    assert!(store.delivery("m1", "evt_other").await.unwrap().is_none());
}

pub(super) async fn leases_are_exclusive_where_instances_share_the_database(backend: Backend) {
    let store = open(backend).await;
    assert!(store.try_lease("payment:p1", "a", 60_000).await.unwrap());
    assert!(
        store.try_lease("payment:p1", "a", 60_000).await.unwrap(),
        "its holder renews it"
    );
    let other = store.try_lease("payment:p1", "b", 60_000).await.unwrap();
    match backend {
        // Several instances on one database: one holder at a time.
        Backend::Postgres => assert!(!other, "held by a"),
        // One process owns a SQLite file: its in-process locks do the work.
        Backend::Sqlite => assert!(other),
    }
    assert!(
        store.try_lease("payment:p2", "b", 60_000).await.unwrap(),
        "another name"
    );
    store.release_lease("payment:p1", "b").await.unwrap();
    if backend == Backend::Postgres {
        assert!(
            !store.try_lease("payment:p1", "b", 60_000).await.unwrap(),
            "b held none to release"
        );
    }
    store.release_lease("payment:p1", "a").await.unwrap();
    assert!(
        store.try_lease("payment:p1", "b", 60_000).await.unwrap(),
        "released"
    );
    // A lease that ran out goes to whoever asks.
    assert!(store.try_lease("payment:p3", "a", -1).await.unwrap());
    assert!(store.try_lease("payment:p3", "b", 60_000).await.unwrap());
    if backend == Backend::Postgres {
        assert!(!store.try_lease("payment:p3", "a", 60_000).await.unwrap());
    }
}

pub(super) async fn refund_provider_ids_are_backfilled_by_the_migration(backend: Backend) {
    let (url, _dir) = database(backend).await;
    // The schema before the column, with a refund in it.
    let refund_json = serde_json::to_string(&refund("re_old", "pi_1", 100)).unwrap();
    let before = format!(
        "INSERT INTO merchants (id, name, created_at) VALUES ('m1', 'm', 1); \
         INSERT INTO payments (id, merchant_id, provider, provider_ref, status, currency, amount_e4, \
         intent, created_at, updated_at) VALUES ('pay_1', 'm1', 'mock', 'pi_1', 'completed', 'USD', 1, \
         '{{}}', 1, 1); \
         INSERT INTO refunds (id, merchant_id, payment_id, refund, created_at) \
         VALUES ('ref_old', 'm1', 'pay_1', '{}', 1);",
        refund_json.replace('\'', "''")
    );
    migrate_from(backend, &url, [2, 3], &before).await;
    let store = open_url(backend, &url).await;
    let found = store
        .refunds_of_payment("pay_1")
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.refund.id == "re_old")
        .unwrap();
    assert_eq!((found.id.as_str(), found.refund.amount), ("ref_old", 100));
}

/// Migrates a new database at `url` up to version `last` (`[SQLite, PostgreSQL]`),
/// runs `sql` on it, and closes it: the state an older gateway left.
pub(super) async fn migrate_from(backend: Backend, url: &str, last: [i64; 2], sql: &str) {
    let old = |mut migrator: sqlx::migrate::Migrator, last| {
        migrator.migrations = Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|migration| migration.version <= last)
                .cloned()
                .collect(),
        );
        migrator
    };
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            old(sqlite::migrator(), last[0])
                .run_direct(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            old(postgres::migrator(), last[1])
                .run_direct(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}
