//! The store contract: one suite, run against SQLite and against PostgreSQL
//! (`sqlite::NAME` and `postgres::NAME`), proving the backends agree on
//! every entity's commit and read back, conditional changes, claims and their
//! expiry, leases, purges, filters and pagination.
//!
//! PostgreSQL runs on a throwaway cluster of this test binary's own, started
//! by the integration tests' harness (`tests/common/postgres.rs`, included
//! here), one database per test.

use std::borrow::Cow;
use std::sync::Arc;

use gateway_core::{IntentStatus, PaymentIntent, PaymentStatus, Refund};
use serde_json::json;
use sqlx::Connection;

use super::postgres::{self, PostgresStore};
use super::sqlite::{self, SqliteStore};
use super::*;
use crate::domain::scopes::Scopes;

#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// An open store and what keeps its database alive.
struct Opened {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Opened {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

/// A new, empty database's URL on `backend`, and the directory it lives in.
async fn database(backend: Backend) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("store.db").display()),
        Backend::Postgres => harness::fresh_database().await.url,
    };
    (url, dir)
}

async fn open_url(backend: Backend, url: &str) -> Arc<dyn Store> {
    match backend {
        Backend::Sqlite => Arc::new(SqliteStore::open(url).await.expect("open SQLite")),
        Backend::Postgres => Arc::new(PostgresStore::open(url).await.expect("open PostgreSQL")),
    }
}

async fn open(backend: Backend) -> Opened {
    let (url, dir) = database(backend).await;
    Opened {
        store: open_url(backend, &url).await,
        _dir: dir,
    }
}

/// Runs each named contract test on both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres_backend {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

contract!(
    merchants_keys_and_credentials_round_trip,
    payments_and_refunds_round_trip,
    many_payments_in_one_commit,
    payment_filters_and_pagination,
    stale_payments_are_the_old_pending_ones,
    customers_and_cards_round_trip,
    idempotency_records_replace_and_purge,
    a_failing_change_rolls_back_its_whole_commit,
    inbound_events_are_stored_once_and_finished_once,
    deliveries_are_claimed_until_their_claim_expires,
    attempts_move_deliveries_and_retries_requeue_them,
    delivery_filters_and_pagination,
    leases_are_exclusive_where_instances_share_the_database,
    refund_provider_ids_are_backfilled_by_the_migration,
);

const NOW: i64 = 1_700_000_000_000;

fn merchant(id: &str) -> MerchantRow {
    MerchantRow {
        id: id.to_owned(),
        name: format!("merchant {id}"),
        webhook_url: None,
        created_at: NOW,
    }
}

/// An intent as a provider reports it (built from its JSON form).
fn intent(provider_ref: &str, status: IntentStatus, amount: i64, currency: &str) -> PaymentIntent {
    serde_json::from_value(json!({
        "id": provider_ref, "provider": "mock", "amount": amount,
        "amount_received": if status == IntentStatus::Succeeded { amount } else { 0 },
        "amount_capturable": 0, "currency": currency, "status": status,
        "capture_method": "automatic", "customer": null, "payment_method": null, "client_secret": null,
        "metadata": {"order_id": "o-1"}, "description": null, "next_action": null,
        "last_payment_error": null, "cancellation_reason": null, "created": 1, "updated": 2,
    }))
    .expect("an intent")
}

fn payment(merchant_id: &str, id: &str, intent: PaymentIntent, created_at: i64) -> PaymentRow {
    PaymentRow {
        id: id.to_owned(),
        merchant_id: merchant_id.to_owned(),
        provider: "mock".to_owned(),
        intent,
        amount_refunded: 0,
        idempotency_key: Some(format!("key-{id}")),
        saved_card_id: None,
        customer_email: Some("a@example.com".to_owned()),
        return_url: None,
        created_at,
        updated_at: created_at,
    }
}

fn refund(provider_refund_id: &str, payment_intent: &str, amount: i64) -> Refund {
    serde_json::from_value(json!({
        "id": provider_refund_id, "provider": "mock", "payment_intent": payment_intent,
        "amount": amount, "currency": "USD", "status": "succeeded", "reason": null,
        "failure_reason": null, "metadata": {}, "created": 3,
    }))
    .expect("a refund")
}

fn record(merchant_id: &str, key: &str, status: u16, created_at: i64) -> IdempotencyRow {
    IdempotencyRow {
        merchant_id: merchant_id.to_owned(),
        key: key.to_owned(),
        fingerprint: format!("fp-{status}"),
        status,
        body: format!("{{\"status\":{status}}}").into_bytes(),
        created_at,
    }
}

fn event_key(event_id: &str) -> EventKey {
    EventKey {
        provider: "stripe".to_owned(),
        account: String::new(),
        event_id: event_id.to_owned(),
    }
}

fn event(event_id: &str, received_at: i64) -> WebhookEventRow {
    WebhookEventRow {
        key: event_key(event_id),
        event_type: "payment_intent.succeeded".to_owned(),
        body: vec![0, 159, 146, 150, b'{'],
        received_at,
        processed_at: None,
        attempts: 0,
        last_error: None,
    }
}

fn delivery(id: &str, payment_id: &str, event_type: &str, next_attempt_at: i64) -> DeliveryRow {
    DeliveryRow {
        seq: 0,
        id: id.to_owned(),
        merchant_id: "m1".to_owned(),
        payment_id: payment_id.to_owned(),
        event_type: event_type.to_owned(),
        source_event: format!("bus-{id}"),
        payment: format!("{{\"id\":\"{payment_id}\"}}"),
        url: "https://merchant.example/hooks".to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at,
        created_at: next_attempt_at,
        delivered_at: None,
        last_status: None,
        last_error: None,
    }
}

fn attempt(delivery_id: &str, number: i64, http_status: Option<i64>) -> AttemptRow {
    AttemptRow {
        delivery_id: delivery_id.to_owned(),
        attempt: number,
        at: NOW + number,
        http_status,
        latency_ms: 12,
        error: http_status.is_none().then(|| "connection refused".to_owned()),
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|row| id(row).to_owned()).collect()
}

async fn merchants_keys_and_credentials_round_trip(backend: Backend) {
    let store = open(backend).await;
    assert_eq!(store.merchant_count().await.unwrap(), 0);
    let key = ApiKeyRow {
        id: "k1".to_owned(),
        merchant_id: "m1".to_owned(),
        key_hash: "hash-1".to_owned(),
        prefix: "gw_live_ab".to_owned(),
        scopes: Scopes::all(),
        created_at: NOW,
        revoked_at: None,
    };
    let credential = |masked: &str, at| CredentialRow {
        merchant_id: "m1".to_owned(),
        provider: "stripe".to_owned(),
        sealed: vec![1, 2, 3, 0, 255],
        masked: masked.to_owned(),
        updated_at: at,
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertApiKey(key.clone()),
            Change::UpsertCredential(credential("{\"secret_key\":\"sk_…1\"}", NOW)),
            Change::SetWebhookUrl {
                merchant_id: "m1".to_owned(),
                url: Some("https://merchant.example/hooks".to_owned()),
            },
            Change::SetSigningSecret {
                merchant_id: "m1".to_owned(),
                sealed: vec![9, 8, 7],
                at: NOW,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.merchant_count().await.unwrap(), 2);
    let m1 = store.merchant("m1").await.unwrap().unwrap();
    assert_eq!((m1.name.as_str(), m1.created_at), ("merchant m1", NOW));
    assert_eq!(m1.webhook_url.as_deref(), Some("https://merchant.example/hooks"));
    assert!(store.merchant("nobody").await.unwrap().is_none());

    let found = store.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.prefix.as_str()), ("k1", "gw_live_ab"));
    assert_eq!(found.scopes, Scopes::all());
    assert_eq!(found.revoked_at, None);
    assert!(store.api_key_by_hash("hash-2").await.unwrap().is_none());

    // A newer credential replaces the provider's; revoking is once.
    store
        .commit(vec![
            Change::UpsertCredential(credential("{\"secret_key\":\"sk_…2\"}", NOW + 1)),
            Change::RevokeApiKey {
                merchant_id: "m1".to_owned(),
                id: "k1".to_owned(),
                at: NOW + 5,
            },
        ])
        .await
        .unwrap();
    store
        .commit(vec![Change::RevokeApiKey {
            merchant_id: "m1".to_owned(),
            id: "k1".to_owned(),
            at: NOW + 9,
        }])
        .await
        .unwrap();
    let keys = store.api_keys("m1").await.unwrap();
    assert_eq!(ids(&keys, |k| &k.id), ["k1"]);
    assert_eq!(keys[0].revoked_at, Some(NOW + 5));
    assert!(store.api_keys("m2").await.unwrap().is_empty());
    let credentials = store.credentials("m1").await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].masked, "{\"secret_key\":\"sk_…2\"}");
    assert_eq!((credentials[0].sealed.as_slice(), credentials[0].updated_at), (&[1u8, 2, 3, 0, 255][..], NOW + 1));
    assert_eq!(store.signing_secret("m1").await.unwrap(), Some(vec![9, 8, 7]));
    assert_eq!(store.signing_secret("m2").await.unwrap(), None);
}

async fn payments_and_refunds_round_trip(backend: Backend) {
    let store = open(backend).await;
    let mut row = payment("m1", "pay_1", intent("pi_1", IntentStatus::Processing, 1250, "EUR"), NOW);
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertPayment(Box::new(row.clone())),
        ])
        .await
        .unwrap();
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!(read.intent, row.intent);
    assert_eq!(read.idempotency_key.as_deref(), Some("key-pay_1"));
    assert_eq!(read.customer_email.as_deref(), Some("a@example.com"));
    assert!(store.payment("m2", "pay_1").await.unwrap().is_none(), "another merchant's");

    // The update shows through every read, cached or not.
    row.intent.status = IntentStatus::Succeeded;
    row.intent.amount_received = 1250;
    row.amount_refunded = 250;
    row.updated_at = NOW + 10;
    let re = refund("re_1", "pi_1", 250);
    store
        .commit(vec![
            Change::UpdatePayment(Box::new(row.clone())),
            Change::InsertRefund(Box::new(RefundRow {
                id: "ref_1".to_owned(),
                merchant_id: "m1".to_owned(),
                payment_id: "pay_1".to_owned(),
                refund: re.clone(),
                created_at: NOW + 10,
            })),
        ])
        .await
        .unwrap();
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!((read.status(), read.amount_refunded, read.updated_at), (PaymentStatus::PartiallyRefunded, 250, NOW + 10));
    let by_ref = store.payment_by_provider_ref(None, "mock", "pi_1").await.unwrap().unwrap();
    assert_eq!(by_ref.id, "pay_1");
    assert_eq!(by_ref.intent.status, IntentStatus::Succeeded);
    assert!(store.payment_by_provider_ref(Some("m1"), "mock", "pi_1").await.unwrap().is_some());
    assert!(store.payment_by_provider_ref(Some("m2"), "mock", "pi_1").await.unwrap().is_none());
    assert!(store.payment_by_provider_ref(None, "stripe", "pi_1").await.unwrap().is_none());

    let stored = store.refund("m1", "ref_1").await.unwrap().unwrap();
    assert_eq!((stored.payment_id.as_str(), &stored.refund), ("pay_1", &re));
    assert!(store.refund("m2", "ref_1").await.unwrap().is_none());
    let by_provider = store.refund_by_provider_id("pay_1", "re_1").await.unwrap().unwrap();
    assert_eq!(by_provider.id, "ref_1");
    assert!(store.refund_by_provider_id("pay_1", "re_2").await.unwrap().is_none());
    assert!(store.refund_by_provider_id("pay_2", "re_1").await.unwrap().is_none());
}

async fn many_payments_in_one_commit(backend: Backend) {
    let store = open(backend).await;
    // More than one multi-row chunk (32, 8, 1, …), each with its own JSON.
    let rows: Vec<PaymentRow> = (0..45)
        .map(|n| {
            let intent = intent(&format!("pi_{n}"), IntentStatus::Processing, 100 + n, "USD");
            payment("m1", &format!("pay_{n:02}"), intent, NOW + n)
        })
        .collect();
    let mut changes = vec![Change::InsertMerchant(merchant("m1"))];
    changes.extend(rows.iter().cloned().map(|row| Change::InsertPayment(Box::new(row))));
    store.commit(changes).await.unwrap();
    let filter = PaymentFilter {
        limit: 100,
        ..PaymentFilter::default()
    };
    let listed = store.payments("m1", &filter).await.unwrap();
    assert_eq!(listed.len(), 45);
    for (read, written) in listed.iter().zip(rows.iter().rev()) {
        assert_eq!((&read.id, &read.intent), (&written.id, &written.intent));
    }
}

async fn payment_filters_and_pagination(backend: Backend) {
    let store = open(backend).await;
    let p = |id: &str, status, amount, currency, provider: &str, at| {
        let mut row = payment("m1", id, intent(&format!("pi_{id}"), status, amount, currency), at);
        row.provider = provider.to_owned();
        Change::InsertPayment(Box::new(row))
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            p("a", IntentStatus::Processing, 1_000, "USD", "mock", NOW),
            p("b", IntentStatus::Succeeded, 2_000, "USD", "stripe", NOW + 1),
            p("c", IntentStatus::Succeeded, 300, "JPY", "mock", NOW + 2),
            p("d", IntentStatus::Canceled, 5_000, "EUR", "mock", NOW + 3),
            Change::InsertPayment(Box::new(payment(
                "m2",
                "other",
                intent("pi_other", IntentStatus::Succeeded, 1, "USD"),
                NOW,
            ))),
        ])
        .await
        .unwrap();
    let list = |filter: PaymentFilter| {
        let store = store.store.clone();
        async move {
            let rows = store
                .payments("m1", &PaymentFilter { limit: 10, ..filter })
                .await
                .unwrap();
            ids(&rows, |row| &row.id)
        }
    };
    assert_eq!(list(PaymentFilter::default()).await, ["d", "c", "b", "a"]);
    let by_provider = PaymentFilter {
        provider: Some("stripe".to_owned()),
        ..PaymentFilter::default()
    };
    assert_eq!(list(by_provider).await, ["b"]);
    let completed = PaymentFilter {
        status: Some(PaymentStatus::Completed),
        ..PaymentFilter::default()
    };
    assert_eq!(list(completed).await, ["c", "b"]);
    let usd = PaymentFilter {
        currency: Some("USD".to_owned()),
        ..PaymentFilter::default()
    };
    assert_eq!(list(usd).await, ["b", "a"]);
    // 300 JPY is 3.00 major units (30_000 e4); 1_000 USD cents are 10.00 (100_000 e4).
    let amounts = PaymentFilter {
        min_amount_e4: Some(amount_e4(300, 0)),
        max_amount_e4: Some(amount_e4(2_000, 2)),
        ..PaymentFilter::default()
    };
    assert_eq!(list(amounts).await, ["b", "a"]);
    let window = PaymentFilter {
        since_ms: Some(NOW + 1),
        until_ms: Some(NOW + 2),
        ..PaymentFilter::default()
    };
    assert_eq!(list(window).await, ["c", "b"]);
    // Pages: two at a time, each after the last id of the one before.
    let first = store
        .payments("m1", &PaymentFilter { limit: 2, ..PaymentFilter::default() })
        .await
        .unwrap();
    assert_eq!(ids(&first, |row| &row.id), ["d", "c"]);
    let second = PaymentFilter {
        after_id: Some("c".to_owned()),
        limit: 2,
        ..PaymentFilter::default()
    };
    assert_eq!(ids(&store.payments("m1", &second).await.unwrap(), |row| &row.id), ["b", "a"]);
    let past_the_end = PaymentFilter {
        after_id: Some("a".to_owned()),
        ..PaymentFilter::default()
    };
    assert!(list(past_the_end).await.is_empty());
    let foreign_cursor = PaymentFilter {
        after_id: Some("other".to_owned()),
        ..PaymentFilter::default()
    };
    assert!(list(foreign_cursor).await.is_empty(), "another merchant's id is no cursor");
}

async fn stale_payments_are_the_old_pending_ones(backend: Backend) {
    let store = open(backend).await;
    let p = |id: &str, status, at| {
        Change::InsertPayment(Box::new(payment("m1", id, intent(&format!("pi_{id}"), status, 100, "USD"), at)))
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            p("new", IntentStatus::Processing, NOW + 100),
            p("old", IntentStatus::RequiresAction, NOW),
            p("older", IntentStatus::Processing, NOW - 100),
            p("done", IntentStatus::Succeeded, NOW - 200),
        ])
        .await
        .unwrap();
    let stale = store.stale_payments(NOW + 50, 10).await.unwrap();
    assert_eq!(ids(&stale, |row| &row.id), ["older", "old"]);
    assert_eq!(store.stale_payments(NOW + 50, 1).await.unwrap().len(), 1);
}

async fn customers_and_cards_round_trip(backend: Backend) {
    let store = open(backend).await;
    let card = |id: &str, email: &str, at| CardRow {
        id: id.to_owned(),
        merchant_id: "m1".to_owned(),
        provider: "mock".to_owned(),
        provider_customer_id: "cus_1".to_owned(),
        provider_payment_method: format!("pm_{id}"),
        customer_email: email.to_owned(),
        brand: "visa".to_owned(),
        last4: "4242".to_owned(),
        exp_month: 12,
        exp_year: 2030,
        is_default: false,
        active: true,
        created_at: at,
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertCustomer(CustomerRow {
                merchant_id: "m1".to_owned(),
                provider: "mock".to_owned(),
                email: "a@example.com".to_owned(),
                provider_customer_id: "cus_1".to_owned(),
                created_at: NOW,
            }),
            Change::InsertCard(card("c1", "a@example.com", NOW)),
            Change::InsertCard(card("c2", "a@example.com", NOW + 1)),
            Change::InsertCard(card("c3", "b@example.com", NOW + 2)),
            Change::SetDefaultCard {
                merchant_id: "m1".to_owned(),
                email: "a@example.com".to_owned(),
                card_id: "c1".to_owned(),
            },
        ])
        .await
        .unwrap();
    let customer = store.customer("m1", "mock", "a@example.com").await.unwrap().unwrap();
    assert_eq!((customer.provider_customer_id.as_str(), customer.created_at), ("cus_1", NOW));
    assert!(store.customer("m1", "stripe", "a@example.com").await.unwrap().is_none());
    let c1 = store.card("m1", "c1").await.unwrap().unwrap();
    assert!(c1.is_default && c1.active);
    assert_eq!((c1.exp_month, c1.exp_year, c1.provider_payment_method.as_str()), (12, 2030, "pm_c1"));
    assert!(store.card("m2", "c1").await.unwrap().is_none());
    assert_eq!(ids(&store.cards("m1", None).await.unwrap(), |c| &c.id), ["c3", "c2", "c1"]);
    assert_eq!(ids(&store.cards("m1", Some("a@example.com")).await.unwrap(), |c| &c.id), ["c2", "c1"]);

    // One default per email; a deactivated card is listed no more.
    store
        .commit(vec![
            Change::SetDefaultCard {
                merchant_id: "m1".to_owned(),
                email: "a@example.com".to_owned(),
                card_id: "c2".to_owned(),
            },
            Change::DeactivateCard {
                merchant_id: "m1".to_owned(),
                id: "c2".to_owned(),
            },
        ])
        .await
        .unwrap();
    let c1 = store.card("m1", "c1").await.unwrap().unwrap();
    let c2 = store.card("m1", "c2").await.unwrap().unwrap();
    assert!(!c1.is_default);
    assert!(!c2.is_default && !c2.active);
    assert_eq!(ids(&store.cards("m1", Some("a@example.com")).await.unwrap(), |c| &c.id), ["c1"]);
}

async fn idempotency_records_replace_and_purge(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::SaveIdempotency(record("m1", "old", 200, 1_000)),
            Change::SaveIdempotency(record("m1", "new", 201, 5_000)),
            Change::SaveIdempotency(record("m2", "old", 409, 5_000)),
        ])
        .await
        .unwrap();
    let old = store.idempotency("m1", "old").await.unwrap().unwrap();
    assert_eq!((old.status, old.fingerprint.as_str(), old.body.as_slice()), (200, "fp-200", &b"{\"status\":200}"[..]));
    assert_eq!(store.idempotency("m2", "old").await.unwrap().unwrap().status, 409, "keys are per merchant");
    // A later record of the same key replaces it.
    store
        .commit(vec![Change::SaveIdempotency(record("m1", "new", 502, 6_000))])
        .await
        .unwrap();
    let replaced = store.idempotency("m1", "new").await.unwrap().unwrap();
    assert_eq!((replaced.status, replaced.created_at), (502, 6_000));
    assert_eq!(store.purge_idempotency(2_000).await.unwrap(), 1);
    assert!(store.idempotency("m1", "old").await.unwrap().is_none());
    assert!(store.idempotency("m1", "new").await.unwrap().is_some());
    assert!(store.idempotency("m2", "old").await.unwrap().is_some());
    assert_eq!(store.purge_idempotency(2_000).await.unwrap(), 0);
}

async fn a_failing_change_rolls_back_its_whole_commit(backend: Backend) {
    let store = open(backend).await;
    store.commit(vec![Change::InsertMerchant(merchant("m1"))]).await.unwrap();
    let duplicate = store
        .commit(vec![
            Change::SaveIdempotency(record("m1", "with-bad", 200, 1)),
            Change::InsertMerchant(merchant("m1")),
        ])
        .await;
    assert!(duplicate.is_err(), "a second merchant m1");
    assert!(store.idempotency("m1", "with-bad").await.unwrap().is_none());
    assert_eq!(store.merchant_count().await.unwrap(), 1);
    store
        .commit(vec![Change::SaveIdempotency(record("m1", "good", 200, 1))])
        .await
        .unwrap();
    assert!(store.idempotency("m1", "good").await.unwrap().is_some());
}

async fn inbound_events_are_stored_once_and_finished_once(backend: Backend) {
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
    store.commit(vec![Change::InsertWebhookEvent(Box::new(again))]).await.unwrap();
    let stored = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(stored.key, event_key("evt_1"));
    assert_eq!((stored.event_type.as_str(), stored.received_at), ("payment_intent.succeeded", NOW));
    assert_eq!(stored.body, event("evt_1", 0).body);
    let other_account = EventKey {
        account: "m1".to_owned(),
        ..event_key("evt_1")
    };
    assert!(store.webhook_event(&other_account).await.unwrap().is_none());
    let pending = store.unprocessed_webhook_events(10).await.unwrap();
    assert_eq!(ids(&pending, |e| &e.key.event_id), ["evt_1", "evt_2"]);

    store
        .commit(vec![Change::WebhookEventFailed {
            key: event_key("evt_1"),
            error: "provider down".to_owned(),
        }])
        .await
        .unwrap();
    let failed = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!((failed.attempts, failed.last_error.as_deref()), (1, Some("provider down")));
    assert_eq!(failed.processed_at, None);

    let finish = |at| Change::FinishWebhookEvent {
        key: event_key("evt_1"),
        at,
        note: None,
    };
    store.commit(vec![finish(NOW + 5)]).await.unwrap();
    let done = store.webhook_event(&event_key("evt_1")).await.unwrap().unwrap();
    assert_eq!(done.processed_at, Some(NOW + 5));
    assert_eq!(done.last_error.as_deref(), Some("provider down"), "no note keeps the last error");
    assert_eq!(ids(&store.unprocessed_webhook_events(10).await.unwrap(), |e| &e.key.event_id), ["evt_2"]);

    // Finishing again conflicts, and takes the rest of its commit with it.
    let twice = store
        .commit(vec![Change::SaveIdempotency(record("m1", "effect", 200, 1)), finish(NOW + 9)])
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
    assert!(store.unprocessed_webhook_events(10).await.unwrap().is_empty());
}

async fn deliveries_are_claimed_until_their_claim_expires(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertDelivery(Box::new(delivery("evt_a", "pay_1", "payment.completed", NOW))),
            Change::InsertDelivery(Box::new(delivery("evt_b", "pay_1", "payment.refunded", NOW + 1))),
            Change::InsertDelivery(Box::new(delivery("evt_later", "pay_2", "payment.completed", NOW + 1_000))),
        ])
        .await
        .unwrap();
    // The same change and type again adds nothing.
    let mut duplicate = delivery("evt_dup", "pay_1", "payment.completed", NOW);
    duplicate.source_event = "bus-evt_a".to_owned();
    store.commit(vec![Change::InsertDelivery(Box::new(duplicate))]).await.unwrap();
    assert!(store.delivery("m1", "evt_dup").await.unwrap().is_none());

    let claimed = store.claim_deliveries(NOW + 10, NOW + 100, 1).await.unwrap();
    assert_eq!(ids(&claimed, |d| &d.id), ["evt_a"], "oldest due first, at most the limit");
    assert_eq!(claimed[0].status, DeliveryStatus::Pending);
    assert!(claimed[0].seq > 0);
    let rest = store.claim_deliveries(NOW + 10, NOW + 100, 10).await.unwrap();
    assert_eq!(ids(&rest, |d| &d.id), ["evt_b"], "claimed rows and rows not due are left");
    assert!(store.claim_deliveries(NOW + 50, NOW + 150, 10).await.unwrap().is_empty());
    // A claim that ran out (its worker died) frees the row.
    let expired = store.claim_deliveries(NOW + 101, NOW + 200, 10).await.unwrap();
    assert_eq!(ids(&expired, |d| &d.id), ["evt_a", "evt_b"]);
    let all = store.claim_deliveries(NOW + 1_000, NOW + 2_000, 10).await.unwrap();
    assert_eq!(ids(&all, |d| &d.id), ["evt_later"]);
}

async fn attempts_move_deliveries_and_retries_requeue_them(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertDelivery(Box::new(delivery("evt_a", "pay_1", "payment.completed", NOW))),
            Change::InsertDelivery(Box::new(delivery("evt_b", "pay_1", "payment.refunded", NOW))),
        ])
        .await
        .unwrap();
    assert_eq!(store.claim_deliveries(NOW, NOW + 100, 10).await.unwrap().len(), 2);
    let record = |attempt, outcome| Change::RecordAttempt { attempt, outcome };
    store
        .commit(vec![record(attempt("evt_a", 1, None), DeliveryOutcome::RetryAt(NOW + 500))])
        .await
        .unwrap();
    let retrying = store.delivery("m1", "evt_a").await.unwrap().unwrap();
    assert_eq!(retrying.status, DeliveryStatus::Pending);
    assert_eq!((retrying.attempts, retrying.next_attempt_at), (1, NOW + 500));
    assert_eq!(retrying.last_error.as_deref(), Some("connection refused"));
    // Recording released the claim: due again at its retry time.
    assert_eq!(ids(&store.claim_deliveries(NOW + 500, NOW + 600, 10).await.unwrap(), |d| &d.id), ["evt_a"]);

    // The same attempt recorded twice (a retried commit) is one attempt.
    store
        .commit(vec![record(attempt("evt_a", 2, Some(500)), DeliveryOutcome::RetryAt(NOW + 900))])
        .await
        .unwrap();
    store
        .commit(vec![record(attempt("evt_a", 2, Some(503)), DeliveryOutcome::RetryAt(NOW + 900))])
        .await
        .unwrap();
    store
        .commit(vec![record(attempt("evt_a", 3, Some(200)), DeliveryOutcome::Delivered)])
        .await
        .unwrap();
    let delivered = store.delivery("m1", "evt_a").await.unwrap().unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!((delivered.attempts, delivered.delivered_at, delivered.last_status), (3, Some(NOW + 3), Some(200)));
    let attempts = store.delivery_attempts("evt_a").await.unwrap();
    let shape: Vec<(i64, Option<i64>)> = attempts.iter().map(|a| (a.attempt, a.http_status)).collect();
    assert_eq!(shape, [(1, None), (2, Some(503)), (3, Some(200))]);
    assert_eq!((attempts[0].latency_ms, attempts[0].at), (12, NOW + 1));
    // A finished delivery takes no more attempts.
    store
        .commit(vec![record(attempt("evt_a", 4, None), DeliveryOutcome::GaveUp)])
        .await
        .unwrap();
    assert_eq!(store.delivery("m1", "evt_a").await.unwrap().unwrap().status, DeliveryStatus::Delivered);

    store
        .commit(vec![record(attempt("evt_b", 1, Some(410)), DeliveryOutcome::GaveUp)])
        .await
        .unwrap();
    let failed = store.delivery("m1", "evt_b").await.unwrap().unwrap();
    assert_eq!((failed.status, failed.delivered_at), (DeliveryStatus::Failed, None));
    // A manual retry queues a finished delivery again, not a pending one.
    let retry = |id: &str, at| Change::RetryDelivery {
        merchant_id: "m1".to_owned(),
        id: id.to_owned(),
        at,
    };
    store.commit(vec![retry("evt_b", NOW + 2_000)]).await.unwrap();
    let queued = store.delivery("m1", "evt_b").await.unwrap().unwrap();
    assert_eq!((queued.status, queued.next_attempt_at), (DeliveryStatus::Pending, NOW + 2_000));
    store.commit(vec![retry("evt_b", NOW + 9_000)]).await.unwrap();
    assert_eq!(store.delivery("m1", "evt_b").await.unwrap().unwrap().next_attempt_at, NOW + 2_000);
    assert_eq!(ids(&store.claim_deliveries(NOW + 2_000, NOW + 2_100, 10).await.unwrap(), |d| &d.id), ["evt_b"]);
}

async fn delivery_filters_and_pagination(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![Change::InsertMerchant(merchant("m1")), Change::InsertMerchant(merchant("m2"))];
    for (id, payment_id, event_type) in [
        ("evt_1", "pay_1", "payment.completed"),
        ("evt_2", "pay_2", "payment.completed"),
        ("evt_3", "pay_1", "payment.refunded"),
        ("evt_4", "pay_2", "payment.failed"),
    ] {
        changes.push(Change::InsertDelivery(Box::new(delivery(id, payment_id, event_type, NOW))));
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
    assert_eq!(list(DeliveryFilter::default()).await, ["evt_4", "evt_3", "evt_2", "evt_1"]);
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
        .deliveries("m1", &DeliveryFilter { limit: 3, ..DeliveryFilter::default() })
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

async fn leases_are_exclusive_where_instances_share_the_database(backend: Backend) {
    let store = open(backend).await;
    assert!(store.try_lease("payment:p1", "a", 60_000).await.unwrap());
    assert!(store.try_lease("payment:p1", "a", 60_000).await.unwrap(), "its holder renews it");
    let other = store.try_lease("payment:p1", "b", 60_000).await.unwrap();
    match backend {
        // Several instances on one database: one holder at a time.
        Backend::Postgres => assert!(!other, "held by a"),
        // One process owns a SQLite file: its in-process locks do the work.
        Backend::Sqlite => assert!(other),
    }
    assert!(store.try_lease("payment:p2", "b", 60_000).await.unwrap(), "another name");
    store.release_lease("payment:p1", "b").await.unwrap();
    if backend == Backend::Postgres {
        assert!(!store.try_lease("payment:p1", "b", 60_000).await.unwrap(), "b held none to release");
    }
    store.release_lease("payment:p1", "a").await.unwrap();
    assert!(store.try_lease("payment:p1", "b", 60_000).await.unwrap(), "released");
    // A lease that ran out goes to whoever asks.
    assert!(store.try_lease("payment:p3", "a", -1).await.unwrap());
    assert!(store.try_lease("payment:p3", "b", 60_000).await.unwrap());
    if backend == Backend::Postgres {
        assert!(!store.try_lease("payment:p3", "a", 60_000).await.unwrap());
    }
}

async fn refund_provider_ids_are_backfilled_by_the_migration(backend: Backend) {
    let (url, _dir) = database(backend).await;
    // The schema before the column, with a refund in it.
    let before = "INSERT INTO merchants (id, name, created_at) VALUES ('m1', 'm', 1); \
        INSERT INTO payments (id, merchant_id, provider, provider_ref, status, currency, amount_e4, intent, \
        created_at, updated_at) VALUES ('pay_1', 'm1', 'mock', 'pi_1', 'completed', 'USD', 1, '{}', 1, 1);";
    let refund_json = serde_json::to_string(&refund("re_old", "pi_1", 100)).unwrap();
    let insert_refund = "INSERT INTO refunds (id, merchant_id, payment_id, refund, created_at) \
        VALUES ('ref_old', 'm1', 'pay_1', $1, 1)";
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
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
            old(sqlite::migrator(), 2).run_direct(&mut conn).await.unwrap();
            sqlx::raw_sql(before).execute(&mut conn).await.unwrap();
            sqlx::query(insert_refund).bind(&refund_json).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            old(postgres::migrator(), 3).run_direct(&mut conn).await.unwrap();
            sqlx::raw_sql(before).execute(&mut conn).await.unwrap();
            sqlx::query(insert_refund).bind(&refund_json).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
    let store = open_url(backend, &url).await;
    let found = store.refund_by_provider_id("pay_1", "re_old").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.refund.amount), ("ref_old", 100));
}
