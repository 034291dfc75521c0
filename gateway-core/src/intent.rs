//! Payment intents, their status machine, and the merchant-facing payment status.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError};

/// Seconds since the Unix epoch, as providers report them.
pub type UnixTimestamp = i64;

/// Free-form key/value pairs kept on provider objects (Stripe's `metadata`).
pub type Metadata = BTreeMap<String, String>;

/// The metadata key that links an intent to the application's order.
pub const ORDER_ID_METADATA_KEY: &str = "order_id";

/// The metadata key naming the gateway payment an intent belongs to, set on
/// every intent the gateway creates, so an intent whose creation reply was
/// lost can still be matched to its (write-ahead) payment row.
pub const GATEWAY_PAYMENT_METADATA_KEY: &str = "gateway_payment_id";

/// The metadata key naming the gateway merchant an intent belongs to.
pub const GATEWAY_MERCHANT_METADATA_KEY: &str = "gateway_merchant_id";

/// The metadata key naming the gateway refund a provider refund belongs to,
/// set on every refund the gateway asks for, so a refund whose reply was lost
/// is matched to its written-ahead row.
pub const GATEWAY_REFUND_METADATA_KEY: &str = "gateway_refund_id";

/// Where a payment intent is in its life, mirroring Stripe's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Waiting for a payment method, or the last attempt failed.
    RequiresPaymentMethod,
    /// Has a payment method; waiting to be confirmed.
    RequiresConfirmation,
    /// The customer must act (3-D Secure); see [`NextAction`].
    RequiresAction,
    /// The provider is processing the payment.
    Processing,
    /// Authorized; funds wait to be captured (manual capture).
    RequiresCapture,
    /// Funds captured. Terminal.
    Succeeded,
    /// Canceled. Terminal.
    Canceled,
}

impl IntentStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [IntentStatus; 7] = [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::RequiresConfirmation,
        IntentStatus::RequiresAction,
        IntentStatus::Processing,
        IntentStatus::RequiresCapture,
        IntentStatus::Succeeded,
        IntentStatus::Canceled,
    ];

    /// `succeeded` and `canceled`: nothing moves an intent out of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, IntentStatus::Succeeded | IntentStatus::Canceled)
    }

    /// Stripe's wire name, e.g. `"requires_capture"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresCapture => "requires_capture",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Canceled => "canceled",
        }
    }

    /// Parses Stripe's wire name.
    pub fn parse(name: &str) -> Option<Self> {
        IntentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// The one rule for status changes: may an intent in `self` move to `next`?
    ///
    /// Staying in the same non-terminal status is legal (amounts or metadata
    /// may change). Terminal statuses never change, and an intent never moves
    /// backwards past a point the provider cannot return from: a late or
    /// replayed `processing` after `succeeded`, or `requires_action` after
    /// `requires_capture`, is refused.
    pub fn can_transition_to(self, next: IntentStatus) -> bool {
        use IntentStatus::*;
        match (self, next) {
            (Succeeded | Canceled, _) => false,
            (_, Canceled | Succeeded) => true,
            (from, to) if from == to => true,
            // Before authorization anything may follow: a new payment method,
            // a new confirmation, an authentication step, a failure.
            (RequiresPaymentMethod | RequiresConfirmation | RequiresAction, _) => true,
            // Asynchronous methods settle into capture or fail back to a new method.
            (Processing, RequiresCapture | RequiresPaymentMethod) => true,
            (Processing, _) => false,
            // A capture of some methods is processed asynchronously.
            (RequiresCapture, Processing) => true,
            (RequiresCapture, _) => false,
        }
    }
}

impl fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether funds are captured on confirmation or later by an explicit capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// Capture as soon as the payment is authorized.
    #[default]
    Automatic,
    /// Authorize only; capture (in full or in part) later.
    Manual,
}

/// What the customer must do next for an intent in `requires_action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NextAction {
    /// Send the customer to `url` (3-D Secure); they come back to `return_url`.
    RedirectToUrl {
        /// Where to send the customer.
        url: String,
        /// Where the customer returns afterwards.
        return_url: Option<String>,
    },
    /// Authenticate in the browser with the provider's SDK and the client secret.
    UseSdk,
}

/// Why the last payment attempt failed, as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentErrorDetails {
    /// The provider's error code (`card_declined`, `expired_card`, …).
    pub code: Option<String>,
    /// The issuer's decline code (`insufficient_funds`, `generic_decline`, …).
    pub decline_code: Option<String>,
    /// A message safe to show the customer.
    pub message: String,
}

/// A payment intent as a provider reports it: one attempt to collect an amount.
///
/// `Debug` leaves the client secret out, so an intent (or an error carrying
/// one) can be logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// The provider's reference for the intent (`pi_…` at Stripe); the key
    /// watchers and events use.
    pub id: String,
    /// The provider that holds the intent (`stripe`, `mock`).
    pub provider: String,
    /// Amount to collect, in minor units of `currency`.
    pub amount: i64,
    /// Amount captured so far, in minor units.
    pub amount_received: i64,
    /// Amount authorized and still capturable, in minor units.
    pub amount_capturable: i64,
    /// Currency of every amount on the intent.
    pub currency: Currency,
    /// Where the intent is in its life.
    pub status: IntentStatus,
    /// Automatic or manual capture.
    pub capture_method: CaptureMethod,
    /// The provider customer the intent belongs to.
    pub customer: Option<String>,
    /// The payment method attached to the intent.
    pub payment_method: Option<String>,
    /// Secret for client-side confirmation; never log it.
    pub client_secret: Option<String>,
    /// Free-form metadata; [`ORDER_ID_METADATA_KEY`] links the application's order.
    pub metadata: Metadata,
    /// Description shown in the provider's dashboard.
    pub description: Option<String>,
    /// What the customer must do next, in `requires_action`.
    pub next_action: Option<NextAction>,
    /// Why the last attempt failed.
    pub last_payment_error: Option<PaymentErrorDetails>,
    /// Why the intent was canceled.
    pub cancellation_reason: Option<String>,
    /// When the provider created the intent.
    pub created: UnixTimestamp,
    /// When the provider last changed the intent, as far as the gateway knows.
    pub updated: UnixTimestamp,
}

impl fmt::Debug for PaymentIntent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentIntent")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("amount", &self.amount)
            .field("amount_received", &self.amount_received)
            .field("amount_capturable", &self.amount_capturable)
            .field("currency", &self.currency)
            .field("status", &self.status)
            .field("capture_method", &self.capture_method)
            .field("customer", &self.customer)
            .field("payment_method", &self.payment_method)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("metadata", &self.metadata)
            .field("description", &self.description)
            .field("next_action", &self.next_action)
            .field("last_payment_error", &self.last_payment_error)
            .field("cancellation_reason", &self.cancellation_reason)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

impl PaymentIntent {
    /// An intent `id` at `provider` for `amount`, in `status`, with nothing
    /// received or capturable yet, automatic capture, and every optional field
    /// empty: the start a provider fills in.
    pub fn new(
        id: impl Into<String>,
        provider: impl Into<String>,
        amount: Money,
        status: IntentStatus,
    ) -> Self {
        PaymentIntent {
            id: id.into(),
            provider: provider.into(),
            amount: amount.minor_units(),
            amount_received: 0,
            amount_capturable: 0,
            currency: amount.currency(),
            status,
            capture_method: CaptureMethod::Automatic,
            customer: None,
            payment_method: None,
            client_secret: None,
            metadata: Metadata::new(),
            description: None,
            next_action: None,
            last_payment_error: None,
            cancellation_reason: None,
            created: 0,
            updated: 0,
        }
    }

    /// The amount to collect as [`Money`].
    pub fn amount_money(&self) -> Result<Money, MoneyError> {
        Money::from_minor(self.amount, self.currency)
    }

    /// The application's order id from metadata, if set.
    pub fn order_id(&self) -> Option<&str> {
        self.metadata.get(ORDER_ID_METADATA_KEY).map(String::as_str)
    }
}

/// The payment status merchants see, derived from the intent and its refunds.
///
/// Never stored beside the intent status: always computed by [`PaymentStatus::derive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not finished: waiting for a method, confirmation, action, processing or capture.
    Pending,
    /// Funds captured, nothing refunded.
    Completed,
    /// The last attempt failed and no new one has started.
    Failed,
    /// Canceled before funds were captured.
    Canceled,
    /// Everything captured was refunded.
    Refunded,
    /// Part of what was captured was refunded.
    PartiallyRefunded,
}

impl PaymentStatus {
    /// Derives the merchant-facing status from the intent and the amount
    /// refunded so far (succeeded refunds only, in minor units).
    pub fn derive(intent: &PaymentIntent, amount_refunded: i64) -> Self {
        match intent.status {
            IntentStatus::Succeeded if amount_refunded <= 0 => PaymentStatus::Completed,
            IntentStatus::Succeeded if amount_refunded >= intent.amount_received => PaymentStatus::Refunded,
            IntentStatus::Succeeded => PaymentStatus::PartiallyRefunded,
            IntentStatus::Canceled => PaymentStatus::Canceled,
            IntentStatus::RequiresPaymentMethod if intent.last_payment_error.is_some() => {
                PaymentStatus::Failed
            }
            _ => PaymentStatus::Pending,
        }
    }

    /// Every merchant-facing status.
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Pending,
        PaymentStatus::Completed,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
    ];

    /// Parses the wire name ([`PaymentStatus::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        PaymentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// The wire name, e.g. `"partially_refunded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::IntentStatus::*;
    use super::*;

    /// The whole matrix, written out: row = from, column = to, in `IntentStatus::ALL` order
    /// (rpm, rc, ra, proc, rcap, succ, canc).
    const LEGAL: [[bool; 7]; 7] = [
        /* requires_payment_method */ [true, true, true, true, true, true, true],
        /* requires_confirmation   */ [true, true, true, true, true, true, true],
        /* requires_action         */ [true, true, true, true, true, true, true],
        /* processing              */ [true, false, false, true, true, true, true],
        /* requires_capture        */ [false, false, false, true, true, true, true],
        /* succeeded               */ [false, false, false, false, false, false, false],
        /* canceled                */ [false, false, false, false, false, false, false],
    ];

    #[test]
    fn payment_status_names_round_trip() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("succeeded"), None);
    }

    #[test]
    fn every_transition_pair_matches_the_table() {
        for (i, from) in IntentStatus::ALL.into_iter().enumerate() {
            for (j, to) in IntentStatus::ALL.into_iter().enumerate() {
                assert_eq!(from.can_transition_to(to), LEGAL[i][j], "{from} -> {to}");
            }
        }
    }

    #[test]
    fn late_events_never_move_backwards() {
        assert!(!Succeeded.can_transition_to(Processing));
        assert!(!Succeeded.can_transition_to(RequiresCapture));
        assert!(!Canceled.can_transition_to(Succeeded));
        assert!(!RequiresCapture.can_transition_to(RequiresAction));
        assert!(!Processing.can_transition_to(RequiresAction));
    }

    #[test]
    fn status_names_round_trip() {
        for status in IntentStatus::ALL {
            assert_eq!(IntentStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        }
        assert_eq!(IntentStatus::parse("requires_source"), None);
        assert!(Succeeded.is_terminal() && Canceled.is_terminal() && !Processing.is_terminal());
    }

    fn intent(status: IntentStatus, received: i64) -> PaymentIntent {
        let amount = Money::from_minor(1000, Currency::USD).unwrap();
        PaymentIntent {
            amount_received: received,
            ..PaymentIntent::new("pi_1", "mock", amount, status)
        }
    }

    #[test]
    fn debug_leaves_the_client_secret_out() {
        let mut secretive = intent(Succeeded, 1000);
        secretive.client_secret = Some("pi_1_secret_hush".into());
        let debug = format!("{secretive:?}");
        assert!(!debug.contains("hush") && debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn payment_status_is_derived() {
        assert_eq!(
            PaymentStatus::derive(&intent(Succeeded, 1000), 0),
            PaymentStatus::Completed
        );
        assert_eq!(
            PaymentStatus::derive(&intent(Succeeded, 1000), 400),
            PaymentStatus::PartiallyRefunded
        );
        assert_eq!(
            PaymentStatus::derive(&intent(Succeeded, 600), 600),
            PaymentStatus::Refunded
        );
        assert_eq!(
            PaymentStatus::derive(&intent(Canceled, 0), 0),
            PaymentStatus::Canceled
        );
        assert_eq!(
            PaymentStatus::derive(&intent(RequiresPaymentMethod, 0), 0),
            PaymentStatus::Pending
        );
        let mut failed = intent(RequiresPaymentMethod, 0);
        failed.last_payment_error = Some(PaymentErrorDetails {
            code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
        });
        assert_eq!(PaymentStatus::derive(&failed, 0), PaymentStatus::Failed);
        for pending in [RequiresConfirmation, RequiresAction, Processing, RequiresCapture] {
            assert_eq!(
                PaymentStatus::derive(&intent(pending, 0), 0),
                PaymentStatus::Pending
            );
        }
    }
}
