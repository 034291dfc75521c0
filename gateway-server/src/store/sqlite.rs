//! The SQLite [`Store`]: one file in WAL mode, durable commits
//! (`synchronous = FULL`), and group commit: every write goes to one writer
//! task, which applies whatever writes are waiting in one transaction and
//! answers each caller after the single fsync. Reads use a small pool, and
//! recently used payments are cached (this process is the file's only writer).
//!
//! The statements are the shared ones (`shared`); only the claim's locking,
//! the attempt record and leases are SQLite's own, each saying why.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{AttemptRow, Change, DeliveryOutcome, DeliveryStatus, LeaseStore, PaymentRow, Store, StoreError};

shared_statements! {
    store: SqliteStore,
    database: sqlx::Sqlite,
    pool: reads,
    // No row locks in SQLite: the claim is one statement, which SQLite runs
    // atomically against the writer.
    claim_lock: "",
}

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 256;

pub(super) fn migrator() -> Migrator {
    let migrations = vec![
        Migration::new(
            1,
            Cow::Borrowed("initial"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0001_initial.sql")),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("webhooks"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0002_webhooks.sql")),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("refund provider id"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0003_refund_provider_id.sql")),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("refund lifecycle"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0004_refund_lifecycle.sql")),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("write ahead"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0005_write_ahead.sql")),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("account pinning"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0006_account_pinning.sql")),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("delivery fairness"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0007_delivery_fairness.sql")),
            false,
        ),
        Migration::new(
            8,
            Cow::Borrowed("events and endpoints"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0008_events_and_endpoints.sql")),
            false,
        ),
        Migration::new(
            9,
            Cow::Borrowed("payment timeline"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../../migrations/0009_payment_timeline.sql")),
            false,
        ),
    ];
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

struct WriteJob {
    changes: Vec<Change>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The most payments kept in the read cache.
const CACHE_CAPACITY: usize = 4096;

/// Recently read or written payments. A SQLite file has one server process
/// writing it, and every payment write goes through [`SqliteStore::commit`],
/// which refreshes the cache after the commit, so reads can skip the
/// database. A generation counter keeps a read that raced a write (or a
/// flush) from caching a stale row.
#[derive(Default)]
struct PaymentCache {
    rows: HashMap<String, PaymentRow>,
    generation: u64,
}

/// SQLite storage.
pub(crate) struct SqliteStore {
    reads: SqlitePool,
    writes: mpsc::Sender<WriteJob>,
    cache: Mutex<PaymentCache>,
}

/// The file a `sqlite://` URL names (`sqlite://./gateway.db`, `sqlite:gateway.db`).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

impl SqliteStore {
    fn cache(&self) -> std::sync::MutexGuard<'_, PaymentCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refreshes cached payments that a commit changed. New payments are not
    /// cached here (reads bring them in), so a stream of creations does not churn the cache.
    fn remember_committed(&self, changes: &[Change]) {
        let mut cache = self.cache();
        for change in changes {
            if let Change::UpdatePayment(row) | Change::InsertPayment(row) = change {
                cache.generation += 1;
                if let Some(cached) = cache.rows.get_mut(&row.id) {
                    *cached = (**row).clone();
                }
            }
        }
    }

    /// Opens (creating if needed) and migrates the database at `url`.
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-8000")
            .pragma("journal_size_limit", "67108864");
        // The writer never checkpoints inside a commit (a checkpoint copies
        // the WAL into the database and fsyncs it: a latency spike for every
        // request waiting on that commit); `checkpoint_loop` does it beside.
        let mut writer = options
            .clone()
            .pragma("wal_autocheckpoint", "0")
            .connect()
            .await?;
        migrator().run_direct(&mut writer).await?;
        let reads = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(4)
            .connect_with(options)
            .await?;
        let (sender, receiver) = mpsc::channel(4096);
        tokio::spawn(run_writer(writer, receiver));
        tokio::spawn(checkpoint_loop(reads.clone()));
        Ok(SqliteStore {
            reads,
            writes: sender,
            cache: Mutex::new(PaymentCache::default()),
        })
    }
}

/// Copies the WAL back into the database every 250 ms without blocking the
/// writer (`PASSIVE`), and truncates the WAL file once it has grown past 64 MiB.
async fn checkpoint_loop(pool: SqlitePool) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok(row) => {
                let wal_pages: i64 = row.try_get(1).unwrap_or(0);
                if wal_pages > 16_384 {
                    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(&pool)
                        .await;
                }
            }
            Err(error) => tracing::debug!(%error, "WAL checkpoint failed; retrying"),
        }
    }
}

async fn run_writer(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply_batch(&mut conn, &batch).await {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Ok(()));
                }
            }
            // One bad write must not fail its neighbours: retry each alone.
            Err(_) if batch.len() > 1 => {
                for job in batch.drain(..) {
                    let result = apply_batch(&mut conn, std::slice::from_ref(&job)).await;
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(clone_error(&error)));
                }
            }
        }
    }
    let _ = conn.close().await;
}

fn clone_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Busy => StoreError::Busy,
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::Duplicate(what) => StoreError::Duplicate(what.clone()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Applies a batch in one transaction. New payments and idempotency records
/// (nearly every write under load) go in multi-row statements, so a batch
/// costs a few round trips to SQLite instead of one per row; merchants go
/// first (payments reference them) and everything else follows in order.
async fn apply_batch(conn: &mut SqliteConnection, batch: &[WriteJob]) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    let changes: Vec<&Change> = batch.iter().flat_map(|job| job.changes.iter()).collect();
    for change in changes.iter().filter(|c| matches!(c, Change::InsertMerchant(_))) {
        apply(&mut tx, change).await?;
    }
    let payments: Vec<&PaymentRow> = changes
        .iter()
        .filter_map(|change| match change {
            Change::InsertPayment(row) => Some(&**row),
            _ => None,
        })
        .collect();
    for chunk in chunks(&payments) {
        insert_payments(&mut tx, chunk).await?;
    }
    let records: Vec<&IdempotencyRow> = changes
        .iter()
        .filter_map(|change| match change {
            Change::SaveIdempotency(row) => Some(row),
            _ => None,
        })
        .collect();
    for chunk in chunks(&records) {
        save_idempotency(&mut tx, chunk, false).await?;
    }
    let events: Vec<&WebhookEventRow> = changes
        .iter()
        .filter_map(|change| match change {
            Change::InsertWebhookEvent(row) => Some(&**row),
            _ => None,
        })
        .collect();
    for chunk in chunks(&events) {
        insert_webhook_events(&mut tx, chunk).await?;
    }
    for change in changes.iter().filter(|c| {
        !matches!(
            c,
            Change::InsertMerchant(_)
                | Change::InsertPayment(_)
                | Change::SaveIdempotency(_)
                | Change::InsertWebhookEvent(_)
        )
    }) {
        apply(&mut tx, change).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Splits rows into chunks of 32, 8 and 1, so only three statement shapes get prepared.
fn chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = rows;
    for size in [32, 8, 1] {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            out.push(chunk);
            rest = tail;
        }
    }
    out
}

/// Records an attempt and what it leaves the delivery as: two statements
/// (SQLite's `max` is PostgreSQL's `GREATEST`), always inside the writer's transaction.
async fn record_attempt(
    conn: &mut SqliteConnection,
    attempt: &AttemptRow,
    outcome: DeliveryOutcome,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, latency_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, \
         http_status = excluded.http_status, latency_ms = excluded.latency_ms, error = excluded.error",
    )
    .bind(&attempt.delivery_id)
    .bind(attempt.attempt)
    .bind(attempt.at)
    .bind(attempt.http_status)
    .bind(attempt.latency_ms)
    .bind(&attempt.error)
    .execute(&mut *conn)
    .await?;
    let (status, next, delivered) = outcome.columns(attempt.at);
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = max(attempts, $2), \
         next_attempt_at = COALESCE($3, next_attempt_at), delivered_at = COALESCE($4, delivered_at), \
         claimed_until = NULL, last_status = $5, last_error = $6 WHERE id = $7 AND status = $8",
    )
    .bind(status.as_str())
    .bind(attempt.attempt)
    .bind(next)
    .bind(delivered)
    .bind(attempt.http_status)
    .bind(&attempt.error)
    .bind(&attempt.delivery_id)
    .bind(DeliveryStatus::Pending.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The reads the shared statements leave to this backend.
impl SqliteStore {
    /// A payment, from the cache when it holds it.
    async fn read_payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError> {
        let generation = {
            let cache = self.cache();
            if let Some(row) = cache.rows.get(id) {
                return Ok((row.merchant_id == merchant_id).then(|| row.clone()));
            }
            cache.generation
        };
        let row = select_payment(&self.reads, id).await?;
        if let Some(row) = &row {
            let mut cache = self.cache();
            if cache.generation == generation && cache.rows.len() < CACHE_CAPACITY {
                cache.rows.entry(row.id.clone()).or_insert_with(|| row.clone());
            }
        }
        Ok(row.filter(|row| row.merchant_id == merchant_id))
    }

    /// Nothing more to purge: SQLite keeps no leases.
    async fn after_purge(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A SQLite file has one server process: in-process locks suffice, so every
/// lease is granted (and there is nothing to release).
#[async_trait]
impl LeaseStore for SqliteStore {
    async fn try_lease(&self, _name: &str, _owner: &str, _lease_ms: i64) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn release_lease(&self, _name: &str, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn leases_are_shared(&self) -> bool {
        false
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let cached: Option<Vec<Change>> = changes
            .iter()
            .any(|change| matches!(change, Change::UpdatePayment(_)))
            .then(|| {
                changes
                    .iter()
                    .filter(|change| matches!(change, Change::UpdatePayment(_)))
                    .cloned()
                    .collect()
            });
        self.writes
            .send(WriteJob { changes, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let result = answer.await.map_err(|_| StoreError::WriterGone)?;
        match (&result, cached) {
            (Ok(()), Some(changes)) => self.remember_committed(&changes),
            // The outcome of a failed commit is unknown to the cache: forget it all.
            (Err(_), Some(_)) => {
                let mut cache = self.cache();
                cache.rows.clear();
                cache.generation += 1;
            }
            _ => {}
        }
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        if self.writes.is_closed() {
            return Err(StoreError::WriterGone);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant(id: &str) -> MerchantRow {
        MerchantRow {
            id: id.to_owned(),
            name: "m".to_owned(),
            webhook_url: None,
            created_at: 1,
        }
    }

    fn record(key: &str, created_at: i64) -> IdempotencyRow {
        IdempotencyRow {
            merchant_id: "m1".to_owned(),
            key: key.to_owned(),
            fingerprint: "f".to_owned(),
            response: Some(crate::domain::records::StoredResponse {
                status: 200,
                body: b"{}".to_vec(),
            }),
            resource_id: None,
            created_at,
        }
    }

    #[tokio::test]
    async fn idempotency_records_round_trip_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store
            .commit(vec![
                Change::InsertMerchant(merchant("m1")),
                Change::SaveIdempotency(record("old", 1_000)),
                Change::SaveIdempotency(record("new", 5_000)),
            ])
            .await
            .unwrap();
        assert_eq!(
            store
                .idempotency("m1", "old")
                .await
                .unwrap()
                .unwrap()
                .response
                .unwrap()
                .status,
            200
        );
        assert!(
            store.idempotency("m2", "old").await.unwrap().is_none(),
            "keys are per merchant"
        );
        assert_eq!(store.purge_idempotency(2_000).await.unwrap(), 1);
        assert!(store.idempotency("m1", "old").await.unwrap().is_none());
        assert!(store.idempotency("m1", "new").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failing_change_rolls_back_its_whole_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = std::sync::Arc::new(SqliteStore::open(&url).await.unwrap());
        store
            .commit(vec![Change::InsertMerchant(merchant("m1"))])
            .await
            .unwrap();
        // The duplicate merchant fails; the idempotency record in the same commit must not land,
        // and a concurrent, valid commit in the same batch must.
        let bad = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .commit(vec![
                        Change::SaveIdempotency(record("with-bad", 1)),
                        Change::InsertMerchant(merchant("m1")),
                    ])
                    .await
            })
        };
        let good = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .commit(vec![Change::SaveIdempotency(record("good", 1))])
                    .await
            })
        };
        assert!(bad.await.unwrap().is_err());
        good.await.unwrap().unwrap();
        assert!(store.idempotency("m1", "with-bad").await.unwrap().is_none());
        assert!(store.idempotency("m1", "good").await.unwrap().is_some());
        assert_eq!(store.merchant_count().await.unwrap(), 1);
    }

    #[test]
    fn chunks_of_32_8_and_1() {
        let rows: Vec<u32> = (0..45).collect();
        let sizes: Vec<usize> = chunks(&rows).iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, vec![32, 8, 1, 1, 1, 1, 1]);
        assert_eq!(chunks(&rows).concat(), rows);
        assert!(chunks::<u32>(&[]).is_empty());
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://./gateway.db"),
            Some(PathBuf::from("./gateway.db"))
        );
        assert_eq!(sqlite_path("sqlite:g.db?mode=rwc"), Some(PathBuf::from("g.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
