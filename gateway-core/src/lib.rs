//! Gateway core: money, payment intents, the [`PaymentProvider`] trait, the
//! provider registry and, with the `mock` feature, [`MockProvider`].
//!
//! Nothing here knows a concrete provider or the server: providers depend on
//! this crate, never the other way round.

mod bus;
mod checked;
mod customer;
mod error;
mod events;
mod handler;
mod intent;
mod money;
mod provider;
mod refund;
mod registry;
mod relay;
pub mod signature;
mod webhook;
mod wire_amount;

#[cfg(feature = "mock")]
pub mod mock;
#[cfg(any(test, feature = "mock"))]
pub mod testing;

pub use bus::{
    BusError, DispatchHandle, EventBus, EventBusBuilder, HandlerOutcome, Publication, WaitError, Watch,
};
pub use checked::{CheckedProvider, ObservedCall, ProviderObserver};
pub use customer::{CardDetails, Customer, SavedPaymentMethod};
pub use error::{ErrorSource, ProviderError, ProviderErrorKind};
pub use events::{
    AnyIntentEvent, ChangeSource, EventKind, IntentCanceled, IntentChange, IntentChangeContext,
    IntentCreated, IntentEventType, IntentPaymentFailed, IntentProcessing, IntentRefundFailed,
    IntentRefunded, IntentRequiresAction, IntentRequiresCapture, IntentSucceeded, SharedChange,
};
pub use handler::{
    call_handler, handler_future, registered_handlers, HandlerCall, HandlerContext, HandlerError,
    HandlerFuture, HandlerOptions, HandlerRegistration, IsHandlerContext, IsHandlerResult, Plugin,
    ProviderResolver, StaticProviders,
};
pub use intent::{
    CaptureMethod, IntentStatus, Metadata, NextAction, PaymentErrorDetails, PaymentIntent, PaymentStatus,
    UnixTimestamp, GATEWAY_MERCHANT_METADATA_KEY, GATEWAY_PAYMENT_METADATA_KEY, GATEWAY_REFUND_METADATA_KEY,
    ORDER_ID_METADATA_KEY,
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
pub use relay::MemoryRelay;
pub use webhook::{EventObject, ProviderEvent, VerifiedWebhook, WebhookError, WebhookRequest};
pub use wire_amount::{
    CurrencyRule, WireAmountRules, AMOUNT_TOO_LARGE, AMOUNT_TOO_SMALL, INVALID_CHARGE_AMOUNT,
};

/// Re-exports used by generated code and by this crate's macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use core::option::Option::{None, Some};
    pub use core::result::Result;
    pub use core::time::Duration;
    pub use std::boxed::Box;

    pub use async_trait::async_trait;
    pub use inventory;

    pub use crate::events::{IntentEventType, SharedChange};
    pub use crate::handler::{
        handler_future, HandlerContext, HandlerFuture, HandlerOptions, HandlerRegistration, IsHandlerContext,
        IsHandlerResult,
    };
}
