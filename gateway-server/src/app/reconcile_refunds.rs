//! Refund reconciliation: refunds still unsettled (pending, requires action)
//! whose row has not changed for the reconcile age are retrieved from their
//! provider and what it says is applied (source `reconcile`), healing a
//! missed `refund.updated` / `charge.refund.updated` webhook. A refund found
//! failed or canceled gives its amount back to the payment and the merchant
//! hears of it, exactly as from a webhook ([`apply_refund`]).

use std::sync::Arc;

use futures_util::StreamExt;

use crate::app::core::Core;
use crate::app::payments::{apply_refund, commit_and_publish, ChangeSource};
use crate::store::{Change, RefundRow};
use crate::support::clock::now_ms;

/// The most refunds one pass looks at.
const PASS_LIMIT: u32 = 200;

/// Checks the unsettled refunds unchanged since `updated_before`, with at
/// most `concurrency` provider calls in flight.
pub(crate) async fn reconcile_refunds(state: &Arc<Core>, updated_before: i64, concurrency: usize) {
    let rows = match state.store.unsettled_refunds(updated_before, PASS_LIMIT).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "listing refunds to reconcile failed");
            return;
        }
    };
    futures_util::stream::iter(rows)
        .for_each_concurrent(concurrency.max(1), |row| {
            let state = state.clone();
            async move { reconcile_refund(&state, row).await }
        })
        .await;
}

/// Retrieves one refund and applies it under its payment's lock. A refund
/// still unsettled is touched (`updated_at`), so it is asked about again
/// only after another reconcile age, across restarts too.
pub(crate) async fn reconcile_refund(state: &Core, row: RefundRow) {
    crate::app::timeline::recorded(state, crate::app::timeline::Leftovers::Commit, async {
        crate::app::timeline::concerns(&row.merchant_id, &row.payment_id);
        reconcile_refund_recorded(state, row).await
    })
    .await
}

/// The work of [`reconcile_refund`], recorded on the payment's timeline.
async fn reconcile_refund_recorded(state: &Core, row: RefundRow) {
    let _guard = state.payment_locks.lock(row.payment_id.clone()).await;
    let Ok(Some(mut payment)) = state.store.payment(&row.merchant_id, &row.payment_id).await else {
        return;
    };
    let provider = match state.provider_for_payment(&payment).await {
        Ok(provider) => provider,
        Err(_) => return,
    };
    let refund = match provider.retrieve_refund(&row.refund.id).await {
        Ok(refund) => refund,
        Err(error) => {
            tracing::warn!(refund = %row.id, %error, "reconciliation could not retrieve the refund");
            return;
        }
    };
    let stored = match state.store.refunds_of_payment(&payment.id).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(refund = %row.id, %error, "reading a payment's refunds failed");
            return;
        }
    };
    let mut applied = apply_refund(&mut payment, &stored, refund, ChangeSource::Reconcile);
    if applied.changes.is_empty() {
        applied.changes.push(Change::UpdateRefund(Box::new(RefundRow {
            updated_at: now_ms(),
            ..applied.row.clone()
        })));
    } else {
        tracing::info!(refund = %row.id, status = %applied.row.refund.status, "reconciled a refund");
    }
    if let Err(error) = commit_and_publish(state, applied.changes, &applied.updates).await {
        tracing::warn!(refund = %row.id, %error, "storing a reconciled refund failed");
    }
}
