//! Inbound provider webhooks: the raw request, the verified form, and the
//! provider events they turn into.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::intent::{PaymentIntent, UnixTimestamp};
use crate::refund::Refund;

/// An inbound webhook as it arrived: headers, the raw body bytes, and when.
#[derive(Clone, Default)]
pub struct WebhookRequest {
    headers: Vec<(String, String)>,
    /// The body exactly as received; signatures are computed over these bytes.
    pub body: Vec<u8>,
    /// When the gateway received it; signature tolerance is measured from here.
    pub received_at: UnixTimestamp,
}

impl WebhookRequest {
    /// A request with `body` received at `received_at`, and no headers yet.
    pub fn new(body: impl Into<Vec<u8>>, received_at: UnixTimestamp) -> Self {
        WebhookRequest {
            headers: Vec::new(),
            body: body.into(),
            received_at,
        }
    }

    /// Adds a header (names compare case-insensitively).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may carry signatures; the body may carry client secrets.
        f.debug_struct("WebhookRequest")
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// A webhook whose signature checked out, with the few fields needed to store
/// and deduplicate it read leniently, and the raw body kept for later.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The provider's event id (`evt_…`): the deduplication key.
    pub event_id: String,
    /// The provider's event type (`payment_intent.succeeded`).
    pub event_type: String,
    /// When the provider created the event, when it said.
    pub created: Option<UnixTimestamp>,
    /// The id of the object the event is about (`pi_…`, `re_…`), when found.
    pub object_id: Option<String>,
    /// The body exactly as received.
    pub body: Vec<u8>,
}

impl fmt::Debug for VerifiedWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedWebhook")
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("created", &self.created)
            .field("object_id", &self.object_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why an inbound webhook was refused. None of these carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature header is missing.
    #[error("missing signature header {header}")]
    MissingHeader {
        /// The header expected.
        header: &'static str,
    },
    /// The signature header cannot be read.
    #[error("malformed signature header: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The header has a timestamp but no signature of the expected scheme.
    #[error("no signature of the expected scheme in the header")]
    NoSignature,
    /// No signature matches any configured secret.
    #[error("signature does not match")]
    BadSignature,
    /// The timestamp is outside the tolerance, in the past or the future.
    #[error("timestamp outside the tolerance of {tolerance_secs} s")]
    OutsideTolerance {
        /// The tolerance in seconds.
        tolerance_secs: u64,
    },
    /// The signature is valid but the body is not an event this provider understands.
    #[error("invalid event payload: {reason}")]
    InvalidPayload {
        /// What is wrong with it.
        reason: String,
    },
    /// No webhook secret is configured for this provider account.
    #[error("no webhook secret configured")]
    NotConfigured,
    /// The signature is valid, but the event is of the other mode than the
    /// account's key (a live event to a test key, or a test event to a live key).
    #[error("the event's livemode is {event}, but this account's key is for livemode {account}")]
    LivemodeMismatch {
        /// The event's `livemode`.
        event: bool,
        /// Whether the account's key is a live key.
        account: bool,
    },
}

/// What a provider event is about, with the object's new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventObject {
    /// A payment intent changed.
    Intent {
        /// The intent as it is after the change.
        intent: PaymentIntent,
    },
    /// A refund was created or changed.
    Refund {
        /// The refund as it is after the change.
        refund: Refund,
    },
    /// An event type the gateway does not act on: acknowledged, not an error.
    Unhandled,
}

/// A provider event: what a webhook delivers, in the gateway's own types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvent {
    /// The provider's event id; the deduplication key.
    pub id: String,
    /// The provider that sent it.
    pub provider: String,
    /// The provider's event type (`payment_intent.succeeded`).
    pub event_type: String,
    /// When the provider created the event.
    pub created: UnixTimestamp,
    /// The object and its new state.
    pub object: EventObject,
}

impl ProviderEvent {
    /// The intent the event carries, if it is about an intent.
    pub fn intent(&self) -> Option<&PaymentIntent> {
        match &self.object {
            EventObject::Intent { intent } => Some(intent),
            _ => None,
        }
    }

    /// The refund the event carries, if it is about a refund.
    pub fn refund(&self) -> Option<&Refund> {
        match &self.object {
            EventObject::Refund { refund } => Some(refund),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_hidden_from_debug() {
        let request = WebhookRequest::new("{}", 10).with_header("Stripe-Signature", "t=1,v1=secretish");
        assert_eq!(request.header("stripe-signature"), Some("t=1,v1=secretish"));
        assert_eq!(request.header("x-other"), None);
        let debug = format!("{request:?}");
        assert!(!debug.contains("secretish"), "{debug}");
        assert!(debug.contains("Stripe-Signature"));
    }
}
