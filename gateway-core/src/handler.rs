//! Payment handlers: what `#[payment_handler]` registers, and what a handler receives.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::EventBus;
use crate::error::ProviderError;
use crate::events::{EventKind, IntentEventType, SharedChange};
use crate::intent::PaymentIntent;
use crate::provider::PaymentProvider;

/// The future a handler returns, boxed so handlers of every type fit one registry.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// Why a handler failed. Any error converts into it with `?`.
///
/// Failures are retried (up to the handler's `retries`) unless made with
/// [`HandlerError::permanent`].
pub struct HandlerError {
    message: String,
    retryable: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retryable: true,
            source: None,
        }
    }

    /// A failure that retrying cannot fix (bad data, a refused request).
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            retryable: false,
            ..HandlerError::new(message)
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the bus retries after this failure.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The underlying error, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let retryable = match (&error as &dyn Any).downcast_ref::<ProviderError>() {
            Some(provider_error) => provider_error.is_retryable(),
            None => true,
        };
        HandlerError {
            message: error.to_string(),
            retryable,
            source: Some(Box::new(error)),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .finish()
    }
}

/// How the bus runs one handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Retries after the first failed attempt (so `retries + 1` attempts at most).
    pub retries: u32,
    /// How long one attempt may take before it counts as failed.
    pub timeout: Duration,
    /// Run only for changes this instance received (`context.local`), never for
    /// changes relayed from another instance of a cluster.
    pub local_only: bool,
}

impl HandlerOptions {
    /// Three retries, a 30-second timeout, every instance.
    pub const DEFAULT: HandlerOptions = HandlerOptions {
        retries: 3,
        timeout: Duration::from_secs(30),
        local_only: false,
    };
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions::DEFAULT
    }
}

/// Calls a handler with a published change.
pub type HandlerCall = fn(SharedChange, HandlerContext) -> HandlerFuture;

/// A handler registered with `inventory` by `#[payment_handler]`.
#[derive(Debug)]
pub struct HandlerRegistration {
    /// The handler's name (the function's, unless `name = "…"` was given).
    pub name: &'static str,
    /// The crate that registered it (`CARGO_PKG_NAME`), to check plugins are linked.
    pub crate_name: &'static str,
    /// The kind it receives; `None` for every kind.
    pub kind: Option<EventKind>,
    /// Retries, timeout, local only.
    pub options: HandlerOptions,
    /// Calls the handler.
    pub call: HandlerCall,
}

inventory::collect!(HandlerRegistration);

/// Every handler registered with `#[payment_handler]` and linked into this
/// binary, sorted by name then crate (inventory's own order is unspecified).
pub fn registered_handlers() -> Vec<&'static HandlerRegistration> {
    let mut handlers: Vec<_> = inventory::iter::<HandlerRegistration>.into_iter().collect();
    handlers.sort_by_key(|handler| (handler.name, handler.crate_name));
    handlers
}

/// Wraps a typed handler function as a [`HandlerCall`]-compatible future: used by
/// the code `#[payment_handler]` generates, and by hand to register a plain function.
pub fn call_handler<E, Fut>(
    handler: fn(E, HandlerContext) -> Fut,
    change: SharedChange,
    ctx: HandlerContext,
) -> HandlerFuture
where
    E: IntentEventType,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    handler_future(handler(E::from_change(change), ctx))
}

/// A crate of payment handlers, declared with [`crate::declare_plugin!`].
///
/// Referencing the plugin from the binary (`EventBusBuilder::plugin`) makes
/// the linker keep the crate, and with it the handlers it registers: a crate
/// that nothing references is dropped whole, and its handlers silently with it.
#[derive(Debug)]
pub struct Plugin {
    /// The plugin crate's package name.
    pub crate_name: &'static str,
}

/// Declares the plugin of this crate as `pub static $name: Plugin`.
///
/// ```ignore
/// // In the plugin crate's lib.rs:
/// gateway::declare_plugin!(PLUGIN);
/// // In the binary:
/// let bus = EventBus::builder().plugin(&my_plugin::PLUGIN).build()?;
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($name:ident) => {
        /// This crate's payment handlers: pass it to `EventBusBuilder::plugin` to link them in.
        pub static $name: $crate::Plugin = $crate::Plugin {
            crate_name: ::core::env!("CARGO_PKG_NAME"),
        };
    };
}

/// Finds the provider that holds an intent, for handlers that act on it.
pub trait ProviderResolver: Send + Sync + 'static {
    /// The provider `name` for `merchant` (`None` for the gateway's own accounts).
    fn provider(&self, merchant: Option<&str>, name: &str) -> Option<Arc<dyn PaymentProvider>>;
}

/// A fixed set of providers by name, the same for every merchant.
#[derive(Clone, Default)]
pub struct StaticProviders(BTreeMap<String, Arc<dyn PaymentProvider>>);

impl StaticProviders {
    /// No providers.
    pub fn new() -> Self {
        StaticProviders::default()
    }

    /// Adds `provider` under its own name.
    pub fn with(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.0.insert(provider.name().to_owned(), provider);
        self
    }
}

impl ProviderResolver for StaticProviders {
    fn provider(&self, _merchant: Option<&str>, name: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.0.get(name).cloned()
    }
}

impl fmt::Debug for StaticProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[derive(Clone, Default)]
struct ContextParts {
    providers: Option<Arc<dyn ProviderResolver>>,
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

/// What a handler gets besides its event: the providers (to capture, refund,
/// retrieve), the bus, and whatever the application put in (its store, a
/// mailer) as typed extensions.
///
/// Cloning is cheap: one `Arc`.
#[derive(Clone)]
pub struct HandlerContext {
    parts: Arc<ContextParts>,
    bus: Option<EventBus>,
}

impl HandlerContext {
    /// A context with no providers and no extensions.
    pub fn new() -> Self {
        HandlerContext {
            parts: Arc::new(ContextParts::default()),
            bus: None,
        }
    }

    /// Sets how handlers find providers.
    pub fn with_providers(mut self, providers: impl ProviderResolver) -> Self {
        Arc::make_mut(&mut self.parts).providers = Some(Arc::new(providers));
        self
    }

    /// Adds a typed extension (the application's store, a client, …), one per type.
    pub fn with_extension<T: Any + Send + Sync>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.parts)
            .extensions
            .insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    pub(crate) fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The extension of type `T`, if one was added.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.parts.extensions.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The provider that holds `intent` (for the change's merchant).
    pub fn provider_for(
        &self,
        intent: &PaymentIntent,
        merchant: Option<&str>,
    ) -> Result<Arc<dyn PaymentProvider>, HandlerError> {
        self.parts
            .providers
            .as_ref()
            .and_then(|providers| providers.provider(merchant, &intent.provider))
            .ok_or_else(|| {
                HandlerError::permanent(format!("no provider {:?} available to handlers", intent.provider))
            })
    }

    /// The bus the handler was called from.
    pub fn bus(&self) -> Option<&EventBus> {
        self.bus.as_ref()
    }
}

impl Default for HandlerContext {
    fn default() -> Self {
        HandlerContext::new()
    }
}

impl fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerContext")
            .field("providers", &self.parts.providers.is_some())
            .field("extensions", &self.parts.extensions.len())
            .finish()
    }
}

/// What the second argument of a payment handler must be: [`HandlerContext`].
/// `#[payment_handler]` converts through it, so a wrong type is reported on that argument.
#[diagnostic::on_unimplemented(
    message = "the second argument of a payment handler must be `HandlerContext`, not `{Self}`",
    label = "expected `HandlerContext`",
    note = "write the handler as `async fn name(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError>`"
)]
pub trait IsHandlerContext {
    /// The context as the handler takes it.
    fn from_context(context: HandlerContext) -> Self;
}

impl IsHandlerContext for HandlerContext {
    fn from_context(context: HandlerContext) -> Self {
        context
    }
}

/// What a payment handler must return: `Result<(), HandlerError>`.
#[diagnostic::on_unimplemented(
    message = "a payment handler must return `Result<(), HandlerError>`, not `{Self}`",
    label = "expected `Result<(), HandlerError>`",
    note = "end the handler with `Ok(())`; use `?` to turn other errors into `HandlerError`"
)]
pub trait IsHandlerResult {
    /// The result as the bus records it.
    fn into_result(self) -> Result<(), HandlerError>;
}

impl IsHandlerResult for Result<(), HandlerError> {
    fn into_result(self) -> Result<(), HandlerError> {
        self
    }
}

/// A payment handler's future, boxed (the one allocation a handler call
/// makes). Its bounds are what a handler must meet: the future is `Send`
/// and `'static` (no reference or `Rc` held across an `.await`), and it
/// resolves to `Result<(), HandlerError>`.
pub fn handler_future<F, R>(future: F) -> HandlerFuture
where
    F: Future<Output = R> + Send + 'static,
    R: IsHandlerResult,
{
    Box::pin(async move { future.await.into_result() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct DiskFull;

    fn fails() -> Result<(), HandlerError> {
        Err(DiskFull)?;
        Ok(())
    }

    #[test]
    fn any_error_converts_and_provider_errors_keep_retryability() {
        let error = fails().unwrap_err();
        assert_eq!(error.message(), "disk full");
        assert!(error.is_retryable() && error.source().is_some());
        let declined: HandlerError = ProviderError::invalid(None, Some("amount"), "too much").into();
        assert!(!declined.is_retryable());
        let outage: HandlerError = ProviderError::unavailable("down").into();
        assert!(outage.is_retryable());
        assert!(!HandlerError::permanent("no").is_retryable());
    }

    #[test]
    fn context_extensions_are_typed() {
        struct Store(&'static str);
        let ctx = HandlerContext::new()
            .with_extension(Store("orders"))
            .with_extension(7u32);
        assert_eq!(ctx.extension::<Store>().map(|s| s.0), Some("orders"));
        assert_eq!(ctx.extension::<u32>(), Some(&7));
        assert!(ctx.extension::<String>().is_none());
        let clone = ctx.clone().with_extension(8u32);
        assert_eq!(
            (ctx.extension::<u32>(), clone.extension::<u32>()),
            (Some(&7), Some(&8))
        );
    }
}
