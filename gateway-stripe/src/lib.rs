//! The Stripe provider for Gateway, and Stripe webhook signature verification.
//!
//! [`StripeProvider`] implements [`gateway_core::PaymentProvider`] on
//! [async-stripe](https://docs.rs/async-stripe) (pinned to `1.0.0-rc.10`):
//! payment intents, refunds, customers and saved cards, with the caller's
//! idempotency key sent as Stripe's `Idempotency-Key`, one deadline over each
//! call and its retries, retries only where Stripe documents them as safe,
//! amounts converted to and from Stripe's wire amounts (and refused where
//! Stripe would refuse them) by [`gateway_core::WireAmountRules::STRIPE`],
//! and Stripe's errors mapped to [`gateway_core::ProviderError`] in one
//! place. The crate registers itself as provider `stripe` in the core's
//! registry.
//!
//! [`verify_signature`] checks a `Stripe-Signature` header on the raw body
//! bytes (several `v1` values, several secrets, a tolerance both ways);
//! [`generate_test_header`] makes valid headers for tests.
//!
//! ```no_run
//! use gateway_stripe::{StripeConfig, StripeProvider};
//!
//! let config = StripeConfig::new("sk_test_...")
//!     .with_webhook_secrets("whsec_old,whsec_new")
//!     .with_api_base("http://127.0.0.1:12111");
//! let stripe = StripeProvider::new(config)?;
//! # Ok::<(), gateway_core::ProviderError>(())
//! ```

mod config;
mod convert;
mod error;
mod provider;
mod transport;
mod webhook;

#[cfg(test)]
mod test_fixtures;

pub use config::{StripeConfig, CREDENTIAL_KEYS, DEFAULT_WEBHOOK_TOLERANCE, ENDPOINT_KEYS};
pub use provider::{link, StripeProvider, STRIPE_PROVIDER_NAME};
/// The async-stripe client crate, for calls the provider trait does not cover
/// (see [`StripeProvider::client`]).
pub use stripe;
pub use webhook::{generate_test_header, verify_signature, SignatureError, SIGNATURE_HEADER};
