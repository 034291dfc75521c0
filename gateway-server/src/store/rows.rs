//! The rows whose columns need decoding before they are records: JSON
//! documents (the intent, the refund) and the scope list. sqlx reads them
//! with `FromRow`, the same for SQLite and PostgreSQL; `TryFrom` turns them
//! into the domain's records. The other records derive `FromRow` themselves.

use gateway_core::{PaymentIntent, Refund};
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

use super::{ApiKeyRow, DeliveryStatus, IdempotencyRow, PaymentRow, RefundRow, StoreError};
use crate::domain::records::{PendingStep, ProviderAccount, StoredResponse};
use crate::domain::scopes::Scopes;

/// The stored `state` of an idempotency record whose request is still running
/// (or ended without an answer to store).
pub(super) const IDEMPOTENCY_IN_PROGRESS: &str = "in_progress";
/// The stored `state` of an idempotency record with its response.
pub(super) const IDEMPOTENCY_DONE: &str = "done";
pub(super) use crate::domain::records::IDEMPOTENCY_RETENTION_MS;

/// A `payments` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct PaymentRecord {
    id: String,
    merchant_id: String,
    provider: String,
    /// The intent as JSON.
    intent: String,
    amount_refunded: i64,
    idempotency_key: Option<String>,
    saved_card_id: Option<String>,
    customer_email: Option<String>,
    return_url: Option<String>,
    provider_account: Option<ProviderAccount>,
    pending_step: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PaymentRecord> for PaymentRow {
    type Error = StoreError;

    fn try_from(row: PaymentRecord) -> Result<Self, StoreError> {
        Ok(PaymentRow {
            intent: from_json::<PaymentIntent>(&row.intent)?,
            id: row.id,
            merchant_id: row.merchant_id,
            provider: row.provider,
            amount_refunded: row.amount_refunded,
            idempotency_key: row.idempotency_key,
            saved_card_id: row.saved_card_id,
            customer_email: row.customer_email,
            return_url: row.return_url,
            provider_account: row.provider_account,
            pending_step: match row.pending_step {
                None => None,
                Some(name) => Some(
                    PendingStep::parse(&name)
                        .ok_or_else(|| StoreError::Corrupt(format!("pending step {name:?}")))?,
                ),
            },
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `refunds` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct RefundRecord {
    id: String,
    merchant_id: String,
    payment_id: String,
    /// The provider's refund as JSON.
    refund: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RefundRecord> for RefundRow {
    type Error = StoreError;

    fn try_from(row: RefundRecord) -> Result<Self, StoreError> {
        Ok(RefundRow {
            refund: from_json::<Refund>(&row.refund)?,
            id: row.id,
            merchant_id: row.merchant_id,
            payment_id: row.payment_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An `api_keys` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRecord {
    id: String,
    merchant_id: String,
    key_hash: String,
    prefix: String,
    /// Space-separated scope names.
    scopes: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRecord> for ApiKeyRow {
    type Error = StoreError;

    fn try_from(row: ApiKeyRecord) -> Result<Self, StoreError> {
        Ok(ApiKeyRow {
            scopes: Scopes::parse_list(&row.scopes)
                .map_err(|bad| StoreError::Corrupt(format!("scope {bad}")))?,
            id: row.id,
            merchant_id: row.merchant_id,
            key_hash: row.key_hash,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// An `idempotency_keys` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct IdempotencyRecord {
    merchant_id: String,
    key: String,
    fingerprint: String,
    /// `in_progress` or `done`.
    state: String,
    /// The HTTP status (a `BIGINT`: PostgreSQL has no unsigned types).
    status: i64,
    body: Vec<u8>,
    resource_id: Option<String>,
    created_at: i64,
}

impl TryFrom<IdempotencyRecord> for IdempotencyRow {
    type Error = StoreError;

    fn try_from(row: IdempotencyRecord) -> Result<Self, StoreError> {
        let response = match row.state.as_str() {
            IDEMPOTENCY_IN_PROGRESS => None,
            IDEMPOTENCY_DONE => Some(StoredResponse {
                status: u16::try_from(row.status).map_err(|_| StoreError::Corrupt("status".into()))?,
                body: row.body,
            }),
            other => return Err(StoreError::Corrupt(format!("idempotency state {other:?}"))),
        };
        Ok(IdempotencyRow {
            merchant_id: row.merchant_id,
            key: row.key,
            fingerprint: row.fingerprint,
            response,
            resource_id: row.resource_id,
            created_at: row.created_at,
        })
    }
}

/// A status or name stored as text: `Type` and `Decode` for each backend,
/// the name table being the type's own `parse`.
macro_rules! stored_as_name {
    ($type:ty, $what:literal) => {
        impl<DB: Database> Type<DB> for $type
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $type
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let name = <&str as Decode<DB>>::decode(value)?;
                <$type>::parse(name).ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), name).into())
            }
        }
    };
}

stored_as_name!(DeliveryStatus, "delivery status");
stored_as_name!(ProviderAccount, "provider account");

/// Converts every stored row read into its record.
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Converts an optional stored row into its record.
pub(super) fn convert_one<R, T>(row: Option<R>) -> Result<Option<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    row.map(T::try_from).transpose()
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}
