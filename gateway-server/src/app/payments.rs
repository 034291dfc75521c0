//! The one place a payment's intent changes.
//!
//! Every change to a stored intent — from an API call, and later from
//! webhooks and reconciliation — goes through [`apply_intent_change`], which
//! refuses illegal transitions with [`gateway_core::IntentStatus::can_transition_to`], so a
//! late or replayed update never moves a payment backwards. Once the change
//! is committed, [`publish_committed`] hands it to the event bus hook.

use gateway_core::{EventKind, IntentChange, IntentChangeContext, PaymentIntent};

use crate::app::core::Core;
pub(crate) use crate::domain::changes::{new_event_id, ChangeSource, IntentUpdate, UpdateKind};
use crate::domain::records::PendingStep;
use crate::store::{Change, PaymentRow, StoreError};
use crate::support::clock::now_ms;

/// Records a new payment: the change to commit and the update to publish.
pub(crate) fn new_payment(row: PaymentRow, source: ChangeSource) -> (Change, IntentUpdate) {
    let update = IntentUpdate {
        kind: UpdateKind::Created,
        source,
        merchant_id: row.merchant_id.clone(),
        payment_id: row.id.clone(),
        previous: None,
        previous_status: None,
        intent: row.intent.clone(),
        status: row.status(),
        event_id: new_event_id(),
        refund: None,
    };
    (Change::InsertPayment(Box::new(row)), update)
}

/// Applies the provider's view of the intent to `row` if the move is legal.
///
/// Returns the change to commit and the update to publish, or `None` when
/// nothing changed or the transition is illegal (a stale or replayed state:
/// the stored one is kept).
pub(crate) fn apply_intent_change(
    row: &mut PaymentRow,
    intent: PaymentIntent,
    source: ChangeSource,
) -> Option<(Change, IntentUpdate)> {
    if intent == row.intent {
        return None;
    }
    let from = row.intent.status;
    if intent.status != from && !from.can_transition_to(intent.status) {
        tracing::warn!(
            payment = %row.id,
            from = %from,
            to = %intent.status,
            "ignored an illegal intent transition (stale or replayed state)"
        );
        return None;
    }
    if intent.status == from && from.is_terminal() && intent.amount_received < row.intent.amount_received {
        return None;
    }
    let previous_status = row.status();
    row.intent = intent;
    row.updated_at = now_ms();
    let update = IntentUpdate {
        kind: UpdateKind::IntentChanged,
        source,
        merchant_id: row.merchant_id.clone(),
        payment_id: row.id.clone(),
        previous: Some(from),
        previous_status: Some(previous_status),
        intent: row.intent.clone(),
        status: row.status(),
        event_id: new_event_id(),
        refund: None,
    };
    Some((Change::update_payment(row), update))
}

/// Adds `amount` minor units to what was refunded of `row`.
pub(crate) fn apply_refund(
    row: &mut PaymentRow,
    amount: i64,
    source: ChangeSource,
) -> (Change, IntentUpdate) {
    let previous_status = row.status();
    row.amount_refunded = row.amount_refunded.saturating_add(amount);
    row.updated_at = now_ms();
    let update = IntentUpdate {
        kind: UpdateKind::Refunded,
        source,
        merchant_id: row.merchant_id.clone(),
        payment_id: row.id.clone(),
        previous: Some(row.intent.status),
        previous_status: Some(previous_status),
        intent: row.intent.clone(),
        status: row.status(),
        event_id: new_event_id(),
        refund: None,
    };
    (Change::update_payment(row), update)
}

/// Stores the intent the provider created for a written-ahead row (`next`:
/// the step still to run, if any): the change to commit and the `Created`
/// update to publish, as for a new payment.
pub(crate) fn intent_created(
    row: &mut PaymentRow,
    intent: PaymentIntent,
    next: Option<PendingStep>,
    source: ChangeSource,
) -> (Change, IntentUpdate) {
    row.intent = intent;
    row.pending_step = next;
    row.updated_at = now_ms();
    let (_, update) = new_payment(row.clone(), source);
    (Change::update_payment(row), update)
}

/// Commits `changes` with the outbox rows `updates` call for, in one
/// transaction, then publishes `updates` on the bus.
pub(crate) async fn commit_and_publish(
    state: &Core,
    mut changes: Vec<Change>,
    updates: &[IntentUpdate],
) -> Result<(), StoreError> {
    let queued = crate::app::outbound::outbox_changes(state, updates, &mut changes).await?;
    state.store.commit(changes).await?;
    publish_committed(state, updates);
    if queued {
        state.outbound.wake();
    }
    Ok(())
}

/// The bus changes an update announces: the core rule
/// ([`IntentChange::for_transition`]) for a new payment or a moved intent,
/// one `Refunded` change for a refund.
pub(crate) fn bus_changes(update: &IntentUpdate, received_at: i64) -> Vec<IntentChange> {
    let context = IntentChangeContext {
        event_id: update.event_id.clone(),
        source: update.source,
        local: true,
        received_at,
        merchant: Some(update.merchant_id.clone()),
    };
    match update.kind {
        UpdateKind::Created => IntentChange::for_transition(None, &update.intent, &context),
        UpdateKind::IntentChanged => IntentChange::for_transition(update.previous, &update.intent, &context),
        UpdateKind::Refunded => {
            let mut change = IntentChange::new(
                EventKind::Refunded,
                update.intent.clone(),
                update.previous,
                context,
            );
            change.refund = update.refund.clone();
            vec![change]
        }
    }
}

/// Called once the changes behind `updates` are committed: publishes each on
/// the event bus (handlers and watchers).
pub(crate) fn publish_committed(state: &Core, updates: &[IntentUpdate]) {
    let received_at = now_ms() / 1000;
    for update in updates {
        tracing::debug!(
            merchant = %update.merchant_id,
            payment = %update.payment_id,
            kind = ?update.kind,
            source = ?update.source,
            previous = ?update.previous,
            previous_status = ?update.previous_status,
            intent_status = %update.intent.status,
            status = %update.status,
            "payment changed"
        );
        for change in bus_changes(update, received_at) {
            // Handlers run in the background; a duplicate event id is dropped by the bus.
            drop(state.bus.publish(change));
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::{Currency, IntentStatus, Money, PaymentStatus};

    use super::*;

    fn row(status: IntentStatus) -> PaymentRow {
        PaymentRow {
            id: "p1".into(),
            merchant_id: "m1".into(),
            provider: "mock".into(),
            intent: PaymentIntent::fixture("pi_1", Money::from_minor(1000, Currency::USD).unwrap())
                .status(status)
                .build(),
            amount_refunded: 0,
            idempotency_key: None,
            saved_card_id: None,
            customer_email: None,
            return_url: None,
            pending_step: None,
            version: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn legal_changes_apply_and_illegal_ones_are_ignored() {
        let mut payment = row(IntentStatus::RequiresAction);
        let mut next = payment.intent.clone();
        next.status = IntentStatus::Succeeded;
        next.amount_received = 1000;
        let (_, update) = apply_intent_change(&mut payment, next.clone(), ChangeSource::Api).unwrap();
        assert_eq!(update.previous, Some(IntentStatus::RequiresAction));
        assert_eq!(update.status, PaymentStatus::Completed);
        let mut stale = next.clone();
        stale.status = IntentStatus::Processing;
        assert!(apply_intent_change(&mut payment, stale, ChangeSource::Reconcile).is_none());
        assert_eq!(payment.intent.status, IntentStatus::Succeeded);
        assert!(apply_intent_change(&mut payment, next, ChangeSource::Api).is_none());
        let (_, update) = apply_refund(&mut payment, 400, ChangeSource::Api);
        assert_eq!(update.status, PaymentStatus::PartiallyRefunded);
    }
}
