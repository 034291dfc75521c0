//! Fixtures for tests: a [`PaymentIntent`] in one line instead of its
//! seventeen fields.
//!
//! ```
//! use gateway_core::{Currency, IntentStatus, Money, PaymentIntent};
//!
//! let amount = Money::from_minor(1000, Currency::USD).unwrap();
//! let paid = PaymentIntent::fixture("pi_1", amount)
//!     .status(IntentStatus::Succeeded)
//!     .received(1000)
//!     .build();
//! assert_eq!(paid.provider, "mock");
//! assert_eq!(paid.amount_received, 1000);
//! ```
//!
//! Every setter sets exactly the field it names: the fixture never derives
//! one field from another, so a test states every value it relies on.

use crate::intent::{
    CaptureMethod, IntentStatus, NextAction, PaymentErrorDetails, PaymentIntent, UnixTimestamp,
    ORDER_ID_METADATA_KEY,
};
use crate::money::Money;

impl PaymentIntent {
    /// A fixture for intent `id` at provider `mock` for `amount`: in
    /// `requires_payment_method`, nothing received or capturable, automatic
    /// capture, timestamps 0 and every optional field empty (as
    /// [`PaymentIntent::new`] makes it). Adjust it with the setters, then
    /// [`IntentFixture::build`].
    pub fn fixture(id: impl Into<String>, amount: Money) -> IntentFixture {
        IntentFixture {
            intent: PaymentIntent::new(id, "mock", amount, IntentStatus::RequiresPaymentMethod),
        }
    }
}

/// A [`PaymentIntent`] under construction; see [`PaymentIntent::fixture`].
#[derive(Debug, Clone)]
#[must_use = "a fixture does nothing until built"]
pub struct IntentFixture {
    intent: PaymentIntent,
}

impl IntentFixture {
    /// The provider holding the intent.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.intent.provider = provider.into();
        self
    }

    /// The intent's status (amounts are left as they are).
    pub fn status(mut self, status: IntentStatus) -> Self {
        self.intent.status = status;
        self
    }

    /// Amount captured so far, in minor units.
    pub fn received(mut self, minor_units: i64) -> Self {
        self.intent.amount_received = minor_units;
        self
    }

    /// Amount authorized and still capturable, in minor units.
    pub fn capturable(mut self, minor_units: i64) -> Self {
        self.intent.amount_capturable = minor_units;
        self
    }

    /// Manual capture instead of automatic.
    pub fn manual_capture(mut self) -> Self {
        self.intent.capture_method = CaptureMethod::Manual;
        self
    }

    /// The provider customer the intent belongs to.
    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.intent.customer = Some(customer.into());
        self
    }

    /// The attached payment method.
    pub fn payment_method(mut self, payment_method: impl Into<String>) -> Self {
        self.intent.payment_method = Some(payment_method.into());
        self
    }

    /// The client secret.
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.intent.client_secret = Some(client_secret.into());
        self
    }

    /// One metadata entry (added to those already set).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.intent.metadata.insert(key.into(), value.into());
        self
    }

    /// The application's order id, under [`ORDER_ID_METADATA_KEY`].
    pub fn order_id(self, order_id: impl Into<String>) -> Self {
        self.metadata(ORDER_ID_METADATA_KEY, order_id)
    }

    /// The description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.intent.description = Some(description.into());
        self
    }

    /// What the customer must do next.
    pub fn next_action(mut self, next_action: NextAction) -> Self {
        self.intent.next_action = Some(next_action);
        self
    }

    /// Why the last attempt failed.
    pub fn last_payment_error(mut self, error: PaymentErrorDetails) -> Self {
        self.intent.last_payment_error = Some(error);
        self
    }

    /// Why the intent was canceled.
    pub fn cancellation_reason(mut self, reason: impl Into<String>) -> Self {
        self.intent.cancellation_reason = Some(reason.into());
        self
    }

    /// When the provider created the intent.
    pub fn created(mut self, at: UnixTimestamp) -> Self {
        self.intent.created = at;
        self
    }

    /// When the provider last changed the intent.
    pub fn updated(mut self, at: UnixTimestamp) -> Self {
        self.intent.updated = at;
        self
    }

    /// The intent.
    pub fn build(self) -> PaymentIntent {
        self.intent
    }
}

impl From<IntentFixture> for PaymentIntent {
    fn from(fixture: IntentFixture) -> Self {
        fixture.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn ten_dollars() -> Money {
        Money::from_minor(1000, Currency::USD).unwrap()
    }

    #[test]
    fn the_defaults_are_those_of_a_new_intent_at_mock() {
        let new = PaymentIntent::new("pi_1", "mock", ten_dollars(), IntentStatus::RequiresPaymentMethod);
        assert_eq!(PaymentIntent::fixture("pi_1", ten_dollars()).build(), new);
        let converted: PaymentIntent = PaymentIntent::fixture("pi_1", ten_dollars()).into();
        assert_eq!(converted, new);
    }

    #[test]
    fn each_setter_sets_only_its_field() {
        let error = PaymentErrorDetails {
            code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            message: "declined".into(),
        };
        let action = NextAction::UseSdk;
        let intent = PaymentIntent::fixture("pi_2", ten_dollars())
            .provider("stripe")
            .status(IntentStatus::RequiresCapture)
            .received(300)
            .capturable(700)
            .manual_capture()
            .customer("cus_1")
            .payment_method("pm_card_visa")
            .client_secret("pi_2_secret")
            .metadata("cart", "c-9")
            .order_id("order-1")
            .description("Two mugs")
            .next_action(action.clone())
            .last_payment_error(error.clone())
            .cancellation_reason("abandoned")
            .created(10)
            .updated(20)
            .build();
        let mut expected = PaymentIntent::new("pi_2", "stripe", ten_dollars(), IntentStatus::RequiresCapture);
        expected.amount_received = 300;
        expected.amount_capturable = 700;
        expected.capture_method = CaptureMethod::Manual;
        expected.customer = Some("cus_1".into());
        expected.payment_method = Some("pm_card_visa".into());
        expected.client_secret = Some("pi_2_secret".into());
        expected.metadata.insert("cart".into(), "c-9".into());
        expected
            .metadata
            .insert(ORDER_ID_METADATA_KEY.into(), "order-1".into());
        expected.description = Some("Two mugs".into());
        expected.next_action = Some(action);
        expected.last_payment_error = Some(error);
        expected.cancellation_reason = Some("abandoned".into());
        expected.created = 10;
        expected.updated = 20;
        assert_eq!(intent, expected);
        assert_eq!(intent.order_id(), Some("order-1"));
    }

    #[test]
    fn status_leaves_the_amounts_alone() {
        let intent = PaymentIntent::fixture("pi_3", ten_dollars())
            .status(IntentStatus::Succeeded)
            .build();
        assert_eq!(intent.status, IntentStatus::Succeeded);
        assert_eq!((intent.amount, intent.amount_received), (1000, 0));
        assert_eq!(intent.currency, Currency::USD);
    }
}
