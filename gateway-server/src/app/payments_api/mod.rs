//! The payments API's use cases: create, read, list, confirm, capture,
//! cancel. Each takes the shared [`Core`], the [`Caller`] and a validated
//! request, and answers with a domain [`ApiError`] on failure.

mod change;
mod create;
mod steps;

pub(crate) use change::{cancel, capture, confirm, Cancel, Capture, Confirm};
pub(crate) use create::{create, NewPayment};
pub(crate) use steps::Steps;

use gateway_core::{IntentStatus, ProviderError};

use crate::app::core::Core;
use crate::app::idempotency::Reply;
use crate::app::lists::{Page, PageRequest};
use crate::app::payments::{apply_intent_change, commit_and_publish, ChangeSource};
use crate::app::timeline;
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::domain::views::PaymentView;
use crate::store::{PaymentFilter, PaymentRow};

/// The stored payment `id` of the caller's merchant; 404 if there is none.
pub(crate) async fn load(core: &Core, caller: &Caller, id: &str) -> Result<PaymentRow, ApiError> {
    core.store
        .payment(&caller.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", id))
}

/// The answer for a payment the provider just acted on: the payment, or the
/// provider's refusal naming it (a declined payment is still stored).
fn payment_outcome(row: &PaymentRow, error: Option<ProviderError>) -> (Status, Vec<u8>) {
    match error {
        None => (Status::OK, success_bytes(&PaymentView::new(row))),
        Some(error) => {
            let api = ApiError::from(error).with_payment(row.id.clone());
            (api.status(), api.body_bytes())
        }
    }
}

/// A replayed answer to create or confirm with the payment's `client_secret`
/// filled in again from its row while the customer still has to act: the
/// secret is never stored for replay. Other answers pass unchanged.
async fn refill_client_secret(core: &Core, caller: &Caller, reply: Reply) -> Result<Reply, ApiError> {
    if !reply.replayed || !matches!(reply.status, Status::OK | Status::ACCEPTED) {
        return Ok(reply);
    }
    let Ok(mut envelope) = serde_json::from_slice::<serde_json::Value>(&reply.body) else {
        return Ok(reply);
    };
    let Some(id) = envelope["data"]["id"].as_str().map(str::to_owned) else {
        return Ok(reply);
    };
    let Some(row) = core.store.payment(&caller.merchant_id, &id).await? else {
        return Ok(reply);
    };
    if !PaymentView::has_client_secret(&row) {
        return Ok(reply);
    }
    envelope["data"]["client_secret"] = row.intent.client_secret.clone().into();
    Ok(Reply {
        body: serde_json::to_vec(&envelope).map_err(|_| ApiError::internal())?,
        ..reply
    })
}

/// A payment, refreshed from the provider first while it waits on the
/// customer (3-D Secure) or on the provider.
pub(crate) async fn get(core: &Core, caller: &Caller, id: &str) -> Result<PaymentRow, ApiError> {
    let row = load(core, caller, id).await?;
    if row.pending_step.is_some()
        || !matches!(
            row.intent.status,
            IntentStatus::RequiresAction | IntentStatus::Processing
        )
    {
        return Ok(row);
    }
    let _guard = core.payment_locks.lock(row.id.clone()).await;
    let mut row = load(core, caller, id).await?;
    if row.pending_step.is_some() {
        return Ok(row);
    }
    let provider = core.provider_for_payment(&row).await?;
    // The retrieval goes on the timeline when it changed the payment (a read adds no write of its own).
    timeline::recorded(core, timeline::Leftovers::Drop, async {
        timeline::concerns(&row.merchant_id, &row.id);
        match provider.retrieve_intent(&row.intent.id).await {
            Ok(intent) => {
                if let Some((change, update)) = apply_intent_change(&mut row, intent, ChangeSource::Reconcile) {
                    commit_and_publish(core, vec![change], &[update]).await?;
                }
            }
            Err(error) => {
                tracing::warn!(payment = %row.id, %error, "refreshing the intent failed; showing the stored state")
            }
        }
        Ok::<(), ApiError>(())
    })
    .await?;
    Ok(row)
}

/// One page of the caller's payments matching `search` (its page fields are
/// set from `page`), newest first; 400 for a cursor that names no payment of
/// the merchant.
pub(crate) async fn list(
    core: &Core,
    caller: &Caller,
    search: PaymentFilter,
    page: PageRequest,
) -> Result<Page<PaymentRow>, ApiError> {
    if let Some(cursor) = &page.cursor {
        if core.store.payment(&caller.merchant_id, cursor).await?.is_none() {
            return Err(ApiError::invalid_param("cursor", "unknown cursor"));
        }
    }
    let filter = PaymentFilter {
        after_id: page.cursor.clone(),
        limit: page.fetch(),
        ..search
    };
    let rows = core.store.payments(&caller.merchant_id, &filter).await?;
    Ok(Page::cut(rows, &page))
}
