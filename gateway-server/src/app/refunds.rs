//! Refunds: a captured payment refunded in full or in part, and reading a refund.

use gateway_core::{format_minor_units, CreateRefund, IntentStatus, Metadata};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::amounts::amount_in;
use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::payments::{apply_refund, refunded_amount, ChangeSource};
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::RefundRow;
use crate::support::clock::rfc3339;

/// A validated refund request.
#[derive(Debug)]
pub(crate) struct NewRefund {
    pub(crate) payment_id: String,
    /// Everything not yet refunded when `None` (read in the payment's
    /// currency once it is found refundable).
    pub(crate) amount: Option<Box<RawValue>>,
    pub(crate) reason: Option<String>,
    pub(crate) metadata: Metadata,
}

/// A refund as merchants see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundView {
    id: String,
    object: &'static str,
    payment_id: String,
    /// `completed`, `pending`, `failed` or `canceled`.
    status: &'static str,
    /// The provider's reference (`re_…`).
    provider_ref: String,
    amount: String,
    currency: &'static str,
    reason: Option<String>,
    failure_reason: Option<String>,
    metadata: Metadata,
    created_at: String,
}

impl RefundView {
    pub(crate) fn new(row: &RefundRow) -> Self {
        let refund = &row.refund;
        RefundView {
            id: row.id.clone(),
            object: "refund",
            payment_id: row.payment_id.clone(),
            status: refund.status.merchant_name(),
            provider_ref: refund.id.clone(),
            amount: format_minor_units(refund.amount, refund.currency),
            currency: refund.currency.code(),
            reason: refund.reason.clone(),
            failure_reason: refund.failure_reason.clone(),
            metadata: refund.metadata.clone(),
            created_at: rfc3339(row.created_at),
        }
    }
}

/// Refunds a payment under its lock, once per `Idempotency-Key`: 409 unless
/// it has captured funds, 422 for more than remains refundable.
///
/// What remains is derived from the payment's refund rows, read under the
/// lock (a failed or canceled refund no longer counts), and the provider's
/// answer goes through [`apply_refund`] like a webhook's: if the refund's
/// webhook was applied first, the refund is not stored or counted twice.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewRefund,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    idempotency::run(core, caller, post, |keys| async move {
        let payment_id = &input.payment_id;
        let _guard = core.payment_locks.lock(payment_id.clone()).await;
        let mut payment = core
            .store
            .payment(&caller.merchant_id, payment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("payment", payment_id).with_param("payment_id"))?;
        if payment.intent.status != IntentStatus::Succeeded {
            return Err(ApiError::conflict(
                "payment_not_captured",
                format!(
                    "payment {payment_id} has no captured funds to refund (it is {})",
                    payment.status()
                ),
            ));
        }
        let currency = payment.intent.currency;
        let stored = core.store.refunds_of_payment(&payment.id).await?;
        let remaining = payment.intent.amount_received - refunded_amount(&stored);
        let amount = match &input.amount {
            Some(raw) => amount_in(raw, currency, "amount")?.minor_units(),
            None => remaining,
        };
        if remaining <= 0 || amount > remaining {
            return Err(ApiError::unprocessable(
                "amount_too_large",
                format!(
                    "cannot refund {} {currency}: {} remains refundable",
                    format_minor_units(amount, currency),
                    format_minor_units(remaining.max(0), currency)
                ),
            )
            .with_param("amount"));
        }
        let provider = core.provider_for_payment(&payment).await?;
        let request = CreateRefund {
            payment_intent: payment.intent.id.clone(),
            amount: Some(amount),
            reason: input.reason,
            metadata: input.metadata,
        };
        let refund = provider.create_refund(request, &keys.step("refund")?).await?;
        let applied = apply_refund(&mut payment, &stored, refund, ChangeSource::Api);
        Ok(Outcome {
            status: Status::OK,
            body: success_bytes(&RefundView::new(&applied.row)),
            changes: applied.changes,
            updates: applied.updates,
        })
    })
    .await
}

/// A refund of the caller's merchant; 404 if there is none.
pub(crate) async fn get(core: &Core, caller: &Caller, id: &str) -> Result<RefundView, ApiError> {
    let row = core
        .store
        .refund(&caller.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("refund", id))?;
    Ok(RefundView::new(&row))
}
