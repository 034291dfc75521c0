//! Reconciliation: payments that stayed pending longer than a configured age
//! are retrieved from their provider and what it says is applied (source
//! `reconcile`), healing missed webhooks. Calls run with bounded concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::app::core::Core;
use crate::app::payments::{apply_intent_change, commit_and_publish, ChangeSource};
use crate::store::PaymentRow;
use crate::support::clock::now_ms;

/// When and how reconciliation runs.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// How long a payment stays pending before it is checked (0 turns reconciliation off).
    pub after: Duration,
    /// How often the task looks for such payments.
    pub interval: Duration,
    /// Provider calls in flight at once.
    pub concurrency: usize,
    /// How long a provider call whose answer is not stored is left before
    /// it is resolved (past the provider's time bound).
    pub unresolved_after: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            after: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(60),
            concurrency: 8,
            unresolved_after: crate::app::resolve::UNRESOLVED_AFTER,
        }
    }
}

/// Runs reconciliation passes forever.
pub(crate) async fn reconcile_loop(state: Arc<Core>, settings: ReconcileSettings) {
    if settings.after.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A payment is checked again only after another `after` has passed.
    let mut checked: HashMap<String, i64> = HashMap::new();
    loop {
        ticker.tick().await;
        crate::app::resolve::resolve_unresolved(&state, settings.unresolved_after).await;
        let now = now_ms();
        let after_ms = settings.after.as_millis() as i64;
        checked.retain(|_, at| now - *at < after_ms);
        let rows = match state.store.stale_payments(now - after_ms, 500).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "listing payments to reconcile failed");
                continue;
            }
        };
        let due: Vec<PaymentRow> = rows
            .into_iter()
            .filter(|row| !checked.contains_key(&row.id))
            .collect();
        for row in &due {
            checked.insert(row.id.clone(), now);
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(settings.concurrency.max(1), |row| {
                let state = state.clone();
                async move { reconcile_one(&state, row).await }
            })
            .await;
        crate::app::reconcile_refunds::reconcile_refunds(&state, now - after_ms, settings.concurrency).await;
    }
}

/// One pass now over every pending payment, however recently it changed
/// (the loop's work without its wait); returns how many were checked. Tests
/// run it to heal a scenario, instead of waiting for the loop.
pub(crate) async fn reconcile_pending_now(state: &Core, concurrency: usize) -> usize {
    let rows = match state.store.stale_payments(now_ms() + 1, 500).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "listing payments to reconcile failed");
            return 0;
        }
    };
    let count = rows.len();
    futures_util::stream::iter(rows)
        .for_each_concurrent(concurrency.max(1), |row| reconcile_one(state, row))
        .await;
    count
}

/// Retrieves one payment's intent and applies it.
pub(crate) async fn reconcile_one(state: &Core, row: PaymentRow) {
    crate::app::timeline::recorded(state, crate::app::timeline::Leftovers::Commit, async {
        crate::app::timeline::concerns(&row.merchant_id, &row.id);
        reconcile_recorded(state, row).await
    })
    .await
}

/// The work of [`reconcile_one`], recorded on the payment's timeline.
async fn reconcile_recorded(state: &Core, row: PaymentRow) {
    let _guard = state.payment_locks.lock(row.id.clone()).await;
    let Ok(Some(mut row)) = state.store.payment(&row.merchant_id, &row.id).await else {
        return;
    };
    let provider = match state.provider_for_payment(&row).await {
        Ok(provider) => provider,
        Err(_) => return,
    };
    match provider.retrieve_intent(&row.intent.id).await {
        Ok(intent) => {
            if let Some((change, update)) = apply_intent_change(&mut row, intent, ChangeSource::Reconcile) {
                tracing::info!(payment = %row.id, status = %row.intent.status, "reconciled a payment");
                if let Err(error) = commit_and_publish(state, vec![change], &[update]).await {
                    tracing::warn!(payment = %row.id, %error, "storing a reconciled payment failed");
                }
            }
        }
        Err(error) => {
            tracing::warn!(payment = %row.id, %error, "reconciliation could not retrieve the intent")
        }
    }
}
