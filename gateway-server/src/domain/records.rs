//! The records the gateway keeps, as the rest of the server sees them
//! (`store` persists them; the views and use cases read them). Those stored
//! column for column derive `sqlx::FromRow`, so `store` reads them without
//! hand-written readers; the others have a row type of their own in `store`.

use gateway_core::{PaymentIntent, PaymentStatus, Refund};

use crate::domain::scopes::Scopes;

/// A merchant: the owner of keys, credentials and payments.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MerchantRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) webhook_url: Option<String>,
    pub(crate) created_at: i64,
}

/// An API key as stored: its hash, never the key.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyRow {
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) key_hash: String,
    /// The first characters of the key, to recognize it in listings.
    pub(crate) prefix: String,
    pub(crate) scopes: Scopes,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
}

/// A merchant's credentials for one provider, sealed with the master key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CredentialRow {
    pub(crate) merchant_id: String,
    pub(crate) provider: String,
    pub(crate) sealed: Vec<u8>,
    /// JSON object of masked values, for display.
    pub(crate) masked: String,
    pub(crate) updated_at: i64,
}

/// A payment: the provider's intent as last seen, plus what the gateway adds.
#[derive(Debug, Clone)]
pub(crate) struct PaymentRow {
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) provider: String,
    pub(crate) intent: PaymentIntent,
    /// Minor units refunded (refunds that hold funds).
    pub(crate) amount_refunded: i64,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) saved_card_id: Option<String>,
    pub(crate) customer_email: Option<String>,
    pub(crate) return_url: Option<String>,
    /// The account the payment was made on; later calls go to it. `None`
    /// for payments stored before accounts were recorded.
    pub(crate) provider_account: Option<ProviderAccount>,
    /// The provider call asked for whose answer is not stored yet: `None`
    /// once `intent` is the provider's answer (see [`PendingStep`]).
    pub(crate) pending_step: Option<PendingStep>,
    /// Bumped by every stored update; an update applies only to the version it read.
    pub(crate) version: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl PaymentRow {
    /// The merchant-facing status: always derived, never stored on its own.
    /// (The `status` column is written from this function only, as a filter index.)
    pub(crate) fn status(&self) -> PaymentStatus {
        PaymentStatus::derive(&self.intent, self.amount_refunded)
    }
}

/// A provider call a payment row was written ahead of, whose answer the
/// gateway has not stored: the request is in flight, or its outcome is
/// unknown (a timeout, an outage, an unreadable reply) until a retry of the
/// same request or reconciliation resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingStep {
    /// Create the intent (unconfirmed): no money moves.
    Create,
    /// Create the intent, then confirm it.
    CreateConfirm,
    /// Confirm the intent (money may move).
    Confirm,
    /// Capture the authorization.
    Capture,
    /// Cancel the intent.
    Cancel,
}

impl PendingStep {
    const ALL: [PendingStep; 5] = [
        PendingStep::Create,
        PendingStep::CreateConfirm,
        PendingStep::Confirm,
        PendingStep::Capture,
        PendingStep::Cancel,
    ];

    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PendingStep::Create => "create",
            PendingStep::CreateConfirm => "create_confirm",
            PendingStep::Confirm => "confirm",
            PendingStep::Capture => "capture",
            PendingStep::Cancel => "cancel",
        }
    }

    /// Parses a stored name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        PendingStep::ALL.into_iter().find(|step| step.as_str() == name)
    }
}

/// A refund of a payment: the provider's refund as last seen. One row per
/// provider refund of a payment (the store refuses a second), so each
/// refund counts once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundRow {
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) payment_id: String,
    pub(crate) refund: Refund,
    pub(crate) created_at: i64,
    /// When the row last changed (a new status, or reconciliation found none).
    pub(crate) updated_at: i64,
}

impl RefundRow {
    /// The provider's refund id, `None` while the refund is written ahead
    /// and its provider refund not known yet.
    pub(crate) fn provider_refund_id(&self) -> Option<&str> {
        (!self.refund.id.is_empty()).then_some(self.refund.id.as_str())
    }

    /// Whether `refund` is the provider's refund of this written-ahead row
    /// (its metadata names the row).
    pub(crate) fn is_draft_of(&self, refund: &Refund) -> bool {
        self.refund.id.is_empty()
            && refund.metadata.get(gateway_core::GATEWAY_REFUND_METADATA_KEY) == Some(&self.id)
    }
}

/// A provider customer the gateway created for a merchant's customer email.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CustomerRow {
    pub(crate) merchant_id: String,
    pub(crate) provider: String,
    pub(crate) email: String,
    pub(crate) provider_customer_id: String,
    /// The account the customer was made on (`None`: stored before accounts were recorded).
    pub(crate) provider_account: Option<ProviderAccount>,
    pub(crate) created_at: i64,
}

/// A card saved at a provider.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CardRow {
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) provider: String,
    pub(crate) provider_customer_id: String,
    pub(crate) provider_payment_method: String,
    pub(crate) customer_email: String,
    pub(crate) brand: String,
    pub(crate) last4: String,
    pub(crate) exp_month: i64,
    pub(crate) exp_year: i64,
    pub(crate) is_default: bool,
    pub(crate) active: bool,
    /// The account the card was saved on; payments charging it and its
    /// deletion go to it (`None`: stored before accounts were recorded).
    pub(crate) provider_account: Option<ProviderAccount>,
    pub(crate) created_at: i64,
}

/// Which of a provider's accounts made a payment, customer or card: a
/// merchant can use the gateway-wide account of a provider or its own
/// (stored credentials), and an object of one account is unknown to the
/// other. `as_str` is the one table of the stored names; `store` decodes the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderAccount {
    /// The gateway-wide account, configured for the whole server.
    Gateway,
    /// The merchant's own account, from the credentials it stored.
    Merchant,
}

impl ProviderAccount {
    /// Both accounts.
    pub(crate) const ALL: [ProviderAccount; 2] = [Self::Gateway, Self::Merchant];

    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Merchant => "merchant",
        }
    }

    /// The account named `name`, if any.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|account| account.as_str() == name)
    }
}

/// How long an idempotency record holds its key: 24 hours, as at Stripe.
pub(crate) const IDEMPOTENCY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// An idempotency key's record: in progress from before the provider is
/// called, then done with the stored response.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyRow {
    pub(crate) merchant_id: String,
    pub(crate) key: String,
    /// SHA-256 of method, path and the body's canonical JSON.
    pub(crate) fingerprint: String,
    /// `None` while in progress; the stored response once done.
    pub(crate) response: Option<StoredResponse>,
    /// The id reserved for what the request creates (payment, refund, …),
    /// which also names its provider keys: a retry resumes the same one.
    pub(crate) resource_id: Option<String>,
    pub(crate) created_at: i64,
}

/// A response stored for replay.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Identifies an inbound provider event: unique per provider account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub(crate) struct EventKey {
    pub(crate) provider: String,
    /// A merchant id, or empty for the gateway-wide account.
    pub(crate) account: String,
    pub(crate) event_id: String,
}

/// A verified inbound provider event, as received.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WebhookEventRow {
    #[sqlx(flatten)]
    pub(crate) key: EventKey,
    pub(crate) event_type: String,
    pub(crate) body: Vec<u8>,
    pub(crate) received_at: i64,
    pub(crate) processed_at: Option<i64>,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    /// When the sweep tries it next (Unix ms; 0: at once).
    pub(crate) next_attempt_at: i64,
}

/// An outbound merchant webhook (the outbox row) and its delivery state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    /// Filled by the store (insertion order); the payload's `sequence`.
    pub(crate) seq: i64,
    /// The delivery's own id (`whd_…`; a delivery of before events is
    /// `evt_…`, its event's id).
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) payment_id: String,
    /// `payment.completed`, …
    pub(crate) event_type: String,
    /// The bus event id of the change behind it.
    pub(crate) source_event: String,
    /// The payment as the API showed it after the change (JSON).
    pub(crate) payment: String,
    /// For a refund's event, the refund as the API shows it (JSON).
    pub(crate) refund: Option<String>,
    pub(crate) url: String,
    pub(crate) status: DeliveryStatus,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_at: i64,
    pub(crate) created_at: i64,
    pub(crate) delivered_at: Option<i64>,
    pub(crate) last_status: Option<i64>,
    pub(crate) last_error: Option<String>,
    /// The event it delivers (`evt_…`): the payload's `id` and `Gateway-Event-Id`.
    pub(crate) event_id: String,
    /// The endpoint it goes to (`we_…`); none for a delivery of before
    /// endpoints whose merchant had removed its URL.
    pub(crate) endpoint_id: Option<String>,
    /// The event's `seq` (the payload's `sequence`).
    pub(crate) event_seq: i64,
    /// When the event was created (the payload's `created`).
    pub(crate) event_created_at: i64,
}

/// A merchant-visible event (`payment.completed`, …), stored with the change
/// that produced it whether or not the merchant has an endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventRow {
    /// Filled by the store: increasing in the order events become visible
    /// (a stream resumes after it); the payload's `sequence`.
    pub(crate) seq: i64,
    /// `evt_…`: the payload's `id`.
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) payment_id: String,
    /// `payment.completed`, …
    pub(crate) event_type: String,
    /// The bus event id of the change behind it (one event per change and type).
    pub(crate) source_event: String,
    /// The payment as the API showed it after the change (JSON).
    pub(crate) payment: String,
    /// For a refund's event, the refund as the API shows it (JSON).
    pub(crate) refund: Option<String>,
    pub(crate) created_at: i64,
}

/// One of a merchant's webhook endpoints and its backoff state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EndpointRow {
    /// `we_…`.
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    pub(crate) url: String,
    /// A disabled endpoint gets no new deliveries.
    pub(crate) enabled: bool,
    /// The event types it receives, a JSON array (`["*"]`: every type).
    pub(crate) enabled_events: String,
    pub(crate) description: Option<String>,
    /// Consecutive failed attempts.
    pub(crate) failures: i64,
    /// None of its deliveries is claimed before then (Unix ms; 0: healthy).
    pub(crate) blocked_until: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// A sealed signing secret of an endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EndpointSecretRow {
    pub(crate) endpoint_id: String,
    pub(crate) merchant_id: String,
    /// Sealed with the master key; the associated data per `bound_to`.
    pub(crate) sealed: Vec<u8>,
    /// `endpoint` (sealed for the merchant and endpoint) or `merchant` (a
    /// secret of before endpoints, sealed for the merchant only).
    pub(crate) bound_to: String,
    pub(crate) created_at: i64,
    /// Valid until then (the grace period after a rotation); none: current.
    pub(crate) expires_at: Option<i64>,
}

/// Where an outbound delivery is. `as_str` is the one table of the names
/// (stored, filtered on and shown to merchants); `store` decodes the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// The merchant answered 2xx.
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order the API documents them.
    pub(crate) const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The stored and wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `name`, if any.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub(crate) delivery_id: String,
    pub(crate) attempt: i64,
    pub(crate) at: i64,
    pub(crate) http_status: Option<i64>,
    pub(crate) latency_ms: i64,
    pub(crate) error: Option<String>,
}
