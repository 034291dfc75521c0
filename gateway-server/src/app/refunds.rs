//! Refunds: a captured payment refunded in full or in part, and reading a refund.

use gateway_core::{
    format_minor_units, CreateRefund, IntentStatus, Metadata, ProviderError, Refund, RefundStatus,
    GATEWAY_PAYMENT_METADATA_KEY, GATEWAY_REFUND_METADATA_KEY,
};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::amounts::amount_in;
use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::payments::{apply_refund, refunded_amount, ChangeSource, RefundApplied};
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{Change, PaymentRow, RefundRow};
use crate::support::clock::{now_ms, rfc3339};

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
    /// The provider's reference (`re_…`); empty until the provider's answer is known.
    provider_ref: String,
    /// True while the refund is written ahead and the provider's answer to
    /// it is not known (the outcome is resolved by a retry of the same
    /// request, or by reconciliation). Never retry it with a new key.
    awaiting_provider: bool,
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
            awaiting_provider: row.provider_refund_id().is_none(),
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
/// lock (a failed or canceled refund no longer counts). Before the provider
/// is asked, the refund is written ahead as a pending row holding its
/// amount (no provider id yet), and its id goes into the provider refund's
/// metadata; the provider's answer, or its webhook if that comes first, then
/// completes that row through [`apply_refund`], so the refund is stored and
/// counted once. An unknown outcome is answered `202` with the pending
/// refund; a retry of the same request, or reconciliation, asks the provider
/// again with the same key.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewRefund,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let refunded = input.payment_id.clone();
    let about = idempotency::About::Payment(&refunded);
    idempotency::run_about(core, caller, post, about, |mut attempt| async move {
        let payment_id = &input.payment_id;
        let _guard = core.payment_locks.lock(payment_id.clone()).await;
        let mut payment = core
            .store
            .payment(&caller.merchant_id, payment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("payment", payment_id).with_param("payment_id"))?;
        // The refund request goes on the payment's timeline, refused or not.
        crate::app::timeline::concerns(&payment.merchant_id, &payment.id);
        let mut stored = core.store.refunds_of_payment(&payment.id).await?;
        let earlier = stored.iter().find(|row| row.id == attempt.resource_id()).cloned();
        let after_earlier_call = earlier.is_some();
        let draft = match earlier.as_ref() {
            // A retry of a refund its webhook or reconciliation has since completed.
            Some(done) if done.provider_refund_id().is_some() => {
                return Ok(Outcome {
                    replay: None,
                    status: Status::OK,
                    body: success_bytes(&RefundView::new(done)),
                    changes: Vec::new(),
                    updates: Vec::new(),
                });
            }
            // A retry of this request: ask again with the same key.
            Some(draft) => draft.clone(),
            None => {
                let draft = draft_refund(&payment, &stored, &input, attempt.resource_id())?;
                // The payment's version moves too: a drafter elsewhere that read the same
                // remaining amount fails its version check instead of over-refunding.
                let changes = vec![
                    Change::InsertRefund(Box::new(draft.clone())),
                    Change::update_payment(&mut payment),
                ];
                attempt.write_ahead(core, changes, &[]).await?;
                stored.push(draft.clone());
                draft
            }
        };
        let provider = core.provider_for_payment(&payment).await?;
        let result = provider
            .create_refund(refund_request(&draft), &attempt.step("refund")?)
            .await;
        Ok(
            match answer_draft(
                &mut payment,
                &stored,
                &draft,
                result,
                ChangeSource::Api,
                after_earlier_call,
            ) {
                DraftAnswer::Known(applied) => Outcome {
                    replay: None,
                    status: Status::OK,
                    body: success_bytes(&RefundView::new(&applied.row)),
                    changes: applied.changes,
                    updates: applied.updates,
                },
                DraftAnswer::Unknown(_) => Outcome {
                    replay: None,
                    status: Status::ACCEPTED,
                    body: success_bytes(&RefundView::new(&draft)),
                    changes: Vec::new(),
                    updates: Vec::new(),
                },
                DraftAnswer::Refused(error, release) => {
                    let api = ApiError::from(error);
                    Outcome {
                        replay: None,
                        status: api.status(),
                        body: api.body_bytes(),
                        changes: vec![release],
                        updates: Vec::new(),
                    }
                }
            },
        )
    })
    .await
}

/// The pending refund written ahead of the provider call, holding its
/// amount; 409 unless the payment has captured funds, 422 for more than remains.
fn draft_refund(
    payment: &PaymentRow,
    stored: &[RefundRow],
    input: &NewRefund,
    id: &str,
) -> Result<RefundRow, ApiError> {
    let payment_id = &payment.id;
    if payment.intent.status != IntentStatus::Succeeded || payment.pending_step.is_some() {
        return Err(ApiError::conflict(
            "payment_not_captured",
            format!(
                "payment {payment_id} has no captured funds to refund (it is {})",
                payment.status()
            ),
        ));
    }
    let currency = payment.intent.currency;
    let remaining = payment.intent.amount_received - refunded_amount(stored);
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
    let mut metadata = input.metadata.clone();
    metadata.insert(GATEWAY_REFUND_METADATA_KEY.to_owned(), id.to_owned());
    metadata.insert(GATEWAY_PAYMENT_METADATA_KEY.to_owned(), payment_id.clone());
    let now = now_ms();
    Ok(RefundRow {
        id: id.to_owned(),
        merchant_id: payment.merchant_id.clone(),
        payment_id: payment_id.clone(),
        refund: Refund {
            id: String::new(),
            provider: payment.provider.clone(),
            payment_intent: payment.intent.id.clone(),
            amount,
            currency,
            status: RefundStatus::Pending,
            reason: input.reason.clone(),
            failure_reason: None,
            metadata,
            created: now / 1000,
        },
        created_at: now,
        updated_at: now,
    })
}

/// What the provider's answer to the request for a written-ahead refund does to it.
pub(crate) enum DraftAnswer {
    /// The refund is known: the changes that complete the draft (and the payment's amount).
    Known(RefundApplied),
    /// The outcome is unknown: the draft stays, to be asked again with the same key.
    Unknown(ProviderError),
    /// Refused: nothing exists at the provider; the change removes the draft,
    /// releasing the amount it held.
    Refused(ProviderError, Change),
}

/// Applies the provider's answer to the request for `draft` (a payment of
/// `payment`, whose refunds are `stored`). The refund answered is marked as
/// the draft's (a provider that does not echo metadata still answers this
/// request under its key), so it completes the draft instead of counting
/// beside it. `after_earlier_call`: an earlier call under the same key may
/// have run (a resumed request, resolution), so only a refusal that is not a
/// rate limit removes the draft.
pub(crate) fn answer_draft(
    payment: &mut PaymentRow,
    stored: &[RefundRow],
    draft: &RefundRow,
    result: Result<Refund, ProviderError>,
    source: ChangeSource,
    after_earlier_call: bool,
) -> DraftAnswer {
    match result {
        Ok(mut refund) => {
            refund
                .metadata
                .entry(GATEWAY_REFUND_METADATA_KEY.to_owned())
                .or_insert_with(|| draft.id.clone());
            DraftAnswer::Known(apply_refund(payment, stored, refund, source))
        }
        // A rate limit after an earlier call under this key says nothing about that call.
        Err(error) if error.outcome_unknown() || (after_earlier_call && error.is_retryable()) => {
            DraftAnswer::Unknown(error)
        }
        Err(error) => DraftAnswer::Refused(
            error,
            Change::DeleteDraftRefund {
                merchant_id: draft.merchant_id.clone(),
                id: draft.id.clone(),
            },
        ),
    }
}

/// What the provider is asked for a written-ahead refund.
pub(crate) fn refund_request(draft: &RefundRow) -> CreateRefund {
    CreateRefund {
        payment_intent: draft.refund.payment_intent.clone(),
        amount: Some(draft.refund.amount),
        reason: draft.refund.reason.clone(),
        metadata: draft.refund.metadata.clone(),
    }
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
