//! The entity traits' reads (see `shared`).

/// Expands the read methods of `$store`, which reads through its field `$pool`.
macro_rules! shared_reads {
    ($store:ty, $db:ty, $pool:ident, $lock:literal) => {
        /// A payment by id, whoever's it is (the caller checks the merchant).
        async fn select_payment(pool: &sqlx::Pool<$db>, id: &str) -> Result<Option<PaymentRow>, StoreError> {
            let row = sqlx::query_as::<_, PaymentRecord>("SELECT * FROM payments WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            convert_one(row)
        }

        #[async_trait::async_trait]
        impl MerchantStore for $store {
            async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM merchants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.$pool)
                    .await?)
            }

            async fn merchant_count(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM merchants")
                    .fetch_one(&self.$pool)
                    .await?)
            }

            async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
                let row = sqlx::query_as::<_, ApiKeyRecord>("SELECT * FROM api_keys WHERE key_hash = $1")
                    .bind(hash)
                    .fetch_optional(&self.$pool)
                    .await?;
                convert_one(row)
            }

            async fn api_keys(&self, merchant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
                let rows = sqlx::query_as::<_, ApiKeyRecord>(
                    "SELECT * FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id",
                )
                .bind(merchant_id)
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }

            async fn credentials(&self, merchant_id: &str) -> Result<Vec<CredentialRow>, StoreError> {
                Ok(
                    sqlx::query_as("SELECT * FROM provider_credentials WHERE merchant_id = $1 ORDER BY provider")
                        .bind(merchant_id)
                        .fetch_all(&self.$pool)
                        .await?,
                )
            }

            async fn signing_secret(&self, merchant_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT sealed FROM merchant_signing_secrets WHERE merchant_id = $1")
                        .bind(merchant_id)
                        .fetch_optional(&self.$pool)
                        .await?,
                )
            }
        }

        #[async_trait::async_trait]
        impl PaymentStore for $store {
            async fn payment(&self, merchant_id: &str, id: &str) -> Result<Option<PaymentRow>, StoreError> {
                self.read_payment(merchant_id, id).await
            }

            async fn payments(
                &self,
                merchant_id: &str,
                filter: &PaymentFilter,
            ) -> Result<Vec<PaymentRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM payments WHERE merchant_id = ");
                query.push_bind(merchant_id);
                if let Some(provider) = &filter.provider {
                    query.push(" AND provider = ").push_bind(provider);
                }
                if let Some(status) = filter.status {
                    query.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(currency) = &filter.currency {
                    query.push(" AND currency = ").push_bind(currency);
                }
                if let Some(min) = filter.min_amount_e4 {
                    query.push(" AND amount_e4 >= ").push_bind(min);
                }
                if let Some(max) = filter.max_amount_e4 {
                    query.push(" AND amount_e4 <= ").push_bind(max);
                }
                if let Some(since) = filter.since_ms {
                    query.push(" AND created_at >= ").push_bind(since);
                }
                if let Some(until) = filter.until_ms {
                    query.push(" AND created_at <= ").push_bind(until);
                }
                if let Some(after) = &filter.after_id {
                    query
                        .push(" AND seq < (SELECT seq FROM payments WHERE id = ")
                        .push_bind(after)
                        .push(" AND merchant_id = ")
                        .push_bind(merchant_id)
                        .push(")");
                }
                query.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(filter.limit));
                let rows = query
                    .build_query_as::<PaymentRecord>()
                    .fetch_all(&self.$pool)
                    .await?;
                convert(rows)
            }

            async fn payment_by_provider_ref(
                &self,
                merchant_id: Option<&str>,
                provider: &str,
                provider_ref: &str,
            ) -> Result<Option<PaymentRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM payments WHERE provider = ");
                query.push_bind(provider).push(" AND provider_ref = ").push_bind(provider_ref);
                if let Some(merchant_id) = merchant_id {
                    query.push(" AND merchant_id = ").push_bind(merchant_id);
                }
                query.push(" ORDER BY seq LIMIT 1");
                let row = query
                    .build_query_as::<PaymentRecord>()
                    .fetch_optional(&self.$pool)
                    .await?;
                convert_one(row)
            }

            async fn stale_payments(&self, updated_before: i64, limit: u32) -> Result<Vec<PaymentRow>, StoreError> {
                let rows = sqlx::query_as::<_, PaymentRecord>(
                    "SELECT * FROM payments WHERE status = $1 AND updated_at < $2 AND pending_step IS NULL \
                     ORDER BY updated_at LIMIT $3",
                )
                .bind(gateway_core::PaymentStatus::Pending.as_str())
                .bind(updated_before)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }

            async fn draft_refunds(&self, created_before: i64, limit: u32) -> Result<Vec<RefundRow>, StoreError> {
                let rows = sqlx::query_as::<_, RefundRecord>(
                    "SELECT * FROM refunds WHERE provider_refund_id IS NULL AND created_at < $1 \
                     ORDER BY created_at DESC LIMIT $2",
                )
                .bind(created_before)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }

            async fn unresolved_payments(&self, updated_before: i64, limit: u32) -> Result<Vec<PaymentRow>, StoreError> {
                let rows = sqlx::query_as::<_, PaymentRecord>(
                    "SELECT * FROM payments WHERE pending_step IS NOT NULL AND updated_at < $1 \
                     ORDER BY updated_at LIMIT $2",
                )
                .bind(updated_before)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }

            async fn refund(&self, merchant_id: &str, id: &str) -> Result<Option<RefundRow>, StoreError> {
                let row = sqlx::query_as::<_, RefundRecord>("SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2")
                    .bind(id)
                    .bind(merchant_id)
                    .fetch_optional(&self.$pool)
                    .await?;
                convert_one(row)
            }

            async fn refunds_of_payment(&self, payment_id: &str) -> Result<Vec<RefundRow>, StoreError> {
                let rows = sqlx::query_as::<_, RefundRecord>(
                    "SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id",
                )
                .bind(payment_id)
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }

            async fn unsettled_refunds(&self, updated_before: i64, limit: u32) -> Result<Vec<RefundRow>, StoreError> {
                let rows = sqlx::query_as::<_, RefundRecord>(
                    "SELECT * FROM refunds WHERE status IN ($1, $2) AND updated_at < $3 ORDER BY updated_at LIMIT $4",
                )
                .bind(gateway_core::RefundStatus::Pending.as_str())
                .bind(gateway_core::RefundStatus::RequiresAction.as_str())
                .bind(updated_before)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?;
                convert(rows)
            }
        }

        #[async_trait::async_trait]
        impl CardStore for $store {
            async fn customer(
                &self,
                merchant_id: &str,
                provider: &str,
                email: &str,
            ) -> Result<Option<CustomerRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM customers WHERE merchant_id = $1 AND provider = $2 AND email = $3",
                )
                .bind(merchant_id)
                .bind(provider)
                .bind(email)
                .fetch_optional(&self.$pool)
                .await?)
            }

            async fn card(&self, merchant_id: &str, id: &str) -> Result<Option<CardRow>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM saved_cards WHERE id = $1 AND merchant_id = $2")
                    .bind(id)
                    .bind(merchant_id)
                    .fetch_optional(&self.$pool)
                    .await?)
            }

            async fn cards(&self, merchant_id: &str, email: Option<&str>) -> Result<Vec<CardRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM saved_cards WHERE merchant_id = ");
                query.push_bind(merchant_id).push(" AND active = TRUE");
                if let Some(email) = email {
                    query.push(" AND customer_email = ").push_bind(email);
                }
                query.push(" ORDER BY created_at DESC, id DESC");
                Ok(query.build_query_as().fetch_all(&self.$pool).await?)
            }
        }

        #[async_trait::async_trait]
        impl IdempotencyStore for $store {
            async fn idempotency(&self, merchant_id: &str, key: &str) -> Result<Option<IdempotencyRow>, StoreError> {
                let row = sqlx::query_as::<_, IdempotencyRecord>(
                    "SELECT * FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
                )
                .bind(merchant_id)
                .bind(key)
                .fetch_optional(&self.$pool)
                .await?;
                convert_one(row)
            }

            async fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before_ms)
                    .execute(&self.$pool)
                    .await?;
                self.after_purge().await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl InboundStore for $store {
            async fn webhook_event(&self, key: &EventKey) -> Result<Option<WebhookEventRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM webhook_events WHERE provider = $1 AND account = $2 AND event_id = $3",
                )
                .bind(&key.provider)
                .bind(&key.account)
                .bind(&key.event_id)
                .fetch_optional(&self.$pool)
                .await?)
            }

            async fn unprocessed_webhook_events(&self, now: i64, limit: u32) -> Result<Vec<WebhookEventRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM webhook_events WHERE processed_at IS NULL AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, seq LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?)
            }

            async fn prune_webhook_events(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM webhook_events WHERE processed_at IS NOT NULL AND seq IN (SELECT seq \
                     FROM webhook_events WHERE processed_at IS NOT NULL AND processed_at < $1 \
                     ORDER BY processed_at LIMIT $2)",
                )
                .bind(before)
                .bind(i64::from(limit))
                .execute(&self.$pool)
                .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl OutboxStore for $store {
            async fn claim_deliveries(
                &self,
                now: i64,
                until: i64,
                limit: u32,
                per_merchant: u32,
            ) -> Result<Vec<DeliveryRow>, StoreError> {
                // The innermost query ranks each merchant's due rows after
                // its claims in flight (`turn`), skips deliveries whose
                // endpoint is backed off, and picks by turn first: merchants
                // take turns, none beyond its cap. The picks are locked and
                // checked again by `$lock` (the dialect's: see the backends).
                let mut rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
                    "UPDATE webhook_deliveries SET claimed_until = $1 WHERE seq IN (SELECT seq \
                     FROM webhook_deliveries WHERE status = $3 AND (claimed_until IS NULL OR claimed_until < $2) \
                     AND seq IN (SELECT seq FROM (SELECT d.seq, d.next_attempt_at, ROW_NUMBER() OVER \
                     (PARTITION BY d.merchant_id ORDER BY d.next_attempt_at, d.seq) + COALESCE(busy.n, 0) AS turn \
                     FROM webhook_deliveries d LEFT JOIN (SELECT merchant_id, COUNT(*) AS n FROM webhook_deliveries \
                     WHERE status = $3 AND claimed_until >= $2 GROUP BY merchant_id) busy \
                     ON busy.merchant_id = d.merchant_id \
                     WHERE d.status = $3 AND d.next_attempt_at <= $2 AND (d.claimed_until IS NULL OR d.claimed_until < $2) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id \
                     AND e.blocked_until > $2)) due WHERE turn <= $5 ORDER BY turn, next_attempt_at, seq LIMIT $4)",
                    $lock,
                    ") RETURNING *"
                ))
                    .bind(until)
                    .bind(now)
                    .bind(DeliveryStatus::Pending.as_str())
                    .bind(i64::from(limit))
                    .bind(i64::from(per_merchant))
                    .fetch_all(&self.$pool)
                    .await?;
                rows.sort_by_key(|row| (row.next_attempt_at, row.seq));
                Ok(rows)
            }

            async fn prune_deliveries(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
                let mut tx = self.$pool.begin().await?;
                // Checked again on the row itself: a delivery retried by hand meanwhile stays.
                let ids: Vec<(String,)> = sqlx::query_as(
                    "DELETE FROM webhook_deliveries WHERE (status = $1 OR status = $2) AND seq IN (SELECT seq \
                     FROM webhook_deliveries WHERE (status = $1 OR status = $2) AND created_at < $3 \
                     AND COALESCE(delivered_at, next_attempt_at) < $3 ORDER BY created_at, seq LIMIT $4) RETURNING id",
                )
                .bind(DeliveryStatus::Delivered.as_str())
                .bind(DeliveryStatus::Failed.as_str())
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                if !ids.is_empty() {
                    let mut query =
                        sqlx::QueryBuilder::<$db>::new("DELETE FROM webhook_attempts WHERE delivery_id IN (");
                    let mut list = query.separated(", ");
                    for (id,) in &ids {
                        list.push_bind(id);
                    }
                    query.push(")");
                    query.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(ids.len() as u64)
            }

            async fn deliveries(
                &self,
                merchant_id: &str,
                filter: &DeliveryFilter,
            ) -> Result<Vec<DeliveryRow>, StoreError> {
                let mut query =
                    sqlx::QueryBuilder::<$db>::new("SELECT * FROM webhook_deliveries WHERE merchant_id = ");
                query.push_bind(merchant_id);
                if let Some(status) = filter.status {
                    query.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(event_type) = &filter.event_type {
                    query.push(" AND event_type = ").push_bind(event_type);
                }
                if let Some(payment_id) = &filter.payment_id {
                    query.push(" AND payment_id = ").push_bind(payment_id);
                }
                if let Some(before) = filter.before_seq {
                    query.push(" AND seq < ").push_bind(before);
                }
                query.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(filter.limit));
                Ok(query.build_query_as().fetch_all(&self.$pool).await?)
            }

            async fn delivery(&self, merchant_id: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM webhook_deliveries WHERE id = $1 AND merchant_id = $2")
                    .bind(id)
                    .bind(merchant_id)
                    .fetch_optional(&self.$pool)
                    .await?)
            }

            async fn delivery_attempts(&self, delivery_ids: &[&str]) -> Result<Vec<AttemptRow>, StoreError> {
                if delivery_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query =
                    sqlx::QueryBuilder::<$db>::new("SELECT * FROM webhook_attempts WHERE delivery_id IN (");
                let mut list = query.separated(", ");
                for id in delivery_ids {
                    list.push_bind(*id);
                }
                query.push(") ORDER BY delivery_id, attempt");
                Ok(query.build_query_as().fetch_all(&self.$pool).await?)
            }
        }
            #[async_trait::async_trait]
        impl EventStore for $store {
            async fn event(&self, merchant_id: &str, id: &str) -> Result<Option<EventRow>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM events WHERE id = $1 AND merchant_id = $2")
                    .bind(id)
                    .bind(merchant_id)
                    .fetch_optional(&self.$pool)
                    .await?)
            }

            async fn events(&self, merchant_id: &str, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM events WHERE merchant_id = ");
                query.push_bind(merchant_id);
                if let Some(event_type) = &filter.event_type {
                    query.push(" AND event_type = ").push_bind(event_type);
                }
                if let Some(payment_id) = &filter.payment_id {
                    query.push(" AND payment_id = ").push_bind(payment_id);
                }
                if let Some(since) = filter.since_ms {
                    query.push(" AND created_at >= ").push_bind(since);
                }
                if let Some(until) = filter.until_ms {
                    query.push(" AND created_at <= ").push_bind(until);
                }
                if let Some(before) = filter.before_seq {
                    query.push(" AND seq < ").push_bind(before);
                }
                query.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(filter.limit));
                Ok(query.build_query_as().fetch_all(&self.$pool).await?)
            }

            async fn events_after(
                &self,
                merchant_id: &str,
                after_seq: i64,
                types: &[String],
                limit: u32,
            ) -> Result<Vec<EventRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT * FROM events WHERE merchant_id = ");
                query.push_bind(merchant_id).push(" AND seq > ").push_bind(after_seq);
                if !types.is_empty() {
                    query.push(" AND event_type IN (");
                    let mut list = query.separated(", ");
                    for event_type in types {
                        list.push_bind(event_type);
                    }
                    query.push(")");
                }
                query.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
                Ok(query.build_query_as().fetch_all(&self.$pool).await?)
            }

            async fn event_deliveries(
                &self,
                merchant_id: &str,
                event_id: &str,
                limit: u32,
            ) -> Result<Vec<DeliveryRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM (SELECT * FROM webhook_deliveries WHERE event_id = $1 AND merchant_id = $2 \
                     ORDER BY seq DESC LIMIT $3) newest ORDER BY seq",
                )
                .bind(event_id)
                .bind(merchant_id)
                .bind(i64::from(limit))
                .fetch_all(&self.$pool)
                .await?)
            }

            async fn prune_events(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
                // Checked again on the row itself: a resend queued meanwhile keeps its event.
                let done = sqlx::query(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = $2) \
                     ORDER BY created_at, seq LIMIT $3) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = $2)",
                )
                .bind(before)
                .bind(DeliveryStatus::Pending.as_str())
                .bind(i64::from(limit))
                .execute(&self.$pool)
                .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl EndpointStore for $store {
            async fn endpoints(&self, merchant_id: &str) -> Result<Vec<EndpointRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY created_at, id",
                )
                .bind(merchant_id)
                .fetch_all(&self.$pool)
                .await?)
            }

            async fn endpoint(&self, merchant_id: &str, id: &str) -> Result<Option<EndpointRow>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2")
                    .bind(id)
                    .bind(merchant_id)
                    .fetch_optional(&self.$pool)
                    .await?)
            }

            async fn endpoint_secrets(&self, endpoint_id: &str, now: i64) -> Result<Vec<EndpointSecretRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT endpoint_id, merchant_id, sealed, bound_to, created_at, expires_at \
                     FROM webhook_endpoint_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                     ORDER BY seq DESC",
                )
                .bind(endpoint_id)
                .bind(now)
                .fetch_all(&self.$pool)
                .await?)
            }
        }
    };
}
