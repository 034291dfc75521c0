//! The PostgreSQL [`Store`], for several gateway instances on one database.
//!
//! Every commit is one transaction on a pooled connection; PostgreSQL's own
//! row locks and group commit handle concurrent writers, so there is no
//! writer task and no read cache here (another instance may change any row).
//! Its migrations are a set of their own (`migrations/postgres/`), applied
//! under sqlx's advisory lock, so instances starting together migrate once.
//! Leases ([`Store::try_lease`]) live in the `leases` table and use the
//! database's clock, so instances with skewed clocks agree on expiry.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::{PaymentIntent, Refund};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};

use super::postgres_webhooks;
use super::{
    amount_e4, ApiKeyRow, AttemptRow, CardRow, Change, CredentialRow, CustomerRow, DeliveryFilter,
    DeliveryRow, EventKey, IdempotencyRow, MerchantRow, PaymentFilter, PaymentRow, RefundRow, Store,
    StoreError, WebhookEventRow,
};
use crate::domain::scopes::Scopes;

super::rows::row_mappers!(PgRow);

/// Connections per instance.
const POOL_SIZE: u32 = 16;

/// The database's clock in Unix milliseconds, as SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn migrator() -> Migrator {
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

/// `(head) VALUES ($1, $2, …), (…)…(tail)` for `rows` rows of `columns` values.
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = format!("{head} VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + column + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

async fn insert_payments(conn: &mut PgConnection, rows: &[&PaymentRow]) -> Result<(), StoreError> {
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

async fn apply(conn: &mut PgConnection, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::InsertWebhookEvent(_)
        | Change::FinishWebhookEvent { .. }
        | Change::WebhookEventFailed { .. }
        | Change::SetSigningSecret { .. }
        | Change::InsertDelivery(_)
        | Change::RecordAttempt { .. }
        | Change::RetryDelivery { .. } => postgres_webhooks::apply(conn, change).await?,
        Change::InsertMerchant(m) => {
            sqlx::query("INSERT INTO merchants (id, name, webhook_url, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&m.id)
                .bind(&m.name)
                .bind(&m.webhook_url)
                .bind(m.created_at)
                .execute(&mut *conn)
                .await?;
        }
        Change::SetWebhookUrl { merchant_id, url } => {
            sqlx::query("UPDATE merchants SET webhook_url = $1 WHERE id = $2")
                .bind(url)
                .bind(merchant_id)
                .execute(&mut *conn)
                .await?;
        }
        Change::InsertApiKey(k) => {
            sqlx::query(
                "INSERT INTO api_keys (id, merchant_id, key_hash, prefix, scopes, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND merchant_id = $3 AND revoked_at IS NULL",
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
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, provider) DO UPDATE SET \
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
            sqlx::query(
                "UPDATE payments SET provider_ref = $1, status = $2, amount_e4 = $3, amount_refunded = $4, \
                 intent = $5, updated_at = $6 WHERE id = $7 AND merchant_id = $8",
            )
            .bind(&p.intent.id)
            .bind(p.status().as_str())
            .bind(amount_e4(p.intent.amount, p.intent.currency.exponent()))
            .bind(p.amount_refunded)
            .bind(to_json(&p.intent)?)
            .bind(p.updated_at)
            .bind(&p.id)
            .bind(&p.merchant_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::InsertRefund(r) => {
            sqlx::query(
                "INSERT INTO refunds (id, merchant_id, payment_id, refund, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
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
                 VALUES ($1, $2, $3, $4, $5)",
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
                 active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
                "UPDATE saved_cards SET is_default = (id = $1) WHERE merchant_id = $2 AND customer_email = $3",
            )
            .bind(card_id)
            .bind(merchant_id)
            .bind(email)
            .execute(&mut *conn)
            .await?;
        }
        Change::DeactivateCard { merchant_id, id } => {
            sqlx::query(
                "UPDATE saved_cards SET active = FALSE, is_default = FALSE WHERE id = $1 AND merchant_id = $2",
            )
            .bind(id)
            .bind(merchant_id)
            .execute(&mut *conn)
            .await?;
        }
        Change::SaveIdempotency(i) => {
            sqlx::query(
                "INSERT INTO idempotency_keys (merchant_id, key, fingerprint, status, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id, key) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body, \
                 created_at = excluded.created_at",
            )
            .bind(&i.merchant_id)
            .bind(&i.key)
            .bind(&i.fingerprint)
            .bind(i64::from(i.status))
            .bind(&i.body)
            .bind(i.created_at)
            .execute(&mut *conn)
            .await?;
        }
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
impl Store for PostgresStore {
    async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        match changes.as_slice() {
            [] => Ok(()),
            // One statement is atomic on its own: save the BEGIN and COMMIT round trips.
            [change] => {
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

    async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, StoreError> {
        sqlx::query("SELECT * FROM merchants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(merchant_row)
            .transpose()
    }

    async fn merchant_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM merchants")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_row)
            .transpose()
    }

    async fn api_keys(&self, merchant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id")
            .bind(merchant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_row)
            .collect()
    }

    async fn credentials(&self, merchant_id: &str) -> Result<Vec<CredentialRow>, StoreError> {
        sqlx::query("SELECT * FROM provider_credentials WHERE merchant_id = $1 ORDER BY provider")
            .bind(merchant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(credential_row)
            .collect()
    }

    async fn payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError> {
        sqlx::query("SELECT * FROM payments WHERE id = $1 AND merchant_id = $2")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(payment_row)
            .transpose()
    }

    async fn payments(
        &self,
        merchant_id: &str,
        filter: &PaymentFilter,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let mut sql = String::from("SELECT * FROM payments WHERE merchant_id = $1");
        let mut args = vec![Arg::Text(merchant_id.to_owned())];
        let mut add = |clause: &str, arg: Arg| {
            args.push(arg);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
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
                " AND seq < (SELECT seq FROM payments WHERE id = ? AND merchant_id = $1)",
                Arg::Text(after.clone()),
            );
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
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(payment_row)
            .collect()
    }

    async fn refund(&self, merchant_id: &str, id: &str) -> Result<Option<RefundRow>, StoreError> {
        sqlx::query("SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.pool)
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
        let row =
            sqlx::query("SELECT * FROM customers WHERE merchant_id = $1 AND provider = $2 AND email = $3")
                .bind(merchant_id)
                .bind(provider)
                .bind(email)
                .fetch_optional(&self.pool)
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
        sqlx::query("SELECT * FROM saved_cards WHERE id = $1 AND merchant_id = $2")
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(card_row)
            .transpose()
    }

    async fn cards(&self, merchant_id: &str, email: Option<&str>) -> Result<Vec<CardRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM saved_cards WHERE merchant_id = $1 AND active \
             AND ($2::text IS NULL OR customer_email = $2) ORDER BY created_at DESC, id DESC",
        )
        .bind(merchant_id)
        .bind(email)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(card_row)
        .collect()
    }

    async fn idempotency(&self, merchant_id: &str, key: &str) -> Result<Option<IdempotencyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE merchant_id = $1 AND key = $2")
            .bind(merchant_id)
            .bind(key)
            .fetch_optional(&self.pool)
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
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        // Leases that ran out long ago are garbage too.
        sqlx::query(&format!(
            "DELETE FROM leases WHERE expires_at < {NOW_MS} - 3600000"
        ))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn payment_by_provider_ref(
        &self,
        merchant_id: Option<&str>,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<PaymentRow>, StoreError> {
        postgres_webhooks::payment_by_provider_ref(
            &self.pool,
            merchant_id,
            provider,
            provider_ref,
            payment_row,
        )
        .await
    }

    async fn refund_by_provider_id(
        &self,
        payment_id: &str,
        provider_refund_id: &str,
    ) -> Result<Option<RefundRow>, StoreError> {
        postgres_webhooks::refund_by_provider_id(&self.pool, payment_id, provider_refund_id, refund_row).await
    }

    async fn webhook_event(&self, key: &EventKey) -> Result<Option<WebhookEventRow>, StoreError> {
        postgres_webhooks::webhook_event(&self.pool, key).await
    }

    async fn unprocessed_webhook_events(&self, limit: u32) -> Result<Vec<WebhookEventRow>, StoreError> {
        postgres_webhooks::unprocessed_webhook_events(&self.pool, limit).await
    }

    async fn signing_secret(&self, merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        postgres_webhooks::signing_secret(&self.pool, merchant_id).await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        postgres_webhooks::claim_deliveries(&self.pool, now, until, limit).await
    }

    async fn deliveries(
        &self,
        merchant_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        postgres_webhooks::deliveries(&self.pool, merchant_id, filter).await
    }

    async fn delivery(&self, merchant_id: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        postgres_webhooks::delivery(&self.pool, merchant_id, id).await
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        postgres_webhooks::delivery_attempts(&self.pool, delivery_id).await
    }

    async fn stale_payments(&self, updated_before: i64, limit: u32) -> Result<Vec<PaymentRow>, StoreError> {
        postgres_webhooks::stale_payments(&self.pool, updated_before, limit, payment_row).await
    }

    async fn try_lease(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool, StoreError> {
        // Insert, or take over a lease that ran out (or that `owner` already holds).
        let sql = format!(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, {NOW_MS} + $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leases.expires_at < {NOW_MS} OR leases.owner = excluded.owner \
             RETURNING owner"
        );
        let row = sqlx::query(&sql)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_values() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", 2, 2, " RETURNING a"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
    }

    #[test]
    fn postgres_urls() {
        assert!(is_postgres_url("postgres://u@localhost/db"));
        assert!(is_postgres_url("postgresql://localhost/db"));
        assert!(!is_postgres_url("sqlite://./gateway.db"));
    }
}
