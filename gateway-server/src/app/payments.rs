//! The one place a payment's intent changes.
//!
//! Every change to a stored intent — from an API call, and later from
//! webhooks and reconciliation — goes through [`apply_intent_change`], which
//! refuses illegal transitions with [`gateway_core::IntentStatus::can_transition_to`], so a
//! late or replayed update never moves a payment backwards. Once the change
//! is committed, [`publish_committed`] hands it to the event bus hook.

use gateway_core::{EventKind, IntentChange, IntentChangeContext, PaymentIntent, Refund};

use crate::app::core::Core;
pub(crate) use crate::domain::changes::{new_event_id, ChangeSource, IntentUpdate, UpdateKind};
use crate::domain::records::PendingStep;
use crate::store::{Change, PaymentRow, RefundRow, StoreError};
use crate::support::clock::now_ms;
use crate::support::ids::new_id;

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
    // The provider's state of a known intent answers a call on it whose outcome was unknown.
    if matches!(
        row.pending_step,
        Some(PendingStep::Confirm | PendingStep::Capture | PendingStep::Cancel)
    ) {
        row.pending_step = None;
    }
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

/// Applies the provider's view of one refund to `payment`, whose refunds
/// stored so far are `stored` (read under the payment's lock, after the
/// payment itself).
///
/// * A refund the payment has no row for (made through the API just now,
///   or outside the gateway, e.g. in the provider's dashboard) gets one; a
///   known one is updated if the move is legal
///   ([`gateway_core::RefundStatus::can_transition_to`]), so a stale or
///   replayed snapshot never moves a refund backwards.
/// * `amount_refunded` is then derived from the refund rows, never
///   incremented: each provider refund counts once, by its provider id, and
///   a failed or canceled refund gives its amount back. Deriving it from the
///   rows (rather than adding to the stored amount) also means two refunds
///   applied one after the other cannot lose one's amount; the caller holds
///   the payment's lock, and the store refuses a second row for one provider
///   refund, so a racing writer's commit fails instead of counting twice.
/// * When the amount changed, the payment's update is returned for the bus
///   and the merchant: a refund ([`UpdateKind::Refunded`], the refund holding
///   funds) or a refund given back (the refund failed or canceled).
pub(crate) fn apply_refund(
    payment: &mut PaymentRow,
    stored: &[RefundRow],
    refund: Refund,
    source: ChangeSource,
) -> RefundApplied {
    let mut changes = Vec::new();
    let now = now_ms();
    let known = stored
        .iter()
        .find(|row| row.refund.id == refund.id || row.is_draft_of(&refund));
    let row = match known {
        None => {
            let row = RefundRow {
                id: new_id(),
                merchant_id: payment.merchant_id.clone(),
                payment_id: payment.id.clone(),
                refund,
                created_at: now,
                updated_at: now,
            };
            changes.push(Change::InsertRefund(Box::new(row.clone())));
            row
        }
        Some(known) if known.refund == refund => known.clone(),
        Some(known) if !known.refund.status.can_transition_to(refund.status) => {
            tracing::warn!(
                payment = %payment.id,
                refund = %known.id,
                from = %known.refund.status,
                to = %refund.status,
                "ignored an illegal refund transition (stale or replayed state)"
            );
            known.clone()
        }
        Some(known) => {
            let row = RefundRow {
                refund,
                updated_at: now,
                ..known.clone()
            };
            changes.push(Change::UpdateRefund(Box::new(row.clone())));
            row
        }
    };
    let mut refunds: Vec<RefundRow> = stored
        .iter()
        .filter(|other| other.id != row.id)
        .cloned()
        .collect();
    refunds.push(row.clone());
    let refunded = refunded_amount(&refunds);
    let mut updates = Vec::new();
    if refunded != payment.amount_refunded {
        let previous_status = payment.status();
        payment.amount_refunded = refunded;
        payment.updated_at = now;
        updates.push(IntentUpdate {
            kind: UpdateKind::Refunded,
            source,
            merchant_id: payment.merchant_id.clone(),
            payment_id: payment.id.clone(),
            previous: Some(payment.intent.status),
            previous_status: Some(previous_status),
            intent: payment.intent.clone(),
            status: payment.status(),
            event_id: new_event_id(),
            refund: Some(row.refund.clone()),
        });
        changes.push(Change::update_payment(payment));
    }
    RefundApplied {
        row,
        changes,
        updates,
    }
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
    // The timeline's entries for these changes commit with them (timed
    // before the outbox rows, so a delivery follows the change it announces).
    crate::app::timeline::add_to_commit(&mut changes, updates);
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
/// one `Refunded` change for a refund, one `RefundFailed` change for a
/// refund that failed or was canceled (its amount given back).
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
            let kind = match &update.refund {
                Some(refund) if !refund.status.holds_funds() => EventKind::RefundFailed,
                _ => EventKind::Refunded,
            };
            let mut change = IntentChange::new(kind, update.intent.clone(), update.previous, context);
            change.refund = update.refund.clone();
            vec![change]
        }
    }
}

/// Called once the changes behind `updates` are committed: publishes each on
/// the event bus (handlers and watchers); the handlers' outcomes are then
/// recorded on the payment's timeline.
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
        let mut dispatched = Vec::new();
        for change in bus_changes(update, received_at) {
            // Handlers run in the background; a duplicate event id is dropped by the bus.
            if let Some(counted) = state.metrics.publish_counted(&state.bus, change) {
                dispatched.push(counted);
            }
        }
        // Counted in /metrics, and on the payment's timeline, once they are done.
        crate::app::timeline::record_handlers(state, update, dispatched);
    }
}

/// What [`apply_refund`] changes: the refund's row as it is now, and the
/// changes and updates to commit and publish (none when nothing changed).
#[derive(Debug)]
pub(crate) struct RefundApplied {
    pub(crate) row: RefundRow,
    pub(crate) changes: Vec<Change>,
    pub(crate) updates: Vec<IntentUpdate>,
}

/// Minor units a payment's refunds hold: the sum over the refunds that hold
/// funds (pending, requires action, succeeded), each row once.
pub(crate) fn refunded_amount(refunds: &[RefundRow]) -> i64 {
    refunds
        .iter()
        .filter(|row| row.refund.status.holds_funds())
        .fold(0i64, |sum, row| sum.saturating_add(row.refund.amount))
}

#[cfg(test)]
mod tests {
    use gateway_core::{Currency, IntentStatus, Money, PaymentStatus, RefundStatus};

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
            provider_account: None,
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
    }

    fn refund(id: &str, amount: i64, status: RefundStatus) -> Refund {
        Refund {
            id: id.into(),
            provider: "mock".into(),
            payment_intent: "pi_1".into(),
            amount,
            currency: Currency::USD,
            status,
            reason: None,
            failure_reason: None,
            metadata: Default::default(),
            created: 0,
        }
    }

    /// Applies `snapshot` as a caller would: with the rows stored so far, then stores what it changed.
    fn apply(payment: &mut PaymentRow, stored: &mut Vec<RefundRow>, snapshot: Refund) -> RefundApplied {
        let applied = apply_refund(payment, stored, snapshot, ChangeSource::Webhook);
        for change in &applied.changes {
            match change {
                Change::InsertRefund(row) => stored.push((**row).clone()),
                Change::UpdateRefund(row) => {
                    let known = stored.iter_mut().find(|r| r.id == row.id).unwrap();
                    *known = (**row).clone();
                }
                _ => {}
            }
        }
        applied
    }

    #[test]
    fn refunds_count_once_each_and_a_failed_one_gives_its_amount_back() {
        use RefundStatus::*;
        let mut payment = row(IntentStatus::Succeeded);
        payment.intent.amount_received = 1000;
        let mut stored = Vec::new();

        let first = apply(&mut payment, &mut stored, refund("re_1", 300, Pending));
        assert_eq!(payment.amount_refunded, 300);
        assert_eq!(first.updates[0].status, PaymentStatus::PartiallyRefunded);
        assert!(matches!(first.changes[0], Change::InsertRefund(_)));
        // The same refund again (a replayed event, a second event type): counted once.
        let replay = apply(&mut payment, &mut stored, refund("re_1", 300, Pending));
        assert!(replay.changes.is_empty() && replay.updates.is_empty());
        // A second refund of the same charge (the dashboard) counts too.
        apply(&mut payment, &mut stored, refund("re_2", 700, Succeeded));
        assert_eq!(payment.amount_refunded, 1000);
        assert_eq!(payment.status(), PaymentStatus::Refunded);
        assert_eq!(stored.len(), 2);

        // Pending -> succeeded moves no money.
        let settled = apply(&mut payment, &mut stored, refund("re_1", 300, Succeeded));
        assert!(matches!(settled.changes[..], [Change::UpdateRefund(_)]));
        assert!(settled.updates.is_empty());
        // Succeeded -> failed: the amount is given back, the update says which refund failed.
        let failed = apply(&mut payment, &mut stored, refund("re_1", 300, Failed));
        assert_eq!(payment.amount_refunded, 700);
        assert_eq!(failed.updates[0].status, PaymentStatus::PartiallyRefunded);
        assert_eq!(failed.updates[0].refund.as_ref().unwrap().status, Failed);
        let bus = bus_changes(&failed.updates[0], 0);
        assert_eq!(bus[0].kind, EventKind::RefundFailed);
        // A stale snapshot does not bring it back.
        let stale = apply(&mut payment, &mut stored, refund("re_1", 300, Pending));
        assert!(stale.changes.is_empty() && stale.updates.is_empty());
        assert_eq!(stale.row.refund.status, Failed);
        assert_eq!(payment.amount_refunded, 700);

        // A refund first seen already failed was never counted: nothing to give back.
        let late = apply(&mut payment, &mut stored, refund("re_3", 100, Failed));
        assert!(matches!(late.changes[..], [Change::InsertRefund(_)]));
        assert!(late.updates.is_empty());
        assert_eq!(refunded_amount(&stored), 700);
    }

    #[test]
    fn a_drifted_amount_is_healed_from_the_rows() {
        let mut payment = row(IntentStatus::Succeeded);
        payment.intent.amount_received = 1000;
        payment.amount_refunded = 100; // a lost increment of an older version
        let mut stored = Vec::new();
        apply(
            &mut payment,
            &mut stored,
            refund("re_1", 400, RefundStatus::Succeeded),
        );
        apply(
            &mut payment,
            &mut stored,
            refund("re_2", 200, RefundStatus::Succeeded),
        );
        assert_eq!(payment.amount_refunded, 600);
    }
}
