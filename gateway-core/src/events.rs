//! Typed payment-intent events: what handlers and watchers receive.
//!
//! Every event is one [`IntentChange`] (the intent snapshot, the previous
//! status, the refund if any, and the [`IntentChangeContext`]) shared behind
//! an `Arc`. The typed wrappers ([`IntentSucceeded`], [`IntentCanceled`], …)
//! dereference to it, so a handler reads `event.intent.amount`, and handing an
//! event to a hundred handlers copies a pointer, not the intent.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::intent::{IntentStatus, PaymentIntent, UnixTimestamp};
use crate::refund::Refund;
use crate::webhook::{EventObject, ProviderEvent};

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// A provider webhook.
    Webhook,
    /// A call to the gateway's API.
    Api,
    /// The reconciliation task, healing a missed webhook.
    Reconcile,
}

/// Where and when a change was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentChangeContext {
    /// The event's id: the provider's event id for webhooks, the gateway's own otherwise.
    /// Dispatch is deduplicated on it.
    pub event_id: String,
    /// Webhook, API or reconciliation.
    pub source: ChangeSource,
    /// `true` when this gateway instance received the change; `false` when it
    /// arrived from another instance of a cluster, so handlers can avoid doing
    /// the same work twice.
    pub local: bool,
    /// When the change was received.
    pub received_at: UnixTimestamp,
    /// The merchant the intent belongs to, when the gateway serves several.
    pub merchant: Option<String>,
}

/// The kind of an intent event: which typed event it is delivered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new intent.
    Created,
    /// The provider is processing the payment.
    Processing,
    /// The customer must act (3-D Secure).
    RequiresAction,
    /// Authorized; waiting for capture.
    RequiresCapture,
    /// Funds captured.
    Succeeded,
    /// The payment attempt failed.
    PaymentFailed,
    /// Canceled.
    Canceled,
    /// (Part of) the payment was refunded.
    Refunded,
    /// A refund failed or was canceled: its amount is the merchant's again.
    RefundFailed,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Processing,
        EventKind::RequiresAction,
        EventKind::RequiresCapture,
        EventKind::Succeeded,
        EventKind::PaymentFailed,
        EventKind::Canceled,
        EventKind::Refunded,
        EventKind::RefundFailed,
    ];

    /// The kind that announces `intent` reaching its current status after
    /// `previous` (`None` for a new intent). `None` when the change has no
    /// event of its own (e.g. a payment method attached before confirmation).
    pub fn for_intent(previous: Option<IntentStatus>, intent: &PaymentIntent) -> Option<EventKind> {
        if previous.is_none() {
            return Some(EventKind::Created);
        }
        match intent.status {
            IntentStatus::Processing => Some(EventKind::Processing),
            IntentStatus::RequiresAction => Some(EventKind::RequiresAction),
            IntentStatus::RequiresCapture => Some(EventKind::RequiresCapture),
            IntentStatus::Succeeded => Some(EventKind::Succeeded),
            IntentStatus::Canceled => Some(EventKind::Canceled),
            IntentStatus::RequiresPaymentMethod if intent.last_payment_error.is_some() => {
                Some(EventKind::PaymentFailed)
            }
            IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation => None,
        }
    }

    /// The wire name, e.g. `"payment_failed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Processing => "processing",
            EventKind::RequiresAction => "requires_action",
            EventKind::RequiresCapture => "requires_capture",
            EventKind::Succeeded => "succeeded",
            EventKind::PaymentFailed => "payment_failed",
            EventKind::Canceled => "canceled",
            EventKind::Refunded => "refunded",
            EventKind::RefundFailed => "refund_failed",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one payment intent, as published on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentChange {
    /// Which typed event this is.
    pub kind: EventKind,
    /// The intent after the change.
    pub intent: PaymentIntent,
    /// The status before the change (`None` for a new intent).
    pub previous_status: Option<IntentStatus>,
    /// The refund, for [`EventKind::Refunded`] and [`EventKind::RefundFailed`].
    pub refund: Option<Refund>,
    /// Where and when the change was received.
    pub context: IntentChangeContext,
}

impl IntentChange {
    /// A change of `kind` with no refund.
    pub fn new(
        kind: EventKind,
        intent: PaymentIntent,
        previous_status: Option<IntentStatus>,
        context: IntentChangeContext,
    ) -> Self {
        IntentChange {
            kind,
            intent,
            previous_status,
            refund: None,
            context,
        }
    }

    /// The event id the bus deduplicates on.
    pub fn event_id(&self) -> &str {
        &self.context.event_id
    }

    /// The changes announcing that `intent` reached its status after
    /// `previous` (`None`: the gateway sees the intent for the first time).
    /// The one rule every publisher follows (the server, [`MemoryRelay`](crate::MemoryRelay)):
    ///
    /// * first seen: [`EventKind::Created`], then — when the intent is already
    ///   past its start (succeeded, awaiting capture, declined, …) — that
    ///   status's event too, with the event id `"{event_id}:{kind}"`, so the
    ///   handlers of e.g. `IntentSucceeded` run for a payment that succeeded at once;
    /// * the same status again, or a move the legal-transition rule refuses
    ///   (a late or replayed state): nothing;
    /// * otherwise the new status's event, when it has one.
    pub fn for_transition(
        previous: Option<IntentStatus>,
        intent: &PaymentIntent,
        context: &IntentChangeContext,
    ) -> Vec<IntentChange> {
        let Some(from) = previous else {
            let mut changes = vec![IntentChange::new(
                EventKind::Created,
                intent.clone(),
                None,
                context.clone(),
            )];
            if let Some(kind) = EventKind::for_intent(Some(IntentStatus::RequiresPaymentMethod), intent) {
                let mut context = context.clone();
                context.event_id = format!("{}:{kind}", context.event_id);
                changes.push(IntentChange::new(kind, intent.clone(), None, context));
            }
            return changes;
        };
        if from == intent.status || !from.can_transition_to(intent.status) {
            return Vec::new();
        }
        EventKind::for_intent(previous, intent)
            .map(|kind| IntentChange::new(kind, intent.clone(), previous, context.clone()))
            .into_iter()
            .collect()
    }

    /// The changes a provider event makes to an intent last known in status
    /// `previous` ([`IntentChange::for_transition`]; a refund event is one
    /// [`EventKind::Refunded`] change). Empty for an event type the gateway
    /// does not act on.
    ///
    /// A refund event is one [`EventKind::Refunded`] change while the refund
    /// holds funds, one [`EventKind::RefundFailed`] change once it failed or
    /// was canceled.
    ///
    /// `intent` is the intent as it is after the event: the event's own copy,
    /// or for refund events the intent retrieved from the provider.
    pub fn from_provider_event(
        event: &ProviderEvent,
        intent: PaymentIntent,
        previous: Option<IntentStatus>,
        context: IntentChangeContext,
    ) -> Vec<IntentChange> {
        match &event.object {
            EventObject::Refund { refund } => {
                let kind = if refund.status.holds_funds() {
                    EventKind::Refunded
                } else {
                    EventKind::RefundFailed
                };
                let mut change = IntentChange::new(kind, intent, previous, context);
                change.refund = Some(refund.clone());
                vec![change]
            }
            EventObject::Intent { .. } => IntentChange::for_transition(previous, &intent, &context),
            _ => Vec::new(),
        }
    }
}

/// An [`IntentChange`] shared between the handlers and watchers that receive it.
pub type SharedChange = Arc<IntentChange>;

/// A type a payment handler can take as its event: one of the typed events
/// below, or [`AnyIntentEvent`] for all of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a payment event type",
    label = "not a payment event",
    note = "the first argument of a payment handler is one of IntentCreated, IntentProcessing, IntentRequiresAction, IntentRequiresCapture, IntentSucceeded, IntentPaymentFailed, IntentCanceled, IntentRefunded, IntentRefundFailed, or AnyIntentEvent"
)]
pub trait IntentEventType: Send + Sized + 'static {
    /// The kind this type receives; `None` receives every kind.
    const KIND: Option<EventKind>;

    /// Wraps a published change (of a matching kind).
    fn from_change(change: SharedChange) -> Self;

    /// The change behind the event.
    fn change(&self) -> &SharedChange;
}

macro_rules! typed_events {
    ($($(#[$doc:meta])* $name:ident => $kind:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(SharedChange);

        impl IntentEventType for $name {
            const KIND: Option<EventKind> = $kind;

            fn from_change(change: SharedChange) -> Self {
                $name(change)
            }

            fn change(&self) -> &SharedChange {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = IntentChange;

            fn deref(&self) -> &IntentChange {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("event_id", &self.0.context.event_id)
                    .field("intent", &self.0.intent.id)
                    .field("status", &self.0.intent.status)
                    .field("previous_status", &self.0.previous_status)
                    .finish()
            }
        }
    )*};
}

typed_events! {
    /// A new payment intent.
    IntentCreated => Some(EventKind::Created);
    /// The provider started processing the payment.
    IntentProcessing => Some(EventKind::Processing);
    /// The customer must act (3-D Secure); `intent.next_action` says how.
    IntentRequiresAction => Some(EventKind::RequiresAction);
    /// Authorized; capture it (in full or in part) or cancel it.
    IntentRequiresCapture => Some(EventKind::RequiresCapture);
    /// Funds captured: fulfil the order.
    IntentSucceeded => Some(EventKind::Succeeded);
    /// The attempt failed; `intent.last_payment_error` says why.
    IntentPaymentFailed => Some(EventKind::PaymentFailed);
    /// The intent was canceled.
    IntentCanceled => Some(EventKind::Canceled);
    /// (Part of) the payment was refunded; `refund` is the refund.
    IntentRefunded => Some(EventKind::Refunded);
    /// A refund failed or was canceled after it was counted; `refund` says
    /// why (`failure_reason`), and its amount is refundable again.
    IntentRefundFailed => Some(EventKind::RefundFailed);
    /// Every intent event, whatever its kind (`kind` tells which).
    AnyIntentEvent => None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::PaymentErrorDetails;
    use crate::money::{Currency, Money};

    fn intent(status: IntentStatus) -> PaymentIntent {
        PaymentIntent::new(
            "pi_1",
            "mock",
            Money::from_minor(100, Currency::USD).unwrap(),
            status,
        )
    }

    #[test]
    fn kinds_follow_the_new_status() {
        use IntentStatus::*;
        let kind = |previous, status| EventKind::for_intent(previous, &intent(status));
        assert_eq!(kind(None, Succeeded), Some(EventKind::Created));
        assert_eq!(
            kind(Some(RequiresConfirmation), Succeeded),
            Some(EventKind::Succeeded)
        );
        assert_eq!(
            kind(Some(RequiresConfirmation), RequiresAction),
            Some(EventKind::RequiresAction)
        );
        assert_eq!(
            kind(Some(RequiresConfirmation), RequiresCapture),
            Some(EventKind::RequiresCapture)
        );
        assert_eq!(kind(Some(RequiresCapture), Canceled), Some(EventKind::Canceled));
        assert_eq!(
            kind(Some(RequiresConfirmation), Processing),
            Some(EventKind::Processing)
        );
        assert_eq!(kind(Some(RequiresPaymentMethod), RequiresConfirmation), None);
        let mut failed = intent(RequiresPaymentMethod);
        failed.last_payment_error = Some(PaymentErrorDetails {
            code: Some("card_declined".into()),
            decline_code: None,
            message: "declined".into(),
        });
        assert_eq!(
            EventKind::for_intent(Some(RequiresConfirmation), &failed),
            Some(EventKind::PaymentFailed)
        );
    }

    #[test]
    fn one_transition_rule_for_every_publisher() {
        use IntentStatus::*;
        let context = IntentChangeContext {
            event_id: "evt_9".into(),
            source: ChangeSource::Api,
            local: true,
            received_at: 5,
            merchant: None,
        };
        let kinds = |previous, status| {
            IntentChange::for_transition(previous, &intent(status), &context)
                .into_iter()
                .map(|change| (change.kind, change.context.event_id))
                .collect::<Vec<_>>()
        };
        // First seen already succeeded: created, then succeeded (its handlers run).
        assert_eq!(
            kinds(None, Succeeded),
            vec![
                (EventKind::Created, "evt_9".to_owned()),
                (EventKind::Succeeded, "evt_9:succeeded".to_owned())
            ]
        );
        assert_eq!(
            kinds(None, RequiresPaymentMethod),
            vec![(EventKind::Created, "evt_9".to_owned())]
        );
        assert_eq!(
            kinds(Some(RequiresCapture), Succeeded),
            vec![(EventKind::Succeeded, "evt_9".to_owned())]
        );
        assert!(
            kinds(Some(Succeeded), Succeeded).is_empty(),
            "the same status again"
        );
        assert!(
            kinds(Some(Succeeded), RequiresAction).is_empty(),
            "a late, illegal move"
        );

        let event = ProviderEvent {
            id: "evt_9".into(),
            provider: "mock".into(),
            event_type: "payment_intent.succeeded".into(),
            created: 5,
            object: EventObject::Intent {
                intent: intent(Succeeded),
            },
        };
        let from_event: Vec<_> =
            IntentChange::from_provider_event(&event, intent(Succeeded), None, context.clone())
                .into_iter()
                .map(|change| change.kind)
                .collect();
        assert_eq!(from_event, vec![EventKind::Created, EventKind::Succeeded]);
    }

    #[test]
    fn typed_events_dereference_to_the_change() {
        let context = IntentChangeContext {
            event_id: "evt_1".into(),
            source: ChangeSource::Webhook,
            local: true,
            received_at: 5,
            merchant: None,
        };
        let change = Arc::new(IntentChange::new(
            EventKind::Succeeded,
            intent(IntentStatus::Succeeded),
            Some(IntentStatus::RequiresConfirmation),
            context,
        ));
        let event = IntentSucceeded::from_change(change.clone());
        assert_eq!(event.intent.id, "pi_1");
        assert_eq!(event.event_id(), "evt_1");
        assert!(Arc::ptr_eq(event.change(), &change));
        assert!(format!("{event:?}").contains("evt_1"));
        assert_eq!(IntentSucceeded::KIND, Some(EventKind::Succeeded));
        assert_eq!(AnyIntentEvent::KIND, None);
    }
}
