//! Resolving unknown outcomes: payments whose row names a provider call with
//! no stored answer (a [`PendingStep`]: the call timed out, the provider was
//! down or its reply unreadable, or the gateway stopped mid-call) are
//! settled by asking the provider, once the call can no longer be in flight.
//!
//! * An intent not known to be created is created again with the same
//!   provider key: the provider replays the first creation, or creates it
//!   now; either way unconfirmed, so no money moves. A refusal removes the
//!   draft (nothing exists at the provider).
//! * A confirm, capture or cancel is resolved by retrieving the intent and
//!   storing what it says. Resolution never starts a new money movement: a
//!   payment created for `confirm: true` whose confirm never ran stays
//!   `requires_confirmation` until the client retries its request.
//! * A refund written ahead whose provider refund is not known is asked for
//!   again with the same key: the provider replays the refund it made, or
//!   makes it now (the merchant asked for it); a refusal releases the held
//!   amount. Past the provider's key retention (24 h) the key may be
//!   forgotten, so a draft that old is left for an operator and logged.

use std::sync::Arc;
use std::time::Duration;

use crate::app::core::Core;
use crate::app::idempotency::ProviderKeys;
use crate::app::payments::{commit_and_publish, intent_created, ChangeSource};
use crate::app::payments_api::Steps;
use crate::app::refunds::{answer_draft, refund_request, DraftAnswer};
use crate::domain::error::ApiError;
use crate::domain::records::PendingStep;
use crate::store::{PaymentRow, RefundRow};
use crate::support::clock::now_ms;

/// The least time after its last change a row's pending call is taken as
/// ended (the default provider time bound, 30 s, and [`UNRESOLVED_MARGIN`]).
pub(crate) const UNRESOLVED_AFTER: Duration = Duration::from_secs(60);

/// What [`unresolved_after`] adds to the provider time bound.
const UNRESOLVED_MARGIN: Duration = Duration::from_secs(30);

/// How long after its last change a row's pending call is taken as ended,
/// for calls bounded by `provider_timeout`: every call is abandoned by then
/// (`CheckedProvider::time_bound`), so resolving never races one still in
/// flight; at least [`UNRESOLVED_AFTER`].
pub(crate) fn unresolved_after(provider_timeout: Duration) -> Duration {
    UNRESOLVED_AFTER.max(provider_timeout.saturating_add(UNRESOLVED_MARGIN))
}

/// How many rows one pass resolves.
const BATCH: u32 = 200;

/// How old a written-ahead refund may be for its key to be asked again: under
/// the 24 hours providers keep idempotency keys.
const REFUND_REPLAY_WINDOW_MS: i64 = 23 * 60 * 60 * 1000;

/// Resolves every payment whose pending call last changed more than `after`
/// ago, and every refund written ahead that long ago. Returns how many were resolved.
pub(crate) async fn resolve_unresolved(state: &Arc<Core>, after: Duration) -> usize {
    let before = now_ms() - after.as_millis() as i64;
    let mut resolved = 0;
    match state.store.draft_refunds(before, BATCH).await {
        Ok(drafts) => {
            for draft in drafts {
                if resolve_refund(state, draft).await {
                    resolved += 1;
                }
            }
        }
        Err(error) => tracing::warn!(%error, "listing refunds with unknown outcomes failed"),
    }
    let rows = match state.store.unresolved_payments(before, BATCH).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "listing payments with unknown outcomes failed");
            return resolved;
        }
    };
    for row in rows {
        if resolve_one(state, row).await {
            resolved += 1;
        }
    }
    resolved
}

/// Resolves one payment under its lock, if it still waits on the same call.
async fn resolve_one(state: &Core, seen: PaymentRow) -> bool {
    crate::app::timeline::recorded(state, crate::app::timeline::Leftovers::Commit, async {
        crate::app::timeline::concerns(&seen.merchant_id, &seen.id);
        resolve_one_recorded(state, seen).await
    })
    .await
}

/// The work of [`resolve_one`], recorded on the payment's timeline.
async fn resolve_one_recorded(state: &Core, seen: PaymentRow) -> bool {
    let _guard = state.payment_locks.lock(seen.id.clone()).await;
    let row = match state.store.payment(&seen.merchant_id, &seen.id).await {
        Ok(Some(row)) if row.version == seen.version && row.pending_step.is_some() => row,
        _ => return false,
    };
    let provider = match state.provider_for_payment(&row).await {
        Ok(provider) => provider,
        Err(error) => {
            tracing::warn!(payment = %row.id, %error, "no provider to resolve a payment with");
            return false;
        }
    };
    let payment = row.id.clone();
    let Ok(keys) = ProviderKeys::for_resource(&row.merchant_id, &row.id) else {
        return false;
    };
    let steps = Steps {
        core: state,
        provider: &*provider,
        // The creating request's keys: its operation is the payment itself.
        keys: &keys,
        source: ChangeSource::Reconcile,
        after_earlier_call: true,
    };
    let advanced = match row.pending_step {
        // Resolution never starts a new charge: only the (unconfirmed) creation is asked again.
        Some(PendingStep::Create | PendingStep::CreateConfirm) => {
            let mut row = row;
            row.pending_step = Some(PendingStep::Create);
            match steps.advance(row, Vec::new()).await {
                Ok(advanced) => advanced,
                Err(error) => {
                    tracing::warn!(payment = %payment, %error, "resolving a drafted payment failed");
                    return false;
                }
            }
        }
        Some(PendingStep::Confirm | PendingStep::Capture | PendingStep::Cancel) => {
            match provider.retrieve_intent(&row.intent.id).await {
                Ok(intent) => steps.settle(row, Ok(intent), Vec::new(), Vec::new()),
                Err(error) => {
                    tracing::warn!(payment = %payment, %error, "the provider could not resolve a payment yet");
                    return false;
                }
            }
        }
        None => return false,
    };
    if advanced.changes.is_empty() {
        // The provider left it unknown again: the next pass asks once more.
        return false;
    }
    match commit_and_publish(state, advanced.changes, &advanced.updates).await {
        Ok(()) => {
            tracing::info!(payment = %payment, "resolved a payment's unknown outcome");
            true
        }
        Err(error) => {
            tracing::warn!(payment = %payment, %error, "storing a resolved payment failed");
            false
        }
    }
}

/// Asks the provider again for one written-ahead refund, under its payment's lock.
async fn resolve_refund(state: &Core, draft: RefundRow) -> bool {
    crate::app::timeline::recorded(state, crate::app::timeline::Leftovers::Commit, async {
        crate::app::timeline::concerns(&draft.merchant_id, &draft.payment_id);
        resolve_refund_recorded(state, draft).await
    })
    .await
}

/// The work of [`resolve_refund`], recorded on the payment's timeline.
async fn resolve_refund_recorded(state: &Core, draft: RefundRow) -> bool {
    if draft.created_at < now_ms() - REFUND_REPLAY_WINDOW_MS {
        tracing::error!(
            refund = %draft.id,
            payment = %draft.payment_id,
            "a refund's outcome stayed unknown past the provider's key retention; check it at the provider"
        );
        return false;
    }
    let _guard = state.payment_locks.lock(draft.payment_id.clone()).await;
    let (Ok(Some(mut payment)), Ok(stored)) = (
        state.store.payment(&draft.merchant_id, &draft.payment_id).await,
        state.store.refunds_of_payment(&draft.payment_id).await,
    ) else {
        return false;
    };
    if !stored
        .iter()
        .any(|row| row.id == draft.id && row.provider_refund_id().is_none())
    {
        return false;
    }
    let Ok(provider) = state.provider_for_payment(&payment).await else {
        return false;
    };
    let Ok(key) =
        ProviderKeys::for_resource(&draft.merchant_id, &draft.id).and_then(|keys| keys.step("refund"))
    else {
        return false;
    };
    let result = provider.create_refund(refund_request(&draft), &key).await;
    let (changes, updates) = match answer_draft(
        &mut payment,
        &stored,
        &draft,
        result,
        ChangeSource::Reconcile,
        true,
    ) {
        DraftAnswer::Known(applied) => (applied.changes, applied.updates),
        DraftAnswer::Unknown(error) => {
            tracing::warn!(refund = %draft.id, %error, "the provider could not resolve a refund yet");
            return false;
        }
        DraftAnswer::Refused(error, release) => {
            tracing::info!(refund = %draft.id, %error, "the provider refused a drafted refund; releasing it");
            (vec![release], Vec::new())
        }
    };
    match commit_and_publish(state, changes, &updates).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(refund = %draft.id, %error, "storing a resolved refund failed");
            false
        }
    }
}

/// Adopts `intent` for the written-ahead payment its metadata names, when
/// that payment is still a draft (its creation reply was lost): the intent is
/// stored on it, as its creation would have. Returns the payment, or `None`
/// when the metadata names no draft of this gateway.
pub(crate) async fn adopt_intent(
    state: &Core,
    intent: &gateway_core::PaymentIntent,
    source: ChangeSource,
) -> Result<Option<PaymentRow>, ApiError> {
    let (Some(payment_id), Some(merchant_id)) = (
        intent.metadata.get(gateway_core::GATEWAY_PAYMENT_METADATA_KEY),
        intent.metadata.get(gateway_core::GATEWAY_MERCHANT_METADATA_KEY),
    ) else {
        return Ok(None);
    };
    let _guard = state.payment_locks.lock(payment_id.clone()).await;
    let Some(mut row) = state.store.payment(merchant_id, payment_id).await? else {
        return Ok(None);
    };
    let is_draft = matches!(
        row.pending_step,
        Some(PendingStep::Create | PendingStep::CreateConfirm)
    ) && row.intent.id.is_empty();
    if !is_draft || row.provider != intent.provider {
        return Ok(None);
    }
    let (change, update) = intent_created(&mut row, intent.clone(), None, source);
    commit_and_publish(state, vec![change], &[update]).await?;
    tracing::info!(payment = %row.id, intent = %row.intent.id, "adopted an intent whose creation reply was lost");
    Ok(Some(row))
}
