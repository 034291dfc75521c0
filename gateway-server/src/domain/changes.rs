//! A payment's changes as the use cases hand them on: what happened, where it
//! came from, and the intent before and after (the outbox and the bus read them).

use gateway_core::{IntentStatus, PaymentIntent, PaymentStatus};

use crate::support::ids::new_id;

/// Where a change came from: gateway-core's one definition.
pub(crate) use gateway_core::ChangeSource;

/// A new gateway event id (for changes that no provider event announced).
pub(crate) fn new_event_id() -> String {
    format!("evt_gw_{}", new_id().replace('-', ""))
}

/// What happened to a payment, for the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateKind {
    /// The payment was created.
    Created,
    /// The intent moved (or its amounts changed).
    IntentChanged,
    /// A refund changed what was refunded.
    Refunded,
}

/// A committed-to-be change of one payment.
#[derive(Debug, Clone)]
pub(crate) struct IntentUpdate {
    pub(crate) kind: UpdateKind,
    pub(crate) source: ChangeSource,
    pub(crate) merchant_id: String,
    pub(crate) payment_id: String,
    /// The intent's status before the change (`None` for a new payment).
    pub(crate) previous: Option<IntentStatus>,
    pub(crate) previous_status: Option<PaymentStatus>,
    /// The intent after the change.
    pub(crate) intent: PaymentIntent,
    pub(crate) status: PaymentStatus,
    /// The bus event id: the provider's event id for webhooks, the gateway's own otherwise.
    pub(crate) event_id: String,
    /// The refund behind a [`UpdateKind::Refunded`] update, when known.
    pub(crate) refund: Option<gateway_core::Refund>,
}
