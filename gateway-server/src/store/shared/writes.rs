//! The changes, as one statement each (see `shared`).

/// Expands the functions that apply [`Change`](crate::store::Change)s on `$db`.
macro_rules! shared_writes {
    ($db:ty) => {
        /// A connection of this backend.
        type Conn = <$db as sqlx::Database>::Connection;

        /// Gives up an endpoint's pending deliveries with `reason` as their last error.
        async fn give_up_deliveries(
            conn: &mut Conn,
            merchant_id: &str,
            endpoint_id: &str,
            reason: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, last_error = $2, claimed_until = NULL \
                 WHERE endpoint_id = $3 AND merchant_id = $4 AND status = $5",
            )
            .bind(DeliveryStatus::Failed.as_str())
            .bind(reason)
            .bind(endpoint_id)
            .bind(merchant_id)
            .bind(DeliveryStatus::Pending.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// New payments, in one multi-row statement.
        async fn insert_payments(conn: &mut Conn, rows: &[&PaymentRow]) -> Result<(), StoreError> {
            let intents = rows
                .iter()
                .map(|row| to_json(&row.intent))
                .collect::<Result<Vec<String>, StoreError>>()?;
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO payments (id, merchant_id, provider, provider_ref, status, currency, amount_e4, \
                 amount_refunded, idempotency_key, saved_card_id, customer_email, return_url, provider_account, \
                 intent, pending_step, version, created_at, updated_at) ",
            );
            query.push_values(rows.iter().zip(intents), |mut values, (p, intent)| {
                values
                    .push_bind(&p.id)
                    .push_bind(&p.merchant_id)
                    .push_bind(&p.provider)
                    .push_bind(&p.intent.id)
                    .push_bind(p.status().as_str())
                    .push_bind(p.intent.currency.code())
                    .push_bind(amount_e4(p.intent.amount, p.intent.currency.exponent()))
                    .push_bind(p.amount_refunded)
                    .push_bind(&p.idempotency_key)
                    .push_bind(&p.saved_card_id)
                    .push_bind(&p.customer_email)
                    .push_bind(&p.return_url)
                    .push_bind(p.provider_account.map(ProviderAccount::as_str))
                    .push_bind(intent)
                    .push_bind(p.pending_step.map(PendingStep::as_str))
                    .push_bind(p.version)
                    .push_bind(p.created_at)
                    .push_bind(p.updated_at);
            });
            query.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// Idempotency records, in one statement: `begin` writes in-progress
        /// records (taking only a key that is free or expired), otherwise done
        /// ones (completing the request's own in-progress record, or taking a
        /// free or expired key). Any row refused fails with a conflict.
        async fn save_idempotency(conn: &mut Conn, rows: &[&IdempotencyRow], begin: bool) -> Result<(), StoreError> {
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO idempotency_keys (merchant_id, key, fingerprint, state, status, body, resource_id, \
                 created_at) ",
            );
            query.push_values(rows, |mut values, i| {
                let (state, status, body) = match &i.response {
                    None => (IDEMPOTENCY_IN_PROGRESS, 0, &[][..]),
                    Some(response) => (IDEMPOTENCY_DONE, i64::from(response.status), &response.body[..]),
                };
                values
                    .push_bind(&i.merchant_id)
                    .push_bind(&i.key)
                    .push_bind(&i.fingerprint)
                    .push_bind(state)
                    .push_bind(status)
                    .push_bind(body)
                    .push_bind(&i.resource_id)
                    .push_bind(i.created_at);
            });
            query.push(
                " ON CONFLICT (merchant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 state = excluded.state, status = excluded.status, body = excluded.body, \
                 resource_id = excluded.resource_id, created_at = excluded.created_at \
                 WHERE idempotency_keys.created_at < excluded.created_at - ",
            );
            query.push_bind(IDEMPOTENCY_RETENTION_MS);
            if !begin {
                query
                    .push(" OR (idempotency_keys.state = ")
                    .push_bind(IDEMPOTENCY_IN_PROGRESS)
                    .push(
                        " AND idempotency_keys.created_at = excluded.created_at \
                         AND idempotency_keys.fingerprint = excluded.fingerprint)",
                    );
            }
            let done = query.build().execute(&mut *conn).await?;
            if done.rows_affected() != rows.len() as u64 {
                return Err(StoreError::Conflict("the Idempotency-Key is held by another request"));
            }
            Ok(())
        }

        /// Inbound events not stored yet, in one statement.
        async fn insert_webhook_events(conn: &mut Conn, rows: &[&WebhookEventRow]) -> Result<(), StoreError> {
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO webhook_events (provider, account, event_id, event_type, body, received_at, \
                 next_attempt_at) ",
            );
            query.push_values(rows, |mut values, e| {
                values
                    .push_bind(&e.key.provider)
                    .push_bind(&e.key.account)
                    .push_bind(&e.key.event_id)
                    .push_bind(&e.event_type)
                    .push_bind(&e.body)
                    .push_bind(e.received_at)
                    .push_bind(e.next_attempt_at);
            });
            query.push(" ON CONFLICT (provider, account, event_id) DO NOTHING");
            query.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// Stores an event unless its change already produced one of its type.
        async fn insert_event(conn: &mut Conn, e: &EventRow) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO events (id, merchant_id, payment_id, event_type, source_event, payment, refund, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (merchant_id, source_event, event_type) DO NOTHING",
            )
            .bind(&e.id)
            .bind(&e.merchant_id)
            .bind(&e.payment_id)
            .bind(&e.event_type)
            .bind(&e.source_event)
            .bind(&e.payment)
            .bind(&e.refund)
            .bind(e.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Applies one change: one statement, except `record_attempt` where the backend says.
        async fn apply(conn: &mut Conn, change: &Change) -> Result<(), StoreError> {
            match change {
                Change::InsertMerchant(m) => {
                    sqlx::query("INSERT INTO merchants (id, name, webhook_url, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(&m.id)
                        .bind(&m.name)
                        .bind(&m.webhook_url)
                        .bind(m.created_at)
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
                        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND merchant_id = $3 \
                         AND revoked_at IS NULL",
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
                    let done = sqlx::query(
                        "UPDATE payments SET provider_ref = $1, status = $2, amount_e4 = $3, amount_refunded = $4, \
                         intent = $5, updated_at = $6, pending_step = $7, return_url = $8, version = $9 \
                         WHERE id = $10 AND merchant_id = $11 AND version = $12",
                    )
                    .bind(&p.intent.id)
                    .bind(p.status().as_str())
                    .bind(amount_e4(p.intent.amount, p.intent.currency.exponent()))
                    .bind(p.amount_refunded)
                    .bind(to_json(&p.intent)?)
                    .bind(p.updated_at)
                    .bind(p.pending_step.map(PendingStep::as_str))
                    .bind(&p.return_url)
                    .bind(p.version)
                    .bind(&p.id)
                    .bind(&p.merchant_id)
                    .bind(p.version - 1)
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::Conflict("the payment changed since it was read"));
                    }
                }
                Change::DeleteDraftRefund { merchant_id, id } => {
                    sqlx::query("DELETE FROM refunds WHERE id = $1 AND merchant_id = $2 AND provider_refund_id IS NULL")
                        .bind(id)
                        .bind(merchant_id)
                        .execute(&mut *conn)
                        .await?;
                }
                Change::DeleteDraftPayment { merchant_id, id } => {
                    sqlx::query("DELETE FROM payments WHERE id = $1 AND merchant_id = $2 AND provider_ref = ''")
                        .bind(id)
                        .bind(merchant_id)
                        .execute(&mut *conn)
                        .await?;
                    delete_orphan_timeline(conn, merchant_id, id).await?;
                }
                Change::InsertRefund(r) => {
                    let done = sqlx::query(
                        "INSERT INTO refunds (id, merchant_id, payment_id, provider_refund_id, refund, status, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (payment_id, provider_refund_id) DO NOTHING",
                    )
                    .bind(&r.id)
                    .bind(&r.merchant_id)
                    .bind(&r.payment_id)
                    .bind(r.provider_refund_id())
                    .bind(to_json(&r.refund)?)
                    .bind(r.refund.status.as_str())
                    .bind(r.created_at)
                    .bind(r.updated_at)
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict("the refund is already stored"));
                    }
                }
                Change::UpdateRefund(r) => {
                    sqlx::query(
                        "UPDATE refunds SET refund = $1, status = $2, updated_at = $3, provider_refund_id = $4 \
                         WHERE id = $5 AND merchant_id = $6",
                    )
                    .bind(to_json(&r.refund)?)
                    .bind(r.refund.status.as_str())
                    .bind(r.updated_at)
                    .bind(r.provider_refund_id())
                    .bind(&r.id)
                    .bind(&r.merchant_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::InsertCustomer(c) => {
                    sqlx::query(
                        "INSERT INTO customers (merchant_id, provider, email, provider_customer_id, \
                         provider_account, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (merchant_id, provider, email) DO UPDATE SET \
                         provider_customer_id = excluded.provider_customer_id, \
                         provider_account = excluded.provider_account, created_at = excluded.created_at",
                    )
                    .bind(&c.merchant_id)
                    .bind(&c.provider)
                    .bind(&c.email)
                    .bind(&c.provider_customer_id)
                    .bind(c.provider_account.map(ProviderAccount::as_str))
                    .bind(c.created_at)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::InsertCard(c) => {
                    sqlx::query(
                        "INSERT INTO saved_cards (id, merchant_id, provider, provider_customer_id, \
                         provider_payment_method, customer_email, brand, last4, exp_month, exp_year, is_default, \
                         active, provider_account, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                    .bind(c.provider_account.map(ProviderAccount::as_str))
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
                Change::BeginIdempotency(i) => save_idempotency(conn, &[i], true).await?,
                Change::SaveIdempotency(i) => save_idempotency(conn, &[i], false).await?,
                Change::InsertWebhookEvent(e) => insert_webhook_events(conn, &[&**e]).await?,
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
                        return Err(StoreError::Conflict(EVENT_ALREADY_PROCESSED));
                    }
                }
                Change::WebhookEventFailed { key, error, retry_at } => {
                    sqlx::query(
                        "UPDATE webhook_events SET attempts = attempts + 1, last_error = $1, next_attempt_at = $5 \
                         WHERE provider = $2 AND account = $3 AND event_id = $4",
                    )
                    .bind(error)
                    .bind(&key.provider)
                    .bind(&key.account)
                    .bind(&key.event_id)
                    .bind(retry_at)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::InsertDelivery(d) => {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, merchant_id, payment_id, event_type, source_event, \
                         payment, url, status, attempts, next_attempt_at, created_at, refund, event_id, endpoint_id, \
                         event_seq, event_created_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, e.id, $13, e.seq, e.created_at \
                         FROM events e WHERE e.id = $12 AND e.merchant_id = $2",
                    )
                    .bind(&d.id)
                    .bind(&d.merchant_id)
                    .bind(&d.payment_id)
                    .bind(&d.event_type)
                    .bind(&d.source_event)
                    .bind(&d.payment)
                    .bind(&d.url)
                    .bind(d.status.as_str())
                    .bind(d.next_attempt_at)
                    .bind(d.created_at)
                    .bind(&d.refund)
                    .bind(&d.event_id)
                    .bind(&d.endpoint_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::RecordAttempt { attempt, outcome } => record_attempt(conn, attempt, *outcome).await?,
                Change::RetryDelivery { merchant_id, id, at } => {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, claimed_until = NULL \
                         WHERE id = $3 AND merchant_id = $4 AND status != $1",
                    )
                    .bind(DeliveryStatus::Pending.as_str())
                    .bind(at)
                    .bind(id)
                    .bind(merchant_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::EndpointFailed {
                    endpoint_id,
                    retry_at,
                    after,
                } => {
                    // `updated_at` is the endpoint's configuration time, untouched here.
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failures = failures + 1, \
                         blocked_until = CASE WHEN failures + 1 >= $1 THEN $2 ELSE 0 END WHERE id = $3",
                    )
                    .bind(after)
                    .bind(retry_at)
                    .bind(endpoint_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::InsertTimeline {
                    rows,
                    cap,
                    uncapped_kind,
                } => insert_timeline(conn, rows, *cap, uncapped_kind).await?,
                Change::EndpointRecovered { endpoint_id } => {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failures = 0, blocked_until = 0 \
                         WHERE id = $1 AND (failures > 0 OR blocked_until > 0)",
                    )
                    .bind(endpoint_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::InsertEvent(e) => insert_event(conn, e).await?,
                Change::InsertEndpoint(e) => {
                    // Locks the merchant's row (on PostgreSQL; SQLite has one
                    // writer), so creates racing from several instances
                    // count the merchant's endpoints one after the other.
                    sqlx::query("UPDATE merchants SET created_at = created_at WHERE id = $1")
                        .bind(&e.merchant_id)
                        .execute(&mut *conn)
                        .await?;
                    let done = sqlx::query(
                        "INSERT INTO webhook_endpoints (id, merchant_id, url, enabled, enabled_events, description, \
                         failures, blocked_until, created_at, updated_at) \
                         SELECT $1, $2, $3, $4, $5, $6, 0, 0, $7, $8 \
                         WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE merchant_id = $2) < $9",
                    )
                    .bind(&e.id)
                    .bind(&e.merchant_id)
                    .bind(&e.url)
                    .bind(e.enabled)
                    .bind(&e.enabled_events)
                    .bind(&e.description)
                    .bind(e.created_at)
                    .bind(e.updated_at)
                    .bind(MAX_ENDPOINTS)
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict(TOO_MANY_ENDPOINTS));
                    }
                }
                Change::UpdateEndpoint(e) => {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET url = $1, enabled = $2, enabled_events = $3, description = $4, \
                         updated_at = $5, failures = 0, blocked_until = 0 WHERE id = $6 AND merchant_id = $7",
                    )
                    .bind(&e.url)
                    .bind(e.enabled)
                    .bind(&e.enabled_events)
                    .bind(&e.description)
                    .bind(e.updated_at)
                    .bind(&e.id)
                    .bind(&e.merchant_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::DeleteEndpoint { merchant_id, id, reason } => {
                    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2")
                        .bind(id)
                        .bind(merchant_id)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("DELETE FROM webhook_endpoint_secrets WHERE endpoint_id = $1 AND merchant_id = $2")
                        .bind(id)
                        .bind(merchant_id)
                        .execute(&mut *conn)
                        .await?;
                    give_up_deliveries(conn, merchant_id, id, reason).await?;
                }
                Change::GiveUpEndpointDeliveries { merchant_id, id, reason } => {
                    give_up_deliveries(conn, merchant_id, id, reason).await?;
                }
                Change::AddEndpointSecret(secret) => {
                    sqlx::query(
                        "INSERT INTO webhook_endpoint_secrets (endpoint_id, merchant_id, sealed, bound_to, created_at, \
                         expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&secret.endpoint_id)
                    .bind(&secret.merchant_id)
                    .bind(&secret.sealed)
                    .bind(&secret.bound_to)
                    .bind(secret.created_at)
                    .bind(secret.expires_at)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::ExpireEndpointSecrets { endpoint_id, until, now } => {
                    sqlx::query(
                        "UPDATE webhook_endpoint_secrets SET expires_at = $1 WHERE endpoint_id = $2 \
                         AND (expires_at IS NULL OR expires_at > $1)",
                    )
                    .bind(until)
                    .bind(endpoint_id)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("DELETE FROM webhook_endpoint_secrets WHERE endpoint_id = $1 AND expires_at <= $2")
                        .bind(endpoint_id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            Ok(())
        }
    };
}
