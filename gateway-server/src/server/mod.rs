//! Building and running the HTTP server.

pub mod cli;
pub mod cluster;
pub(crate) mod config;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpServer};
use gateway_core::{
    build_provider, provider_factories, EventBus, HandlerContext, PaymentProvider, Plugin, ProviderConfig,
};
use tokio::sync::Notify;

use crate::app::api_keys::{KeyCache, RateLimiter};
use crate::app::core::{Clock, Core};
use crate::app::leases::SharedLocks;
use crate::app::outbound::Outbound;
use crate::app::providers::Providers;
use crate::domain::scopes::Scopes;
use crate::server::cluster::ClusterRelay;
use crate::server::config::Config;
use crate::store::{sqlite_path, Change, MerchantRow, Store, StoreError};
use crate::support::clock::now_ms;
use crate::support::crypto::{MasterKey, Sealer};
use crate::support::ids::new_id;
use crate::support::locks::KeyedLocks;
use crate::support::metrics::Metrics;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("storage: {0}")]
    Storage(String),
    /// A handler plugin is linked but registered no handler.
    #[error("handlers: {0}")]
    Handlers(String),
    /// The master key file could not be read or written.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<StoreError> for StartError {
    fn from(error: StoreError) -> Self {
        StartError::Storage(error.to_string())
    }
}

/// Configures and starts a gateway server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use gateway_core::MockProvider;
/// use gateway_server::{Config, ServerBuilder};
///
/// let mut config = Config::default();
/// config.listen = "127.0.0.1:0".into();
/// config.database_url = "sqlite:///tmp/gateway-test.db".into();
/// let server = ServerBuilder::new(config).provider(Arc::new(MockProvider::new())).start().await?;
/// println!("listening on {}", server.addr());
/// server.stop().await;
/// # Ok(()) }
/// ```
pub struct ServerBuilder {
    config: Config,
    providers: Vec<Arc<dyn PaymentProvider>>,
    clock: Option<Clock>,
    plugins: Vec<&'static Plugin>,
    context: Option<ContextHook>,
}

type ContextHook = Box<dyn FnOnce(HandlerContext) -> HandlerContext + Send>;

impl ServerBuilder {
    /// A server from `config`, with the providers registered in this binary.
    pub fn new(config: Config) -> Self {
        ServerBuilder {
            config,
            providers: Vec::new(),
            clock: None,
            plugins: Vec::new(),
            context: None,
        }
    }

    /// Links a handler plugin crate (`my_plugin::PLUGIN`): starting fails if
    /// none of its `#[payment_handler]`s is registered. Every registered
    /// handler runs whether or not its plugin is named here; naming it keeps
    /// the linker from dropping the crate.
    pub fn plugin(mut self, plugin: &'static Plugin) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Adds to what handlers receive (typed extensions such as an order
    /// book). The server's providers are already in it.
    pub fn handler_context(
        mut self,
        extend: impl FnOnce(HandlerContext) -> HandlerContext + Send + 'static,
    ) -> Self {
        self.context = Some(Box::new(extend));
        self
    }

    /// Replaces the wall clock (Unix seconds) used to check and make webhook
    /// signatures, e.g. to verify recorded test vectors at the time they state.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `provider` (e.g. a `MockProvider` a test keeps a handle to) instead
    /// of building providers from the registry. Call once per provider.
    pub fn provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// Opens the database, then binds and starts serving in the background.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let config = self.config;
        let opened = crate::store::open(&config.database_url).await?;
        let store = opened.store;
        let master_key = master_key(&config)?;
        let sandbox_key = if config.sandbox && store.merchant_count().await? == 0 {
            let (merchant_id, key) = create_merchant(&*store, "sandbox", Some(Scopes::all())).await?;
            tracing::info!(merchant = %merchant_id, "created the sandbox merchant");
            key
        } else {
            None
        };
        let metrics = Arc::new(Metrics::new());
        let providers = if self.providers.is_empty() {
            registry_providers(&config)
        } else {
            self.providers
        };
        let providers = Providers::new(providers, config.default_provider.clone(), metrics.clone());
        tracing::info!(providers = ?providers.global_names(), "providers");
        let mut context = HandlerContext::new()
            .with_providers(providers.resolver())
            .with_extension(store.clone());
        if let Some(extend) = self.context {
            context = extend(context);
        }
        let mut bus = EventBus::builder().registered_handlers().context(context);
        for plugin in self.plugins {
            bus = bus.plugin(plugin);
        }
        let bus = bus
            .build()
            .map_err(|error| StartError::Handlers(error.to_string()))?;
        tracing::info!(handlers = ?bus.handler_names(), "payment handlers");
        // On PostgreSQL, every instance's bus carries the others' changes (local = false).
        let relay = match opened.postgres {
            Some(pool) => Some(
                ClusterRelay::start(bus.clone(), pool)
                    .await
                    .map_err(|error| StartError::Storage(error.to_string()))?,
            ),
            None => None,
        };
        let clock: Clock = self.clock.unwrap_or_else(|| Arc::new(|| now_ms() / 1000));
        let state = Arc::new(Core {
            store: store.clone(),
            providers,
            keys: KeyCache::new(),
            rate_limiter: RateLimiter::new(config.rate_limit_per_second),
            sealer: Sealer::new(&master_key),
            metrics,
            idempotency_locks: KeyedLocks::new(),
            payment_locks: SharedLocks::new(store.clone(), |id| format!("payment:{id}")),
            customer_locks: SharedLocks::new(store.clone(), |(merchant, provider, email)| {
                format!("customer:{merchant}:{provider}:{email}")
            }),
            max_body_bytes: config.max_body_bytes,
            bus,
            outbound: Arc::new(Outbound::new(config.webhook_delivery)),
            event_locks: KeyedLocks::new(),
            clock,
        });
        let app_state = web::Data::from(state.clone());
        let mut server = HttpServer::new(move || crate::http::app(app_state.clone()));
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let server = server.bind(&config.listen).map_err(|source| StartError::Bind {
            address: config.listen.clone(),
            source,
        })?;
        let addr = server.addrs().first().copied().ok_or_else(|| StartError::Bind {
            address: config.listen.clone(),
            source: std::io::Error::other("no address bound"),
        })?;
        let server = server.disable_signals().shutdown_timeout(5).run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        let purge = tokio::spawn(crate::app::idempotency::purge_loop(store));
        let sweep = tokio::spawn(crate::app::inbound::sweep_loop(
            state.clone(),
            config.webhook_sweep_interval,
        ));
        let reconcile = tokio::spawn(crate::app::reconcile::reconcile_loop(
            state.clone(),
            config.reconcile,
        ));
        let stop_worker = Arc::new(Notify::new());
        let worker = crate::app::outbound::spawn_worker(state.clone(), stop_worker.clone());
        tracing::info!(%addr, "gateway listening");
        Ok(RunningServer {
            addr,
            handle,
            task,
            background: vec![purge, sweep, reconcile],
            worker: Some((stop_worker, worker)),
            state,
            sandbox_key,
            relay,
        })
    }
}

/// A started server; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    worker: Option<(Arc<Notify>, std::thread::JoinHandle<()>)>,
    state: Arc<Core>,
    sandbox_key: Option<String>,
    relay: Option<ClusterRelay>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Dropped without `stop` (a crash in tests): everything ends with it, unfinished.
        drop(self.handle.stop(false));
        for task in &self.background {
            task.abort();
        }
        if let Some((stop, _)) = &self.worker {
            stop.notify_one();
        }
    }
}

impl RunningServer {
    /// The address it listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sandbox merchant's API key, when this start created it (empty database).
    pub fn sandbox_key(&self) -> Option<&str> {
        self.sandbox_key.as_deref()
    }

    /// The event bus the server publishes payment changes on (handlers, watchers).
    pub fn bus(&self) -> &EventBus {
        &self.state.bus
    }

    /// Runs one reconciliation pass now over every pending payment, whatever
    /// `reconcile.after` says; returns how many payments it checked. For
    /// tests that heal a scenario before checking it against the provider.
    pub async fn reconcile_now(&self) -> usize {
        crate::app::reconcile::reconcile_pending_now(&self.state, 8).await
    }

    /// Stops accepting, finishes in-flight requests, stops the background
    /// tasks and the delivery worker, and waits.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some((stop, worker)) = self.worker.take() {
            stop.notify_one();
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        let _ = task.await;
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
    }

    /// Serves until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Builds every provider linked into the binary that its settings (or none) allow.
fn registry_providers(config: &Config) -> Vec<Arc<dyn PaymentProvider>> {
    #[cfg(feature = "stripe")]
    let _ = gateway_stripe::link();
    let mut providers = Vec::new();
    for factory in provider_factories() {
        let mut settings = ProviderConfig::new();
        for (key, value) in config.providers.get(factory.name).into_iter().flatten() {
            settings.set(key.clone(), value.clone());
        }
        match build_provider(factory.name, &settings) {
            Ok(provider) => providers.push(provider),
            Err(error) => tracing::info!(provider = factory.name, %error, "provider not enabled"),
        }
    }
    providers
}

/// The configured master key, or one kept in a file beside the database.
fn master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(hex) = &config.master_key {
        return MasterKey::from_hex(hex).ok_or_else(|| StartError::MasterKey("not 64 hex characters".into()));
    }
    if crate::store::postgres::is_postgres_url(&config.database_url) {
        // Every instance must open what the others sealed: a per-process key would not do.
        return Err(StartError::MasterKey(
            "GATEWAY_MASTER_KEY is required with PostgreSQL (every instance sharing the database needs the same key)"
                .into(),
        ));
    }
    let Some(db) = sqlite_path(&config.database_url) else {
        tracing::warn!("no GATEWAY_MASTER_KEY: using a key that lives only as long as this process");
        return Ok(MasterKey::generate());
    };
    let mut path = db.into_os_string();
    path.push(".master-key");
    let path = Path::new(&path);
    if let Ok(text) = std::fs::read_to_string(path) {
        return MasterKey::from_hex(&text).ok_or_else(|| {
            StartError::MasterKey(format!("{} does not hold 64 hex characters", path.display()))
        });
    }
    let key = MasterKey::generate();
    write_private(path, &key.to_hex())
        .map_err(|error| StartError::MasterKey(format!("{}: {error}", path.display())))?;
    tracing::warn!(
        file = %path.display(),
        "no GATEWAY_MASTER_KEY configured: generated one into this file; set GATEWAY_MASTER_KEY in production"
    );
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// Creates a merchant, and an API key with `scopes` when given; returns the id and key.
pub(crate) async fn create_merchant(
    store: &dyn Store,
    name: &str,
    scopes: Option<Scopes>,
) -> Result<(String, Option<String>), StoreError> {
    let merchant = MerchantRow {
        id: new_id(),
        name: name.to_owned(),
        webhook_url: None,
        created_at: now_ms(),
    };
    let mut changes = vec![Change::InsertMerchant(merchant.clone())];
    let key = scopes.map(|scopes| {
        let (row, key) = crate::app::merchants::new_key_row(&merchant.id, scopes);
        changes.push(Change::InsertApiKey(row));
        key
    });
    store.commit(changes).await?;
    Ok((merchant.id, key))
}
