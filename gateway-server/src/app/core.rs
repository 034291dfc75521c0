//! [`Core`]: what every use case shares, the HTTP layer and the background
//! workers alike (no actix here: workers hold it in an `Arc`).

use std::sync::Arc;

use gateway_core::{EventBus, PaymentProvider};

use crate::app::api_keys::{AuthFailures, KeyCache, RateLimiter};
use crate::app::egress::Egress;
use crate::app::invalidation::Peers;
use crate::app::leases::SharedLocks;
use crate::app::live::LiveLimits;
use crate::app::outbound::Outbound;
use crate::app::providers::Providers;
use crate::domain::error::ApiError;
use crate::domain::records::{CardRow, PaymentRow, ProviderAccount};
use crate::store::{EventKey, Store};
use crate::support::crypto::Sealer;
use crate::support::locks::KeyedLocks;
use crate::support::metrics::Metrics;

/// Unix seconds now; injectable so tests can verify signatures at a fixed time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The gateway's shared state: store, providers, bus, clock, metrics, locks.
pub(crate) struct Core {
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
    /// Handlers and watchers of payment changes.
    pub(crate) bus: EventBus,
    /// The outbox's wake-up, URL cache and retry schedule.
    pub(crate) outbound: Arc<Outbound>,
    /// Serializes processing one inbound event.
    pub(crate) event_locks: KeyedLocks<EventKey>,
    /// Unix seconds, for webhook signatures.
    pub(crate) clock: Clock,
    /// The other instances, told what a change made stale in their caches.
    pub(crate) peers: Peers,
    /// Failed authentications per client address.
    pub(crate) auth_failures: AuthFailures,
    /// Open event streams and long polls per merchant, their longest life, and the stop signal.
    pub(crate) live: LiveLimits,
    /// The longest a request's body may take to arrive.
    pub(crate) body_read_timeout: std::time::Duration,
    /// The outbound address policy and the merchant-webhook client.
    pub(crate) egress: Egress,
}

impl Core {
    /// The provider account `merchant_id` uses for `name` and which one it
    /// is: `pinned` when given, else its own, else the gateway-wide one (see
    /// [`Providers::account`]), as the API answers a failed lookup.
    pub(crate) async fn provider_account(
        &self,
        merchant_id: &str,
        name: &str,
        pinned: Option<ProviderAccount>,
    ) -> Result<(Arc<dyn PaymentProvider>, ProviderAccount), ApiError> {
        Ok(self
            .providers
            .account(&*self.store, &self.sealer, merchant_id, name, pinned)
            .await?)
    }

    /// The account a payment was made on (resolved as for a new one when
    /// the payment predates recorded accounts).
    pub(crate) async fn provider_for_payment(
        &self,
        row: &PaymentRow,
    ) -> Result<Arc<dyn PaymentProvider>, ApiError> {
        let (provider, _) = self
            .provider_account(&row.merchant_id, &row.provider, row.provider_account)
            .await?;
        Ok(provider)
    }

    /// The account a saved card was saved on (resolved as for a new one when
    /// the card predates recorded accounts).
    pub(crate) async fn provider_for_card(
        &self,
        card: &CardRow,
    ) -> Result<Arc<dyn PaymentProvider>, ApiError> {
        let (provider, _) = self
            .provider_account(&card.merchant_id, &card.provider, card.provider_account)
            .await?;
        Ok(provider)
    }
}
