//! The providers a merchant can use: the gateway-wide accounts built at start
//! (the mock, or a provider configured for the whole server) and each
//! merchant's own accounts built from the credentials it stored. Every
//! provider is behind gateway-core's `CheckedProvider`: its capabilities are
//! enforced and its calls and errors counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use gateway_core::{
    build_provider, CheckedProvider, PaymentProvider, ProviderConfig, ProviderError, ProviderObserver,
};

use crate::domain::error::ApiError;
use crate::store::{CredentialRow, Store, StoreError};
use crate::support::crypto::Sealer;
use crate::support::metrics::Metrics;

/// Counts and logs every provider call (the observer of each account's
/// [`CheckedProvider`], which also enforces the provider's capabilities).
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

/// `provider` as the gateway calls it: capability-checked and observed.
fn checked(provider: Arc<dyn PaymentProvider>, metrics: &Arc<Metrics>) -> Arc<dyn PaymentProvider> {
    Arc::new(CheckedProvider::new(provider).observed_by(Arc::new(CallMetrics(metrics.clone()))))
}

/// Why no provider account could be had for a merchant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderLookupError {
    /// Neither the merchant nor the gateway has an account of this provider.
    #[error("provider {name:?} is not configured")]
    NotConfigured { name: String, available: Vec<String> },
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
            ProviderLookupError::Store(error) => error.into(),
            ProviderLookupError::Build(error) => error.into(),
            ProviderLookupError::UnreadableCredentials => {
                tracing::error!("a merchant's provider credentials could not be opened");
                ApiError::internal()
            }
        }
    }
}

type MerchantKey = (String, String);

/// Every provider account the server can use.
pub(crate) struct Providers {
    global: Arc<BTreeMap<String, Arc<dyn PaymentProvider>>>,
    default: Option<String>,
    /// Per merchant and provider name: the merchant's own account, or `None`
    /// when it stored no credentials (then the global account serves).
    merchant: Arc<Mutex<MerchantCache>>,
    metrics: Arc<Metrics>,
}

type MerchantCache = HashMap<MerchantKey, Option<Arc<dyn PaymentProvider>>>;

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
            let cached = self
                .merchant
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&(merchant.to_owned(), name.to_owned()))
                .cloned()
                .flatten();
            if cached.is_some() {
                return cached;
            }
        }
        self.global.get(name).cloned()
    }
}

impl Providers {
    pub(crate) fn new(
        global: Vec<Arc<dyn PaymentProvider>>,
        default: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let global: BTreeMap<_, _> = global
            .into_iter()
            .map(|provider| (provider.name().to_owned(), checked(provider, &metrics)))
            .collect();
        let default = default
            .filter(|name| global.contains_key(name))
            .or_else(|| global.keys().next().cloned());
        Providers {
            global: Arc::new(global),
            default,
            merchant: Arc::new(Mutex::new(HashMap::new())),
            metrics,
        }
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

    /// Forgets a merchant's cached account after its credentials changed.
    pub(crate) fn invalidate(&self, merchant_id: &str, provider: &str) {
        self.merchant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(merchant_id.to_owned(), provider.to_owned()));
    }

    /// The account `merchant_id` uses for `name`: its own if it stored
    /// credentials, else the gateway-wide one; 400 naming `provider` if neither.
    pub(crate) async fn for_merchant(
        &self,
        store: &dyn Store,
        sealer: &Sealer,
        merchant_id: &str,
        name: &str,
    ) -> Result<Arc<dyn PaymentProvider>, ProviderLookupError> {
        let key = (merchant_id.to_owned(), name.to_owned());
        let cached = self
            .merchant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let own = match cached {
            Some(own) => own,
            None => {
                let row = store
                    .credentials(merchant_id)
                    .await?
                    .into_iter()
                    .find(|row| row.provider == name);
                let own = match row {
                    Some(row) => Some(self.build_for(sealer, &row)?),
                    None => None,
                };
                self.merchant
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, own.clone());
                own
            }
        };
        own.or_else(|| self.global.get(name).cloned())
            .ok_or_else(|| ProviderLookupError::NotConfigured {
                name: name.to_owned(),
                available: self.global_names(),
            })
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
        let mut config = ProviderConfig::new();
        for (key, value) in values {
            config.set(key, value);
        }
        let provider = build_provider(&row.provider, &config).map_err(ProviderLookupError::Build)?;
        Ok(checked(provider, &self.metrics))
    }
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
    use super::*;

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
