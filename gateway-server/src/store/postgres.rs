//! The PostgreSQL [`Store`], for several gateway instances on one database.
//!
//! Every commit is one transaction on a pooled connection; PostgreSQL's own
//! row locks and group commit handle concurrent writers, so there is no
//! writer task and no read cache here (another instance may change any row).
//! Its migrations are a set of their own (`migrations/postgres/`), applied
//! under sqlx's advisory lock, so instances starting together migrate once.
//! Leases ([`LeaseStore::try_lease`]) live in the `leases` table and use the
//! database's clock, so instances with skewed clocks agree on expiry.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::{AttemptRow, Change, DeliveryOutcome, DeliveryStatus, LeaseStore, PaymentRow, Store, StoreError};

shared_statements! {
    store: PostgresStore,
    database: sqlx::Postgres,
    pool: pool,
    // Several instances claim at once: each row goes to one of them (a row
    // another claim has locked is skipped, not waited for).
    claim_lock: " FOR UPDATE SKIP LOCKED",
}

/// Connections per instance.
const POOL_SIZE: u32 = 16;

/// The database's clock in Unix milliseconds, as SQL.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(super) fn migrator() -> Migrator {
    let migration = |version, name, sql| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    let migrations = vec![
        migration(
            1,
            "initial",
            include_str!("../../migrations/postgres/0001_initial.sql"),
        ),
        migration(
            2,
            "cluster",
            include_str!("../../migrations/postgres/0002_cluster.sql"),
        ),
        migration(
            3,
            "webhooks",
            include_str!("../../migrations/postgres/0003_webhooks.sql"),
        ),
        migration(
            4,
            "refund provider id",
            include_str!("../../migrations/postgres/0004_refund_provider_id.sql"),
        ),
        migration(
            5,
            "refund lifecycle",
            include_str!("../../migrations/postgres/0005_refund_lifecycle.sql"),
        ),
        migration(
            6,
            "write ahead",
            include_str!("../../migrations/postgres/0006_write_ahead.sql"),
        ),
        migration(
            7,
            "account pinning",
            include_str!("../../migrations/postgres/0007_account_pinning.sql"),
        ),
        migration(
            8,
            "delivery fairness",
            include_str!("../../migrations/postgres/0008_delivery_fairness.sql"),
        ),
        migration(
            9,
            "events and endpoints",
            include_str!("../../migrations/postgres/0009_events_and_endpoints.sql"),
        ),
        migration(
            10,
            "payment timeline",
            include_str!("../../migrations/postgres/0010_payment_timeline.sql"),
        ),
    ];
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Applies the PostgreSQL migrations (idempotent; safe from several instances at once).
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    migrator().run(pool).await?;
    Ok(())
}

/// PostgreSQL storage.
pub(crate) struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to and migrates the database at `url` (`postgres://…`).
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        if !is_postgres_url(url) {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        migrate(&pool).await?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool (the cluster bus shares it).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Records an attempt and what it leaves the delivery as in one statement
/// (a data-modifying CTE), since a lone change runs without a transaction.
async fn record_attempt(
    conn: &mut PgConnection,
    attempt: &AttemptRow,
    outcome: DeliveryOutcome,
) -> Result<(), StoreError> {
    let (status, next, delivered) = outcome.columns(attempt.at);
    sqlx::query(
        "WITH recorded AS (INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, latency_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, \
         http_status = excluded.http_status, latency_ms = excluded.latency_ms, error = excluded.error) \
         UPDATE webhook_deliveries SET status = $7, attempts = GREATEST(attempts, $2), \
         next_attempt_at = COALESCE($8, next_attempt_at), delivered_at = COALESCE($9, delivered_at), \
         claimed_until = NULL, last_status = $4, last_error = $6 WHERE id = $1 AND status = $10",
    )
    .bind(&attempt.delivery_id)
    .bind(attempt.attempt)
    .bind(attempt.at)
    .bind(attempt.http_status)
    .bind(attempt.latency_ms)
    .bind(&attempt.error)
    .bind(status.as_str())
    .bind(next)
    .bind(delivered)
    .bind(DeliveryStatus::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The key of the transaction lock every commit that stores events holds
/// from taking the events' `seq` until it commits (`pg_advisory_xact_lock`).
const EVENTS_LOCK: i64 = 0x6576_656e_7473; // "events"

impl PostgresStore {
    /// A commit that stores events, so that `seq` is also the order events
    /// become visible in (what `EventStore::events_after` relies on): the
    /// changes in order, the events lock taken just before the first event.
    /// An identity value is taken at insert time, and without the lock a
    /// transaction that took a lower one could commit after a reader saw a
    /// higher one; with it, every lower `seq` was committed (or rolled back)
    /// before a higher one was taken. `app::outbound` puts the events and
    /// their deliveries after the payment's own changes (only the
    /// idempotency record follows, a row no other commit holds), so the lock
    /// covers the tail of the commit only and serializes event-storing
    /// commits there alone; a deadlock would be detected by PostgreSQL and
    /// answered as busy (retry).
    async fn commit_with_events(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut locked = false;
        for change in &changes {
            if !locked && matches!(change, Change::InsertEvent(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(EVENTS_LOCK)
                    .execute(&mut *tx)
                    .await?;
                locked = true;
            }
            apply(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The reads the shared statements leave to this backend.
impl PostgresStore {
    /// A payment, always from the database (another instance may have changed it).
    async fn read_payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError> {
        Ok(select_payment(&self.pool, id)
            .await?
            .filter(|row| row.merchant_id == merchant_id))
    }

    /// Leases that ran out long ago are garbage too.
    async fn after_purge(&self) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "DELETE FROM leases WHERE expires_at < ",
            now_ms!(),
            " - 3600000"
        ))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes
            .iter()
            .any(|change| matches!(change, Change::InsertEvent(_)))
        {
            return self.commit_with_events(changes).await;
        }
        match changes.as_slice() {
            [] => Ok(()),
            // One statement is atomic on its own: save the BEGIN and COMMIT round trips.
            [change] if change.is_one_statement() => {
                let mut conn = self.pool.acquire().await?;
                apply(&mut conn, change).await
            }
            _ => {
                let mut conn = self.pool.acquire().await?;
                let mut tx = conn.begin().await?;
                for change in &changes {
                    apply(&mut tx, change).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Leases live in the `leases` table and use the database's clock, so
/// instances with skewed clocks agree on expiry (an upsert PostgreSQL's way).
#[async_trait]
impl LeaseStore for PostgresStore {
    async fn try_lease(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool, StoreError> {
        // Insert, or take over a lease that ran out (or that `owner` already holds).
        const SQL: &str = concat!(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, ",
            now_ms!(),
            " + $3) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leases.expires_at < ",
            now_ms!(),
            " OR leases.owner = excluded.owner RETURNING owner"
        );
        let row = sqlx::query(SQL)
            .bind(name)
            .bind(owner)
            .bind(lease_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn leases_are_shared(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls() {
        assert!(is_postgres_url("postgres://u@localhost/db"));
        assert!(is_postgres_url("postgresql://localhost/db"));
        assert!(!is_postgres_url("sqlite://./gateway.db"));
    }
}
