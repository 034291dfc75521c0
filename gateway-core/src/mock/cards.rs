//! Stripe's test payment methods and what each does when charged.

use crate::customer::CardDetails;

/// What happens when a test card is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CardOutcome {
    /// The charge is authorized.
    Succeed,
    /// The issuer declines with Stripe's `code` and `decline_code`.
    Decline {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
    /// 3-D Secure is required: `requires_action` on-session, a decline off-session.
    RequireAuthentication,
}

/// What happens to a refund of a charge on a test card (Stripe's refund test cards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefundOutcome {
    /// The refund succeeds at once.
    Succeed,
    /// The refund starts `pending` and succeeds when settled (`4000000000007726`).
    PendingThenSucceed,
    /// The refund starts `succeeded` and fails when settled (`4000000000005126`).
    SucceedThenFail,
}

/// A test payment method token (`pm_card_visa`) and its card.
#[derive(Debug)]
pub(super) struct TestCard {
    pub(super) token: &'static str,
    pub(super) brand: &'static str,
    pub(super) last4: &'static str,
    pub(super) outcome: CardOutcome,
    pub(super) refund: RefundOutcome,
}

const GENERIC_DECLINE: CardOutcome = CardOutcome::Decline {
    code: "card_declined",
    decline_code: "generic_decline",
    message: "Your card was declined.",
};

/// The test cards the mock knows, with Stripe's numbers and outcomes.
pub(super) const TEST_CARDS: &[TestCard] = &[
    TestCard {
        token: "pm_card_visa",
        brand: "visa",
        last4: "4242",
        outcome: CardOutcome::Succeed,
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_mastercard",
        brand: "mastercard",
        last4: "4444",
        outcome: CardOutcome::Succeed,
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_chargeDeclined",
        brand: "visa",
        last4: "0002",
        outcome: GENERIC_DECLINE,
        refund: RefundOutcome::Succeed,
    },
    // The name seed 002 uses for a generic decline.
    TestCard {
        token: "pm_card_declined",
        brand: "visa",
        last4: "0002",
        outcome: GENERIC_DECLINE,
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_chargeDeclinedInsufficientFunds",
        brand: "visa",
        last4: "9995",
        outcome: CardOutcome::Decline {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
        },
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_chargeDeclinedExpiredCard",
        brand: "visa",
        last4: "0069",
        outcome: CardOutcome::Decline {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
        },
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_chargeDeclinedIncorrectCvc",
        brand: "visa",
        last4: "0127",
        outcome: CardOutcome::Decline {
            code: "incorrect_cvc",
            decline_code: "incorrect_cvc",
            message: "Your card's security code is incorrect.",
        },
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_threeDSecure2Required",
        brand: "visa",
        last4: "3220",
        outcome: CardOutcome::RequireAuthentication,
        refund: RefundOutcome::Succeed,
    },
    TestCard {
        token: "pm_card_pendingRefund",
        brand: "visa",
        last4: "7726",
        outcome: CardOutcome::Succeed,
        refund: RefundOutcome::PendingThenSucceed,
    },
    TestCard {
        token: "pm_card_refundFail",
        brand: "visa",
        last4: "5126",
        outcome: CardOutcome::Succeed,
        refund: RefundOutcome::SucceedThenFail,
    },
];

impl TestCard {
    /// The test card for a token such as `pm_card_visa`.
    pub(super) fn by_token(token: &str) -> Option<&'static TestCard> {
        TEST_CARDS.iter().find(|card| card.token == token)
    }

    /// The card details a saved payment method shows.
    pub(super) fn details(&self) -> CardDetails {
        CardDetails {
            brand: self.brand.to_owned(),
            last4: self.last4.to_owned(),
            exp_month: 12,
            exp_year: 2034,
            funding: Some("credit".to_owned()),
            country: Some("US".to_owned()),
        }
    }
}
