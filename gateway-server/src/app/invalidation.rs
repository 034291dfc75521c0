//! Keeping every instance's caches of merchant configuration fresh.
//!
//! Each instance caches what it reads on almost every request: who an API
//! key belongs to, a merchant's provider accounts, its webhook endpoints. A change
//! made through one instance ([`Core::changed`]) forgets the cached value
//! there at once and is announced to the other instances through
//! [`Peers`] (on PostgreSQL, the cluster relay's `NOTIFY`), whose
//! [`forget_loop`] forgets it within moments. A notice can still be lost (an
//! instance that dies between its commit and the notice, a listening
//! connection that drops): no cached value is trusted longer than
//! [`CACHE_TTL`], and a relay that lost its connection forgets everything.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::app::core::Core;

/// How long a cached API key, provider account or webhook URL is used
/// before it is read again, notice or not (the safety net under the notices).
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a change made stale in every instance's caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stale", rename_all = "snake_case")]
pub(crate) enum Invalidation {
    /// An API key was revoked.
    ApiKey {
        /// The key's id (`key_…`), never the key.
        key_id: String,
    },
    /// A merchant stored (or replaced) its credentials for a provider.
    Credentials {
        /// The merchant.
        merchant_id: String,
        /// The provider's name.
        provider: String,
    },
    /// A merchant's webhook endpoints changed (one added, changed or
    /// deleted; its URL through `PUT /v1/merchant/webhook`).
    WebhookUrl {
        /// The merchant.
        merchant_id: String,
    },
    /// Anything may be stale: notices may have been missed.
    Everything,
}

/// Where this instance announces what its changes made stale: the cluster
/// relay on PostgreSQL, nobody on SQLite (one process).
#[derive(Debug)]
pub(crate) struct Peers(Option<mpsc::UnboundedSender<Invalidation>>);

impl Peers {
    /// Announces through `sender` (the relay reads the other end).
    pub(crate) fn through(sender: mpsc::UnboundedSender<Invalidation>) -> Self {
        Peers(Some(sender))
    }

    /// No other instance to tell.
    pub(crate) fn none() -> Self {
        Peers(None)
    }

    fn announce(&self, invalidation: Invalidation) {
        if let Some(sender) = &self.0 {
            if sender.send(invalidation).is_err() {
                tracing::warn!("cluster relay stopped: other instances see this change within the cache TTL");
            }
        }
    }
}

impl Core {
    /// After a committed change: forgets what it made stale here and tells the other instances.
    pub(crate) fn changed(&self, invalidation: Invalidation) {
        self.forget(&invalidation);
        self.peers.announce(invalidation);
    }

    /// Forgets, in this instance's caches, what `invalidation` names.
    pub(crate) fn forget(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::ApiKey { key_id } => self.keys.forget_key(key_id),
            Invalidation::Credentials {
                merchant_id,
                provider,
            } => self.providers.invalidate(merchant_id, provider),
            Invalidation::WebhookUrl { merchant_id } => self.outbound.forget_url(merchant_id),
            Invalidation::Everything => {
                self.keys.forget_all();
                self.providers.invalidate_all();
                self.outbound.forget_all_urls();
            }
        }
    }
}

/// Forgets what the other instances announce, until the relay stops.
pub(crate) async fn forget_loop(core: Arc<Core>, mut notices: mpsc::UnboundedReceiver<Invalidation>) {
    while let Some(invalidation) = notices.recv().await {
        tracing::debug!(?invalidation, "another instance changed cached configuration");
        core.forget(&invalidation);
    }
}
