//! What every handler shares.

use std::sync::Arc;

use crate::auth::{KeyCache, RateLimiter};
use crate::crypto::Sealer;
use crate::leases::SharedLocks;
use crate::locks::KeyedLocks;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::storage::Store;

/// Shared server state, behind `web::Data`.
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) providers: Providers,
    pub(crate) keys: KeyCache,
    pub(crate) rate_limiter: RateLimiter,
    pub(crate) sealer: Sealer,
    pub(crate) metrics: Arc<Metrics>,
    /// Serializes requests sharing a merchant's idempotency key.
    pub(crate) idempotency_locks: KeyedLocks<(Arc<str>, String)>,
    /// Serializes changes to one payment (confirm, capture, cancel, refund), across instances.
    pub(crate) payment_locks: SharedLocks<String>,
    /// Serializes creating one provider customer per merchant and email, across instances.
    pub(crate) customer_locks: SharedLocks<(Arc<str>, String, String)>,
    /// The largest request body accepted, in bytes.
    pub(crate) max_body_bytes: usize,
}
