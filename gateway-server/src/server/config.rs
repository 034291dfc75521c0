//! Configuration: defaults, then a TOML file (`--config`), then `GATEWAY_*`
//! environment variables, each overriding the one before. Every setting has
//! both a file key and a variable; `server::settings` is the table of them.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What the gateway is for: a sandbox to try it, or production to take real
/// payments (`GATEWAY_MODE`, `mode = "…"` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The mock provider and `/v1/webhooks/mock` are offered, an empty
    /// database gets a sandbox merchant with every scope (its key printed
    /// once), and merchant webhooks may go to `http` and local addresses.
    Sandbox,
    /// None of that: the server refuses to start on a configuration that
    /// would offer the mock provider (gateway-wide settings, `GATEWAY_MOCK_*`,
    /// a mock registered through the builder), nor creates a sandbox merchant.
    Production,
}

impl Mode {
    /// `sandbox` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sandbox => "sandbox",
            Mode::Production => "production",
        }
    }

    fn parse(name: &'static str, text: &str) -> Result<Mode, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sandbox" => Ok(Mode::Sandbox),
            "production" => Ok(Mode::Production),
            other => Err(ConfigError::Invalid {
                name,
                message: format!("{other:?}; use production or sandbox"),
            }),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The warning logged when a debug build chooses the sandbox for want of a mode.
pub const NO_MODE_WARNING: &str = "no mode configured: this debug build runs as sandbox; set GATEWAY_MODE";

/// The mode to run in: the configured one; without one, a debug build
/// (`debug_build`, i.e. `cfg(debug_assertions)`) runs as sandbox with
/// [`NO_MODE_WARNING`], and a release build refuses to start, so that a
/// production deployment can never be a sandbox by accident.
pub fn choose_mode(
    configured: Option<Mode>,
    debug_build: bool,
) -> Result<(Mode, Option<String>), ConfigError> {
    match configured {
        Some(mode) => Ok((mode, None)),
        None if debug_build => Ok((Mode::Sandbox, Some(NO_MODE_WARNING.to_owned()))),
        None => Err(ConfigError::Invalid {
            name: "mode",
            message: "no mode configured, and a release build does not guess: set GATEWAY_MODE=production \
                      (or GATEWAY_MODE=sandbox to try the gateway with the mock provider), or mode = \"…\" \
                      in the configuration file"
                .to_owned(),
        }),
    }
}

/// The server's configuration. `Debug` leaves secrets out.
#[derive(Clone)]
pub struct Config {
    /// Address and port to listen on (`GATEWAY_LISTEN`), default `127.0.0.1:8080`.
    pub listen: String,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` (`GATEWAY_DATABASE_URL`),
    /// default `sqlite://./gateway.db`. Several instances may share one PostgreSQL database.
    pub database_url: String,
    /// 64 hex characters sealing provider credentials at rest (`GATEWAY_MASTER_KEY`).
    /// Without one, a key is generated into a file beside the database.
    pub master_key: Option<String>,
    /// `text` or `json` (`GATEWAY_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// `error`, `warn`, `info`, `debug` or `trace` (`GATEWAY_LOG_LEVEL`), default `info`.
    pub log_level: String,
    /// HTTP worker threads (`GATEWAY_WORKERS`); 0 means one per CPU.
    pub workers: usize,
    /// Largest request body in bytes (`GATEWAY_MAX_BODY_BYTES`), default 64 KiB.
    pub max_body_bytes: usize,
    /// Provider used when a request names none (`GATEWAY_DEFAULT_PROVIDER`).
    /// Required when several providers are offered: the server refuses to
    /// start rather than guess.
    pub default_provider: Option<String>,
    /// Gateway-wide provider settings by provider name (`[providers.stripe]` in
    /// the file; `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`, `STRIPE_API_BASE`;
    /// for the mock, `GATEWAY_MOCK_SEED` and `GATEWAY_MOCK_WEBHOOK_SECRET`,
    /// random per process when not set).
    pub providers: BTreeMap<String, BTreeMap<String, String>>,
    /// The longest a provider call may take (`GATEWAY_PROVIDER_TIMEOUT`,
    /// default 30 s): one unanswered by then is abandoned as an unknown
    /// outcome, and rows left pending are resolved only after this and 30 s
    /// more (`app::resolve::unresolved_after`). A graceful stop waits this
    /// long (and 5 s more, to store what the calls returned) for requests
    /// still in flight.
    pub provider_timeout: Duration,
    /// Requests per second allowed per merchant, all its API keys sharing
    /// one bucket (`GATEWAY_RATE_LIMIT`, default 100); 0 means no limit.
    /// Bursts up to [`Config::rate_limit_burst`].
    pub rate_limit_per_second: u32,
    /// Outbound webhook retries (`GATEWAY_WEBHOOK_FIRST_RETRY`, `GATEWAY_WEBHOOK_MAX_DELAY`,
    /// `GATEWAY_WEBHOOK_MAX_ATTEMPTS`, `GATEWAY_WEBHOOK_TIMEOUT`; file keys
    /// `webhook_first_retry`, `webhook_max_delay`, `webhook_max_attempts`,
    /// `webhook_timeout`); by default 16 attempts over about three days.
    pub webhook_delivery: crate::app::outbound::DeliverySchedule,
    /// Reconciliation of payments left pending (`GATEWAY_RECONCILE_AFTER`, 0
    /// turns it off; `GATEWAY_RECONCILE_INTERVAL`, `GATEWAY_RECONCILE_CONCURRENCY`;
    /// file keys `reconcile_after`, `reconcile_interval`, `reconcile_concurrency`).
    pub reconcile: crate::app::reconcile::ReconcileSettings,
    /// How often stored inbound webhook events that are not processed yet are
    /// retried (`GATEWAY_WEBHOOK_SWEEP_INTERVAL`, file key `webhook_sweep_interval`, default 30 s).
    pub webhook_sweep_interval: Duration,
    /// Outbound webhook fairness (`GATEWAY_WEBHOOK_CONCURRENCY`, default 32
    /// in flight; `GATEWAY_WEBHOOK_PER_MERCHANT`, default 4 per merchant;
    /// `GATEWAY_WEBHOOK_ENDPOINT_FAILURES`, default 5 consecutive failures
    /// before a merchant's endpoint is backed off as a whole). File keys
    /// `webhook_concurrency`, `webhook_per_merchant`, `webhook_endpoint_failures`.
    pub webhook_limits: crate::app::outbound::DeliveryLimits,
    /// How long processed inbound provider events and finished merchant
    /// webhook deliveries (with their attempts) are kept (`GATEWAY_RETENTION`,
    /// file key `retention`, a duration such as `30days`; default 30 days,
    /// at least 7 days: stored events also deduplicate a provider's retries).
    /// Unprocessed events and pending deliveries are always kept.
    pub retention: Duration,
    /// The largest burst of a merchant's requests (`GATEWAY_RATE_LIMIT_BURST`,
    /// default 200; never below `rate_limit_per_second`).
    pub rate_limit_burst: u32,
    /// Requests with an unknown or revoked API key allowed per client
    /// address (the TCP peer) per minute, then 429 until they age out
    /// (`GATEWAY_AUTH_FAILURES_PER_MINUTE`, default 20); 0 means no limit.
    pub auth_failures_per_minute: u32,
    /// The longest a client may take to send a request's head, its request
    /// line and headers (`GATEWAY_REQUEST_HEAD_TIMEOUT`, default 5 s): then
    /// actix answers 408 and closes the connection.
    pub request_head_timeout: Duration,
    /// The longest a client may take to send a request's body
    /// (`GATEWAY_BODY_TIMEOUT`, default 10 s): then 408 `request_timeout`
    /// and the connection is closed.
    pub body_read_timeout: Duration,
    /// How long an idle keep-alive connection is kept (`GATEWAY_KEEP_ALIVE`,
    /// default 5 s; 0 turns keep-alive off).
    pub keep_alive: Duration,
    /// How long closing a connection may take before it is dropped
    /// (`GATEWAY_DISCONNECT_TIMEOUT`, default 1 s).
    pub client_disconnect_timeout: Duration,
    /// Connections each HTTP worker serves at once (`GATEWAY_MAX_CONNECTIONS`,
    /// default 1024); beyond, new connections wait in the listen backlog.
    /// Keep `workers × max_connections` below the process's file descriptor limit.
    pub max_connections: usize,
    /// Connections waiting to be accepted (`GATEWAY_BACKLOG`, default 1024).
    pub backlog: u32,
    /// Event streams and long polls one merchant may hold open at once
    /// (`GATEWAY_LIVE_PER_MERCHANT`, default 16); 0 means no limit.
    pub live_per_merchant: usize,
    /// The longest an event stream lives (`GATEWAY_LIVE_STREAM_MAX`, default 30 min):
    /// it then ends with an `end` event.
    pub live_stream_max: Duration,
    /// Whether outbound URLs (merchant webhooks, provider API bases) may be
    /// plain `http://` (`GATEWAY_EGRESS_ALLOW_HTTP`); unset, the mode
    /// decides: yes in sandbox mode, no in production. See [`Config::egress_policy`].
    pub egress_allow_http: Option<bool>,
    /// Special-use networks (loopback, private, link-local, …) outbound
    /// connections may reach all the same (`GATEWAY_EGRESS_ALLOW_NETS`,
    /// comma-separated CIDRs such as `127.0.0.0/8,10.1.0.0/16`, or `none`);
    /// unset, the mode decides: loopback and private networks in sandbox
    /// mode, none in production.
    pub egress_allow_nets: Option<Vec<crate::support::egress::Cidr>>,
    /// Extra root certificates (PEM) trusted for merchant webhook delivery,
    /// beside the webpki roots (`GATEWAY_WEBHOOK_CA_FILE`).
    pub webhook_ca_file: Option<PathBuf>,
    /// Sandbox or production (`GATEWAY_MODE`, `mode` in the file; see [`Mode`]).
    /// In production nothing, neither the gateway's configuration nor a
    /// merchant's stored settings, can reach the mock provider. Loaded
    /// configurations without a mode: a debug build runs as sandbox, a
    /// release build refuses to start ([`choose_mode`]). `Config::default()`
    /// (library embedders, tests) is a sandbox.
    pub mode: Mode,
    /// A warning about how `mode` was chosen (no mode configured in a debug
    /// build, the deprecated `GATEWAY_SANDBOX`), logged when the server starts.
    pub mode_warning: Option<String>,
}

impl Config {
    /// Whether this is a sandbox ([`Mode::Sandbox`]).
    pub fn is_sandbox(&self) -> bool {
        self.mode == Mode::Sandbox
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: "sqlite://./gateway.db".to_owned(),
            master_key: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            workers: 0,
            max_body_bytes: 64 * 1024,
            default_provider: None,
            providers: BTreeMap::new(),
            provider_timeout: Duration::from_secs(30),
            rate_limit_per_second: 100,
            webhook_delivery: crate::app::outbound::DeliverySchedule::default(),
            reconcile: crate::app::reconcile::ReconcileSettings::default(),
            webhook_sweep_interval: Duration::from_secs(30),
            webhook_limits: crate::app::outbound::DeliveryLimits::default(),
            retention: crate::app::retention::DEFAULT_RETENTION,
            rate_limit_burst: 200,
            auth_failures_per_minute: 20,
            request_head_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            client_disconnect_timeout: Duration::from_secs(1),
            max_connections: 1024,
            backlog: 1024,
            live_per_merchant: 16,
            live_stream_max: Duration::from_secs(30 * 60),
            egress_allow_http: None,
            egress_allow_nets: None,
            webhook_ca_file: None,
            mode: Mode::Sandbox,
            mode_warning: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let providers: BTreeMap<_, Vec<_>> = self
            .providers
            .iter()
            .map(|(name, settings)| (name, settings.keys().collect()))
            .collect();
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("workers", &self.workers)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("default_provider", &self.default_provider)
            .field("providers", &providers)
            .field("provider_timeout", &self.provider_timeout)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("webhook_delivery", &self.webhook_delivery)
            .field("reconcile", &self.reconcile)
            .field("webhook_sweep_interval", &self.webhook_sweep_interval)
            .field("webhook_limits", &self.webhook_limits)
            .field("retention", &self.retention)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("request_head_timeout", &self.request_head_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("client_disconnect_timeout", &self.client_disconnect_timeout)
            .field("max_connections", &self.max_connections)
            .field("backlog", &self.backlog)
            .field("live_per_merchant", &self.live_per_merchant)
            .field("live_stream_max", &self.live_stream_max)
            .field("egress_allow_http", &self.egress_allow_http)
            .field("egress_allow_nets", &self.egress_allow_nets)
            .field("webhook_ca_file", &self.webhook_ca_file)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration file: {0}")]
    Parse(String),
    /// A setting has an invalid value.
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The TOML file's keys (each also has a variable: see `server::settings`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    master_key: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    workers: Option<usize>,
    max_body_bytes: Option<usize>,
    default_provider: Option<String>,
    sandbox: Option<bool>,
    mode: Option<String>,
    provider_timeout: Option<String>,
    rate_limit_per_second: Option<u32>,
    #[serde(default)]
    providers: BTreeMap<String, BTreeMap<String, String>>,
    webhook_concurrency: Option<u32>,
    webhook_per_merchant: Option<u32>,
    webhook_endpoint_failures: Option<u32>,
    retention: Option<String>,
    rate_limit_burst: Option<u32>,
    auth_failures_per_minute: Option<u32>,
    request_head_timeout: Option<String>,
    body_read_timeout: Option<String>,
    keep_alive: Option<String>,
    client_disconnect_timeout: Option<String>,
    max_connections: Option<usize>,
    backlog: Option<u32>,
    live_per_merchant: Option<usize>,
    live_stream_max: Option<String>,
    egress_allow_http: Option<bool>,
    egress_allow_nets: Option<Vec<String>>,
    webhook_ca_file: Option<PathBuf>,
    webhook_first_retry: Option<String>,
    webhook_max_delay: Option<String>,
    webhook_max_attempts: Option<u32>,
    webhook_timeout: Option<String>,
    webhook_sweep_interval: Option<String>,
    reconcile_after: Option<String>,
    reconcile_interval: Option<String>,
    reconcile_concurrency: Option<usize>,
}

impl Config {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let text = file
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            })
            .transpose()?;
        Config::from_sources(text.as_deref(), &|name| std::env::var(name).ok())
    }

    /// [`Config::from_sources`] for this build: a debug build without a mode runs as sandbox.
    pub fn from_sources(
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_sources_for(file, env, cfg!(debug_assertions))
    }

    /// Loads defaults, then the TOML `file` text, then variables from `env`;
    /// without a configured mode, `debug_build` decides ([`choose_mode`]).
    pub fn from_sources_for(
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        debug_build: bool,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = match file {
            Some(text) => toml::from_str(text).map_err(|error| ConfigError::Parse(error.to_string()))?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        let file_limits = file.clone();
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        if let Some(listen) = env("GATEWAY_LISTEN").or(file.listen) {
            config.listen = listen;
        }
        if let Some(url) = env("GATEWAY_DATABASE_URL").or(file.database_url) {
            config.database_url = url;
        }
        config.master_key = env("GATEWAY_MASTER_KEY").or(file.master_key);
        if let Some(format) = env("GATEWAY_LOG_FORMAT").or(file.log_format) {
            config.log_format = match format.trim().to_ascii_lowercase().as_str() {
                "text" | "pretty" | "plain" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "log_format",
                        message: format!("{other:?}; use text or json"),
                    })
                }
            };
        }
        if let Some(level) = env("GATEWAY_LOG_LEVEL").or(file.log_level) {
            config.log_level = level.trim().to_ascii_lowercase();
        }
        if !matches!(
            config.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(ConfigError::Invalid {
                name: "log_level",
                message: format!("{:?}; use error, warn, info, debug or trace", config.log_level),
            });
        }
        let read = Sources { env: &env };
        config.workers = read.number("workers", "GATEWAY_WORKERS", file.workers, 0, ..)?;
        config.max_body_bytes = read.number(
            "max_body_bytes",
            "GATEWAY_MAX_BODY_BYTES",
            file.max_body_bytes,
            config.max_body_bytes,
            1024..,
        )?;
        config.default_provider = env("GATEWAY_DEFAULT_PROVIDER").or(file.default_provider);
        config.rate_limit_per_second = read.number(
            "rate_limit_per_second",
            "GATEWAY_RATE_LIMIT",
            file.rate_limit_per_second,
            config.rate_limit_per_second,
            ..,
        )?;
        let delivery = &mut config.webhook_delivery;
        delivery.first_retry = read.duration(
            "webhook_first_retry",
            "GATEWAY_WEBHOOK_FIRST_RETRY",
            file.webhook_first_retry.clone(),
            delivery.first_retry,
            ..,
        )?;
        delivery.max_delay = read.duration(
            "webhook_max_delay",
            "GATEWAY_WEBHOOK_MAX_DELAY",
            file.webhook_max_delay.clone(),
            delivery.max_delay.max(delivery.first_retry),
            delivery.first_retry..,
        )?;
        delivery.timeout = read.duration(
            "webhook_timeout",
            "GATEWAY_WEBHOOK_TIMEOUT",
            file.webhook_timeout.clone(),
            delivery.timeout,
            ..,
        )?;
        delivery.max_attempts = read.number(
            "webhook_max_attempts",
            "GATEWAY_WEBHOOK_MAX_ATTEMPTS",
            file.webhook_max_attempts,
            delivery.max_attempts,
            1..,
        )?;
        // Periodic tasks: an interval of zero would spin.
        let period = Duration::from_millis(100)..;
        config.webhook_sweep_interval = read.duration(
            "webhook_sweep_interval",
            "GATEWAY_WEBHOOK_SWEEP_INTERVAL",
            file.webhook_sweep_interval.clone(),
            config.webhook_sweep_interval,
            period.clone(),
        )?;
        config.reconcile.after = read.duration(
            "reconcile_after",
            "GATEWAY_RECONCILE_AFTER",
            file.reconcile_after.clone(),
            config.reconcile.after,
            ..,
        )?;
        config.reconcile.interval = read.duration(
            "reconcile_interval",
            "GATEWAY_RECONCILE_INTERVAL",
            file.reconcile_interval.clone(),
            config.reconcile.interval,
            period,
        )?;
        config.reconcile.concurrency = read.number(
            "reconcile_concurrency",
            "GATEWAY_RECONCILE_CONCURRENCY",
            file.reconcile_concurrency,
            config.reconcile.concurrency,
            1..=256,
        )?;
        config.provider_timeout = read.duration(
            "provider_timeout",
            "GATEWAY_PROVIDER_TIMEOUT",
            file.provider_timeout.clone(),
            config.provider_timeout,
            Duration::from_secs(1)..,
        )?;
        config.reconcile.unresolved_after = crate::app::resolve::unresolved_after(config.provider_timeout);
        config.providers = file.providers;
        for (variable, provider, setting) in crate::server::settings::provider_variables() {
            if let Some(value) = env(variable) {
                config
                    .providers
                    .entry(provider.to_owned())
                    .or_default()
                    .insert(setting.to_owned(), value);
            }
        }
        // The mode last but one: it checks what the other settings would expose.
        let explicit = match env("GATEWAY_MODE").or(file.mode) {
            Some(text) => Some(Mode::parse("mode", &text)?),
            None => None,
        };
        let legacy = match env("GATEWAY_SANDBOX") {
            Some(text) => Some(match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "sandbox",
                        message: format!(
                        "{other:?}; GATEWAY_SANDBOX is deprecated, set GATEWAY_MODE=production or sandbox"
                    ),
                    })
                }
            }),
            None => file.sandbox,
        }
        .map(|sandbox| if sandbox { Mode::Sandbox } else { Mode::Production });
        let configured = match (explicit, legacy) {
            (Some(mode), Some(old)) if mode != old => {
                return Err(ConfigError::Invalid {
                    name: "mode",
                    message: format!(
                        "GATEWAY_MODE (or mode) says {mode} but the deprecated GATEWAY_SANDBOX (or sandbox) says {old}: \
                         remove GATEWAY_SANDBOX"
                    ),
                })
            }
            (Some(mode), _) => Some(mode),
            (None, old) => old,
        };
        let (mode, warning) = choose_mode(configured, debug_build)?;
        config.mode = mode;
        config.mode_warning = warning.or_else(|| {
            (explicit.is_none() && legacy.is_some()).then(|| {
                format!(
                    "GATEWAY_SANDBOX (or sandbox in the file) is deprecated: set GATEWAY_MODE={mode} instead"
                )
            })
        });
        if mode == Mode::Production {
            production_refusals(&config)?;
        }
        if config.listen.parse::<std::net::SocketAddr>().is_err() && !config.listen.contains(':') {
            return Err(ConfigError::Invalid {
                name: "listen",
                message: format!("{:?}; use address:port such as 127.0.0.1:8080", config.listen),
            });
        }
        if !config.database_url.starts_with("sqlite:")
            && !crate::store::postgres::is_postgres_url(&config.database_url)
        {
            return Err(ConfigError::Invalid {
                name: "database_url",
                message: "use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB".to_owned(),
            });
        }
        if let Some(key) = &config.master_key {
            if crate::support::crypto::MasterKey::from_hex(key).is_none() {
                return Err(ConfigError::Invalid {
                    name: "master_key",
                    message: "must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`"
                        .to_owned(),
                });
            }
        }
        let limits = config.webhook_limits;
        config.webhook_limits.concurrency = read.number(
            "webhook_concurrency",
            "GATEWAY_WEBHOOK_CONCURRENCY",
            file.webhook_concurrency,
            limits.concurrency,
            1..=1024,
        )?;
        config.webhook_limits.per_merchant = read.number(
            "webhook_per_merchant",
            "GATEWAY_WEBHOOK_PER_MERCHANT",
            file.webhook_per_merchant,
            limits.per_merchant,
            1..=config.webhook_limits.concurrency,
        )?;
        config.webhook_limits.endpoint_failures = read.number(
            "webhook_endpoint_failures",
            "GATEWAY_WEBHOOK_ENDPOINT_FAILURES",
            file.webhook_endpoint_failures,
            limits.endpoint_failures,
            1..=1000,
        )?;
        // Stored inbound events are also what deduplicates a provider's
        // retries (Stripe retries for 3 days), and a delivery can be
        // retried for about as long: a shorter retention would forget them.
        config.retention = read.duration(
            "retention",
            "GATEWAY_RETENTION",
            file.retention.clone(),
            config.retention,
            Duration::from_secs(7 * 24 * 3600)..=Duration::from_secs(10 * 365 * 24 * 3600),
        )?;
        limits_from_sources(&mut config, &file_limits, &read)?;
        config.egress_allow_http = match env("GATEWAY_EGRESS_ALLOW_HTTP") {
            Some(text) => Some(match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        name: "egress_allow_http",
                        message: format!("{other:?}; use true or false"),
                    })
                }
            }),
            None => file.egress_allow_http,
        };
        let nets = env("GATEWAY_EGRESS_ALLOW_NETS").or(file.egress_allow_nets.map(|nets| {
            if nets.is_empty() {
                "none".to_owned()
            } else {
                nets.join(",")
            }
        }));
        if let Some(nets) = nets {
            config.egress_allow_nets =
                Some(crate::support::egress::parse_cidr_list(&nets).map_err(|error| {
                    ConfigError::Invalid {
                        name: "egress_allow_nets",
                        message: error.to_string(),
                    }
                })?);
        }
        config.webhook_ca_file = env("GATEWAY_WEBHOOK_CA_FILE")
            .map(PathBuf::from)
            .or(file.webhook_ca_file);
        Ok(config)
    }

    /// Where outbound connections may go: the operator's
    /// `egress_allow_http` / `egress_allow_nets`, else the mode's defaults
    /// (sandbox: `http://` and loopback and private networks; production:
    /// https and public addresses only).
    pub fn egress_policy(&self) -> crate::support::egress::EgressPolicy {
        let sandbox = self.is_sandbox();
        crate::support::egress::EgressPolicy {
            allow_http: self.egress_allow_http.unwrap_or(sandbox),
            allow_nets: self.egress_allow_nets.clone().unwrap_or_else(|| {
                if sandbox {
                    crate::support::egress::local_networks()
                } else {
                    Vec::new()
                }
            }),
        }
    }
}

/// The connection, request, rate and live-request limits, from `file` then `env`, validated.
fn limits_from_sources(
    config: &mut Config,
    file: &FileConfig,
    read: &Sources<'_>,
) -> Result<(), ConfigError> {
    config.rate_limit_burst = read
        .number(
            "rate_limit_burst",
            "GATEWAY_RATE_LIMIT_BURST",
            file.rate_limit_burst,
            config.rate_limit_burst,
            ..,
        )?
        .max(config.rate_limit_per_second);
    config.auth_failures_per_minute = read.number(
        "auth_failures_per_minute",
        "GATEWAY_AUTH_FAILURES_PER_MINUTE",
        file.auth_failures_per_minute,
        config.auth_failures_per_minute,
        ..,
    )?;
    let deadline = Duration::from_millis(100)..;
    config.request_head_timeout = read.duration(
        "request_head_timeout",
        "GATEWAY_REQUEST_HEAD_TIMEOUT",
        file.request_head_timeout.clone(),
        config.request_head_timeout,
        deadline.clone(),
    )?;
    config.body_read_timeout = read.duration(
        "body_read_timeout",
        "GATEWAY_BODY_TIMEOUT",
        file.body_read_timeout.clone(),
        config.body_read_timeout,
        deadline,
    )?;
    config.keep_alive = read.duration(
        "keep_alive",
        "GATEWAY_KEEP_ALIVE",
        file.keep_alive.clone(),
        config.keep_alive,
        ..,
    )?;
    config.client_disconnect_timeout = read.duration(
        "client_disconnect_timeout",
        "GATEWAY_DISCONNECT_TIMEOUT",
        file.client_disconnect_timeout.clone(),
        config.client_disconnect_timeout,
        ..,
    )?;
    config.max_connections = read.number(
        "max_connections",
        "GATEWAY_MAX_CONNECTIONS",
        file.max_connections,
        config.max_connections,
        1..,
    )?;
    config.backlog = read
        .number("backlog", "GATEWAY_BACKLOG", file.backlog, config.backlog, ..)?
        .max(1);
    config.live_per_merchant = read.number(
        "live_per_merchant",
        "GATEWAY_LIVE_PER_MERCHANT",
        file.live_per_merchant,
        config.live_per_merchant,
        ..,
    )?;
    config.live_stream_max = read.duration(
        "live_stream_max",
        "GATEWAY_LIVE_STREAM_MAX",
        file.live_stream_max.clone(),
        config.live_stream_max,
        Duration::from_secs(1)..,
    )?;
    Ok(())
}

/// Where a setting comes from: its `GATEWAY_*` variable, else its file key,
/// else the default; then checked against the range it may take.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Sources<'_> {
    /// A whole number of type `T` within `range`.
    fn number<T>(
        &self,
        name: &'static str,
        variable: &str,
        file: Option<T>,
        default: T,
        range: impl RangeBounds<T>,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<usize> + PartialOrd + Copy + fmt::Display,
    {
        let value = match (self.env)(variable) {
            Some(text) => T::try_from(parse_number(name, &text)?).map_err(|_| ConfigError::Invalid {
                name,
                message: format!("{} is too large", text.trim()),
            })?,
            None => file.unwrap_or(default),
        };
        within(name, value, &range, |n| n.to_string())
    }

    /// A duration such as `10s` or `30days` within `range`.
    fn duration(
        &self,
        name: &'static str,
        variable: &str,
        file: Option<String>,
        default: Duration,
        range: impl RangeBounds<Duration>,
    ) -> Result<Duration, ConfigError> {
        let value = match (self.env)(variable).or(file) {
            Some(text) => humantime::parse_duration(text.trim()).map_err(|_| ConfigError::Invalid {
                name,
                message: format!("{text:?} is not a duration such as 30s or 15m"),
            })?,
            None => default,
        };
        within(name, value, &range, |d| humantime::format_duration(d).to_string())
    }
}

/// `value` if `range` holds it, else an error naming the setting and its bounds.
fn within<T: PartialOrd + Copy>(
    name: &'static str,
    value: T,
    range: &impl RangeBounds<T>,
    show: impl Fn(T) -> String,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        return Ok(value);
    }
    let bound = |bound: Bound<&T>| match bound {
        Bound::Included(at) | Bound::Excluded(at) => Some(show(*at)),
        Bound::Unbounded => None,
    };
    let allowed = match (bound(range.start_bound()), bound(range.end_bound())) {
        (Some(least), Some(most)) => format!("use {least} to {most}"),
        (Some(least), None) => format!("must be at least {least}"),
        (None, Some(most)) => format!("must be at most {most}"),
        (None, None) => String::new(),
    };
    Err(ConfigError::Invalid {
        name,
        message: format!("{}: {allowed}", show(value)),
    })
}

/// What a production configuration must not set: the mock provider's settings.
fn production_refusals(config: &Config) -> Result<(), ConfigError> {
    if let Some(settings) = config.providers.get("mock") {
        let names: Vec<_> = settings
            .keys()
            .map(|key| match key.as_str() {
                "seed" => "GATEWAY_MOCK_SEED".to_owned(),
                "webhook_secret" => "GATEWAY_MOCK_WEBHOOK_SECRET".to_owned(),
                other => format!("[providers.mock] {other}"),
            })
            .collect();
        return Err(ConfigError::Invalid {
            name: "mode",
            message: format!(
                "GATEWAY_MODE=production, but the mock provider is configured ({}): the mock is offered in \
                 sandbox mode only; remove those settings, or set GATEWAY_MODE=sandbox",
                names.join(", ")
            ),
        });
    }
    Ok(())
}

/// `scheme://user:****@host/…`: a database URL without its password (in
/// the authority or as a `password=` query parameter), for logs.
pub(crate) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let redacted = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:****{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    match redacted.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=****"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => redacted,
    }
}

fn parse_number(name: &'static str, text: &str) -> Result<usize, ConfigError> {
    text.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        message: format!("{text:?} is not a number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_file_then_env() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://./gateway.db");
        let file = "listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\n[providers.stripe]\nsecret_key = \"sk_test_file\"\n";
        let config = Config::from_sources(Some(file), &env(&[("GATEWAY_LISTEN", "127.0.0.1:7000")])).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7000");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.providers["stripe"]["secret_key"], "sk_test_file");
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk_test_file"), "{debug}");
    }

    #[test]
    fn delivery_reconciliation_and_sweep_settings_from_the_file_with_their_ranges() {
        let file = "webhook_first_retry = \"1m\"\nwebhook_max_delay = \"2h\"\nwebhook_max_attempts = 4\n\
                    webhook_timeout = \"3s\"\nwebhook_sweep_interval = \"10s\"\nreconcile_after = \"5m\"\n\
                    reconcile_interval = \"20s\"\nreconcile_concurrency = 3\n";
        let config = Config::from_sources(Some(file), &env(&[])).unwrap();
        assert_eq!(config.webhook_delivery.first_retry, Duration::from_secs(60));
        assert_eq!(config.webhook_delivery.max_delay, Duration::from_secs(7200));
        assert_eq!(config.webhook_delivery.max_attempts, 4);
        assert_eq!(config.webhook_delivery.timeout, Duration::from_secs(3));
        assert_eq!(config.webhook_sweep_interval, Duration::from_secs(10));
        assert_eq!(config.reconcile.after, Duration::from_secs(300));
        assert_eq!(config.reconcile.interval, Duration::from_secs(20));
        assert_eq!(config.reconcile.concurrency, 3);
        // A first retry past the default longest pause raises that pause with it.
        let config = Config::from_sources(None, &env(&[("GATEWAY_WEBHOOK_FIRST_RETRY", "1day")])).unwrap();
        assert_eq!(config.webhook_delivery.max_delay, Duration::from_secs(24 * 3600));
        for (bad, named) in [
            (("GATEWAY_WEBHOOK_MAX_DELAY", "1s"), "webhook_max_delay"),
            (("GATEWAY_WEBHOOK_SWEEP_INTERVAL", "0s"), "webhook_sweep_interval"),
            (("GATEWAY_RECONCILE_INTERVAL", "0s"), "reconcile_interval"),
            (("GATEWAY_RECONCILE_CONCURRENCY", "0"), "reconcile_concurrency"),
            (("GATEWAY_RECONCILE_CONCURRENCY", "1000"), "reconcile_concurrency"),
            (("GATEWAY_EGRESS_ALLOW_HTTP", "maybe"), "egress_allow_http"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([bad]));
            let error = Config::from_sources(None, &env(pairs)).unwrap_err().to_string();
            assert!(error.contains(named), "{bad:?}: {error}");
        }
    }

    #[test]
    fn webhook_and_reconciliation_settings() {
        let config = Config::from_sources(
            None,
            &env(&[
                ("GATEWAY_WEBHOOK_FIRST_RETRY", "5s"),
                ("GATEWAY_WEBHOOK_MAX_ATTEMPTS", "3"),
                ("GATEWAY_WEBHOOK_TIMEOUT", "2s"),
                ("GATEWAY_RECONCILE_AFTER", "0s"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_a,whsec_b"),
            ]),
        )
        .unwrap();
        assert_eq!(config.webhook_delivery.first_retry, Duration::from_secs(5));
        assert_eq!(config.webhook_delivery.max_attempts, 3);
        assert_eq!(config.webhook_delivery.timeout, Duration::from_secs(2));
        assert!(config.reconcile.after.is_zero());
        // The name gateway-stripe reads for the comma-separated list.
        assert_eq!(config.providers["stripe"]["webhook_secrets"], "whsec_a,whsec_b");
        assert!(!format!("{config:?}").contains("whsec_a"));
        assert!(Config::from_sources(None, &env(&[("GATEWAY_WEBHOOK_FIRST_RETRY", "soon")])).is_err());
    }

    #[test]
    fn sandbox_mock_and_provider_timeout_settings() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert!(
            config.is_sandbox(),
            "the default run of a debug build is a sandbox"
        );
        assert_eq!(config.provider_timeout, Duration::from_secs(30));
        assert!(
            !config.providers.contains_key("mock"),
            "nothing set: the server draws them"
        );
        let config = Config::from_sources(
            Some("mode = \"sandbox\"\nprovider_timeout = \"20s\"\n"),
            &env(&[
                ("GATEWAY_MOCK_SEED", "7"),
                ("GATEWAY_MOCK_WEBHOOK_SECRET", "whsec_for_tests"),
            ]),
        )
        .unwrap();
        assert!(config.is_sandbox() && config.mode_warning.is_none());
        assert_eq!(config.provider_timeout, Duration::from_secs(20));
        assert_eq!(
            config.reconcile.unresolved_after,
            Duration::from_secs(60),
            "at least 60 s"
        );
        assert_eq!(config.providers["mock"]["seed"], "7");
        assert_eq!(config.providers["mock"]["webhook_secret"], "whsec_for_tests");
        assert!(!format!("{config:?}").contains("whsec_for_tests"));
        let env_wins = Config::from_sources(
            Some("mode = \"production\"\n"),
            &env(&[("GATEWAY_MODE", "sandbox"), ("GATEWAY_PROVIDER_TIMEOUT", "45s")]),
        )
        .unwrap();
        assert!(env_wins.is_sandbox());
        assert_eq!(env_wins.provider_timeout, Duration::from_secs(45));
        // A call may take 45 s: its row is resolved only after it was abandoned.
        assert_eq!(env_wins.reconcile.unresolved_after, Duration::from_secs(75));
        assert!(Config::from_sources(None, &env(&[("GATEWAY_PROVIDER_TIMEOUT", "0s")])).is_err());
        assert!(Config::from_sources(None, &env(&[("GATEWAY_PROVIDER_TIMEOUT", "soon")])).is_err());
    }

    #[test]
    fn delivery_fairness_and_retention_settings() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(config.webhook_limits.concurrency, 32);
        assert_eq!(config.webhook_limits.per_merchant, 4);
        assert_eq!(config.webhook_limits.endpoint_failures, 5);
        assert_eq!(config.retention, Duration::from_secs(30 * 24 * 3600));
        let file = "webhook_concurrency = 64\nwebhook_per_merchant = 8\nretention = \"7days\"\n";
        let config = Config::from_sources(
            Some(file),
            &env(&[
                ("GATEWAY_WEBHOOK_PER_MERCHANT", "2"),
                ("GATEWAY_WEBHOOK_ENDPOINT_FAILURES", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.webhook_limits.concurrency, 64);
        assert_eq!(config.webhook_limits.per_merchant, 2, "the environment wins");
        assert_eq!(config.webhook_limits.endpoint_failures, 3);
        assert_eq!(config.retention, Duration::from_secs(7 * 24 * 3600));
        let refused: &[&[(&str, &str)]] = &[
            &[("GATEWAY_WEBHOOK_CONCURRENCY", "0")],
            &[("GATEWAY_WEBHOOK_CONCURRENCY", "100000")],
            &[("GATEWAY_WEBHOOK_CONCURRENCY", "many")],
            &[("GATEWAY_WEBHOOK_PER_MERCHANT", "0")],
            &[
                ("GATEWAY_WEBHOOK_CONCURRENCY", "8"),
                ("GATEWAY_WEBHOOK_PER_MERCHANT", "9"),
            ],
            &[("GATEWAY_WEBHOOK_ENDPOINT_FAILURES", "0")],
            &[("GATEWAY_RETENTION", "0s")],
            &[("GATEWAY_RETENTION", "5m")],
            &[("GATEWAY_RETENTION", "3days")],
            &[("GATEWAY_RETENTION", "100years")],
            &[("GATEWAY_RETENTION", "forever")],
        ];
        for pairs in refused {
            let pairs: &'static [(&str, &str)] = Box::leak(pairs.to_vec().into_boxed_slice());
            let error = Config::from_sources(None, &env(pairs)).unwrap_err();
            assert!(matches!(error, ConfigError::Invalid { .. }), "{pairs:?}: {error}");
        }
        assert!(Config::from_sources(Some("webhook_per_merchant = 0\n"), &env(&[])).is_err());
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(Config::from_sources(Some("nope = 1"), &env(&[])).is_err());
        // Out of range: the message says which values the setting takes.
        let retention = Config::from_sources(None, &env(&[("GATEWAY_RETENTION", "1day")]))
            .unwrap_err()
            .to_string();
        assert!(retention.contains("1day: use 7days to"), "{retention}");
        let body = Config::from_sources(None, &env(&[("GATEWAY_MAX_BODY_BYTES", "10")]))
            .unwrap_err()
            .to_string();
        assert!(body.contains("10: must be at least 1024"), "{body}");
        let per_merchant = Config::from_sources(
            None,
            &env(&[
                ("GATEWAY_WEBHOOK_CONCURRENCY", "8"),
                ("GATEWAY_WEBHOOK_PER_MERCHANT", "9"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(per_merchant.contains("9: use 1 to 8"), "{per_merchant}");
        assert!(Config::from_sources(None, &env(&[("GATEWAY_LOG_FORMAT", "xml")])).is_err());
        assert!(Config::from_sources(None, &env(&[("GATEWAY_MASTER_KEY", "short")])).is_err());
        assert!(Config::from_sources(None, &env(&[("GATEWAY_DATABASE_URL", "mysql://x")])).is_err());
        let key = "ab".repeat(32);
        let key: &'static str = Box::leak(key.into_boxed_str());
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("GATEWAY_MASTER_KEY", key)]));
        let config = Config::from_sources(None, &env(pairs)).unwrap();
        assert!(format!("{config:?}").contains("<redacted>") && !format!("{config:?}").contains(key));
        let config = Config::from_sources(
            None,
            &env(&[("GATEWAY_DATABASE_URL", "postgres://gw:s3cret@db:5432/gateway")]),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            debug.contains("postgres://gw:****@db:5432/gateway") && !debug.contains("s3cret"),
            "{debug}"
        );
        assert_eq!(
            redact_url_password("sqlite://./gateway.db"),
            "sqlite://./gateway.db"
        );
        assert_eq!(
            redact_url_password("postgres://gw@db/gateway?sslmode=require&password=s3cret"),
            "postgres://gw@db/gateway?sslmode=require&password=****"
        );
    }

    #[test]
    fn limits_defaults_file_env_and_validation() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(config.rate_limit_per_second, 100);
        assert_eq!(config.rate_limit_burst, 200);
        assert_eq!(config.auth_failures_per_minute, 20);
        assert_eq!(config.request_head_timeout, Duration::from_secs(5));
        assert_eq!(config.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.keep_alive, Duration::from_secs(5));
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.backlog, 1024);
        assert_eq!(config.live_per_merchant, 16);
        assert_eq!(config.live_stream_max, Duration::from_secs(1800));
        let file = "rate_limit_per_second = 50\nrate_limit_burst = 10\nbody_read_timeout = \"3s\"\nlive_per_merchant = 4\nmax_connections = 300\n";
        let config = Config::from_sources(
            Some(file),
            &env(&[
                ("GATEWAY_AUTH_FAILURES_PER_MINUTE", "0"),
                ("GATEWAY_LIVE_STREAM_MAX", "2m"),
                ("GATEWAY_REQUEST_HEAD_TIMEOUT", "1s"),
                ("GATEWAY_BACKLOG", "64"),
            ]),
        )
        .unwrap();
        assert_eq!(config.rate_limit_per_second, 50);
        assert_eq!(config.rate_limit_burst, 50, "a burst never below the rate");
        assert_eq!(config.body_read_timeout, Duration::from_secs(3));
        assert_eq!(config.live_per_merchant, 4);
        assert_eq!(config.max_connections, 300);
        assert_eq!(config.auth_failures_per_minute, 0);
        assert_eq!(config.live_stream_max, Duration::from_secs(120));
        assert_eq!(config.request_head_timeout, Duration::from_secs(1));
        assert_eq!(config.backlog, 64);
        assert!(format!("{config:?}").contains("live_stream_max"));
        for bad in [
            ("GATEWAY_BODY_TIMEOUT", "0s"),
            ("GATEWAY_BODY_TIMEOUT", "soon"),
            ("GATEWAY_REQUEST_HEAD_TIMEOUT", "1ms"),
            ("GATEWAY_MAX_CONNECTIONS", "0"),
            ("GATEWAY_RATE_LIMIT_BURST", "many"),
            ("GATEWAY_LIVE_STREAM_MAX", "0s"),
            ("GATEWAY_AUTH_FAILURES_PER_MINUTE", "99999999999"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([bad]));
            assert!(Config::from_sources(None, &env(pairs)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn egress_settings_default_from_the_mode() {
        let sandbox = Config::from_sources(None, &env(&[])).unwrap().egress_policy();
        assert!(sandbox.allow_http);
        assert!(sandbox.permits("127.0.0.1".parse().unwrap()));
        assert!(!sandbox.permits("169.254.169.254".parse().unwrap()));
        let production = Config::from_sources(Some("mode = \"production\"\n"), &env(&[])).unwrap();
        let policy = production.egress_policy();
        assert!(!policy.allow_http && policy.allow_nets.is_empty());
        let opened = Config::from_sources(
            Some("mode = \"production\"\negress_allow_nets = [\"10.1.0.0/16\"]\n"),
            &env(&[
                ("GATEWAY_EGRESS_ALLOW_HTTP", "true"),
                ("GATEWAY_WEBHOOK_CA_FILE", "/etc/gateway/ca.pem"),
            ]),
        )
        .unwrap();
        let policy = opened.egress_policy();
        assert!(policy.allow_http && policy.permits("10.1.2.3".parse().unwrap()));
        assert!(!policy.permits("127.0.0.1".parse().unwrap()));
        assert_eq!(
            opened.webhook_ca_file.as_deref(),
            Some(Path::new("/etc/gateway/ca.pem"))
        );
        let env_wins = Config::from_sources(
            Some("egress_allow_nets = [\"10.1.0.0/16\"]\n"),
            &env(&[("GATEWAY_EGRESS_ALLOW_NETS", "none")]),
        )
        .unwrap();
        assert!(env_wins.egress_policy().allow_nets.is_empty());
        assert!(Config::from_sources(None, &env(&[("GATEWAY_EGRESS_ALLOW_NETS", "10.0.0.0/99")])).is_err());
    }

    #[test]
    fn without_a_mode_a_debug_build_is_a_sandbox_and_a_release_build_refuses() {
        let (mode, warning) = choose_mode(None, true).unwrap();
        assert_eq!(mode, Mode::Sandbox);
        assert_eq!(warning.as_deref(), Some(NO_MODE_WARNING));
        let error = choose_mode(None, false).unwrap_err().to_string();
        assert!(
            error.contains("GATEWAY_MODE=production") && error.contains("sandbox"),
            "{error}"
        );
        assert_eq!(
            choose_mode(Some(Mode::Production), false).unwrap(),
            (Mode::Production, None)
        );
        assert_eq!(
            choose_mode(Some(Mode::Sandbox), false).unwrap(),
            (Mode::Sandbox, None)
        );
        // Through the loader: a release build needs the setting, and then takes it.
        assert!(Config::from_sources_for(None, &env(&[]), false).is_err());
        let config = Config::from_sources_for(None, &env(&[("GATEWAY_MODE", "production")]), false).unwrap();
        assert_eq!(config.mode, Mode::Production);
        assert!(!config.is_sandbox() && config.mode_warning.is_none());
        let config = Config::from_sources_for(Some("mode = \"sandbox\""), &env(&[]), false).unwrap();
        assert!(config.is_sandbox());
        let config = Config::from_sources_for(None, &env(&[]), true).unwrap();
        assert!(config.is_sandbox());
        assert_eq!(config.mode_warning.as_deref(), Some(NO_MODE_WARNING));
        // Library embedders and tests: a sandbox, said so.
        assert!(Config::default().is_sandbox());
        let error = Config::from_sources(None, &env(&[("GATEWAY_MODE", "live")])).unwrap_err();
        assert!(error.to_string().contains("use production or sandbox"), "{error}");
    }

    #[test]
    fn production_refuses_mock_settings_naming_them() {
        for (variable, value) in [
            ("GATEWAY_MOCK_SEED", "7"),
            ("GATEWAY_MOCK_WEBHOOK_SECRET", "whsec_x"),
        ] {
            let pairs: &'static [(&str, &str)] =
                Box::leak(Box::new([("GATEWAY_MODE", "production"), (variable, value)]));
            let error = Config::from_sources(None, &env(pairs)).unwrap_err().to_string();
            assert!(
                error.contains(variable) && error.contains("GATEWAY_MODE=sandbox"),
                "{error}"
            );
            assert!(!error.contains("whsec_x"), "{error}");
        }
        let error = Config::from_sources(
            Some("mode = \"production\"\n[providers.mock]\nfailure_rate = \"1\"\n"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("[providers.mock] failure_rate"), "{error}");
    }

    #[test]
    fn the_deprecated_sandbox_setting_still_chooses_the_mode_with_a_warning() {
        let config = Config::from_sources_for(None, &env(&[("GATEWAY_SANDBOX", "false")]), false).unwrap();
        assert_eq!(config.mode, Mode::Production);
        assert!(config
            .mode_warning
            .as_deref()
            .unwrap()
            .contains("GATEWAY_MODE=production"));
        let config = Config::from_sources_for(Some("sandbox = true"), &env(&[]), false).unwrap();
        assert!(config.is_sandbox());
        assert!(Config::from_sources(None, &env(&[("GATEWAY_SANDBOX", "maybe")])).is_err());
        let error = Config::from_sources(
            None,
            &env(&[("GATEWAY_SANDBOX", "true"), ("GATEWAY_MODE", "production")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("remove GATEWAY_SANDBOX"), "{error}");
        let agreeing = Config::from_sources(
            None,
            &env(&[("GATEWAY_SANDBOX", "false"), ("GATEWAY_MODE", "production")]),
        )
        .unwrap();
        assert_eq!(agreeing.mode, Mode::Production);
        assert!(agreeing.mode_warning.is_none());
    }
}
