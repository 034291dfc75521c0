//! Storage: the rows the server keeps and the [`Store`] interface over them.
//!
//! The use cases only see [`Store`], the union of one trait per entity
//! ([`MerchantStore`], [`PaymentStore`], [`CardStore`], [`IdempotencyStore`],
//! [`InboundStore`], [`OutboxStore`], [`LeaseStore`]); `sqlite` (one process,
//! the default) and `postgres` (several instances on one database) implement
//! it, chosen by the database URL ([`open`]). Every write is a list of
//! [`Change`]s committed together in one transaction.
//!
//! Each statement is written once, with `$N` placeholders, in `shared` (one
//! macro body expanded for both backends); only the statements that really
//! differ by dialect live in `sqlite` or `postgres`, each saying why. Rows
//! are read with `sqlx::FromRow` (the domain records, or `rows` where a
//! column needs decoding). `contract_tests` runs one suite against both.

// First: the backends below expand its macro.
#[macro_use]
mod shared;

#[cfg(test)]
mod contract_tests;
pub(crate) mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use gateway_core::PaymentStatus;

pub(crate) use self::postgres::PostgresStore;
pub(crate) use self::sqlite::{sqlite_path, SqliteStore};
pub(crate) use crate::domain::records::{
    ApiKeyRow, AttemptRow, CardRow, CredentialRow, CustomerRow, DeliveryRow, DeliveryStatus, EventKey,
    IdempotencyRow, MerchantRow, PaymentRow, RefundRow, WebhookEventRow,
};
pub(crate) use crate::domain::records::{EndpointRow, EndpointSecretRow, EventRow};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database stayed locked past the busy timeout.
    #[error("database busy")]
    Busy,
    /// A stored value could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database URL names a backend this build cannot open.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The writer task stopped (the server is shutting down).
    #[error("storage writer stopped")]
    WriterGone,
    /// Any other database error.
    #[error(transparent)]
    Database(sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A conditional change found the row already changed (e.g. an inbound
    /// event already processed): the whole commit is rolled back.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A unique key is taken (e.g. a second payment row for one provider
    /// intent): the whole commit is rolled back.
    #[error("duplicate: {0}")]
    Duplicate(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            let code = db.code();
            // SQLite busy/locked; PostgreSQL serialization failure, deadlock, lock not available.
            if matches!(
                code.as_deref(),
                Some("5" | "6" | "261" | "517" | "40001" | "40P01" | "55P03")
            ) {
                return StoreError::Busy;
            }
            if db.is_unique_violation() {
                return StoreError::Duplicate(db.message().to_owned());
            }
        }
        StoreError::Database(error)
    }
}

/// What an attempt leaves the delivery as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryOutcome {
    Delivered,
    RetryAt(i64),
    GaveUp,
}

impl DeliveryOutcome {
    /// The delivery's new status, next attempt time and delivery time, for
    /// an attempt made `at`.
    fn columns(self, at: i64) -> (DeliveryStatus, Option<i64>, Option<i64>) {
        match self {
            DeliveryOutcome::Delivered => (DeliveryStatus::Delivered, None, Some(at)),
            DeliveryOutcome::RetryAt(next) => (DeliveryStatus::Pending, Some(next), None),
            DeliveryOutcome::GaveUp => (DeliveryStatus::Failed, None, None),
        }
    }
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryFilter {
    pub(crate) status: Option<DeliveryStatus>,
    pub(crate) event_type: Option<String>,
    pub(crate) payment_id: Option<String>,
    /// Only deliveries older (in list order) than this sequence number.
    pub(crate) before_seq: Option<i64>,
    pub(crate) limit: u32,
}

/// One row-level change; a list of them commits atomically.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    InsertMerchant(MerchantRow),
    InsertApiKey(ApiKeyRow),
    RevokeApiKey {
        merchant_id: String,
        id: String,
        at: i64,
    },
    UpsertCredential(CredentialRow),
    /// A new payment; a second row for the same provider intent fails the
    /// commit with [`StoreError::Duplicate`].
    InsertPayment(Box<PaymentRow>),
    /// The payment as it is now, at the version after the update (build it
    /// with [`Change::update_payment`]): it applies only if the stored row
    /// is still at the version before, else the commit fails with [`StoreError::Conflict`].
    UpdatePayment(Box<PaymentRow>),
    /// Removes a written-ahead refund the provider refused (one with no
    /// provider refund id; a row with one is never removed).
    DeleteDraftRefund {
        merchant_id: String,
        id: String,
    },
    /// Removes a written-ahead payment the provider refused to create (one
    /// that has no provider intent; a row with one is never removed).
    DeleteDraftPayment {
        merchant_id: String,
        id: String,
    },
    /// Stores a refund; fails the commit with [`StoreError::Conflict`] when
    /// the payment already has a row for that provider refund (a replay:
    /// its amount must not count twice).
    InsertRefund(Box<RefundRow>),
    /// Stores a refund's new state (status, failure reason, `updated_at`).
    UpdateRefund(Box<RefundRow>),
    /// Stores the provider customer of a merchant, provider and email,
    /// replacing the one stored before (made on another account).
    InsertCustomer(CustomerRow),
    InsertCard(CardRow),
    /// Makes `card_id` the only default card of its customer email.
    SetDefaultCard {
        merchant_id: String,
        email: String,
        card_id: String,
    },
    DeactivateCard {
        merchant_id: String,
        id: String,
    },
    /// Writes an in-progress idempotency record before the provider is
    /// called; fails the commit with [`StoreError::Conflict`] if the key has
    /// a record that has not expired.
    BeginIdempotency(IdempotencyRow),
    /// Stores the response of an idempotency key: completes the request's own
    /// in-progress record (same fingerprint and start), or writes a new one
    /// where there is none or it expired; otherwise fails the commit with [`StoreError::Conflict`].
    SaveIdempotency(IdempotencyRow),
    /// Stores an inbound event unless its key is already stored.
    InsertWebhookEvent(Box<WebhookEventRow>),
    /// Marks an inbound event processed; fails the commit with
    /// [`StoreError::Conflict`] if it already was (so its effects apply once).
    FinishWebhookEvent {
        key: EventKey,
        at: i64,
        note: Option<String>,
    },
    /// Counts a failed processing attempt of an inbound event and sets when
    /// the sweep tries it next.
    WebhookEventFailed {
        key: EventKey,
        error: String,
        retry_at: i64,
    },
    /// Adds an outbox row for its event (`event_id`), unless that event is
    /// not stored (a change already produced it, so [`Change::InsertEvent`]
    /// stored nothing): put it after the event's `InsertEvent`.
    InsertDelivery(Box<DeliveryRow>),
    /// Records an attempt and what it leaves the delivery as (releases the claim).
    RecordAttempt {
        attempt: AttemptRow,
        outcome: DeliveryOutcome,
    },
    /// Queues a delivery again now (a merchant's manual retry).
    RetryDelivery {
        merchant_id: String,
        id: String,
        at: i64,
    },
    /// Counts a failed attempt against an endpoint; from the `after`-th
    /// consecutive one on, none of its deliveries is claimed before
    /// `retry_at` (the endpoint is backed off as a whole; the merchant's
    /// other endpoints are not).
    EndpointFailed {
        endpoint_id: String,
        retry_at: i64,
        after: i64,
    },
    /// An endpoint answered (or was changed, or a delivery was retried by
    /// hand): its failure count and backoff are reset.
    EndpointRecovered {
        endpoint_id: String,
    },
    /// Appends entries to payment timelines: each only if its payment is
    /// the merchant's (a replayed answer about another merchant's id, or a
    /// draft removed in the same commit, records nothing), and, unless its
    /// kind is `uncapped_kind`, only while the payment holds at most `cap`
    /// entries of the other kinds (so at most `cap + 1` are kept, plus what
    /// one commit adds: the one past `cap` says the timeline was cut).
    InsertTimeline {
        rows: Vec<TimelineRow>,
        cap: i64,
        uncapped_kind: &'static str,
    },
    /// Stores a merchant-visible event unless the same change already
    /// produced one of its type (then nothing, and its deliveries neither).
    /// On PostgreSQL the events of a commit are inserted last, under the
    /// events lock, so `seq` follows commit order (see `store::postgres`).
    InsertEvent(Box<EventRow>),
    /// Adds an endpoint; fails the commit with [`StoreError::Conflict`]
    /// ([`TOO_MANY_ENDPOINTS`]) when the merchant already has
    /// [`MAX_ENDPOINTS`] (two statements: the merchant's row is locked
    /// first, so concurrent inserts count one after the other).
    InsertEndpoint(Box<EndpointRow>),
    /// Stores an endpoint's URL, `enabled`, `enabled_events`, description
    /// and `updated_at` (a changed endpoint starts afresh: backoff reset).
    UpdateEndpoint(Box<EndpointRow>),
    /// Deletes an endpoint and its secrets; its pending deliveries are given
    /// up with `reason` as their last error (three statements).
    DeleteEndpoint {
        merchant_id: String,
        id: String,
        reason: String,
    },
    /// Gives up an endpoint's pending deliveries with `reason` as their
    /// last error (the endpoint was disabled).
    GiveUpEndpointDeliveries {
        merchant_id: String,
        id: String,
        reason: String,
    },
    /// Adds a signing secret to an endpoint.
    AddEndpointSecret(Box<EndpointSecretRow>),
    /// Ends the endpoint's secrets valid past `until` at `until` (a
    /// rotation's grace period; `until` = now: at once), and deletes the
    /// ones that ended before `now` (two statements).
    ExpireEndpointSecrets {
        endpoint_id: String,
        until: i64,
        now: i64,
    },
}

/// The most webhook endpoints a merchant has.
pub(crate) const MAX_ENDPOINTS: i64 = 16;

/// The [`StoreError::Conflict`] of an [`Change::InsertEndpoint`] past [`MAX_ENDPOINTS`].
pub(crate) const TOO_MANY_ENDPOINTS: &str = "the merchant has the most webhook endpoints allowed";

/// Filters for listing events (newest first).
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    pub(crate) event_type: Option<String>,
    pub(crate) payment_id: Option<String>,
    /// Created at or after (Unix ms).
    pub(crate) since_ms: Option<i64>,
    /// Created at or before (Unix ms).
    pub(crate) until_ms: Option<i64>,
    /// Only events older (in list order) than this sequence number.
    pub(crate) before_seq: Option<i64>,
    pub(crate) limit: u32,
}

impl Change {
    /// The update of `row`: bumps its version (so the caller's copy matches
    /// what is stored once committed) and takes the row as it is now.
    pub(crate) fn update_payment(row: &mut PaymentRow) -> Change {
        row.version += 1;
        Change::UpdatePayment(Box::new(row.clone()))
    }

    /// Whether applying the change is one SQL statement, atomic on its own
    /// (a backend may then skip the transaction of a commit of it alone).
    pub(crate) fn is_one_statement(&self) -> bool {
        !matches!(
            self,
            Change::InsertEndpoint(_) | Change::DeleteEndpoint { .. } | Change::ExpireEndpointSecrets { .. }
        )
    }
}

/// Filters for listing payments; amounts in minor units of `currency` or, without
/// a currency, in ten-thousandths of the major unit (see `amount_e4`).
#[derive(Debug, Clone, Default)]
pub(crate) struct PaymentFilter {
    pub(crate) provider: Option<String>,
    pub(crate) status: Option<PaymentStatus>,
    pub(crate) currency: Option<String>,
    pub(crate) min_amount_e4: Option<i64>,
    pub(crate) max_amount_e4: Option<i64>,
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
    /// Only payments older (in list order) than this payment id.
    pub(crate) after_id: Option<String>,
    pub(crate) limit: u32,
}

/// Merchants and what belongs to them: API keys, provider credentials and
/// the webhook signing secret.
#[async_trait]
pub(crate) trait MerchantStore: Send + Sync {
    async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, StoreError>;
    async fn merchant_count(&self) -> Result<i64, StoreError>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>, StoreError>;
    async fn api_keys(&self, merchant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError>;
    async fn credentials(&self, merchant_id: &str) -> Result<Vec<CredentialRow>, StoreError>;
    /// A merchant's sealed signing secret of before endpoints (what signs
    /// the deliveries of then that have no endpoint).
    async fn signing_secret(&self, merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Payments and their refunds.
#[async_trait]
pub(crate) trait PaymentStore: Send + Sync {
    async fn payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError>;
    /// Newest first, at most `filter.limit` rows.
    async fn payments(
        &self,
        merchant_id: &str,
        filter: &PaymentFilter,
    ) -> Result<Vec<PaymentRow>, StoreError>;
    /// The payment whose intent is `provider_ref` at `provider`, of `merchant_id` when given.
    async fn payment_by_provider_ref(
        &self,
        merchant_id: Option<&str>,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<PaymentRow>, StoreError>;
    /// Payments still pending whose row last changed before `updated_before`,
    /// oldest first (not those waiting on a provider answer: see `unresolved_payments`).
    async fn stale_payments(&self, updated_before: i64, limit: u32) -> Result<Vec<PaymentRow>, StoreError>;
    /// Refunds written ahead whose provider refund is not known (no provider
    /// refund id), created before `created_before`, newest first (drafts too
    /// old to ask again never crowd out the ones that can be).
    async fn draft_refunds(&self, created_before: i64, limit: u32) -> Result<Vec<RefundRow>, StoreError>;
    /// Payments with a provider call whose answer is not stored (a
    /// [`PendingStep`](crate::domain::records::PendingStep)), last changed
    /// before `updated_before`, oldest first.
    async fn unresolved_payments(
        &self,
        updated_before: i64,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, StoreError>;
    async fn refund(&self, merchant_id: &str, id: &str) -> Result<Option<RefundRow>, StoreError>;
    /// Every refund of a payment, oldest first: what its `amount_refunded` is derived from.
    async fn refunds_of_payment(&self, payment_id: &str) -> Result<Vec<RefundRow>, StoreError>;
    /// Refunds the provider may still settle (pending, requires action)
    /// whose row last changed before `updated_before`, oldest change first.
    async fn unsettled_refunds(&self, updated_before: i64, limit: u32) -> Result<Vec<RefundRow>, StoreError>;
}

/// Provider customers and saved cards.
#[async_trait]
pub(crate) trait CardStore: Send + Sync {
    async fn customer(
        &self,
        merchant_id: &str,
        provider: &str,
        email: &str,
    ) -> Result<Option<CustomerRow>, StoreError>;
    async fn card(&self, merchant_id: &str, id: &str) -> Result<Option<CardRow>, StoreError>;
    /// Active cards, newest first.
    async fn cards(&self, merchant_id: &str, email: Option<&str>) -> Result<Vec<CardRow>, StoreError>;
}

/// Stored responses of idempotency keys.
#[async_trait]
pub(crate) trait IdempotencyStore: Send + Sync {
    async fn idempotency(&self, merchant_id: &str, key: &str) -> Result<Option<IdempotencyRow>, StoreError>;
    /// Deletes idempotency records created before `before_ms`; returns how many.
    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// Inbound provider events.
#[async_trait]
pub(crate) trait InboundStore: Send + Sync {
    /// A stored inbound event.
    async fn webhook_event(&self, key: &EventKey) -> Result<Option<WebhookEventRow>, StoreError>;
    /// Inbound events not processed yet whose next attempt is due at `now`,
    /// the longest due first.
    async fn unprocessed_webhook_events(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<WebhookEventRow>, StoreError>;
    /// Deletes at most `limit` inbound events processed before `before`
    /// (never one not processed yet); returns how many.
    async fn prune_webhook_events(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
}

/// The outbox: outbound merchant webhooks and their attempts.
#[async_trait]
pub(crate) trait OutboxStore: Send + Sync {
    /// Claims up to `limit` pending deliveries due at `now` until `until`
    /// (a claim expires, so a crash mid-send frees the row), oldest first,
    /// taking turns between merchants: a merchant never has more than
    /// `per_merchant` claimed at once (counting claims not expired, by any
    /// instance), and a delivery whose endpoint is backed off is not
    /// claimed before the endpoint's retry time (the merchant's other
    /// endpoints' deliveries are).
    async fn claim_deliveries(
        &self,
        now: i64,
        until: i64,
        limit: u32,
        per_merchant: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
    /// Deletes at most `limit` finished deliveries (delivered, or given up)
    /// created and last attempted before `before`, with their attempts
    /// (never a pending one); returns how many deliveries.
    async fn prune_deliveries(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
    /// A merchant's deliveries, newest first.
    async fn deliveries(
        &self,
        merchant_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
    /// One of a merchant's deliveries.
    async fn delivery(&self, merchant_id: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError>;
    /// The attempts of the deliveries `delivery_ids`, in one read: by
    /// delivery, each delivery's in order.
    async fn delivery_attempts(&self, delivery_ids: &[&str]) -> Result<Vec<AttemptRow>, StoreError>;
}

/// Merchant-visible events (`events`): what happened, whether or not it was
/// delivered anywhere.
#[async_trait]
pub(crate) trait EventStore: Send + Sync {
    /// One of the merchant's events (another merchant's is none).
    async fn event(&self, merchant_id: &str, id: &str) -> Result<Option<EventRow>, StoreError>;
    /// The merchant's events matching `filter`, newest first (`seq` descending),
    /// at most `filter.limit`.
    async fn events(&self, merchant_id: &str, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError>;
    /// The merchant's events with `seq > after_seq`, in `seq` order, at most
    /// `limit`, of the `types` given (empty: every type); `after_seq` 0 is
    /// from the start. A stream resumes from the last `seq` it saw and never
    /// skips an event: on SQLite one writer commits in `seq` order; on
    /// PostgreSQL a commit takes `seq` while holding a transaction lock on
    /// the events (`store::postgres`), so a lower `seq` can never become
    /// visible after a higher one. Rows removed by retention are gone.
    async fn events_after(
        &self,
        merchant_id: &str,
        after_seq: i64,
        types: &[String],
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// The newest `limit` deliveries of one of the merchant's events, oldest
    /// first (an event resent again and again has many).
    async fn event_deliveries(
        &self,
        merchant_id: &str,
        event_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
    /// Deletes at most `limit` events created before `before` that have no
    /// pending delivery; returns how many.
    async fn prune_events(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
}

/// A merchant's webhook endpoints and their signing secrets.
#[async_trait]
pub(crate) trait EndpointStore: Send + Sync {
    /// The merchant's endpoints, oldest first (the first is the one
    /// `PUT /v1/merchant/webhook` sets).
    async fn endpoints(&self, merchant_id: &str) -> Result<Vec<EndpointRow>, StoreError>;
    /// One of the merchant's endpoints.
    async fn endpoint(&self, merchant_id: &str, id: &str) -> Result<Option<EndpointRow>, StoreError>;
    /// The endpoint's secrets valid at `now`, newest first.
    async fn endpoint_secrets(
        &self,
        endpoint_id: &str,
        now: i64,
    ) -> Result<Vec<EndpointSecretRow>, StoreError>;
}

/// Named leases: work one instance does at a time.
#[async_trait]
pub(crate) trait LeaseStore: Send + Sync {
    /// Takes the lease `name` for `owner` for `lease_ms` unless another owner
    /// holds it and it has not run out; returns whether `owner` holds it now.
    async fn try_lease(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool, StoreError>;
    /// Gives up a lease `owner` holds (nothing when it holds none).
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;
    /// Whether other processes share this database, so leases matter. When
    /// not (SQLite: one process), every lease is granted and in-process
    /// locks are the whole story: callers skip the lease round trips.
    fn leases_are_shared(&self) -> bool;
}

/// The storage interface the use cases see: every entity's reads, and
/// [`Change`]s committed together.
#[async_trait]
pub(crate) trait Store:
    MerchantStore
    + PaymentStore
    + CardStore
    + IdempotencyStore
    + InboundStore
    + OutboxStore
    + LeaseStore
    + TimelineStore
    + EventStore
    + EndpointStore
    + 'static
{
    /// Applies every change in one transaction: all or nothing.
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// An opened store, and the PostgreSQL pool behind it when it is one (the
/// cluster bus uses it).
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) postgres: Option<sqlx::PgPool>,
}

/// Opens (creating and migrating as needed) the database `url` names:
/// `sqlite://PATH` or `postgres://…`.
pub(crate) async fn open(url: &str) -> Result<Opened, StoreError> {
    if postgres::is_postgres_url(url) {
        let store = PostgresStore::open(url).await?;
        let pool = store.pool().clone();
        return Ok(Opened {
            store: Arc::new(store),
            postgres: Some(pool),
        });
    }
    Ok(Opened {
        store: Arc::new(SqliteStore::open(url).await?),
        postgres: None,
    })
}

/// `minor` units of a currency with `exponent` digits, in ten-thousandths of the
/// major unit, so amounts of different currencies compare (saturating).
pub(crate) fn amount_e4(minor: i64, exponent: u8) -> i64 {
    let scale = 10i64.pow(u32::from(4u8.saturating_sub(exponent)));
    minor.saturating_mul(scale)
}

/// One stored entry of a payment's timeline: its kind and its fields as
/// JSON, which the store keeps without reading (`app::timeline` writes and reads them).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct TimelineRow {
    /// Filled by the store (insertion order): orders entries of one millisecond.
    pub(crate) seq: i64,
    pub(crate) merchant_id: String,
    pub(crate) payment_id: String,
    /// When it happened (Unix µs: the entries of one request are often
    /// less than a millisecond apart).
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) detail: String,
}

/// Payment timelines (see [`Change::InsertTimeline`]).
#[async_trait]
pub(crate) trait TimelineStore: Send + Sync {
    /// The timeline of the merchant's payment, by time then insertion order
    /// (bounded by the cap its entries were inserted with).
    async fn timeline(&self, merchant_id: &str, payment_id: &str) -> Result<Vec<TimelineRow>, StoreError>;
}

/// The [`StoreError::Conflict`] of a [`Change::FinishWebhookEvent`] whose
/// event was already processed (a duplicate delivery).
pub(crate) const EVENT_ALREADY_PROCESSED: &str = "the event was already processed";
