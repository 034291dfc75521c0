//! Settings for one Stripe account.

use std::fmt;
use std::time::Duration;

use gateway_core::{ProviderConfig, ProviderError};
use secrecy::{ExposeSecret, SecretString};

/// The default bound on one call to Stripe, every attempt and pause included.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of retries after a failure Stripe documents as safe to retry.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 2;
/// The default pause before the first retry; it doubles on each further retry.
pub(crate) const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// The default webhook timestamp tolerance, in the past and in the future (Stripe's 5 minutes).
pub const DEFAULT_WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// The settings that are an account's credentials: what a merchant gives
/// for its own Stripe account (`PUT /v1/merchant/providers`).
pub const CREDENTIAL_KEYS: &[&str] = &["secret_key", "webhook_secret", "webhook_secrets"];

/// The settings that say where and how Stripe is called (the API base,
/// time bounds, retries, webhook tolerance): the operator's only. A server
/// gives a merchant's account the operator's values of these.
pub const ENDPOINT_KEYS: &[&str] = &[
    "api_base",
    "timeout_ms",
    "max_retries",
    "retry_backoff_ms",
    "webhook_tolerance_secs",
];

/// Settings for a [`crate::StripeProvider`].
///
/// The secret key and webhook secrets are kept in [`SecretString`]s and never
/// appear in `Debug` output, logs or errors.
#[derive(Clone)]
pub struct StripeConfig {
    /// The account's secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`).
    pub secret_key: SecretString,
    /// Webhook signing secrets (`whsec_…`); a signature made with any of them is
    /// accepted, so the old and the new secret can overlap during a rotation.
    pub webhook_secrets: Vec<SecretString>,
    /// Where the API lives, e.g. `http://127.0.0.1:12111` for a local Stripe
    /// double (scheme required, without `/v1`); `None` means Stripe itself.
    pub api_base: Option<String>,
    /// The longest one provider call may take, every attempt and pause
    /// between attempts included: a Stripe that never answers costs this
    /// much, then the call ends as [`gateway_core::ProviderError::OutcomeUnknown`].
    pub timeout: Duration,
    /// Retries after a failure Stripe documents as safe to retry (a rate
    /// limit, a key still in use, a connection never opened; a 5xx on a
    /// read), always with the same idempotency key and within `timeout`.
    pub max_retries: u32,
    /// Pause before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// How far a webhook's signed timestamp may be from its arrival, either way.
    pub webhook_tolerance: Duration,
}

impl StripeConfig {
    /// A configuration with `secret_key`, no webhook secret and the defaults.
    pub fn new(secret_key: impl Into<String>) -> Self {
        StripeConfig {
            secret_key: SecretString::from(secret_key.into()),
            webhook_secrets: Vec::new(),
            api_base: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            webhook_tolerance: DEFAULT_WEBHOOK_TOLERANCE,
        }
    }

    /// Adds webhook secrets from a comma-separated list (blank entries are skipped).
    pub fn with_webhook_secrets(mut self, secrets: &str) -> Self {
        self.webhook_secrets.extend(parse_secret_list(secrets));
        self
    }

    /// Points the client at another base URL (a local Stripe double).
    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = Some(api_base.into());
        self
    }

    /// Reads the provider registry's settings:
    ///
    /// | key | meaning | default |
    /// | --- | --- | --- |
    /// | `secret_key` | the API secret key (required) | |
    /// | `webhook_secret` / `webhook_secrets` | signing secrets, comma-separated for rotation | none |
    /// | `api_base` | base URL, e.g. `http://127.0.0.1:12111` | Stripe |
    /// | `timeout_ms` | bound on one call, retries included, in milliseconds | 30000 |
    /// | `max_retries` | retries after failures safe to retry | 2 |
    /// | `retry_backoff_ms` | first retry pause in milliseconds, doubled each time | 500 |
    /// | `webhook_tolerance_secs` | webhook timestamp tolerance in seconds | 300 |
    ///
    /// The first two are the account's credentials ([`CREDENTIAL_KEYS`]);
    /// the others its endpoint settings ([`ENDPOINT_KEYS`]).
    pub fn from_provider_config(config: &ProviderConfig) -> Result<Self, ProviderError> {
        let mut stripe = StripeConfig::new(config.require("secret_key")?);
        for key in ["webhook_secret", "webhook_secrets"] {
            if let Some(secrets) = config.get(key) {
                stripe = stripe.with_webhook_secrets(secrets);
            }
        }
        if let Some(api_base) = config.get("api_base").filter(|base| !base.trim().is_empty()) {
            stripe.api_base = Some(api_base.trim().to_owned());
        }
        if let Some(ms) = parse_number(config, "timeout_ms")? {
            if ms == 0 {
                return Err(ProviderError::invalid(
                    Some("invalid_setting"),
                    Some("timeout_ms"),
                    "timeout_ms must be at least 1",
                ));
            }
            stripe.timeout = Duration::from_millis(ms);
        }
        if let Some(retries) = parse_number(config, "max_retries")? {
            stripe.max_retries = u32::try_from(retries).unwrap_or(u32::MAX).min(10);
        }
        if let Some(ms) = parse_number(config, "retry_backoff_ms")? {
            stripe.retry_backoff = Duration::from_millis(ms);
        }
        if let Some(secs) = parse_number(config, "webhook_tolerance_secs")? {
            stripe.webhook_tolerance = Duration::from_secs(secs);
        }
        Ok(stripe)
    }

    /// The secret key, for building the client only.
    pub(crate) fn expose_secret_key(&self) -> &str {
        self.secret_key.expose_secret()
    }
}

fn parse_secret_list(secrets: &str) -> impl Iterator<Item = SecretString> + '_ {
    secrets
        .split(',')
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .map(|secret| SecretString::from(secret.to_owned()))
}

fn parse_number(config: &ProviderConfig, key: &str) -> Result<Option<u64>, ProviderError> {
    match config.get(key).map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            ProviderError::invalid(
                Some("invalid_setting"),
                Some(key),
                format!("{key} must be a whole number"),
            )
        }),
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"<redacted>")
            .field(
                "webhook_secrets",
                &format_args!("<{} redacted>", self.webhook_secrets.len()),
            )
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("webhook_tolerance", &self.webhook_tolerance)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registry_settings_and_hides_secrets() {
        let config = ProviderConfig::new()
            .with("secret_key", "sk_test_hush")
            .with("webhook_secret", "whsec_old, whsec_new,")
            .with("api_base", "http://127.0.0.1:9")
            .with("timeout_ms", "1500")
            .with("max_retries", "4")
            .with("retry_backoff_ms", "20")
            .with("webhook_tolerance_secs", "60");
        let stripe = StripeConfig::from_provider_config(&config).unwrap();
        assert_eq!(stripe.expose_secret_key(), "sk_test_hush");
        let secrets: Vec<_> = stripe.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(secrets, ["whsec_old", "whsec_new"]);
        assert_eq!(stripe.api_base.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(stripe.timeout, Duration::from_millis(1500));
        assert_eq!(stripe.max_retries, 4);
        assert_eq!(stripe.retry_backoff, Duration::from_millis(20));
        assert_eq!(stripe.webhook_tolerance, Duration::from_secs(60));
        let debug = format!("{stripe:?}");
        assert!(!debug.contains("hush") && !debug.contains("whsec_"), "{debug}");
    }

    #[test]
    fn refuses_missing_key_and_bad_numbers() {
        let missing = StripeConfig::from_provider_config(&ProviderConfig::new()).unwrap_err();
        assert!(matches!(missing, ProviderError::InvalidRequest { param: Some(p), .. } if p == "secret_key"));
        let bad = ProviderConfig::new()
            .with("secret_key", "sk_test_x")
            .with("timeout_ms", "soon");
        let error = StripeConfig::from_provider_config(&bad).unwrap_err();
        assert!(matches!(error, ProviderError::InvalidRequest { param: Some(p), .. } if p == "timeout_ms"));
        let defaults =
            StripeConfig::from_provider_config(&ProviderConfig::new().with("secret_key", "sk")).unwrap();
        assert_eq!(defaults.timeout, DEFAULT_TIMEOUT);
        assert!(defaults.webhook_secrets.is_empty() && defaults.api_base.is_none());
    }

    #[test]
    fn credential_and_endpoint_keys_are_disjoint() {
        for key in CREDENTIAL_KEYS {
            assert!(!ENDPOINT_KEYS.contains(key), "{key}");
        }
    }
}
