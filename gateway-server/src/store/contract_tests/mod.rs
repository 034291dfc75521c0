//! The store contract: one suite, run against SQLite and against PostgreSQL
//! (`sqlite::NAME` and `postgres::NAME`), proving the backends agree on
//! every entity's commit and read back, conditional changes, claims and their
//! expiry, leases, purges, filters and pagination.
//!
//! PostgreSQL runs on a throwaway cluster of this test binary's own, started
//! by the integration tests' harness (`tests/common/postgres.rs`, included
//! here), one database per test.

mod events;
mod fairness;
mod records;
mod refunds;
mod timeline;
mod webhooks;

use std::sync::Arc;

use gateway_core::{IntentStatus, PaymentIntent, Refund};
use serde_json::json;

use self::events::*;
use self::fairness::*;
use self::records::*;
use self::refunds::*;
use self::timeline::*;
use self::webhooks::*;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::*;

#[path = "../../../tests/common/postgres.rs"]
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

impl Opened {
    /// Commits `changes`, each delivery after an event of its own (built
    /// from it, with its `event_id`: a delivery is stored only with its
    /// event), as `app::outbound` commits them.
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.store.commit(with_events(changes)).await
    }
}

/// `changes` with an event before each delivery (see [`Opened::commit`]).
fn with_events(changes: Vec<Change>) -> Vec<Change> {
    let mut all = Vec::with_capacity(changes.len());
    for change in changes {
        if let Change::InsertDelivery(d) = &change {
            all.push(Change::InsertEvent(Box::new(event_of(d))));
        }
        all.push(change);
    }
    all
}

/// The event a delivery delivers, as `app::outbound` would have stored it.
fn event_of(d: &DeliveryRow) -> EventRow {
    EventRow {
        seq: 0,
        id: d.event_id.clone(),
        merchant_id: d.merchant_id.clone(),
        payment_id: d.payment_id.clone(),
        event_type: d.event_type.clone(),
        source_event: d.source_event.clone(),
        payment: d.payment.clone(),
        refund: d.refund.clone(),
        created_at: d.created_at,
    }
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
    provider_accounts_round_trip,
    idempotency_records_begin_complete_expire_and_purge,
    payment_updates_apply_to_the_version_read_and_refs_are_unique,
    a_failing_change_rolls_back_its_whole_commit,
    inbound_events_are_stored_once_and_finished_once,
    deliveries_are_claimed_until_their_claim_expires,
    attempts_move_deliveries_and_retries_requeue_them,
    delivery_filters_and_pagination,
    leases_are_exclusive_where_instances_share_the_database,
    refund_provider_ids_are_backfilled_by_the_migration,
    a_provider_refund_is_stored_once_per_payment,
    refunds_change_status_and_unsettled_ones_are_listed_by_age,
    the_refund_lifecycle_migration_fills_statuses_and_drops_duplicates,
    inbound_events_are_retried_in_the_order_of_their_next_attempt,
    claims_take_turns_and_respect_the_per_merchant_cap,
    an_endpoint_that_keeps_failing_is_backed_off_as_a_whole,
    retention_prunes_old_finished_rows_in_bounded_batches,
    concurrent_claims_never_share_a_row_nor_give_one_merchant_a_batch,
    timeline_entries_commit_with_their_payment_in_time_order,
    timelines_stop_at_their_cap_except_status_changes,
    a_removed_draft_takes_its_timeline_with_it,
    events_are_stored_once_per_change_and_listed_by_filter,
    events_after_reads_in_seq_order_and_resumes,
    concurrent_event_commits_become_visible_in_seq_order,
    deliveries_need_their_event_and_carry_its_sequence,
    endpoints_and_their_secrets_round_trip,
    a_deleted_endpoint_gives_up_its_pending_deliveries,
    a_merchant_has_at_most_sixteen_endpoints,
    old_events_are_pruned_unless_a_delivery_is_pending,
    the_events_migration_keeps_deliveries_urls_and_secrets,
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
        provider_account: None,
        pending_step: None,
        version: 0,
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

/// A done record answering `status`.
fn record(merchant_id: &str, key: &str, status: u16, created_at: i64) -> IdempotencyRow {
    IdempotencyRow {
        response: Some(crate::domain::records::StoredResponse {
            status,
            body: format!("{{\"status\":{status}}}").into_bytes(),
        }),
        ..in_progress(merchant_id, key, &format!("fp-{status}"), created_at)
    }
}

/// An in-progress record with fingerprint `fingerprint`.
fn in_progress(merchant_id: &str, key: &str, fingerprint: &str, created_at: i64) -> IdempotencyRow {
    IdempotencyRow {
        merchant_id: merchant_id.to_owned(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        response: None,
        resource_id: Some(format!("res-{key}")),
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
        next_attempt_at: 0,
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
        refund: None,
        url: "https://merchant.example/hooks".to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at,
        created_at: next_attempt_at,
        delivered_at: None,
        last_status: None,
        last_error: None,
        // As a delivery of before events: its event has its id.
        event_id: id.to_owned(),
        endpoint_id: None,
        event_seq: 0,
        event_created_at: next_attempt_at,
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

/// A webhook endpoint of `merchant_id` receiving every event type.
fn endpoint(merchant_id: &str, id: &str, created_at: i64) -> EndpointRow {
    EndpointRow {
        id: id.to_owned(),
        merchant_id: merchant_id.to_owned(),
        url: format!("https://merchant.example/{id}"),
        enabled: true,
        enabled_events: "[\"*\"]".to_owned(),
        description: None,
        failures: 0,
        blocked_until: 0,
        created_at,
        updated_at: created_at,
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|row| id(row).to_owned()).collect()
}
