//! The event bus: publishes intent changes to handlers and watchers.
//!
//! ```
//! use gateway_core::{EventBus, HandlerContext, HandlerError, HandlerOptions, IntentSucceeded};
//!
//! async fn mark_paid(event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
//!     println!("order {:?} paid", event.intent.order_id());
//!     Ok(())
//! }
//!
//! // `#[payment_handler]` registers handlers for `registered_handlers()`; by hand:
//! let bus = EventBus::builder()
//!     .on::<IntentSucceeded, _>("mark_paid", HandlerOptions::DEFAULT, mark_paid)
//!     .build()
//!     .unwrap();
//! assert_eq!(bus.handler_names(), ["mark_paid"]);
//! ```

mod dedup;
mod dispatch;
mod watch;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::dedup::SeenEvents;
pub use self::dispatch::HandlerOutcome;
use self::watch::Watchers;
pub use self::watch::{WaitError, Watch};
use crate::events::{EventKind, IntentChange, IntentEventType, SharedChange};
use crate::handler::{
    call_handler, registered_handlers, HandlerContext, HandlerError, HandlerFuture, HandlerOptions, Plugin,
};

type DynCall = dyn Fn(SharedChange, HandlerContext) -> HandlerFuture + Send + Sync;

/// One handler as the bus runs it.
struct Handler {
    name: &'static str,
    crate_name: &'static str,
    kind: Option<EventKind>,
    options: HandlerOptions,
    call: Arc<DynCall>,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("crate", &self.crate_name)
            .field("kind", &self.kind)
            .field("options", &self.options)
            .finish()
    }
}

/// Why a bus could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A plugin was passed to the builder but none of its handlers is registered:
    /// the linker dropped the crate, or it has no `#[payment_handler]`.
    #[error("plugin {crate_name} is linked but registered no payment handler")]
    PluginHasNoHandlers {
        /// The plugin crate.
        crate_name: &'static str,
    },
    /// Two handlers share a name: their outcomes, metrics and timeline
    /// entries would be indistinguishable.
    #[error(
        "two payment handlers are named {name:?} (crates {first_crate:?} and {second_crate:?}): \
         rename one, or give it `#[payment_handler(name = \"…\")]`"
    )]
    DuplicateHandlerName {
        /// The shared name.
        name: &'static str,
        /// The crate of one of them (empty for a handler added by hand).
        first_crate: &'static str,
        /// The crate of the other.
        second_crate: &'static str,
    },
}

/// What [`EventBus::publish`] did with a change.
#[derive(Debug)]
#[must_use = "await `done()` to wait for the handlers, or drop it to let them run"]
pub enum Publication {
    /// The event id was published before: nothing was dispatched.
    Duplicate,
    /// Handlers run in the background; `done()` waits for them.
    Dispatched(DispatchHandle),
}

impl Publication {
    /// Waits until every handler finished with the change (immediately for a duplicate),
    /// and returns how each fared.
    pub async fn done(self) -> Vec<HandlerOutcome> {
        match self {
            Publication::Duplicate => Vec::new(),
            Publication::Dispatched(handle) => handle.done().await,
        }
    }

    /// Whether the change was a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Publication::Duplicate)
    }
}

/// The handlers of one published change, running in the background. Dropping it lets them run.
#[derive(Debug)]
pub struct DispatchHandle(JoinHandle<Vec<HandlerOutcome>>);

impl DispatchHandle {
    /// Waits for every handler and returns how each fared.
    pub async fn done(self) -> Vec<HandlerOutcome> {
        // The task catches handler panics itself; a join error means the runtime shut down.
        self.0.await.unwrap_or_default()
    }
}

/// Builds an [`EventBus`].
pub struct EventBusBuilder {
    include_registered: bool,
    handlers: Vec<Handler>,
    plugins: Vec<&'static Plugin>,
    context: HandlerContext,
    retry_backoff: Duration,
    dedup_capacity: usize,
    outcome_capacity: usize,
}

impl EventBusBuilder {
    /// Adds every handler registered with `#[payment_handler]` and linked into the binary.
    pub fn registered_handlers(mut self) -> Self {
        self.include_registered = true;
        self
    }

    /// Links a plugin crate (see [`crate::declare_plugin!`]): adds the registered
    /// handlers, and makes `build` fail if the plugin registered none.
    pub fn plugin(mut self, plugin: &'static Plugin) -> Self {
        self.plugins.push(plugin);
        self.registered_handlers()
    }

    /// Adds a handler for `kind` (`None`: every kind) from a plain function of the change.
    pub fn handler(
        mut self,
        name: &'static str,
        kind: Option<EventKind>,
        options: HandlerOptions,
        call: impl Fn(SharedChange, HandlerContext) -> HandlerFuture + Send + Sync + 'static,
    ) -> Self {
        self.handlers.push(Handler {
            name,
            crate_name: "",
            kind,
            options,
            call: Arc::new(call),
        });
        self
    }

    /// Adds a typed handler written as a plain `async fn(event: E, ctx: HandlerContext)`,
    /// the same function `#[payment_handler]` would register.
    pub fn on<E, Fut>(
        self,
        name: &'static str,
        options: HandlerOptions,
        handler: fn(E, HandlerContext) -> Fut,
    ) -> Self
    where
        E: IntentEventType,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.handler(name, E::KIND, options, move |change, ctx| {
            call_handler(handler, change, ctx)
        })
    }

    /// What handlers receive besides the event (providers, extensions).
    pub fn context(mut self, context: HandlerContext) -> Self {
        self.context = context;
        self
    }

    /// The pause before the first retry; it doubles with each further one (default 100 ms).
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.retry_backoff = base;
        self
    }

    /// How many recent event ids are remembered to drop duplicates (default 100 000).
    pub fn dedup_capacity(mut self, capacity: usize) -> Self {
        self.dedup_capacity = capacity.max(1);
        self
    }

    /// How many handler outcomes are kept for [`EventBus::outcomes`] (default 1 024).
    pub fn outcome_capacity(mut self, capacity: usize) -> Self {
        self.outcome_capacity = capacity;
        self
    }

    /// Builds the bus: reads the registry once and sorts handlers by name, so
    /// dispatch order is stable. Fails if a plugin registered no handler, or
    /// if two handlers share a name.
    pub fn build(self) -> Result<EventBus, BusError> {
        let mut handlers = self.handlers;
        if self.include_registered {
            handlers.extend(registered_handlers().into_iter().map(|registration| Handler {
                name: registration.name,
                crate_name: registration.crate_name,
                kind: registration.kind,
                options: registration.options,
                call: Arc::new(registration.call),
            }));
        }
        for plugin in &self.plugins {
            if !handlers
                .iter()
                .any(|handler| handler.crate_name == plugin.crate_name)
            {
                return Err(BusError::PluginHasNoHandlers {
                    crate_name: plugin.crate_name,
                });
            }
        }
        handlers.sort_by_key(|handler| (handler.name, handler.crate_name));
        if let Some(pair) = handlers.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(BusError::DuplicateHandlerName {
                name: pair[0].name,
                first_crate: pair[0].crate_name,
                second_crate: pair[1].crate_name,
            });
        }
        let by_kind = EventKind::ALL.map(|kind| {
            (0..handlers.len())
                .filter(|&index| handlers[index].kind.is_none_or(|wanted| wanted == kind))
                .collect()
        });
        Ok(EventBus {
            inner: Arc::new(BusInner {
                handlers,
                by_kind,
                context: self.context,
                retry_backoff: self.retry_backoff,
                seen: Mutex::new(SeenEvents::new(self.dedup_capacity)),
                watchers: Mutex::new(Watchers::default()),
                outcomes: Mutex::new(VecDeque::with_capacity(self.outcome_capacity)),
                outcome_capacity: self.outcome_capacity,
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        })
    }
}

struct BusInner {
    handlers: Vec<Handler>,
    /// Indices into `handlers` for each kind, in handler order.
    by_kind: [Vec<usize>; EventKind::ALL.len()],
    context: HandlerContext,
    retry_backoff: Duration,
    seen: Mutex<SeenEvents>,
    watchers: Mutex<Watchers>,
    outcomes: Mutex<VecDeque<HandlerOutcome>>,
    outcome_capacity: usize,
    in_flight: AtomicUsize,
    idle: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; never propagate a poison.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes intent changes to the handlers registered for their kind and to
/// watchers. Cloning gives another handle to the same bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("handlers", &self.inner.handlers)
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A builder with no handlers.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder {
            include_registered: false,
            handlers: Vec::new(),
            plugins: Vec::new(),
            context: HandlerContext::new(),
            retry_backoff: Duration::from_millis(100),
            dedup_capacity: 100_000,
            outcome_capacity: 1024,
        }
    }

    /// A bus with every registered handler and an empty context.
    pub fn new() -> Self {
        EventBus::builder()
            .registered_handlers()
            .build()
            .unwrap_or_else(|_| unreachable!("a bus without plugins always builds"))
    }

    /// What handlers receive besides the event.
    pub fn context(&self) -> &HandlerContext {
        &self.inner.context
    }

    /// The handlers' names, in dispatch order.
    pub fn handler_names(&self) -> Vec<&'static str> {
        self.inner.handlers.iter().map(|handler| handler.name).collect()
    }

    /// Publishes a change: watchers get it at once, and the handlers for its
    /// kind run in a background task (this needs a tokio runtime). An event id
    /// seen before is not dispatched again.
    pub fn publish(&self, change: IntentChange) -> Publication {
        if !lock(&self.inner.seen).insert(change.event_id()) {
            return Publication::Duplicate;
        }
        let change = Arc::new(change);
        lock(&self.inner.watchers).deliver(&change);

        let inner = Arc::clone(&self.inner);
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let bus = self.clone();
        let task = tokio::spawn(async move {
            let inner = &bus.inner;
            let indices = &inner.by_kind[change.kind.index()];
            // Sized once: one allocation per change, never one per handler.
            let mut selected: Vec<&Handler> = Vec::with_capacity(indices.len());
            selected.extend(
                indices
                    .iter()
                    .map(|&index| &inner.handlers[index])
                    .filter(|handler| change.context.local || !handler.options.local_only),
            );
            let context = inner.context.clone().with_bus(bus.clone());
            let outcomes = dispatch::run_handlers(&selected, &change, &context, inner.retry_backoff).await;
            drop(selected);
            inner.record(&outcomes);
            if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
            outcomes
        });
        Publication::Dispatched(DispatchHandle(task))
    }

    /// Waits until no published change has handlers still running.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The most recent handler outcomes, oldest first (up to the outcome capacity).
    pub fn outcomes(&self) -> Vec<HandlerOutcome> {
        lock(&self.inner.outcomes).iter().cloned().collect()
    }

    /// Every change published from now on, whatever the intent.
    pub fn watch_all(&self) -> Watch {
        Watch::register(&self.inner, None)
    }

    /// Every change of one intent from now on. The watch ends after the intent
    /// reaches a terminal status (and is removed from the bus then); watching
    /// an intent the bus saw end gives that last change at once.
    pub fn watch_payment(&self, intent_id: &str) -> Watch {
        Watch::register(&self.inner, Some(intent_id))
    }

    /// Waits for an intent to end: its succeeded intent, [`WaitError::Canceled`],
    /// or [`WaitError::TimedOut`] after `timeout`. Dropping the future unregisters it.
    pub async fn wait_for_payment(
        &self,
        intent_id: &str,
        timeout: Duration,
    ) -> Result<crate::intent::PaymentIntent, WaitError> {
        watch::wait_for_payment(self.watch_payment(intent_id), timeout).await
    }

    /// Live watchers (all and per intent), for tests that check nothing leaks.
    pub fn watcher_count(&self) -> usize {
        lock(&self.inner.watchers).len()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl BusInner {
    fn record(&self, outcomes: &[HandlerOutcome]) {
        if self.outcome_capacity == 0 {
            return;
        }
        let mut log = lock(&self.outcomes);
        for outcome in outcomes {
            if log.len() == self.outcome_capacity {
                log.pop_front();
            }
            log.push_back(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests;
