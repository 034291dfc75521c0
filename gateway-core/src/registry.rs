//! Provider factories, registered with `inventory` by every provider crate linked in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::ProviderError;
use crate::provider::PaymentProvider;

/// Settings for building one provider account: key/value strings such as
/// `secret_key`, `webhook_secrets` or `api_base`. Values are treated as
/// secrets: `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderConfig {
    values: BTreeMap<String, String>,
}

impl ProviderConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        ProviderConfig::default()
    }

    /// Sets `key` to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Sets `key` to `value` in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key`, or an invalid-request error naming it.
    pub fn require(&self, key: &str) -> Result<&str, ProviderError> {
        self.get(key).filter(|value| !value.is_empty()).ok_or_else(|| {
            ProviderError::invalid(
                Some("missing_setting"),
                Some(key),
                format!("setting {key} is required"),
            )
        })
    }

    /// The keys that are set, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.values.keys().map(|key| (key, "<redacted>")))
            .finish()
    }
}

/// Builds a provider account from its configuration.
pub type BuildProvider = fn(&ProviderConfig) -> Result<Arc<dyn PaymentProvider>, ProviderError>;

/// A provider crate's registration: submit one with `inventory::submit!` (or
/// [`crate::submit_provider!`]) and every gateway the crate is linked into offers it.
#[derive(Debug)]
pub struct ProviderFactory {
    /// The provider's name, as merchants and configuration refer to it (`stripe`).
    pub name: &'static str,
    /// One line on what the provider is.
    pub description: &'static str,
    /// Builds an account from configuration.
    pub build: BuildProvider,
}

inventory::collect!(ProviderFactory);

/// Every provider factory linked into this binary, sorted by name (inventory's own order is unspecified).
pub fn provider_factories() -> Vec<&'static ProviderFactory> {
    let mut factories: Vec<_> = inventory::iter::<ProviderFactory>.into_iter().collect();
    factories.sort_by_key(|factory| factory.name);
    factories
}

/// The factory registered under `name`.
pub fn provider_factory(name: &str) -> Option<&'static ProviderFactory> {
    inventory::iter::<ProviderFactory>
        .into_iter()
        .find(|factory| factory.name == name)
}

/// Builds the provider registered under `name` from `config`.
pub fn build_provider(
    name: &str,
    config: &ProviderConfig,
) -> Result<Arc<dyn PaymentProvider>, ProviderError> {
    let factory = provider_factory(name).ok_or_else(|| {
        ProviderError::invalid(
            Some("unknown_provider"),
            Some("provider"),
            format!("no provider named {name:?} is linked into this gateway"),
        )
    })?;
    (factory.build)(config)
}

/// Registers a provider factory from a provider crate:
/// `gateway_core::submit_provider!(ProviderFactory { name: "acme", description: "…", build: build_acme });`
#[macro_export]
macro_rules! submit_provider {
    ($factory:expr) => {
        $crate::__private::inventory::submit! { $factory }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_values() {
        let config = ProviderConfig::new().with("secret_key", "sk_test_hush");
        let debug = format!("{config:?}");
        assert!(
            debug.contains("secret_key") && !debug.contains("sk_test_hush"),
            "{debug}"
        );
        assert_eq!(config.require("secret_key").unwrap(), "sk_test_hush");
        assert!(matches!(
            config.require("webhook_secret"),
            Err(ProviderError::InvalidRequest { param: Some(p), .. }) if p == "webhook_secret"
        ));
    }

    #[cfg(feature = "mock")]
    #[test]
    fn the_mock_provider_is_registered() {
        let names: Vec<_> = provider_factories().iter().map(|f| f.name).collect();
        assert!(names.contains(&"mock"), "{names:?}");
        let provider = build_provider("mock", &ProviderConfig::new()).unwrap();
        assert_eq!(provider.name(), "mock");
        assert!(build_provider("nope", &ProviderConfig::new()).is_err());
    }
}
