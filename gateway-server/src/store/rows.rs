//! Reading rows into the store's types: the same mapping for SQLite and
//! PostgreSQL (sqlx decodes both into the same Rust types), written once.

/// Defines the row readers (`payment_row`, `delivery_row`, …) for one sqlx row type.
macro_rules! row_mappers {
    ($row:ty) => {
        pub(super) fn merchant_row(row: &$row) -> Result<MerchantRow, StoreError> {
            Ok(MerchantRow {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                webhook_url: row.try_get("webhook_url")?,
                created_at: row.try_get("created_at")?,
            })
        }

        pub(super) fn api_key_row(row: &$row) -> Result<ApiKeyRow, StoreError> {
            let scopes: String = row.try_get("scopes")?;
            Ok(ApiKeyRow {
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                key_hash: row.try_get("key_hash")?,
                prefix: row.try_get("prefix")?,
                scopes: Scopes::parse_list(&scopes)
                    .map_err(|bad| StoreError::Corrupt(format!("scope {bad}")))?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        pub(super) fn credential_row(row: &$row) -> Result<CredentialRow, StoreError> {
            Ok(CredentialRow {
                merchant_id: row.try_get("merchant_id")?,
                provider: row.try_get("provider")?,
                sealed: row.try_get("sealed")?,
                masked: row.try_get("masked")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        pub(super) fn payment_row(row: &$row) -> Result<PaymentRow, StoreError> {
            let intent: &str = row.try_get("intent")?;
            let intent: PaymentIntent = from_json(intent)?;
            Ok(PaymentRow {
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                provider: row.try_get("provider")?,
                intent,
                amount_refunded: row.try_get("amount_refunded")?,
                idempotency_key: row.try_get("idempotency_key")?,
                saved_card_id: row.try_get("saved_card_id")?,
                customer_email: row.try_get("customer_email")?,
                return_url: row.try_get("return_url")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        pub(super) fn refund_row(row: &$row) -> Result<RefundRow, StoreError> {
            let refund: &str = row.try_get("refund")?;
            let refund: Refund = from_json(refund)?;
            Ok(RefundRow {
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                payment_id: row.try_get("payment_id")?,
                refund,
                created_at: row.try_get("created_at")?,
            })
        }

        pub(super) fn card_row(row: &$row) -> Result<CardRow, StoreError> {
            Ok(CardRow {
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                provider: row.try_get("provider")?,
                provider_customer_id: row.try_get("provider_customer_id")?,
                provider_payment_method: row.try_get("provider_payment_method")?,
                customer_email: row.try_get("customer_email")?,
                brand: row.try_get("brand")?,
                last4: row.try_get("last4")?,
                exp_month: row.try_get("exp_month")?,
                exp_year: row.try_get("exp_year")?,
                is_default: row.try_get("is_default")?,
                active: row.try_get("active")?,
                created_at: row.try_get("created_at")?,
            })
        }

        pub(super) fn webhook_event_row(row: &$row) -> Result<WebhookEventRow, StoreError> {
            Ok(WebhookEventRow {
                key: EventKey {
                    provider: row.try_get("provider")?,
                    account: row.try_get("account")?,
                    event_id: row.try_get("event_id")?,
                },
                event_type: row.try_get("event_type")?,
                body: row.try_get("body")?,
                received_at: row.try_get("received_at")?,
                processed_at: row.try_get("processed_at")?,
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
            })
        }

        pub(super) fn delivery_row(row: &$row) -> Result<DeliveryRow, StoreError> {
            Ok(DeliveryRow {
                seq: row.try_get("seq")?,
                id: row.try_get("id")?,
                merchant_id: row.try_get("merchant_id")?,
                payment_id: row.try_get("payment_id")?,
                event_type: row.try_get("event_type")?,
                source_event: row.try_get("source_event")?,
                payment: row.try_get("payment")?,
                url: row.try_get("url")?,
                status: row.try_get("status")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                created_at: row.try_get("created_at")?,
                delivered_at: row.try_get("delivered_at")?,
                last_status: row.try_get("last_status")?,
                last_error: row.try_get("last_error")?,
            })
        }
    };
}

pub(super) use row_mappers;
