#![doc = include_str!("../README.md")]
//!
//! ## This crate
//!
//! `gateway` is the facade applications depend on. It re-exports
//! [`gateway_core`] (money, payment intents, the [`PaymentProvider`] trait,
//! the [`EventBus`], [`MockProvider`]) and the [`payment_handler`]
//! attribute, so an application adds one dependency.
//!
//! ## Writing a plugin
//!
//! A plugin is a crate of handlers. Each is a plain `async fn` taking a typed
//! event and the [`HandlerContext`]; `#[payment_handler]` registers it for
//! its event type, with no registration code:
//!
//! ```
//! use std::sync::Arc;
//!
//! use gateway::{
//!     payment_handler, CaptureIntent, CaptureMethod, CreateIntent, Currency, EventBus, HandlerContext,
//!     HandlerError, IdempotencyKey, IntentRequiresCapture, IntentSucceeded, MemoryRelay, MockProvider, Money,
//!     PaymentProvider, StaticProviders,
//! };
//!
//! // In the plugin crate: declare the plugin once…
//! gateway::declare_plugin!(PLUGIN);
//!
//! // …and write handlers.
//! #[payment_handler(retries = 5, timeout = "10s")]
//! async fn fulfil_order(event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
//!     let order_id = event.intent.order_id().ok_or_else(|| HandlerError::permanent("no order id"))?;
//!     println!("ship order {order_id}: {} received", event.intent.amount_received);
//!     Ok(())
//! }
//!
//! /// Captures authorized payments through the provider that holds them;
//! /// `local_only`: only the gateway instance that received the change does it.
//! #[payment_handler(local_only)]
//! async fn capture_at_once(event: IntentRequiresCapture, ctx: HandlerContext) -> Result<(), HandlerError> {
//!     let provider = ctx.provider_for(&event.intent, event.context.merchant.as_deref())?;
//!     let key = IdempotencyKey::new(format!("capture:{}", event.intent.id))?;
//!     provider.capture_intent(&event.intent.id, CaptureIntent::default(), &key).await?;
//!     Ok(())
//! }
//!
//! // In the binary: name the plugin, so the linker keeps its crate (a crate
//! // nothing refers to is dropped whole, its handlers with it), and `build`
//! // fails if its handlers are missing.
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = MockProvider::new();
//! let bus = EventBus::builder()
//!     .plugin(&PLUGIN)
//!     .context(HandlerContext::new().with_providers(StaticProviders::new().with(Arc::new(mock.clone()))))
//!     .build()?;
//! assert_eq!(bus.handler_names(), ["capture_at_once", "fulfil_order"]);
//!
//! // A manual-capture payment: the handler captures it, then the order ships.
//! let mut request = CreateIntent::new(Money::parse("30.00", Currency::USD)?);
//! request.payment_method = Some("pm_card_visa".into());
//! request.confirm = true;
//! request.capture_method = CaptureMethod::Manual;
//! request.metadata.insert("order_id".into(), "order-7".into());
//! mock.create_intent(request, &IdempotencyKey::new("order-7")?).await?;
//!
//! // The gateway server feeds the bus from provider webhooks; here, by hand.
//! let relay = MemoryRelay::new(Arc::new(mock.clone()), bus.clone());
//! relay.relay_all(&mock.take_events()).await?;
//! relay.relay_all(&mock.take_events()).await?; // the capture's own events
//! assert_eq!(mock.stats().executed("capture_intent"), 1);
//! # Ok(()) }
//! ```
//!
//! Tests swap the provider for [`MockProvider`], script outcomes (declines,
//! 3-D Secure, faults) and assert on [`EventBus::outcomes`]: which handler ran
//! for which event, how many attempts, and the last error.

pub use gateway_core::*;
pub use gateway_macros::payment_handler;
/// The Stripe provider (feature `stripe`).
#[cfg(feature = "stripe")]
pub use gateway_stripe as stripe;
