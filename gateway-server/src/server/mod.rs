//! Building and running the HTTP server.

pub mod cli;
pub mod cluster;
pub(crate) mod config;
pub(crate) mod dev_cli;
pub(crate) mod egress_client;
pub(crate) mod settings;
pub(crate) mod sse;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::{web, HttpServer};
use gateway_core::{
    build_provider, provider_factories, EventBus, HandlerContext, PaymentProvider, Plugin, ProviderConfig,
};
use tokio::sync::{mpsc, Notify};

use crate::app::api_keys::{AuthFailures, KeyCache, RateLimiter, INVALID_KEYS_CACHED, VALID_KEYS_CACHED};
use crate::app::core::{Clock, Core};
use crate::app::egress::{check_url, Egress};
use crate::app::invalidation::Peers;
use crate::app::leases::SharedLocks;
use crate::app::live::LiveLimits;
use crate::app::outbound::Outbound;
use crate::app::providers::{is_credential, randomize_mock, Providers, MOCK};
use crate::domain::scopes::Scopes;
use crate::server::cluster::{CacheLink, ClusterRelay};
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
    /// The providers cannot serve as configured (an ambiguous or unknown
    /// default, the mock outside sandbox mode, settings a provider refuses).
    #[error("providers: {0}")]
    Providers(String),
    /// The operating system's random generator failed: no key or secret can be made.
    #[error("random generator: {0}")]
    Random(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The outbound settings cannot be used: a provider API base the egress
    /// policy refuses, or an unreadable webhook CA file.
    #[error("egress: {0}")]
    Egress(String),
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
    /// book). The server's providers are already in it. Called several
    /// times, each extension applies, in order.
    pub fn handler_context(
        mut self,
        extend: impl FnOnce(HandlerContext) -> HandlerContext + Send + 'static,
    ) -> Self {
        self.context = Some(match self.context.take() {
            Some(earlier) => Box::new(move |context| extend(earlier(context))),
            None => Box::new(extend),
        });
        self
    }

    /// Replaces the wall clock (Unix seconds) used to check and make webhook
    /// signatures, e.g. to verify recorded test vectors at the time they state.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `provider` (e.g. a `MockProvider` a test keeps a handle to) instead
    /// of building providers from the registry. Call once per provider; with
    /// several, name the default in `Config::default_provider`. A provider
    /// named `mock` is refused unless `Config::mode` is `Mode::Sandbox`.
    pub fn provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// The gateway-wide providers `start` would offer and the default one
    /// (`None` when none is), checked as `start` checks them, without opening
    /// the database or binding: what `gateway config` reports.
    pub(crate) fn check_providers(&self) -> Result<(Vec<String>, Option<String>), StartError> {
        let providers = offered_providers(&self.config, self.providers.clone(), Arc::new(Metrics::new()))?;
        Ok((
            providers.global_names(),
            providers.default_name().map(str::to_owned),
        ))
    }

    /// Builds the providers (refusing, before anything is stored, a mock
    /// outside sandbox mode and a default provider that is unknown or
    /// ambiguous), opens the database, then binds and starts serving in the
    /// background.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let config = self.config;
        if let Some(warning) = &config.mode_warning {
            tracing::warn!("{warning}");
        }
        // A generator that fails now would fail every key and secret later: stop here.
        crate::support::ids::check_random().map_err(|error| StartError::Random(error.to_string()))?;
        let egress = egress(&config).await?;
        // The providers first: a configuration they refuse stops the start before anything is stored.
        let metrics = Arc::new(Metrics::new());
        let providers = offered_providers(&config, self.providers, metrics.clone())?;
        tracing::info!(
            providers = ?providers.global_names(),
            default = providers.default_name().unwrap_or("(none)"),
            sandbox = config.is_sandbox(),
            "providers"
        );
        let opened = crate::store::open(&config.database_url).await?;
        let store = opened.store;
        let master_key = master_key(&config)?;
        let sandbox_key = if config.is_sandbox() && store.merchant_count().await? == 0 {
            let (merchant_id, key) = create_merchant(&*store, "sandbox", Some(Scopes::all())).await?;
            tracing::info!(merchant = %merchant_id, "created the sandbox merchant");
            key
        } else {
            None
        };
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
        // On PostgreSQL, every instance's bus carries the others' changes (local = false),
        // and what a change made stale in one instance's caches is forgotten by all.
        let (relay, peers, notices) = match opened.postgres {
            Some(pool) => {
                let (announce, outgoing) = mpsc::unbounded_channel();
                let (incoming, notices) = mpsc::unbounded_channel();
                let relay = ClusterRelay::start_linked(
                    bus.clone(),
                    pool,
                    Some(CacheLink { outgoing, incoming }),
                    metrics.clone(),
                )
                .await
                .map_err(|error| StartError::Storage(error.to_string()))?;
                (Some(relay), Peers::through(announce), Some(notices))
            }
            None => (None, Peers::none(), None),
        };
        let clock: Clock = self.clock.unwrap_or_else(|| Arc::new(|| now_ms() / 1000));
        let state = Arc::new(Core {
            store: store.clone(),
            providers,
            keys: KeyCache::new(VALID_KEYS_CACHED, INVALID_KEYS_CACHED),
            rate_limiter: RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst),
            sealer: Sealer::new(&master_key),
            metrics,
            idempotency_locks: KeyedLocks::new(),
            payment_locks: SharedLocks::new(store.clone(), |id| format!("payment:{id}")),
            customer_locks: SharedLocks::new(store.clone(), |(merchant, provider, email)| {
                format!("customer:{merchant}:{provider}:{email}")
            }),
            max_body_bytes: config.max_body_bytes,
            bus,
            outbound: Arc::new(Outbound::new(config.webhook_delivery).with_limits(config.webhook_limits)),
            event_locks: KeyedLocks::new(),
            clock,
            peers,
            auth_failures: AuthFailures::new(config.auth_failures_per_minute),
            live: LiveLimits::new(config.live_per_merchant, config.live_stream_max),
            body_read_timeout: config.body_read_timeout,
            egress,
        });
        let app_state = web::Data::from(state.clone());
        let mut server = HttpServer::new(move || crate::http::app(app_state.clone()));
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        // Slow clients are cut off (head, body, idle keep-alive, closing) and
        // each worker serves a bounded number of connections, so they cannot
        // take every file descriptor.
        let server = server
            .client_request_timeout(config.request_head_timeout)
            .client_disconnect_timeout(config.client_disconnect_timeout)
            .keep_alive(if config.keep_alive.is_zero() {
                KeepAlive::Disabled
            } else {
                KeepAlive::Timeout(config.keep_alive)
            })
            .max_connections(config.max_connections)
            .backlog(config.backlog);
        let server = server.bind(&config.listen).map_err(|source| StartError::Bind {
            address: config.listen.clone(),
            source,
        })?;
        let addr = server.addrs().first().copied().ok_or_else(|| StartError::Bind {
            address: config.listen.clone(),
            source: std::io::Error::other("no address bound"),
        })?;
        let server = server
            .disable_signals()
            .shutdown_timeout(shutdown_grace(&config).as_secs())
            .run();
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
        let mut background = vec![purge, sweep, reconcile];
        background.push(tokio::spawn(crate::app::retention::prune_loop(
            state.store.clone(),
            config.retention,
        )));
        if let Some(notices) = notices {
            background.push(tokio::spawn(crate::app::invalidation::forget_loop(
                state.clone(),
                notices,
            )));
        }
        let stop_worker = Arc::new(Notify::new());
        let worker = crate::app::outbound::spawn_worker(state.clone(), stop_worker.clone());
        tracing::info!(%addr, "gateway listening");
        Ok(RunningServer {
            addr,
            handle,
            task,
            background,
            worker: Some((stop_worker, worker)),
            state,
            sandbox_key,
            relay,
            retention: config.retention,
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
    retention: std::time::Duration,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Dropped without `stop` (a crash in tests): everything ends with it, unfinished.
        self.state.live.stop();
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

    /// Runs one healing pass now, whatever the configured ages and backoffs
    /// say: processes every stored inbound event not yet processed, resolves
    /// every unknown outcome, then reconciles every pending payment; returns
    /// how many events, payments and refunds it took up. For operators'
    /// tooling and for tests that heal a scenario before checking it against
    /// the provider.
    pub async fn reconcile_now(&self) -> usize {
        let swept = crate::app::inbound::sweep_once(&self.state, i64::MAX).await;
        let resolved = crate::app::resolve::resolve_unresolved(&self.state, std::time::Duration::ZERO).await;
        swept + resolved + crate::app::reconcile::reconcile_pending_now(&self.state, 8).await
    }

    /// Runs one retention pass now: deletes processed inbound provider events
    /// and finished merchant webhook deliveries (with their attempts) older
    /// than `Config::retention`, in bounded batches; returns what it deleted.
    /// For operators' tooling and tests.
    pub async fn prune_now(&self) -> Result<crate::app::retention::Pruned, String> {
        crate::app::retention::prune_once(&*self.state.store, self.retention)
            .await
            .map_err(|error| error.to_string())
    }

    /// Resolves now every payment whose provider call has no stored answer
    /// (as reconciliation does once such a call can no longer be in flight),
    /// whatever its age; returns how many were resolved. For operators'
    /// tooling and tests.
    pub async fn resolve_unknown_outcomes(&self) -> usize {
        crate::app::resolve::resolve_unresolved(&self.state, std::time::Duration::ZERO).await
    }

    /// Stops accepting and lets in-flight requests finish, waiting for up
    /// to the provider time bound (`Config::provider_timeout`) and 5 s more
    /// to store what their provider calls returned; then stops the
    /// background tasks and the delivery worker, and waits for them.
    pub async fn stop(mut self) {
        // Event streams and long polls end first: the graceful stop would otherwise wait for them.
        self.state.live.stop();
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

/// The providers a server offers: `given` (through [`ServerBuilder::provider`]),
/// else those of the registry; refusing a mock outside sandbox mode and a
/// default provider that is unknown or ambiguous.
fn offered_providers(
    config: &Config,
    given: Vec<Arc<dyn PaymentProvider>>,
    metrics: Arc<Metrics>,
) -> Result<Providers, StartError> {
    let providers = if given.is_empty() {
        registry_providers(config)?
    } else {
        given
    };
    Ok(Providers::new(
        providers,
        config.default_provider.clone(),
        config.is_sandbox(),
        metrics,
        config.provider_timeout,
    )
    .map_err(|error| StartError::Providers(error.to_string()))?
    .with_operator_settings(&config.providers))
}

/// Builds the gateway-wide providers linked into the binary: each one the
/// configuration has settings for (refusing to start if they do not build),
/// each other one that needs no settings, and the mock in sandbox mode only,
/// with a random id seed and webhook secret unless they are configured.
fn registry_providers(config: &Config) -> Result<Vec<Arc<dyn PaymentProvider>>, StartError> {
    #[cfg(feature = "stripe")]
    let _ = gateway_stripe::link();
    let mut providers = Vec::new();
    for factory in provider_factories() {
        let configured = config.providers.get(factory.name);
        if factory.name == MOCK && !config.is_sandbox() {
            if configured.is_some() {
                return Err(StartError::Providers(
                    "the mock provider is configured, but it is offered in sandbox mode only: remove its \
                     settings (GATEWAY_MOCK_*), or set GATEWAY_MODE=sandbox"
                        .to_owned(),
                ));
            }
            tracing::info!("the mock provider is not offered: GATEWAY_MODE=production");
            continue;
        }
        let mut settings = ProviderConfig::new();
        for (key, value) in configured.into_iter().flatten() {
            settings.set(key.clone(), value.clone());
        }
        if factory.name == MOCK {
            randomize_mock(&mut settings).map_err(|error| StartError::Random(error.to_string()))?;
        }
        match build_provider(factory.name, &settings) {
            Ok(provider) => providers.push(provider),
            Err(error)
                if configured
                    .is_some_and(|settings| settings.keys().any(|key| is_credential(factory.name, key))) =>
            {
                return Err(StartError::Providers(format!(
                    "the {} settings do not build the provider: {error}",
                    factory.name
                )))
            }
            Err(error) if configured.is_some() => tracing::info!(
                provider = factory.name,
                %error,
                "no gateway-wide account (no credentials configured); the endpoint settings apply to merchant accounts"
            ),
            Err(error) => tracing::info!(provider = factory.name, %error, "provider not enabled"),
        }
    }
    Ok(providers)
}

/// The outbound address policy (checking the operator's provider API bases
/// against it: a start with a refused one fails, naming the setting) and the
/// merchant-webhook client.
async fn egress(config: &Config) -> Result<Egress, StartError> {
    let policy = Arc::new(config.egress_policy());
    for (provider, settings) in &config.providers {
        if let Some(base) = settings.get("api_base").filter(|base| !base.trim().is_empty()) {
            check_url(&policy, base.trim()).await.map_err(|refusal| {
                StartError::Egress(format!(
                    "the {provider} api_base is not an allowed destination: it {refusal}; allow it with \
                     GATEWAY_EGRESS_ALLOW_HTTP / GATEWAY_EGRESS_ALLOW_NETS"
                ))
            })?;
        }
    }
    let tls = egress_client::tls_config(config.webhook_ca_file.as_deref())
        .map_err(|error| StartError::Egress(error.to_string()))?;
    Ok(Egress {
        webhook_client: egress_client::webhook_client_factory(policy.clone(), tls),
        policy,
    })
}

/// How long a graceful stop waits for in-flight requests: the provider time
/// bound (a provider call never takes longer), and a little to store what
/// the call returned.
fn shutdown_grace(config: &Config) -> std::time::Duration {
    config.provider_timeout + SHUTDOWN_MARGIN
}

/// What a graceful stop adds to the provider time bound, to store the result of a call.
const SHUTDOWN_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

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
        return generated_key();
    };
    let mut path = db.into_os_string();
    path.push(".master-key");
    let path = Path::new(&path);
    if let Ok(text) = std::fs::read_to_string(path) {
        return MasterKey::from_hex(&text).ok_or_else(|| {
            StartError::MasterKey(format!("{} does not hold 64 hex characters", path.display()))
        });
    }
    let key = generated_key()?;
    write_private(path, &key.to_hex())
        .map_err(|error| StartError::MasterKey(format!("{}: {error}", path.display())))?;
    tracing::warn!(
        file = %path.display(),
        "no GATEWAY_MASTER_KEY configured: generated one into this file; set GATEWAY_MASTER_KEY in production"
    );
    Ok(key)
}

fn generated_key() -> Result<MasterKey, StartError> {
    MasterKey::generate().ok_or_else(|| StartError::Random("cannot generate a master key".to_owned()))
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
) -> Result<(String, Option<String>), StartError> {
    let merchant = MerchantRow {
        id: new_id(),
        name: name.to_owned(),
        webhook_url: None,
        created_at: now_ms(),
    };
    let mut changes = vec![Change::InsertMerchant(merchant.clone())];
    let key = scopes.map(|scopes| {
        let (row, key) = crate::app::merchants::new_key_row(&merchant.id, scopes)
            .map_err(|error| StartError::Random(error.to_string()))?;
        changes.push(Change::InsertApiKey(row));
        Ok::<_, StartError>(key)
    });
    let key = key.transpose()?;
    store.commit(changes).await?;
    Ok((merchant.id, key))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use gateway_core::mock::Fault;
    use gateway_core::MockProvider;

    use super::*;

    #[test]
    fn handler_context_extensions_add_up_in_order() {
        #[derive(Debug, PartialEq)]
        struct Shop(&'static str);
        #[derive(Debug, PartialEq)]
        struct Ledger(u32);
        let builder = ServerBuilder::new(Config::default())
            .handler_context(|ctx| ctx.with_extension(Shop("first")).with_extension(Ledger(1)))
            .handler_context(|ctx| ctx.with_extension(Shop("second")));
        let context = (builder.context.expect("a context hook"))(HandlerContext::new());
        assert_eq!(
            context.extension::<Ledger>(),
            Some(&Ledger(1)),
            "the first still applies"
        );
        assert_eq!(
            context.extension::<Shop>(),
            Some(&Shop("second")),
            "the later one last"
        );
    }

    #[actix_web::test]
    async fn a_graceful_stop_waits_for_a_provider_call_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".to_owned(),
            database_url: format!("sqlite://{}", dir.path().join("stop.db").display()),
            master_key: Some("0123456789abcdef".repeat(4)),
            workers: 1,
            ..Config::default()
        };
        assert!(shutdown_grace(&config) >= config.provider_timeout);
        let mock = MockProvider::new();
        let server = ServerBuilder::new(config)
            .provider(Arc::new(mock.clone()))
            .start()
            .await
            .unwrap();
        let key = server.sandbox_key().unwrap().to_owned();
        // Longer than actix's default of 5 s, well within the provider time bound.
        mock.inject_fault(Fault::Slow(Duration::from_secs(6)));
        let url = format!("http://{}/v1/payments", server.addr());
        let request = actix_web::rt::spawn(async move {
            let mut response = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish()
                .post(url)
                .insert_header(("X-API-Key", key))
                .insert_header(("Content-Type", "application/json"))
                .send_body(r#"{"amount": "3.00", "currency": "USD", "payment_method": "pm_card_visa"}"#)
                .await
                .map_err(|error| error.to_string())?;
            let body = response.body().await.map_err(|error| error.to_string())?;
            Ok::<_, String>((response.status().as_u16(), body))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.stats().calls("create_intent") == 0 {
            assert!(
                Instant::now() < deadline,
                "the payment never reached the provider"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        server.stop().await;
        let (status, body) = request
            .await
            .unwrap()
            .expect("the request in flight is answered, not dropped");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(mock.stats().charges_made, 1);
    }
}
