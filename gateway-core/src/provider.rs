//! The `PaymentProvider` trait and the requests it takes.

use std::fmt;

use async_trait::async_trait;

use crate::customer::{Customer, SavedPaymentMethod};
use crate::error::ProviderError;
use crate::intent::{CaptureMethod, Metadata, PaymentIntent};
use crate::money::Money;
use crate::refund::Refund;
use crate::webhook::{ProviderEvent, VerifiedWebhook, WebhookError, WebhookRequest};

/// The longest idempotency key providers accept (Stripe's limit).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A key that makes a mutating provider call safe to retry: the provider
/// performs the call once per key and replays the first result afterwards.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency key must be 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// A key of 1 to 255 visible ASCII characters.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.into();
        let valid = !key.is_empty()
            && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(IdempotencyKey(key))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    /// A key for one step of a larger operation, e.g. `"{merchant_key}:capture"`:
    /// stable across retries of the same operation, distinct between steps.
    pub fn derive(&self, step: &str) -> Result<Self, InvalidIdempotencyKey> {
        IdempotencyKey::new(format!("{}:{step}", self.0))
    }

    /// The key as sent to the provider.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Create a payment intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIntent {
    /// What to collect.
    pub amount: Money,
    /// Capture on confirmation, or authorize only.
    pub capture_method: CaptureMethod,
    /// Confirm at once (server-side flow) instead of leaving it to the client.
    pub confirm: bool,
    /// The provider customer to charge.
    pub customer: Option<String>,
    /// The payment method to charge.
    pub payment_method: Option<String>,
    /// The customer is not present (a saved card charged later).
    pub off_session: bool,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// Free-form metadata (the application's `order_id`).
    pub metadata: Metadata,
    /// Shown in the provider's dashboard.
    pub description: Option<String>,
    /// Suffix of the statement descriptor on the customer's statement.
    pub statement_descriptor_suffix: Option<String>,
    /// Where the provider sends the receipt.
    pub receipt_email: Option<String>,
}

impl CreateIntent {
    /// An unconfirmed, automatically captured intent for `amount`; set the other fields as needed.
    pub fn new(amount: Money) -> Self {
        CreateIntent {
            amount,
            capture_method: CaptureMethod::Automatic,
            confirm: false,
            customer: None,
            payment_method: None,
            off_session: false,
            return_url: None,
            metadata: Metadata::new(),
            description: None,
            statement_descriptor_suffix: None,
            receipt_email: None,
        }
    }
}

/// Change an intent that is not yet confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateIntent {
    /// A new amount (same currency as the intent).
    pub amount: Option<Money>,
    /// Metadata keys to set (merged into what the intent has).
    pub metadata: Option<Metadata>,
    /// A new description.
    pub description: Option<String>,
}

/// Confirm an intent: attempt the payment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfirmIntent {
    /// The payment method to use, if not attached yet.
    pub payment_method: Option<String>,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// The customer is not present.
    pub off_session: bool,
}

/// Capture an authorized intent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaptureIntent {
    /// Minor units to capture; `None` captures everything capturable.
    /// The rest of the authorization is released.
    pub amount_to_capture: Option<i64>,
}

/// Cancel an intent that is not yet captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CancelIntent {
    /// Stripe's reasons: `duplicate`, `fraudulent`, `requested_by_customer`, `abandoned`.
    pub reason: Option<String>,
}

/// Refund a captured intent, in full or in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRefund {
    /// The intent to refund.
    pub payment_intent: String,
    /// Minor units to refund; `None` refunds everything not yet refunded.
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
}

impl CreateRefund {
    /// A full refund of `payment_intent`.
    pub fn full(payment_intent: impl Into<String>) -> Self {
        CreateRefund {
            payment_intent: payment_intent.into(),
            amount: None,
            reason: None,
            metadata: Metadata::new(),
        }
    }

    /// A refund of `amount` minor units of `payment_intent`.
    pub fn partial(payment_intent: impl Into<String>, amount: i64) -> Self {
        CreateRefund {
            amount: Some(amount),
            ..CreateRefund::full(payment_intent)
        }
    }
}

/// Create a customer to save payment methods to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateCustomer {
    /// The customer's email address.
    pub email: Option<String>,
    /// The customer's name.
    pub name: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
}

/// What a provider can do; what it cannot answers [`ProviderError::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Authorize now, capture later.
    pub manual_capture: bool,
    /// Capture less than was authorized.
    pub partial_capture: bool,
    /// Refund captured payments.
    pub refunds: bool,
    /// Refund part of a payment.
    pub partial_refunds: bool,
    /// Customers and saved payment methods.
    pub saved_payment_methods: bool,
    /// 3-D Secure and other customer actions.
    pub customer_actions: bool,
    /// Change the amount of an unconfirmed intent.
    pub update_amount: bool,
    /// Signed inbound webhooks.
    pub webhooks: bool,
}

impl Capabilities {
    /// Everything the trait describes.
    pub const FULL: Capabilities = Capabilities {
        manual_capture: true,
        partial_capture: true,
        refunds: true,
        partial_refunds: true,
        saved_payment_methods: true,
        customer_actions: true,
        update_amount: true,
        webhooks: true,
    };
}

/// A payment provider account: Stripe, the mock, or your own.
///
/// One instance per provider account. Every mutating call takes an
/// [`IdempotencyKey`] that the provider passes on, so a retried call never
/// charges twice. The trait is object-safe: the gateway holds providers as
/// `Arc<dyn PaymentProvider>`.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The provider's registered name (`stripe`, `mock`).
    fn name(&self) -> &str;

    /// What this provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Create a payment intent (and confirm it when `request.confirm`).
    async fn create_intent(
        &self,
        request: CreateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError>;

    /// Fetch an intent as the provider has it now.
    async fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, ProviderError>;

    /// Change the amount, metadata or description of an intent.
    async fn update_intent(
        &self,
        intent_id: &str,
        request: UpdateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError>;

    /// Attempt the payment.
    async fn confirm_intent(
        &self,
        intent_id: &str,
        request: ConfirmIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError>;

    /// Capture an authorized intent, in full or in part.
    async fn capture_intent(
        &self,
        intent_id: &str,
        request: CaptureIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError>;

    /// Cancel an intent that is not captured.
    async fn cancel_intent(
        &self,
        intent_id: &str,
        request: CancelIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError>;

    /// Refund a captured intent, in full or in part.
    async fn create_refund(
        &self,
        request: CreateRefund,
        key: &IdempotencyKey,
    ) -> Result<Refund, ProviderError>;

    /// Fetch a refund.
    async fn retrieve_refund(&self, refund_id: &str) -> Result<Refund, ProviderError>;

    /// Create a customer.
    async fn create_customer(
        &self,
        request: CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<Customer, ProviderError>;

    /// Save a payment method to a customer.
    async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError>;

    /// The card payment methods saved to a customer.
    async fn list_payment_methods(&self, customer_id: &str)
        -> Result<Vec<SavedPaymentMethod>, ProviderError>;

    /// Remove a saved payment method from its customer.
    async fn detach_payment_method(
        &self,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError>;

    /// Check an inbound webhook's signature on its raw bytes and read, leniently,
    /// only what is needed to store and deduplicate it (event id and type).
    ///
    /// Cheap and synchronous: the gateway calls it before storing the event.
    fn verify_webhook(&self, request: &WebhookRequest) -> Result<VerifiedWebhook, WebhookError>;

    /// Turn a verified webhook into a provider event with the object's new state,
    /// retrieving the object through the API where the event lacks what is needed.
    async fn interpret_webhook(&self, webhook: &VerifiedWebhook) -> Result<ProviderEvent, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_validated_and_derived() {
        assert!(IdempotencyKey::new("order-42").is_ok());
        assert_eq!(IdempotencyKey::new(""), Err(InvalidIdempotencyKey));
        assert_eq!(IdempotencyKey::new("has space"), Err(InvalidIdempotencyKey));
        assert_eq!(IdempotencyKey::new("é"), Err(InvalidIdempotencyKey));
        assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
        assert_eq!(IdempotencyKey::new("k".repeat(256)), Err(InvalidIdempotencyKey));
        let key = IdempotencyKey::new("abc").unwrap();
        assert_eq!(key.derive("capture").unwrap().as_str(), "abc:capture");
    }

    #[test]
    fn the_trait_is_object_safe() {
        fn takes(_: Option<&dyn PaymentProvider>) {}
        takes(None);
    }
}
