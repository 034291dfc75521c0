//! The statements SQLite and PostgreSQL share, written once: the changes
//! (`writes`) and the entity traits' reads (`reads`).
//!
//! [`shared_statements!`] expands, in a backend's module, to the functions
//! that apply [`Change`](super::Change)s and to the entity traits' read
//! methods, for that backend's sqlx database type. Every statement uses `$N`
//! placeholders (both drivers accept them) or `sqlx::QueryBuilder` (filters,
//! multi-row inserts), and status names come from their enums, bound as
//! parameters. A macro rather than generic code: sqlx 0.8's bounds for code
//! generic over the database would outweigh the statements.
//!
//! The backend module provides:
//! - `record_attempt(conn, attempt, outcome)`: the attempt upsert (dialect);
//! - `read_payment(&self, merchant_id, id)` and `after_purge(&self)`: the
//!   reads that SQLite's cache and PostgreSQL's leases change;
//! - `claim_lock`: how the delivery claim's subquery locks the rows it picks
//!   (PostgreSQL's `FOR UPDATE SKIP LOCKED`; nothing on SQLite).

#[macro_use]
mod reads;
#[macro_use]
mod writes;
#[macro_use]
mod timeline;

/// Expands the shared statements for one backend (see the module docs).
macro_rules! shared_statements {
    (store: $store:ty, database: $db:ty, pool: $pool:ident, claim_lock: $lock:literal $(,)?) => {
        // The store's names the shared statements use.
        use $crate::domain::records::{PendingStep, ProviderAccount};
        use $crate::store::rows::{
            convert, convert_one, to_json, ApiKeyRecord, IdempotencyRecord, PaymentRecord, RefundRecord,
            IDEMPOTENCY_DONE, IDEMPOTENCY_IN_PROGRESS, IDEMPOTENCY_RETENTION_MS,
        };
        use $crate::store::*;

        shared_writes!($db);
        shared_reads!($store, $db, $pool, $lock);
        shared_timeline!($store, $db, $pool);
    };
}
