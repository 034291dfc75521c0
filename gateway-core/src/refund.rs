//! Refunds of captured payments, in full or in part.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::intent::{Metadata, UnixTimestamp};
use crate::money::Currency;

/// Where a refund is in its life, mirroring Stripe's refund statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Submitted; the provider has not settled it yet.
    Pending,
    /// Needs the customer or merchant to act before it can complete.
    RequiresAction,
    /// Money returned to the customer.
    Succeeded,
    /// The refund failed; the money stays with the merchant.
    Failed,
    /// Canceled before it completed.
    Canceled,
}

impl RefundStatus {
    /// Whether the refund counts against what may still be refunded
    /// (pending, requires action and succeeded refunds do; failed and canceled don't).
    pub fn holds_funds(self) -> bool {
        matches!(
            self,
            RefundStatus::Pending | RefundStatus::RequiresAction | RefundStatus::Succeeded
        )
    }

    /// Whether a refund last seen in `self` may move to `next`, so a stale or
    /// replayed snapshot never moves a refund backwards.
    ///
    /// Pending and requires-action refunds may end in any status. A
    /// succeeded refund may still fail (Stripe reports a refund the
    /// customer's bank later returned as `succeeded` → `failed`; its test card
    /// `4000000000005126` does exactly this), but never goes back to pending.
    /// Failed and canceled refunds are final.
    pub fn can_transition_to(self, next: RefundStatus) -> bool {
        use RefundStatus::*;
        match (self, next) {
            (from, to) if from == to => true,
            (Pending | RequiresAction, _) => true,
            (Succeeded, Failed) => true,
            (Succeeded | Failed | Canceled, _) => false,
        }
    }

    /// Whether the provider may still change the refund's status by itself
    /// (pending or requires action): reconciliation asks about these.
    pub fn is_unsettled(self) -> bool {
        matches!(self, RefundStatus::Pending | RefundStatus::RequiresAction)
    }

    /// Every refund status.
    pub const ALL: [RefundStatus; 5] = [
        RefundStatus::Pending,
        RefundStatus::RequiresAction,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
        RefundStatus::Canceled,
    ];

    /// Parses the provider wire name ([`RefundStatus::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        RefundStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// The merchant-facing name, in the words of [`PaymentStatus`](crate::PaymentStatus):
    /// `completed`, `pending` (also while the refund requires action), `failed` or `canceled`.
    pub fn merchant_name(self) -> &'static str {
        match self {
            RefundStatus::Succeeded => "completed",
            RefundStatus::Pending | RefundStatus::RequiresAction => "pending",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }

    /// The provider wire name, e.g. `"succeeded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::RequiresAction => "requires_action",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refund of (part of) a captured payment intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The provider's reference (`re_…` at Stripe).
    pub id: String,
    /// The provider that holds the refund.
    pub provider: String,
    /// The refunded intent's id.
    pub payment_intent: String,
    /// Amount refunded, in minor units of `currency`.
    pub amount: i64,
    /// The refund's currency (the intent's).
    pub currency: Currency,
    /// Where the refund is in its life.
    pub status: RefundStatus,
    /// Why it was refunded (`duplicate`, `fraudulent`, `requested_by_customer`).
    pub reason: Option<String>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// When the provider created it.
    pub created: UnixTimestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_merchant_names_follow_payment_statuses() {
        for status in RefundStatus::ALL {
            assert_eq!(RefundStatus::parse(status.as_str()), Some(status));
            assert!(["completed", "pending", "failed", "canceled"].contains(&status.merchant_name()));
        }
        assert_eq!(
            RefundStatus::parse("completed"),
            None,
            "merchant names are not wire names"
        );
        assert_eq!(RefundStatus::RequiresAction.merchant_name(), "pending");
        assert_eq!(RefundStatus::Succeeded.merchant_name(), "completed");
    }

    #[test]
    fn refunds_never_move_backwards() {
        use RefundStatus::*;
        for status in RefundStatus::ALL {
            assert!(Pending.can_transition_to(status));
            assert!(RequiresAction.can_transition_to(status));
            assert!(
                status.can_transition_to(status),
                "the same status again is no move"
            );
        }
        assert!(
            Succeeded.can_transition_to(Failed),
            "a bank can return a refund later"
        );
        for stale in [Pending, RequiresAction, Canceled] {
            assert!(!Succeeded.can_transition_to(stale));
        }
        for other in [Pending, RequiresAction, Succeeded] {
            assert!(!Failed.can_transition_to(other));
            assert!(!Canceled.can_transition_to(other));
        }
        assert!(!Failed.can_transition_to(Canceled));
        assert!(Pending.is_unsettled() && RequiresAction.is_unsettled());
        assert!(!Succeeded.is_unsettled() && !Failed.is_unsettled());
    }
}
