//! The providers a merchant can use: the gateway-wide accounts built at start
//! (the mock, or a provider configured for the whole server) and each
//! merchant's own accounts built from the credentials it stored. Every
//! provider is wrapped so its calls and errors are counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use gateway_core::{
    build_provider, CancelIntent, Capabilities, CaptureIntent, ConfirmIntent, CreateCustomer, CreateIntent,
    CreateRefund, Customer, IdempotencyKey, PaymentIntent, PaymentProvider, ProviderConfig, ProviderError,
    ProviderEvent, Refund, SavedPaymentMethod, UpdateIntent, VerifiedWebhook, WebhookError, WebhookRequest,
};

use crate::domain::error::ApiError;
use crate::store::{CredentialRow, Store, StoreError};
use crate::support::crypto::Sealer;
use crate::support::metrics::Metrics;

/// A provider whose calls are counted in the metrics.
struct Instrumented {
    inner: Arc<dyn PaymentProvider>,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => kind_name(error),
        };
        self.metrics
            .observe_provider(self.inner.name(), operation, outcome);
        if let Err(error) = &result {
            tracing::debug!(
                provider = self.inner.name(),
                operation,
                kind = outcome,
                "provider call failed"
            );
            if !matches!(error, ProviderError::CardDeclined { .. }) {
                tracing::warn!(provider = self.inner.name(), operation, %error, "provider error");
            }
        }
        result
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

#[async_trait]
impl PaymentProvider for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create_intent(
        &self,
        r: CreateIntent,
        k: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.count("create_intent", self.inner.create_intent(r, k).await)
    }
    async fn retrieve_intent(&self, id: &str) -> Result<PaymentIntent, ProviderError> {
        self.count("retrieve_intent", self.inner.retrieve_intent(id).await)
    }
    async fn update_intent(
        &self,
        id: &str,
        r: UpdateIntent,
        k: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.count("update_intent", self.inner.update_intent(id, r, k).await)
    }
    async fn confirm_intent(
        &self,
        id: &str,
        r: ConfirmIntent,
        k: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.count("confirm_intent", self.inner.confirm_intent(id, r, k).await)
    }
    async fn capture_intent(
        &self,
        id: &str,
        r: CaptureIntent,
        k: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.count("capture_intent", self.inner.capture_intent(id, r, k).await)
    }
    async fn cancel_intent(
        &self,
        id: &str,
        r: CancelIntent,
        k: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.count("cancel_intent", self.inner.cancel_intent(id, r, k).await)
    }
    async fn create_refund(&self, r: CreateRefund, k: &IdempotencyKey) -> Result<Refund, ProviderError> {
        self.count("create_refund", self.inner.create_refund(r, k).await)
    }
    async fn retrieve_refund(&self, id: &str) -> Result<Refund, ProviderError> {
        self.count("retrieve_refund", self.inner.retrieve_refund(id).await)
    }
    async fn create_customer(
        &self,
        r: CreateCustomer,
        k: &IdempotencyKey,
    ) -> Result<Customer, ProviderError> {
        self.count("create_customer", self.inner.create_customer(r, k).await)
    }
    async fn attach_payment_method(
        &self,
        customer: &str,
        method: &str,
        k: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        self.count(
            "attach_payment_method",
            self.inner.attach_payment_method(customer, method, k).await,
        )
    }
    async fn list_payment_methods(&self, customer: &str) -> Result<Vec<SavedPaymentMethod>, ProviderError> {
        self.count(
            "list_payment_methods",
            self.inner.list_payment_methods(customer).await,
        )
    }
    async fn detach_payment_method(
        &self,
        method: &str,
        k: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        self.count(
            "detach_payment_method",
            self.inner.detach_payment_method(method, k).await,
        )
    }
    fn verify_webhook(&self, request: &WebhookRequest) -> Result<VerifiedWebhook, WebhookError> {
        self.inner.verify_webhook(request)
    }
    async fn interpret_webhook(&self, webhook: &VerifiedWebhook) -> Result<ProviderEvent, ProviderError> {
        self.count("interpret_webhook", self.inner.interpret_webhook(webhook).await)
    }
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
            .map(|provider| {
                let wrapped: Arc<dyn PaymentProvider> = Arc::new(Instrumented {
                    inner: provider.clone(),
                    metrics: metrics.clone(),
                });
                (provider.name().to_owned(), wrapped)
            })
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
        Ok(Arc::new(Instrumented {
            inner: provider,
            metrics: self.metrics.clone(),
        }))
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
