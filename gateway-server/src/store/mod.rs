//! Storage: the rows the server keeps and the [`Store`] interface over them.
//!
//! Handlers only see [`Store`]; `sqlite` (one process, the default) and
//! `postgres` (several instances on one database) implement it, chosen by the
//! database URL ([`open`]). Every write is a list of [`Change`]s committed
//! together in one transaction.

pub(crate) mod postgres;
mod postgres_webhooks;
mod rows;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use gateway_core::PaymentStatus;

pub(crate) use self::postgres::PostgresStore;
pub(crate) use self::sqlite::{sqlite_path, SqliteStore};
pub(crate) use crate::domain::records::{
    ApiKeyRow, AttemptRow, CardRow, CredentialRow, CustomerRow, DeliveryRow, EventKey, IdempotencyRow,
    MerchantRow, PaymentRow, RefundRow, WebhookEventRow,
};

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
    /// This store does not implement the operation.
    #[error("unsupported by this store: {0}")]
    Unsupported(&'static str),
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

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryFilter {
    pub(crate) status: Option<String>,
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
    SetWebhookUrl {
        merchant_id: String,
        url: Option<String>,
    },
    InsertApiKey(ApiKeyRow),
    RevokeApiKey {
        merchant_id: String,
        id: String,
        at: i64,
    },
    UpsertCredential(CredentialRow),
    InsertPayment(Box<PaymentRow>),
    UpdatePayment(Box<PaymentRow>),
    InsertRefund(Box<RefundRow>),
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
    /// Counts a failed processing attempt of an inbound event.
    WebhookEventFailed {
        key: EventKey,
        error: String,
    },
    /// Sets a merchant's sealed webhook signing secret.
    SetSigningSecret {
        merchant_id: String,
        sealed: Vec<u8>,
        at: i64,
    },
    /// Adds an outbox row unless the same change already produced one.
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

/// The storage interface handlers use.
#[async_trait]
pub(crate) trait Store: Send + Sync + 'static {
    /// Applies every change in one transaction: all or nothing.
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, StoreError>;
    async fn merchant_count(&self) -> Result<i64, StoreError>;
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>, StoreError>;
    async fn api_keys(&self, merchant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError>;
    async fn credentials(&self, merchant_id: &str) -> Result<Vec<CredentialRow>, StoreError>;
    async fn payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError>;
    /// Newest first, at most `filter.limit` rows.
    async fn payments(
        &self,
        merchant_id: &str,
        filter: &PaymentFilter,
    ) -> Result<Vec<PaymentRow>, StoreError>;
    async fn refund(&self, merchant_id: &str, id: &str) -> Result<Option<RefundRow>, StoreError>;
    async fn customer(
        &self,
        merchant_id: &str,
        provider: &str,
        email: &str,
    ) -> Result<Option<CustomerRow>, StoreError>;
    async fn card(&self, merchant_id: &str, id: &str) -> Result<Option<CardRow>, StoreError>;
    /// Active cards, newest first.
    async fn cards(&self, merchant_id: &str, email: Option<&str>) -> Result<Vec<CardRow>, StoreError>;
    async fn idempotency(&self, merchant_id: &str, key: &str) -> Result<Option<IdempotencyRow>, StoreError>;
    /// Deletes idempotency records created before `before_ms`; returns how many.
    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// The payment whose intent is `provider_ref` at `provider`, of `merchant_id` when given.
    async fn payment_by_provider_ref(
        &self,
        _merchant_id: Option<&str>,
        _provider: &str,
        _provider_ref: &str,
    ) -> Result<Option<PaymentRow>, StoreError> {
        Err(StoreError::Unsupported("payment_by_provider_ref"))
    }
    /// The refund of `payment_id` whose provider id is `provider_refund_id`.
    async fn refund_by_provider_id(
        &self,
        _payment_id: &str,
        _provider_refund_id: &str,
    ) -> Result<Option<RefundRow>, StoreError> {
        Err(StoreError::Unsupported("refund_by_provider_id"))
    }
    /// A stored inbound event.
    async fn webhook_event(&self, _key: &EventKey) -> Result<Option<WebhookEventRow>, StoreError> {
        Err(StoreError::Unsupported("webhook_event"))
    }
    /// Inbound events not processed yet, oldest first.
    async fn unprocessed_webhook_events(&self, _limit: u32) -> Result<Vec<WebhookEventRow>, StoreError> {
        Err(StoreError::Unsupported("unprocessed_webhook_events"))
    }
    /// A merchant's sealed signing secret.
    async fn signing_secret(&self, _merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::Unsupported("signing_secret"))
    }
    /// Claims up to `limit` pending deliveries due at `now` until `until`
    /// (a claim expires, so a crash mid-send frees the row), oldest first.
    async fn claim_deliveries(
        &self,
        _now: i64,
        _until: i64,
        _limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Err(StoreError::Unsupported("claim_deliveries"))
    }
    /// A merchant's deliveries, newest first.
    async fn deliveries(
        &self,
        _merchant_id: &str,
        _filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Err(StoreError::Unsupported("deliveries"))
    }
    /// One of a merchant's deliveries.
    async fn delivery(&self, _merchant_id: &str, _id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        Err(StoreError::Unsupported("delivery"))
    }
    /// A delivery's attempts, in order.
    async fn delivery_attempts(&self, _delivery_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        Err(StoreError::Unsupported("delivery_attempts"))
    }
    /// Payments still pending whose row last changed before `updated_before`, oldest first.
    async fn stale_payments(&self, _updated_before: i64, _limit: u32) -> Result<Vec<PaymentRow>, StoreError> {
        Err(StoreError::Unsupported("stale_payments"))
    }
    /// Takes the lease `name` for `owner` for `lease_ms` unless another owner
    /// holds it and it has not run out; returns whether `owner` holds it now.
    /// Leases share work between instances on one database; a store that one
    /// process owns (SQLite) grants every lease, as in-process locks suffice.
    async fn try_lease(&self, _name: &str, _owner: &str, _lease_ms: i64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Gives up a lease `owner` holds (nothing when it holds none).
    async fn release_lease(&self, _name: &str, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }
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
