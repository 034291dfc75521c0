//! Gateway core: money, payment intents, the [`PaymentProvider`] trait, the
//! provider registry and, with the `mock` feature, [`MockProvider`].
//!
//! Nothing here knows a concrete provider or the server: providers depend on
//! this crate, never the other way round.

mod customer;
mod error;
mod intent;
mod money;
mod provider;
mod refund;
mod registry;
mod webhook;

#[cfg(feature = "mock")]
pub mod mock;

pub use customer::{CardDetails, Customer, SavedPaymentMethod};
pub use error::{ErrorSource, ProviderError, ProviderErrorKind};
pub use intent::{
    CaptureMethod, IntentStatus, Metadata, NextAction, PaymentErrorDetails, PaymentIntent, PaymentStatus,
    UnixTimestamp, ORDER_ID_METADATA_KEY,
};
#[cfg(feature = "mock")]
pub use mock::MockProvider;
pub use money::{format_minor_units, Currency, Money, MoneyError};
pub use provider::{
    CancelIntent, Capabilities, CaptureIntent, ConfirmIntent, CreateCustomer, CreateIntent, CreateRefund,
    IdempotencyKey, InvalidIdempotencyKey, PaymentProvider, UpdateIntent, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use refund::{Refund, RefundStatus};
pub use registry::{
    build_provider, provider_factories, provider_factory, BuildProvider, ProviderConfig, ProviderFactory,
};
pub use webhook::{EventObject, ProviderEvent, VerifiedWebhook, WebhookError, WebhookRequest};

/// Re-exports used by generated code and by this crate's macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
}
