//! The PostgreSQL side of inbound and outbound webhooks: the changes and
//! reads the SQLite store makes for them, in PostgreSQL's dialect.
//!
//! Every change here is one statement, because the store runs a lone change
//! without a transaction. Deliveries are claimed with `FOR UPDATE SKIP
//! LOCKED` and a claim expiry, so several instances share the outbox: a row
//! goes to one worker at a time, and a worker that dies frees it at expiry.

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;

use super::postgres::{delivery_row, webhook_event_row};

use super::{
    AttemptRow, Change, DeliveryFilter, DeliveryOutcome, DeliveryRow, EventKey, PaymentRow, RefundRow,
    StoreError, WebhookEventRow,
};

/// Applies a webhook change (the other changes are the caller's).
pub(super) async fn apply(conn: &mut PgConnection, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::InsertWebhookEvent(e) => {
            sqlx::query(
                "INSERT INTO webhook_events (provider, account, event_id, event_type, body, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, account, event_id) DO NOTHING",
            )
            .bind(&e.key.provider)
            .bind(&e.key.account)
            .bind(&e.key.event_id)
            .bind(&e.event_type)
            .bind(&e.body)
            .bind(e.received_at)
            .execute(&mut *conn)
            .await?;
        }
        Change::FinishWebhookEvent { key, at, note } => {
            let done = sqlx::query(
                "UPDATE webhook_events SET processed_at = $1, last_error = COALESCE($2, last_error) \
                 WHERE provider = $3 AND account = $4 AND event_id = $5 AND processed_at IS NULL",
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
                "UPDATE webhook_events SET attempts = attempts + 1, last_error = $1 \
                 WHERE provider = $2 AND account = $3 AND event_id = $4",
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
                "INSERT INTO merchant_signing_secrets (merchant_id, sealed, updated_at) VALUES ($1, $2, $3) \
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
                 url, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10) \
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
            let (status, next, delivered) = match outcome {
                DeliveryOutcome::Delivered => ("delivered", None, Some(attempt.at)),
                DeliveryOutcome::RetryAt(at) => ("pending", Some(*at), None),
                DeliveryOutcome::GaveUp => ("failed", None, None),
            };
            // One statement (a data-modifying CTE): the attempt and the delivery's new state together.
            sqlx::query(
                "WITH recorded AS (INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, latency_ms, error) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, \
                 http_status = excluded.http_status, latency_ms = excluded.latency_ms, error = excluded.error) \
                 UPDATE webhook_deliveries SET status = $7, attempts = GREATEST(attempts, $2), \
                 next_attempt_at = COALESCE($8, next_attempt_at), delivered_at = COALESCE($9, delivered_at), \
                 claimed_until = NULL, last_status = $4, last_error = $6 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&attempt.delivery_id)
            .bind(attempt.attempt)
            .bind(attempt.at)
            .bind(attempt.http_status)
            .bind(attempt.latency_ms)
            .bind(&attempt.error)
            .bind(status)
            .bind(next)
            .bind(delivered)
            .execute(&mut *conn)
            .await?;
        }
        Change::RetryDelivery { merchant_id, id, at } => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, claimed_until = NULL \
                 WHERE id = $2 AND merchant_id = $3 AND status != 'pending'",
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

pub(super) async fn payment_by_provider_ref(
    pool: &PgPool,
    merchant_id: Option<&str>,
    provider: &str,
    provider_ref: &str,
    payment_row: fn(&PgRow) -> Result<PaymentRow, StoreError>,
) -> Result<Option<PaymentRow>, StoreError> {
    sqlx::query(
        "SELECT * FROM payments WHERE provider = $1 AND provider_ref = $2 \
         AND ($3::text IS NULL OR merchant_id = $3) ORDER BY seq LIMIT 1",
    )
    .bind(provider)
    .bind(provider_ref)
    .bind(merchant_id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(payment_row)
    .transpose()
}

pub(super) async fn refund_by_provider_id(
    pool: &PgPool,
    payment_id: &str,
    provider_refund_id: &str,
    refund_row: fn(&PgRow) -> Result<RefundRow, StoreError>,
) -> Result<Option<RefundRow>, StoreError> {
    sqlx::query("SELECT * FROM refunds WHERE payment_id = $1 AND (refund::jsonb ->> 'id') = $2")
        .bind(payment_id)
        .bind(provider_refund_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(refund_row)
        .transpose()
}

pub(super) async fn webhook_event(
    pool: &PgPool,
    key: &EventKey,
) -> Result<Option<WebhookEventRow>, StoreError> {
    sqlx::query("SELECT * FROM webhook_events WHERE provider = $1 AND account = $2 AND event_id = $3")
        .bind(&key.provider)
        .bind(&key.account)
        .bind(&key.event_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(webhook_event_row)
        .transpose()
}

pub(super) async fn unprocessed_webhook_events(
    pool: &PgPool,
    limit: u32,
) -> Result<Vec<WebhookEventRow>, StoreError> {
    sqlx::query("SELECT * FROM webhook_events WHERE processed_at IS NULL ORDER BY seq LIMIT $1")
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(webhook_event_row)
        .collect()
}

pub(super) async fn signing_secret(pool: &PgPool, merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query("SELECT sealed FROM merchant_signing_secrets WHERE merchant_id = $1")
        .bind(merchant_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|row| row.try_get("sealed")).transpose()?)
}

pub(super) async fn claim_deliveries(
    pool: &PgPool,
    now: i64,
    until: i64,
    limit: u32,
) -> Result<Vec<DeliveryRow>, StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET claimed_until = $1 WHERE seq IN (SELECT seq FROM webhook_deliveries \
         WHERE status = 'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
         ORDER BY next_attempt_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
    )
    .bind(until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(delivery_row)
    .collect()
}

pub(super) async fn deliveries(
    pool: &PgPool,
    merchant_id: &str,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliveryRow>, StoreError> {
    sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE merchant_id = $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR event_type = $3) AND ($4::text IS NULL OR payment_id = $4) \
         AND ($5::bigint IS NULL OR seq < $5) ORDER BY seq DESC LIMIT $6",
    )
    .bind(merchant_id)
    .bind(&filter.status)
    .bind(&filter.event_type)
    .bind(&filter.payment_id)
    .bind(filter.before_seq)
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(delivery_row)
    .collect()
}

pub(super) async fn delivery(
    pool: &PgPool,
    merchant_id: &str,
    id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1 AND merchant_id = $2")
        .bind(id)
        .bind(merchant_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(delivery_row)
        .transpose()
}

pub(super) async fn delivery_attempts(
    pool: &PgPool,
    delivery_id: &str,
) -> Result<Vec<AttemptRow>, StoreError> {
    let rows = sqlx::query("SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt")
        .bind(delivery_id)
        .fetch_all(pool)
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

pub(super) async fn stale_payments(
    pool: &PgPool,
    updated_before: i64,
    limit: u32,
    payment_row: fn(&PgRow) -> Result<PaymentRow, StoreError>,
) -> Result<Vec<PaymentRow>, StoreError> {
    sqlx::query(
        "SELECT * FROM payments WHERE status = 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT $2",
    )
    .bind(updated_before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(payment_row)
    .collect()
}
