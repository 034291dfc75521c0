//! The SQLite [`Store`]: one file in WAL mode, durable commits
//! (`synchronous = FULL`), and group commit: every write goes to one writer
//! task, which applies whatever writes are waiting in one transaction and
//! answers each caller after the single fsync. Reads use a small pool.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::{PaymentIntent, Refund};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{
    amount_e4, ApiKeyRow, AttemptRow, CardRow, Change, CredentialRow, CustomerRow, DeliveryFilter,
    DeliveryOutcome, DeliveryRow, EventKey, IdempotencyRow, MerchantRow, PaymentFilter, PaymentRow,
    RefundRow, Store, StoreError, WebhookEventRow,
};
use crate::domain::scopes::Scopes;

super::rows::row_mappers!(SqliteRow);

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 256;

fn migrator() -> Migrator {
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
        save_idempotency(&mut tx, chunk).await?;
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

fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!("{head} VALUES {}{tail}", vec![row; rows].join(", "))
}

async fn insert_payments(conn: &mut SqliteConnection, rows: &[&PaymentRow]) -> Result<(), StoreError> {
    let sql = values_sql(
        "INSERT INTO payments (id, merchant_id, provider, provider_ref, status, currency, amount_e4, \
         amount_refunded, idempotency_key, saved_card_id, customer_email, return_url, intent, created_at, \
         updated_at)",
        15,
        rows.len(),
        "",
    );
    let mut query = sqlx::query(&sql);
    for p in rows {
        query = query
            .bind(&p.id)
            .bind(&p.merchant_id)
            .bind(&p.provider)
            .bind(&p.intent.id)
            .bind(p.status().as_str())
            .bind(p.intent.currency.code())
            .bind(amount_e4(p.intent.amount, p.intent.currency.exponent()))
            .bind(p.amount_refunded)
            .bind(&p.idempotency_key)
            .bind(&p.saved_card_id)
            .bind(&p.customer_email)
            .bind(&p.return_url)
            .bind(to_json(&p.intent)?)
            .bind(p.created_at)
            .bind(p.updated_at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn save_idempotency(conn: &mut SqliteConnection, rows: &[&IdempotencyRow]) -> Result<(), StoreError> {
    let sql = values_sql(
        "INSERT INTO idempotency_keys (merchant_id, key, fingerprint, status, body, created_at)",
        6,
        rows.len(),
        " ON CONFLICT (merchant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
         status = excluded.status, body = excluded.body, created_at = excluded.created_at",
    );
    let mut query = sqlx::query(&sql);
    for i in rows {
        query = query
            .bind(&i.merchant_id)
            .bind(&i.key)
            .bind(&i.fingerprint)
            .bind(i64::from(i.status))
            .bind(&i.body)
            .bind(i.created_at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn insert_webhook_events(
    conn: &mut SqliteConnection,
    rows: &[&WebhookEventRow],
) -> Result<(), StoreError> {
    let sql = values_sql(
        "INSERT INTO webhook_events (provider, account, event_id, event_type, body, received_at)",
        6,
        rows.len(),
        " ON CONFLICT (provider, account, event_id) DO NOTHING",
    );
    let mut query = sqlx::query(&sql);
    for e in rows {
        query = query
            .bind(&e.key.provider)
            .bind(&e.key.account)
            .bind(&e.key.event_id)
            .bind(&e.event_type)
            .bind(&e.body)
            .bind(e.received_at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn apply_webhook_change(conn: &mut SqliteConnection, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::InsertWebhookEvent(row) => insert_webhook_events(conn, &[&**row]).await?,
        Change::FinishWebhookEvent { key, at, note } => {
            let done = sqlx::query(
                "UPDATE webhook_events SET processed_at = ?, last_error = COALESCE(?, last_error) \
                 WHERE provider = ? AND account = ? AND event_id = ? AND processed_at IS NULL",
            )
            .bind(at)
            .bind(note)
            .bind(&key.provider)
            .bind(&key.account)
            .bind(&key.event_id)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict("the event was already processed"));
            }
        }
        Change::WebhookEventFailed { key, error } => {
            sqlx::query(
                "UPDATE webhook_events SET attempts = attempts + 1, last_error = ? \
                 WHERE provider = ? AND account = ? AND event_id = ?",
            )
            .bind(error)
            .bind(&key.provider)
            .bind(&key.account)
            .bind(&key.event_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::SetSigningSecret {
            merchant_id,
            sealed,
            at,
        } => {
            sqlx::query(
                "INSERT INTO merchant_signing_secrets (merchant_id, sealed, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (merchant_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )
            .bind(merchant_id)
            .bind(sealed)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertDelivery(d) => {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, merchant_id, payment_id, event_type, source_event, payment, \
                 url, status, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) \
                 ON CONFLICT (merchant_id, source_event, event_type) DO NOTHING",
            )
            .bind(&d.id)
            .bind(&d.merchant_id)
            .bind(&d.payment_id)
            .bind(&d.event_type)
            .bind(&d.source_event)
            .bind(&d.payment)
            .bind(&d.url)
            .bind(&d.status)
            .bind(d.next_attempt_at)
            .bind(d.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::RecordAttempt { attempt, outcome } => {
            sqlx::query(
                "INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, http_status, latency_ms, error) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&attempt.delivery_id)
            .bind(attempt.attempt)
            .bind(attempt.at)
            .bind(attempt.http_status)
            .bind(attempt.latency_ms)
            .bind(&attempt.error)
            .execute(&mut *conn)
            .await?;
            let (status, next, delivered) = match outcome {
                DeliveryOutcome::Delivered => ("delivered", None, Some(attempt.at)),
                DeliveryOutcome::RetryAt(at) => ("pending", Some(*at), None),
                DeliveryOutcome::GaveUp => ("failed", None, None),
            };
            sqlx::query(
                "UPDATE webhook_deliveries SET status = ?, attempts = MAX(attempts, ?), \
                 next_attempt_at = COALESCE(?, next_attempt_at), delivered_at = COALESCE(?, delivered_at), \
                 claimed_until = NULL, last_status = ?, last_error = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(status)
            .bind(attempt.attempt)
            .bind(next)
            .bind(delivered)
            .bind(attempt.http_status)
            .bind(&attempt.error)
            .bind(&attempt.delivery_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::RetryDelivery { merchant_id, id, at } => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, claimed_until = NULL \
                 WHERE id = ? AND merchant_id = ? AND status != 'pending'",
            )
            .bind(at)
            .bind(id)
            .bind(merchant_id)
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn apply(conn: &mut SqliteConnection, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::InsertMerchant(m) => {
            sqlx::query("INSERT INTO merchants (id, name, webhook_url, created_at) VALUES (?, ?, ?, ?)")
                .bind(&m.id)
                .bind(&m.name)
                .bind(&m.webhook_url)
                .bind(m.created_at)
                .execute(&mut *conn)
                .await?;
        }
        Change::SetWebhookUrl { merchant_id, url } => {
            sqlx::query("UPDATE merchants SET webhook_url = ? WHERE id = ?")
                .bind(url)
                .bind(merchant_id)
                .execute(&mut *conn)
                .await?;
        }
        Change::InsertApiKey(k) => {
            sqlx::query(
                "INSERT INTO api_keys (id, merchant_id, key_hash, prefix, scopes, created_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&k.id)
            .bind(&k.merchant_id)
            .bind(&k.key_hash)
            .bind(&k.prefix)
            .bind(k.scopes.to_string())
            .bind(k.created_at)
            .bind(k.revoked_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::RevokeApiKey { merchant_id, id, at } => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND merchant_id = ? AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .bind(merchant_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::UpsertCredential(c) => {
            sqlx::query(
                "INSERT INTO provider_credentials (merchant_id, provider, sealed, masked, updated_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (merchant_id, provider) DO UPDATE SET \
                 sealed = excluded.sealed, masked = excluded.masked, updated_at = excluded.updated_at",
            )
            .bind(&c.merchant_id)
            .bind(&c.provider)
            .bind(&c.sealed)
            .bind(&c.masked)
            .bind(c.updated_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertPayment(p) => insert_payments(conn, &[&**p]).await?,
        Change::UpdatePayment(p) => {
            let intent = to_json(&p.intent)?;
            sqlx::query(
                "UPDATE payments SET provider_ref = ?, status = ?, amount_e4 = ?, amount_refunded = ?, \
                 intent = ?, updated_at = ? WHERE id = ? AND merchant_id = ?",
            )
            .bind(&p.intent.id)
            .bind(p.status().as_str())
            .bind(amount_e4(p.intent.amount, p.intent.currency.exponent()))
            .bind(p.amount_refunded)
            .bind(intent)
            .bind(p.updated_at)
            .bind(&p.id)
            .bind(&p.merchant_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertRefund(r) => {
            sqlx::query(
                "INSERT INTO refunds (id, merchant_id, payment_id, refund, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(&r.merchant_id)
            .bind(&r.payment_id)
            .bind(to_json(&r.refund)?)
            .bind(r.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertCustomer(c) => {
            sqlx::query(
                "INSERT INTO customers (merchant_id, provider, email, provider_customer_id, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&c.merchant_id)
            .bind(&c.provider)
            .bind(&c.email)
            .bind(&c.provider_customer_id)
            .bind(c.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertCard(c) => {
            sqlx::query(
                "INSERT INTO saved_cards (id, merchant_id, provider, provider_customer_id, \
                 provider_payment_method, customer_email, brand, last4, exp_month, exp_year, is_default, \
                 active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.id)
            .bind(&c.merchant_id)
            .bind(&c.provider)
            .bind(&c.provider_customer_id)
            .bind(&c.provider_payment_method)
            .bind(&c.customer_email)
            .bind(&c.brand)
            .bind(&c.last4)
            .bind(c.exp_month)
            .bind(c.exp_year)
            .bind(c.is_default)
            .bind(c.active)
            .bind(c.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::SetDefaultCard {
            merchant_id,
            email,
            card_id,
        } => {
            sqlx::query(
                "UPDATE saved_cards SET is_default = (id = ?) WHERE merchant_id = ? AND customer_email = ?",
            )
            .bind(card_id)
            .bind(merchant_id)
            .bind(email)
            .execute(&mut *conn)
            .await?;
        }
        Change::DeactivateCard { merchant_id, id } => {
            sqlx::query("UPDATE saved_cards SET active = 0, is_default = 0 WHERE id = ? AND merchant_id = ?")
                .bind(id)
                .bind(merchant_id)
                .execute(&mut *conn)
                .await?;
        }
        Change::SaveIdempotency(i) => save_idempotency(conn, &[i]).await?,
        other => apply_webhook_change(conn, other).await?,
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

enum Arg {
    Text(String),
    Int(i64),
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

    async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, StoreError> {
        sqlx::query("SELECT * FROM merchants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(merchant_row)
            .transpose()
    }

    async fn merchant_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM merchants")
            .fetch_one(&self.reads)
            .await?
            .try_get(0)?)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE key_hash = ?")
            .bind(hash)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(api_key_row)
            .transpose()
    }

    async fn api_keys(&self, merchant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE merchant_id = ? ORDER BY created_at, id")
            .bind(merchant_id)
            .fetch_all(&self.reads)
            .await?
            .iter()
            .map(api_key_row)
            .collect()
    }

    async fn credentials(&self, merchant_id: &str) -> Result<Vec<CredentialRow>, StoreError> {
        sqlx::query("SELECT * FROM provider_credentials WHERE merchant_id = ? ORDER BY provider")
            .bind(merchant_id)
            .fetch_all(&self.reads)
            .await?
            .iter()
            .map(credential_row)
            .collect()
    }

    async fn payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError> {
        let generation = {
            let cache = self.cache();
            if let Some(row) = cache.rows.get(id) {
                return Ok((row.merchant_id == merchant_id).then(|| row.clone()));
            }
            cache.generation
        };
        let row = sqlx::query("SELECT * FROM payments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(payment_row)
            .transpose()?;
        if let Some(row) = &row {
            let mut cache = self.cache();
            if cache.generation == generation && cache.rows.len() < CACHE_CAPACITY {
                cache.rows.entry(row.id.clone()).or_insert_with(|| row.clone());
            }
        }
        Ok(row.filter(|row| row.merchant_id == merchant_id))
    }

    async fn payments(
        &self,
        merchant_id: &str,
        filter: &PaymentFilter,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let mut sql = String::from("SELECT * FROM payments WHERE merchant_id = ?");
        let mut args = vec![Arg::Text(merchant_id.to_owned())];
        let mut add = |clause: &str, arg: Arg| {
            sql.push_str(clause);
            args.push(arg);
        };
        if let Some(provider) = &filter.provider {
            add(" AND provider = ?", Arg::Text(provider.clone()));
        }
        if let Some(status) = filter.status {
            add(" AND status = ?", Arg::Text(status.as_str().to_owned()));
        }
        if let Some(currency) = &filter.currency {
            add(" AND currency = ?", Arg::Text(currency.clone()));
        }
        if let Some(min) = filter.min_amount_e4 {
            add(" AND amount_e4 >= ?", Arg::Int(min));
        }
        if let Some(max) = filter.max_amount_e4 {
            add(" AND amount_e4 <= ?", Arg::Int(max));
        }
        if let Some(since) = filter.since_ms {
            add(" AND created_at >= ?", Arg::Int(since));
        }
        if let Some(until) = filter.until_ms {
            add(" AND created_at <= ?", Arg::Int(until));
        }
        if let Some(after) = &filter.after_id {
            add(
                " AND seq < (SELECT seq FROM payments WHERE id = ?",
                Arg::Text(after.clone()),
            );
            add(" AND merchant_id = ?)", Arg::Text(merchant_id.to_owned()));
        }
        add(" ORDER BY seq DESC LIMIT ?", Arg::Int(i64::from(filter.limit)));
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Text(text) => query.bind(text),
                Arg::Int(int) => query.bind(int),
            };
        }
        query
            .fetch_all(&self.reads)
            .await?
            .iter()
            .map(payment_row)
            .collect()
    }

    async fn refund(&self, merchant_id: &str, id: &str) -> Result<Option<RefundRow>, StoreError> {
        sqlx::query("SELECT * FROM refunds WHERE id = ? AND merchant_id = ?")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(refund_row)
            .transpose()
    }

    async fn customer(
        &self,
        merchant_id: &str,
        provider: &str,
        email: &str,
    ) -> Result<Option<CustomerRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM customers WHERE merchant_id = ? AND provider = ? AND email = ?")
            .bind(merchant_id)
            .bind(provider)
            .bind(email)
            .fetch_optional(&self.reads)
            .await?;
        row.map(|row| {
            Ok(CustomerRow {
                merchant_id: row.try_get("merchant_id")?,
                provider: row.try_get("provider")?,
                email: row.try_get("email")?,
                provider_customer_id: row.try_get("provider_customer_id")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn card(&self, merchant_id: &str, id: &str) -> Result<Option<CardRow>, StoreError> {
        sqlx::query("SELECT * FROM saved_cards WHERE id = ? AND merchant_id = ?")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(card_row)
            .transpose()
    }

    async fn cards(&self, merchant_id: &str, email: Option<&str>) -> Result<Vec<CardRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM saved_cards WHERE merchant_id = ? AND active = 1 \
             AND (? IS NULL OR customer_email = ?) ORDER BY created_at DESC, id DESC",
        )
        .bind(merchant_id)
        .bind(email)
        .bind(email)
        .fetch_all(&self.reads)
        .await?
        .iter()
        .map(card_row)
        .collect()
    }

    async fn idempotency(&self, merchant_id: &str, key: &str) -> Result<Option<IdempotencyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE merchant_id = ? AND key = ?")
            .bind(merchant_id)
            .bind(key)
            .fetch_optional(&self.reads)
            .await?;
        row.map(|row| {
            let status: i64 = row.try_get("status")?;
            Ok(IdempotencyRow {
                merchant_id: row.try_get("merchant_id")?,
                key: row.try_get("key")?,
                fingerprint: row.try_get("fingerprint")?,
                status: u16::try_from(status).map_err(|_| StoreError::Corrupt("status".into()))?,
                body: row.try_get("body")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
        // A single statement; it goes through the pool (SQLite serializes it with the writer).
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before_ms)
            .execute(&self.reads)
            .await?;
        Ok(done.rows_affected())
    }

    async fn payment_by_provider_ref(
        &self,
        merchant_id: Option<&str>,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<PaymentRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM payments WHERE provider = ? AND provider_ref = ? AND (? IS NULL OR merchant_id = ?) \
             ORDER BY seq LIMIT 1",
        )
        .bind(provider)
        .bind(provider_ref)
        .bind(merchant_id)
        .bind(merchant_id)
        .fetch_optional(&self.reads)
        .await?
        .as_ref()
        .map(payment_row)
        .transpose()
    }

    async fn refund_by_provider_id(
        &self,
        payment_id: &str,
        provider_refund_id: &str,
    ) -> Result<Option<RefundRow>, StoreError> {
        sqlx::query("SELECT * FROM refunds WHERE payment_id = ? AND json_extract(refund, '$.id') = ?")
            .bind(payment_id)
            .bind(provider_refund_id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(refund_row)
            .transpose()
    }

    async fn webhook_event(&self, key: &EventKey) -> Result<Option<WebhookEventRow>, StoreError> {
        sqlx::query("SELECT * FROM webhook_events WHERE provider = ? AND account = ? AND event_id = ?")
            .bind(&key.provider)
            .bind(&key.account)
            .bind(&key.event_id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(webhook_event_row)
            .transpose()
    }

    async fn unprocessed_webhook_events(&self, limit: u32) -> Result<Vec<WebhookEventRow>, StoreError> {
        sqlx::query("SELECT * FROM webhook_events WHERE processed_at IS NULL ORDER BY seq LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?
            .iter()
            .map(webhook_event_row)
            .collect()
    }

    async fn signing_secret(&self, merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM merchant_signing_secrets WHERE merchant_id = ?")
            .bind(merchant_id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|row| row.try_get("sealed")).transpose()?)
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        // One statement: SQLite runs it atomically against the writer.
        sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until = ? WHERE seq IN (SELECT seq FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) \
             ORDER BY next_attempt_at, seq LIMIT ?) RETURNING *",
        )
        .bind(until)
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?
        .iter()
        .map(delivery_row)
        .collect()
    }

    async fn deliveries(
        &self,
        merchant_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE merchant_id = ? AND (? IS NULL OR status = ?) \
             AND (? IS NULL OR event_type = ?) AND (? IS NULL OR payment_id = ?) AND (? IS NULL OR seq < ?) \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(merchant_id)
        .bind(&filter.status)
        .bind(&filter.status)
        .bind(&filter.event_type)
        .bind(&filter.event_type)
        .bind(&filter.payment_id)
        .bind(&filter.payment_id)
        .bind(filter.before_seq)
        .bind(filter.before_seq)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.reads)
        .await?
        .iter()
        .map(delivery_row)
        .collect()
    }

    async fn delivery(&self, merchant_id: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        sqlx::query("SELECT * FROM webhook_deliveries WHERE id = ? AND merchant_id = ?")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(delivery_row)
            .transpose()
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt")
            .bind(delivery_id)
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRow {
                    delivery_id: row.try_get("delivery_id")?,
                    attempt: row.try_get("attempt")?,
                    at: row.try_get("at")?,
                    http_status: row.try_get("http_status")?,
                    latency_ms: row.try_get("latency_ms")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }

    async fn stale_payments(&self, updated_before: i64, limit: u32) -> Result<Vec<PaymentRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM payments WHERE status = 'pending' AND updated_at < ? ORDER BY updated_at LIMIT ?",
        )
        .bind(updated_before)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?
        .iter()
        .map(payment_row)
        .collect()
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
            status: 200,
            body: b"{}".to_vec(),
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
        assert_eq!(store.idempotency("m1", "old").await.unwrap().unwrap().status, 200);
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
