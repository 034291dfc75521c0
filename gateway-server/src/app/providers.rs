//! The providers a merchant can use: the gateway-wide accounts built at start
//! (the mock, or a provider configured for the whole server) and each
//! merchant's own accounts built from the credentials it stored. Every
//! provider is behind gateway-core's `CheckedProvider`: its capabilities are
//! enforced and its calls and errors counted. The mock provider is offered
//! in sandbox mode only: outside it, neither the gateway nor a merchant's
//! stored settings can make one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gateway_core::{
    build_provider, CheckedProvider, ObservedCall, PaymentProvider, ProviderConfig, ProviderError,
    ProviderObserver,
};

use crate::app::invalidation::CACHE_TTL;
use crate::domain::error::ApiError;
use crate::domain::records::ProviderAccount;
use crate::store::{CredentialRow, Store, StoreError};
use crate::support::crypto::Sealer;
use crate::support::ids::{hex, random_bytes, RandomUnavailable};
use crate::support::metrics::Metrics;

/// Counts and logs every provider call (the observer of each account's
/// [`CheckedProvider`], which also enforces the provider's capabilities),
/// and records it on the timeline of the payment it was made for (`app::timeline`).
struct CallMetrics(Arc<Metrics>);

impl ProviderObserver for CallMetrics {
    fn observe(&self, provider: &str, operation: &'static str, outcome: Result<(), &ProviderError>) {
        let kind = match outcome {
            Ok(()) => "ok",
            Err(error) => kind_name(error),
        };
        self.0.observe_provider(provider, operation, kind);
        if let Err(error) = outcome {
            tracing::debug!(provider, operation, kind, "provider call failed");
            if !matches!(error, ProviderError::CardDeclined { .. }) {
                tracing::warn!(provider, operation, %error, "provider error");
            }
        }
    }

    /// Counts the call, and puts it on the timeline of the payment whose run made it.
    fn observe_call(&self, call: &ObservedCall<'_>) {
        self.observe(call.provider, call.operation, call.outcome);
        crate::app::timeline::record_call(call);
    }
}

fn kind_name(error: &ProviderError) -> &'static str {
    use gateway_core::ProviderErrorKind as K;
    match error.kind() {
        K::CardDeclined => "card_declined",
        K::AuthenticationRequired => "authentication_required",
        K::InvalidRequest => "invalid_request",
        K::NotFound => "not_found",
        K::IdempotencyConflict => "idempotency_conflict",
        K::RateLimited => "rate_limited",
        K::Unavailable => "unavailable",
        K::Unsupported => "unsupported",
        _ => "other",
    }
}

/// `provider` as the gateway calls it: capability-checked, bounded by
/// `time_bound` (`Config::provider_timeout`) and observed.
fn checked(
    provider: Arc<dyn PaymentProvider>,
    metrics: &Arc<Metrics>,
    time_bound: Duration,
) -> Arc<dyn PaymentProvider> {
    Arc::new(
        CheckedProvider::new(provider)
            .time_bound(time_bound)
            .observed_by(Arc::new(CallMetrics(metrics.clone()))),
    )
}

/// The in-memory provider's name: offered in sandbox mode only.
pub(crate) const MOCK: &str = "mock";

/// Fills what the mock provider must not take from its public defaults: a
/// random id seed (ids never repeat across restarts) and a random webhook
/// secret, unless `config` sets them (tests, a sandbox that signs its own
/// mock webhooks).
pub(crate) fn randomize_mock(config: &mut ProviderConfig) -> Result<(), RandomUnavailable> {
    if config.get("seed").is_none() {
        config.set("seed", u64::from_le_bytes(random_bytes::<8>()?).to_string());
    }
    if config.get("webhook_secret").is_none() {
        config.set("webhook_secret", format!("whsec_{}", hex(&random_bytes::<32>()?)));
    }
    Ok(())
}

/// Why the gateway-wide providers cannot serve as configured (startup stops).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderSetupError {
    /// A provider named `mock` outside sandbox mode.
    #[error(
        "the mock provider is offered in sandbox mode only, and this is GATEWAY_MODE=production: remove it \
         (gateway-wide settings, or a mock registered through the builder), or set GATEWAY_MODE=sandbox"
    )]
    MockOutsideSandbox,
    /// The configured default names no configured provider.
    #[error(
        "GATEWAY_DEFAULT_PROVIDER is {name:?}, which is not configured{hint}; set it to one of: {available}"
    )]
    UnknownDefault {
        name: String,
        hint: &'static str,
        available: String,
    },
    /// Several providers and no default: a request naming none could reach any of them.
    #[error(
        "several providers are configured ({available}) and GATEWAY_DEFAULT_PROVIDER does not say which one \
         serves requests that name none: set GATEWAY_DEFAULT_PROVIDER={suggested} (or default_provider in \
         the configuration file); in production also set GATEWAY_MODE=production, which turns the mock provider off"
    )]
    AmbiguousDefault { available: String, suggested: String },
}

/// The provider of requests that name none: the configured one, else the
/// only one; refused when it is not configured or several could be meant.
fn choose_default(
    names: &[String],
    configured: Option<String>,
    sandbox: bool,
) -> Result<Option<String>, ProviderSetupError> {
    let available = || {
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        }
    };
    match configured {
        Some(name) if names.contains(&name) => Ok(Some(name)),
        Some(name) => Err(ProviderSetupError::UnknownDefault {
            hint: if name == MOCK && !sandbox {
                " (the mock provider is offered in sandbox mode only)"
            } else {
                ""
            },
            name,
            available: available(),
        }),
        None if names.len() <= 1 => Ok(names.first().cloned()),
        None => Err(ProviderSetupError::AmbiguousDefault {
            suggested: names
                .iter()
                .find(|name| *name != MOCK)
                .unwrap_or(&names[0])
                .clone(),
            available: available(),
        }),
    }
}

/// Why no provider account could be had for a merchant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderLookupError {
    /// Neither the merchant nor the gateway has an account of this provider.
    #[error("provider {name:?} is not configured")]
    NotConfigured { name: String, available: Vec<String> },
    /// The account a payment, customer or card was made on is gone (the
    /// merchant removed its credentials, or the gateway its account).
    #[error("the {} account of provider {name:?} is not available", account.as_str())]
    AccountUnavailable { name: String, account: ProviderAccount },
    /// The mock provider, outside sandbox mode.
    #[error("the mock provider is offered in sandbox mode only")]
    SandboxOnly,
    /// The merchant's stored credentials could not be opened or read (a
    /// changed master key, a damaged row).
    #[error("stored provider credentials are unreadable")]
    UnreadableCredentials,
    /// The provider refused the stored configuration.
    #[error("building the provider failed: {0}")]
    Build(ProviderError),
    /// Reading the credentials failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed (the mock's seed and secret).
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

impl From<ProviderLookupError> for ApiError {
    fn from(error: ProviderLookupError) -> Self {
        match error {
            ProviderLookupError::NotConfigured { name, available } => ApiError::invalid_param(
                "provider",
                format!(
                    "provider {name:?} is not available; configure it with PUT /v1/merchant/providers \
                     or use one of: {}",
                    available.join(", ")
                ),
            ),
            ProviderLookupError::AccountUnavailable { name, account } => ApiError::conflict(
                "provider_account_unavailable",
                match account {
                    ProviderAccount::Merchant => format!(
                        "this was made on the merchant's own {name:?} account, whose credentials are no longer \
                         stored; store them again with PUT /v1/merchant/providers (another account does not \
                         know it)"
                    ),
                    ProviderAccount::Gateway => format!(
                        "this was made on the gateway-wide {name:?} account, which this gateway no longer \
                         has; the gateway's operator must configure it again (the merchant's own account \
                         does not know it)"
                    ),
                },
            ),
            ProviderLookupError::SandboxOnly => ApiError::invalid_param(
                "provider",
                "the mock provider is offered in sandbox mode only; this gateway is not a sandbox",
            ),
            ProviderLookupError::Store(error) => error.into(),
            ProviderLookupError::Build(error) => error.into(),
            ProviderLookupError::Random(error) => error.into(),
            ProviderLookupError::UnreadableCredentials => {
                tracing::error!("a merchant's provider credentials could not be opened");
                ApiError::internal()
            }
        }
    }
}

type MerchantKey = (String, String);

/// A merchant's own account of one provider, as last read.
#[derive(Clone)]
struct OwnAccount {
    /// The account built from the stored credentials, with those credentials
    /// (sealed) to tell a change from a re-read; `None` when it stored none.
    built: Option<(Arc<dyn PaymentProvider>, Vec<u8>)>,
    /// When the credentials were last read; `None` once a notice said they changed.
    read_at: Option<Instant>,
}

impl OwnAccount {
    fn is_fresh(&self) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() < CACHE_TTL)
    }

    fn provider(&self) -> Option<Arc<dyn PaymentProvider>> {
        self.built.as_ref().map(|(provider, _)| provider.clone())
    }
}

type MerchantCache = HashMap<MerchantKey, OwnAccount>;

fn lock(cache: &Mutex<MerchantCache>) -> MutexGuard<'_, MerchantCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every provider account the server can use.
pub(crate) struct Providers {
    global: Arc<BTreeMap<String, Arc<dyn PaymentProvider>>>,
    default: Option<String>,
    /// Whether the mock provider may be offered.
    sandbox: bool,
    /// Per merchant and provider name: the merchant's own account as last
    /// read (trusted for [`CACHE_TTL`], or until a notice marks it stale).
    merchant: Arc<Mutex<MerchantCache>>,
    metrics: Arc<Metrics>,
    /// The longest one provider call may take (`Config::provider_timeout`).
    time_bound: Duration,
    /// The operator's endpoint settings by provider name (see
    /// [`Providers::with_operator_settings`]), given to merchant accounts.
    endpoint: BTreeMap<String, BTreeMap<String, String>>,
}

/// The bus's view of [`Providers`]: a merchant's account as last built, or
/// the gateway-wide one. Every change the server publishes was just made
/// through the merchant's provider, so its account is in the cache.
pub(crate) struct CachedProviders {
    global: Arc<BTreeMap<String, Arc<dyn PaymentProvider>>>,
    merchant: Arc<Mutex<MerchantCache>>,
}

impl gateway_core::ProviderResolver for CachedProviders {
    fn provider(&self, merchant: Option<&str>, name: &str) -> Option<Arc<dyn PaymentProvider>> {
        if let Some(merchant) = merchant {
            let cached = lock(&self.merchant)
                .get(&(merchant.to_owned(), name.to_owned()))
                .and_then(OwnAccount::provider);
            if cached.is_some() {
                return cached;
            }
        }
        self.global.get(name).cloned()
    }
}

impl Providers {
    /// The gateway-wide accounts `global`, `default` serving requests that
    /// name no provider, every call bounded by `time_bound`. Refuses the mock
    /// outside `sandbox` mode, a default that is not among them, and no
    /// default when several could be meant.
    pub(crate) fn new(
        global: Vec<Arc<dyn PaymentProvider>>,
        default: Option<String>,
        sandbox: bool,
        metrics: Arc<Metrics>,
        time_bound: Duration,
    ) -> Result<Self, ProviderSetupError> {
        let global: BTreeMap<_, _> = global
            .into_iter()
            .map(|provider| {
                (
                    provider.name().to_owned(),
                    checked(provider, &metrics, time_bound),
                )
            })
            .collect();
        if !sandbox && global.contains_key(MOCK) {
            return Err(ProviderSetupError::MockOutsideSandbox);
        }
        let names: Vec<String> = global.keys().cloned().collect();
        let default = choose_default(&names, default, sandbox)?;
        Ok(Providers {
            global: Arc::new(global),
            default,
            sandbox,
            merchant: Arc::new(Mutex::new(HashMap::new())),
            metrics,
            time_bound,
            endpoint: BTreeMap::new(),
        })
    }

    /// Gives merchant accounts the operator's endpoint settings: of each
    /// provider's configured settings (`Config::providers`), those that are
    /// not credentials ([`is_credential`]), e.g. Stripe's `api_base`.
    pub(crate) fn with_operator_settings(
        mut self,
        configured: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Self {
        self.endpoint = configured
            .iter()
            .map(|(name, settings)| {
                let endpoint = settings
                    .iter()
                    .filter(|(key, _)| !is_credential(name, key))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                (name.clone(), endpoint)
            })
            .collect();
        self
    }

    /// The configuration of a merchant's account of `name`: the operator's
    /// endpoint settings, then the merchant's credentials (only those).
    pub(crate) fn merchant_config(
        &self,
        name: &str,
        credentials: &BTreeMap<String, String>,
    ) -> ProviderConfig {
        let mut settings = self.endpoint.get(name).cloned().unwrap_or_default();
        settings.extend(
            credentials
                .iter()
                .filter(|(key, _)| is_credential(name, key))
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        provider_config(&settings)
    }

    /// A resolver for the event bus's handler context.
    pub(crate) fn resolver(&self) -> CachedProviders {
        CachedProviders {
            global: self.global.clone(),
            merchant: self.merchant.clone(),
        }
    }

    /// The gateway-wide account of provider `name`.
    pub(crate) fn global(&self, name: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.global.get(name).cloned()
    }

    /// The provider used when a request names none.
    pub(crate) fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Names of the gateway-wide providers.
    pub(crate) fn global_names(&self) -> Vec<String> {
        self.global.keys().cloned().collect()
    }

    /// Marks a merchant's cached account stale after its credentials changed
    /// (its next lookup reads them again).
    pub(crate) fn invalidate(&self, merchant_id: &str, provider: &str) {
        if let Some(own) = lock(&self.merchant).get_mut(&(merchant_id.to_owned(), provider.to_owned())) {
            own.read_at = None;
        }
    }

    /// Marks every merchant's cached accounts stale.
    pub(crate) fn invalidate_all(&self) {
        for own in lock(&self.merchant).values_mut() {
            own.read_at = None;
        }
    }

    /// A merchant's account of provider `name` from its settings: refused
    /// for the mock outside sandbox mode; the mock gets a random seed and
    /// webhook secret unless the settings give them.
    pub(crate) fn build(
        &self,
        name: &str,
        config: &ProviderConfig,
    ) -> Result<Arc<dyn PaymentProvider>, ProviderLookupError> {
        let provider = if name == MOCK {
            if !self.sandbox {
                return Err(ProviderLookupError::SandboxOnly);
            }
            let mut config = config.clone();
            randomize_mock(&mut config)?;
            build_provider(name, &config)
        } else {
            build_provider(name, config)
        };
        Ok(checked(
            provider.map_err(ProviderLookupError::Build)?,
            &self.metrics,
            self.time_bound,
        ))
    }

    /// The account `merchant_id` uses for `name` and which one it is: the
    /// `pinned` account when given (what a payment, customer or card was
    /// made on), else its own if it stored credentials, else the gateway-wide
    /// one. A pinned account that is gone is an error, never the other
    /// account: what one account made, the other does not know.
    pub(crate) async fn account(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
        merchant_id: &str,
        name: &str,
        pinned: Option<ProviderAccount>,
    ) -> Result<(Arc<dyn PaymentProvider>, ProviderAccount), ProviderLookupError> {
        let global = || self.global.get(name).cloned();
        let found = match pinned {
            Some(ProviderAccount::Gateway) => global().map(|provider| (provider, ProviderAccount::Gateway)),
            Some(ProviderAccount::Merchant) => self
                .own(store, sealer, merchant_id, name)
                .await?
                .map(|provider| (provider, ProviderAccount::Merchant)),
            None => match self.own(store, sealer, merchant_id, name).await? {
                Some(own) => Some((own, ProviderAccount::Merchant)),
                None => global().map(|provider| (provider, ProviderAccount::Gateway)),
            },
        };
        found.ok_or_else(|| match pinned {
            Some(account) => ProviderLookupError::AccountUnavailable {
                name: name.to_owned(),
                account,
            },
            None => ProviderLookupError::NotConfigured {
                name: name.to_owned(),
                available: self.global_names(),
            },
        })
    }

    /// The account `merchant_id` uses for `name` (see [`Providers::account`], unpinned).
    pub(crate) async fn for_merchant(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
        merchant_id: &str,
        name: &str,
    ) -> Result<Arc<dyn PaymentProvider>, ProviderLookupError> {
        Ok(self.account(store, sealer, merchant_id, name, None).await?.0)
    }

    /// The merchant's own account of `name`, built from its stored
    /// credentials (cached); `None` when it stored none. Never the
    /// gateway-wide account: what a merchant's own webhook endpoint verifies with.
    pub(crate) async fn own(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
        merchant_id: &str,
        name: &str,
    ) -> Result<Option<Arc<dyn PaymentProvider>>, ProviderLookupError> {
        let key = (merchant_id.to_owned(), name.to_owned());
        let cached = lock(&self.merchant).get(&key).cloned();
        match cached {
            Some(own) if own.is_fresh() => Ok(own.provider()),
            cached => {
                let row = store
                    .credentials(merchant_id)
                    .await?
                    .into_iter()
                    .find(|row| row.provider == name);
                let unchanged = cached
                    .and_then(|own| own.built)
                    .filter(|(_, sealed)| row.as_ref().is_some_and(|row| row.sealed == *sealed));
                let built = match (unchanged, row) {
                    (Some(same), _) => Some(same),
                    (None, Some(row)) => Some((self.build_for(sealer, &row)?, row.sealed)),
                    (None, None) => None,
                };
                let own = OwnAccount {
                    built,
                    read_at: Some(Instant::now()),
                };
                let provider = own.provider();
                lock(&self.merchant).insert(key, own);
                Ok(provider)
            }
        }
    }

    fn build_for(
        &self,
        sealer: &Sealer,
        row: &CredentialRow,
    ) -> Result<Arc<dyn PaymentProvider>, ProviderLookupError> {
        let plain = sealer
            .open(
                &row.sealed,
                credential_aad(&row.merchant_id, &row.provider).as_bytes(),
            )
            .map_err(|error| {
                tracing::error!(merchant = %row.merchant_id, provider = %row.provider, %error, "credentials");
                ProviderLookupError::UnreadableCredentials
            })?;
        let values: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|_| ProviderLookupError::UnreadableCredentials)?;
        let ignored: Vec<&str> = values
            .keys()
            .filter(|key| !is_credential(&row.provider, key))
            .map(String::as_str)
            .collect();
        if !ignored.is_empty() {
            // Once per change of the stored row: an unchanged row is not built again.
            tracing::warn!(
                merchant = %row.merchant_id,
                provider = %row.provider,
                settings = ?ignored,
                "stored merchant settings that are not credentials are ignored; the operator's endpoint settings apply"
            );
        }
        self.build(&row.provider, &self.merchant_config(&row.provider, &values))
    }
}

/// Whether `key` is a credential of provider `name`: what a merchant may
/// store for its own account. Stripe says which of its settings are
/// ([`gateway_stripe::CREDENTIAL_KEYS`]); the mock (sandbox only, it calls
/// nothing) takes all of its settings; for any other provider, only
/// settings named as secrets or keys (`…_key`, `…_secret`, `…_secrets`).
pub(crate) fn is_credential(name: &str, key: &str) -> bool {
    #[cfg(feature = "stripe")]
    if name == gateway_stripe::STRIPE_PROVIDER_NAME {
        return gateway_stripe::CREDENTIAL_KEYS.contains(&key);
    }
    if name == MOCK {
        return true;
    }
    ["_key", "_secret", "_secrets"]
        .iter()
        .any(|end| key.ends_with(end))
        || key == "secret"
}

/// A provider configuration from stored settings. The API guide's
/// `webhook_secret` is also passed as `webhook_secrets` (the registry's name
/// for the comma-separated list) unless that is set too.
pub(crate) fn provider_config(settings: &BTreeMap<String, String>) -> ProviderConfig {
    let mut config = ProviderConfig::new();
    for (key, value) in settings {
        config.set(key.clone(), value.clone());
    }
    if let Some(secret) = settings.get("webhook_secret") {
        if !settings.contains_key("webhook_secrets") {
            config.set("webhook_secrets", secret.clone());
        }
    }
    config
}

/// The associated data that binds sealed credentials to their merchant and provider.
pub(crate) fn credential_aad(merchant_id: &str, provider: &str) -> String {
    format!("provider-credentials:{merchant_id}:{provider}")
}

#[cfg(test)]
mod tests {
    use gateway_core::MockProvider;

    use super::*;
    use crate::store::SqliteStore;
    use crate::support::crypto::MasterKey;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    fn providers(
        global: Vec<Arc<dyn PaymentProvider>>,
        default: Option<&str>,
        sandbox: bool,
    ) -> Result<Providers, ProviderSetupError> {
        Providers::new(
            global,
            default.map(str::to_owned),
            sandbox,
            Arc::new(Metrics::new()),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn the_default_is_the_configured_or_the_only_provider() {
        let both = names(&["mock", "stripe"]);
        assert_eq!(
            choose_default(&both, Some("stripe".into()), true).unwrap(),
            Some("stripe".to_owned())
        );
        assert_eq!(
            choose_default(&names(&["mock"]), None, true).unwrap(),
            Some("mock".to_owned())
        );
        assert_eq!(choose_default(&[], None, false).unwrap(), None);
    }

    #[test]
    fn several_providers_without_a_default_are_refused_naming_the_fix() {
        let error = choose_default(&names(&["mock", "stripe"]), None, true).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("GATEWAY_DEFAULT_PROVIDER=stripe")
                && message.contains("GATEWAY_MODE=production"),
            "{message}"
        );
    }

    #[test]
    fn a_default_that_is_not_configured_is_refused() {
        let error = choose_default(&names(&["stripe"]), Some("mock".into()), false).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("\"mock\"")
                && message.contains("sandbox mode only")
                && message.contains("stripe"),
            "{message}"
        );
        let error = choose_default(&names(&["mock"]), Some("strpie".into()), true).unwrap_err();
        assert!(!error.to_string().contains("sandbox"), "{error}");
    }

    #[test]
    fn the_mock_is_refused_outside_sandbox_mode() {
        let mock = || -> Arc<dyn PaymentProvider> { Arc::new(MockProvider::new()) };
        assert!(matches!(
            providers(vec![mock()], None, false),
            Err(ProviderSetupError::MockOutsideSandbox)
        ));
        let sandbox = providers(vec![mock()], None, true).unwrap();
        assert_eq!(sandbox.default_name(), Some("mock"));
        // Nor can a merchant's stored settings make one.
        let production = providers(Vec::new(), None, false).unwrap();
        assert!(matches!(
            production.build(MOCK, &ProviderConfig::new()),
            Err(ProviderLookupError::SandboxOnly)
        ));
        assert!(sandbox.build(MOCK, &ProviderConfig::new()).is_ok());
    }

    #[test]
    fn the_mock_gets_a_random_seed_and_secret_unless_configured() {
        let mut first = ProviderConfig::new();
        let mut second = ProviderConfig::new();
        randomize_mock(&mut first).unwrap();
        randomize_mock(&mut second).unwrap();
        assert_ne!(first.get("seed"), second.get("seed"));
        assert_ne!(first.get("webhook_secret"), second.get("webhook_secret"));
        assert_ne!(first.get("webhook_secret"), Some("whsec_mock"));
        assert!(first.get("seed").unwrap().parse::<u64>().is_ok());
        let mut configured = ProviderConfig::new()
            .with("seed", "7")
            .with("webhook_secret", "whsec_test");
        randomize_mock(&mut configured).unwrap();
        assert_eq!(configured.get("seed"), Some("7"));
        assert_eq!(configured.get("webhook_secret"), Some("whsec_test"));
    }

    /// Which account merchant `m1` gets for the mock, `pinned` or not.
    async fn account_of(
        providers: &Providers,
        store: &dyn Store,
        sealer: &Sealer,
        pinned: Option<ProviderAccount>,
    ) -> Result<ProviderAccount, ProviderLookupError> {
        let (_, account) = providers.account(store, sealer, "m1", MOCK, pinned).await?;
        Ok(account)
    }

    #[tokio::test]
    async fn a_pinned_account_is_that_account_or_a_typed_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("providers.db").display());
        let store = SqliteStore::open(&url).await.expect("open SQLite");
        let sealer = Sealer::new(&MasterKey::generate().unwrap());
        let mock: Arc<dyn PaymentProvider> = Arc::new(MockProvider::new());
        let with_gateway = &providers(vec![mock], None, true).unwrap();
        let without_gateway = &providers(Vec::new(), None, true).unwrap();
        let lookup = |providers, pinned| account_of(providers, &store, &sealer, pinned);
        // A merchant with no credentials of its own: new objects go to the gateway-wide account.
        assert_eq!(
            lookup(with_gateway, None).await.unwrap(),
            ProviderAccount::Gateway
        );
        assert_eq!(
            lookup(with_gateway, Some(ProviderAccount::Gateway))
                .await
                .unwrap(),
            ProviderAccount::Gateway
        );
        // A pinned account that is gone is refused, never replaced by the other.
        for (providers, pinned) in [
            (with_gateway, ProviderAccount::Merchant),
            (without_gateway, ProviderAccount::Gateway),
        ] {
            let error = lookup(providers, Some(pinned)).await.unwrap_err();
            assert!(
                matches!(error, ProviderLookupError::AccountUnavailable { account, .. } if account == pinned),
                "{error}"
            );
            let api = ApiError::from(error);
            assert_eq!(api.code(), "provider_account_unavailable");
            assert_eq!(api.status(), crate::domain::error::Status::CONFLICT);
        }
        assert!(matches!(
            lookup(without_gateway, None).await,
            Err(ProviderLookupError::NotConfigured { .. })
        ));
    }

    #[cfg(feature = "stripe")]
    #[test]
    fn merchant_accounts_take_credentials_from_the_merchant_and_endpoints_from_the_operator() {
        let _ = gateway_stripe::link();
        assert!(is_credential("stripe", "secret_key") && is_credential("stripe", "webhook_secrets"));
        for key in [
            "api_base",
            "timeout_ms",
            "max_retries",
            "webhook_tolerance_secs",
            "other",
        ] {
            assert!(!is_credential("stripe", key), "{key}");
        }
        assert!(is_credential(MOCK, "seed"));
        assert!(is_credential("acme", "api_key") && !is_credential("acme", "endpoint"));
        let operator: BTreeMap<String, BTreeMap<String, String>> = [(
            "stripe".to_owned(),
            [
                ("secret_key", "sk_operator"),
                ("api_base", "http://127.0.0.1:12111"),
                ("max_retries", "0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        )]
        .into();
        let providers = providers(Vec::new(), None, true)
            .unwrap()
            .with_operator_settings(&operator);
        // Settings stored before merchants gave credentials only: the endpoint ones are ignored.
        let stored: BTreeMap<String, String> = [
            ("secret_key", "sk_merchant"),
            ("webhook_secret", "whsec_m"),
            ("api_base", "http://169.254.169.254"),
            ("timeout_ms", "99999999"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = providers.merchant_config("stripe", &stored);
        assert_eq!(
            config.get("secret_key"),
            Some("sk_merchant"),
            "never the operator's key"
        );
        assert_eq!(config.get("webhook_secrets"), Some("whsec_m"));
        assert_eq!(config.get("api_base"), Some("http://127.0.0.1:12111"));
        assert_eq!(config.get("max_retries"), Some("0"));
        assert_eq!(config.get("timeout_ms"), None);
        let sealer = Sealer::new(&MasterKey::generate().unwrap());
        let row = CredentialRow {
            merchant_id: "m1".to_owned(),
            provider: "stripe".to_owned(),
            sealed: sealer
                .seal(
                    &serde_json::to_vec(&stored).unwrap(),
                    credential_aad("m1", "stripe").as_bytes(),
                )
                .unwrap(),
            masked: "{}".to_owned(),
            updated_at: 0,
        };
        assert!(
            providers.build_for(&sealer, &row).is_ok(),
            "the old row still builds"
        );
    }

    #[test]
    fn webhook_secret_is_aliased() {
        let settings: BTreeMap<String, String> = [
            ("secret_key".to_owned(), "sk_test_x".to_owned()),
            ("webhook_secret".to_owned(), "whsec_1".to_owned()),
        ]
        .into();
        let config = provider_config(&settings);
        assert_eq!(config.get("webhook_secrets"), Some("whsec_1"));
        assert_eq!(config.get("secret_key"), Some("sk_test_x"));
    }
}
