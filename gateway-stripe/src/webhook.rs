//! Stripe webhooks: the `Stripe-Signature` check on the raw body, and a
//! lenient reading of the event that does not depend on the API version.
//!
//! Why events are not parsed into async-stripe's typed `Event` first: a
//! Stripe account's webhooks are rendered in the *account's* API version,
//! not in the version this crate's client is pinned to. A strictly typed
//! parse of another version's payload fails on renamed, removed or newly
//! required fields, and the event is dropped although its signature is good
//! (async-stripe issue #499; stripe-dotnet added a verify-only call for the
//! same reason). So the signature is checked on the raw bytes before anything
//! is parsed, then only the few fields needed are read from untyped JSON, and
//! whatever is missing is fetched through the API at the pinned version.

use std::time::Duration;

pub use gateway_core::signature::{verify_header as verify_signature, SignatureError};
use gateway_core::{
    CaptureMethod, Currency, IntentStatus, Metadata, NextAction, PaymentErrorDetails, PaymentIntent, Refund,
    RefundStatus, UnixTimestamp, VerifiedWebhook, WebhookError, WebhookRequest, WireAmountRules,
};
use serde_json::Value;

/// The header Stripe signs webhooks in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// A valid `Stripe-Signature` header for `payload` signed with `secret` at
/// `timestamp`, as Stripe would send it: for tests and local tools.
pub fn generate_test_header(payload: &[u8], secret: &str, timestamp: UnixTimestamp) -> String {
    gateway_core::signature::sign_header(payload, secret.as_bytes(), timestamp)
}

/// Verifies an inbound request and reads, leniently, what is needed to
/// store it. With `account_livemode` (what the account's key says), an event
/// or event object whose `livemode` differs is refused, signature good or not.
pub(crate) fn verify_request<S: AsRef<[u8]>>(
    request: &WebhookRequest,
    secrets: &[S],
    tolerance: Duration,
    account_livemode: Option<bool>,
) -> Result<VerifiedWebhook, WebhookError> {
    if secrets.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    let header = request
        .header(SIGNATURE_HEADER)
        .ok_or(WebhookError::MissingHeader {
            header: SIGNATURE_HEADER,
        })?;
    verify_signature(header, &request.body, secrets, tolerance, request.received_at)?;
    let event: Value =
        serde_json::from_slice(&request.body).map_err(|error| WebhookError::InvalidPayload {
            reason: format!("the body is not JSON: {error}"),
        })?;
    let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
    let event_id = text("id").ok_or_else(|| WebhookError::InvalidPayload {
        reason: "the event has no id".to_owned(),
    })?;
    let event_type = text("type").ok_or_else(|| WebhookError::InvalidPayload {
        reason: "the event has no type".to_owned(),
    })?;
    if let Some(account) = account_livemode {
        for livemode in [event.get("livemode"), event.pointer("/data/object/livemode")] {
            if let Some(event) = livemode
                .and_then(Value::as_bool)
                .filter(|event| *event != account)
            {
                tracing::error!(
                    event_id = %event_id,
                    event_livemode = event,
                    account_livemode = account,
                    "a correctly signed Stripe event of the other mode than the account's key: refused"
                );
                return Err(WebhookError::LivemodeMismatch { event, account });
            }
        }
    }
    let object_id = event
        .pointer("/data/object/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(VerifiedWebhook {
        event_id,
        event_type,
        created: event.get("created").and_then(Value::as_i64),
        object_id,
        body: request.body.clone(),
    })
}

/// A field is absent or unreadable in the event's object: fetch the object instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incomplete(pub(crate) &'static str);

fn str_field(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An id, whether the field holds the id or an expanded object.
fn id_field(object: &Value, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(id) => Some(id.clone()),
        Value::Object(expanded) => expanded.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn metadata_field(object: &Value) -> Metadata {
    object
        .get("metadata")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(key, value)| value.as_str().map(|value| (key.clone(), value.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// An amount field in ISO 4217 minor units of `currency`, from Stripe's wire units.
fn amount_field(object: &Value, key: &'static str, currency: Currency) -> Result<i64, Incomplete> {
    object
        .get(key)
        .and_then(Value::as_i64)
        .and_then(|wire| WireAmountRules::STRIPE.from_wire(wire, currency))
        .ok_or(Incomplete(key))
}

fn currency_field(object: &Value) -> Result<Currency, Incomplete> {
    object
        .get("currency")
        .and_then(Value::as_str)
        .and_then(|code| Currency::from_code(code).ok())
        .ok_or(Incomplete("currency"))
}

fn error_details(error: &Value) -> Option<PaymentErrorDetails> {
    if !error.is_object() {
        return None;
    }
    Some(PaymentErrorDetails {
        code: str_field(error, "code"),
        decline_code: str_field(error, "decline_code"),
        message: str_field(error, "message").unwrap_or_default(),
    })
}

fn next_action(action: &Value) -> Option<NextAction> {
    if !action.is_object() {
        return None;
    }
    match action.pointer("/redirect_to_url/url").and_then(Value::as_str) {
        Some(url) => Some(NextAction::RedirectToUrl {
            url: url.to_owned(),
            return_url: action
                .pointer("/redirect_to_url/return_url")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        None => Some(NextAction::UseSdk),
    }
}

/// `next_source_action` of API versions before 2019-02-11: `authorize_with_url` instead of `redirect_to_url`.
fn old_next_action(action: &Value) -> Option<NextAction> {
    if !action.is_object() {
        return None;
    }
    match action.pointer("/authorize_with_url/url").and_then(Value::as_str) {
        Some(url) => Some(NextAction::RedirectToUrl {
            url: url.to_owned(),
            return_url: action
                .pointer("/authorize_with_url/return_url")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        None => Some(NextAction::UseSdk),
    }
}

/// Stripe's intent status names, including those of API versions before
/// 2019-02-11 (`requires_source`, `requires_source_action`).
fn intent_status(name: &str) -> Option<IntentStatus> {
    match name {
        "requires_source" => Some(IntentStatus::RequiresPaymentMethod),
        "requires_source_action" => Some(IntentStatus::RequiresAction),
        other => IntentStatus::parse(other),
    }
}

/// Reads a payment intent from an event's object in any API version, or
/// names the first needed field it lacks.
///
/// Older versions carry a `charges` list instead of `latest_charge`, and
/// some fields did not exist yet; neither matters here, since only the
/// intent's own fields are read.
pub(crate) fn intent_from_event_object(
    object: &Value,
    provider: &str,
    updated: UnixTimestamp,
) -> Result<PaymentIntent, Incomplete> {
    let int = |key: &'static str| object.get(key).and_then(Value::as_i64).ok_or(Incomplete(key));
    let id = str_field(object, "id").ok_or(Incomplete("id"))?;
    let status = object
        .get("status")
        .and_then(Value::as_str)
        .and_then(intent_status)
        .ok_or(Incomplete("status"))?;
    let capture_method = match object.get("capture_method").and_then(Value::as_str) {
        Some("manual") => CaptureMethod::Manual,
        Some("automatic" | "automatic_async") => CaptureMethod::Automatic,
        _ => return Err(Incomplete("capture_method")),
    };
    let created = int("created")?;
    let currency = currency_field(object)?;
    Ok(PaymentIntent {
        id,
        provider: provider.to_owned(),
        amount: amount_field(object, "amount", currency)?,
        amount_received: amount_field(object, "amount_received", currency)?,
        amount_capturable: amount_field(object, "amount_capturable", currency)?,
        currency,
        status,
        capture_method,
        customer: id_field(object, "customer"),
        payment_method: id_field(object, "payment_method"),
        client_secret: str_field(object, "client_secret"),
        metadata: metadata_field(object),
        description: str_field(object, "description"),
        next_action: object
            .get("next_action")
            .and_then(next_action)
            .or_else(|| object.get("next_source_action").and_then(old_next_action)),
        last_payment_error: object.get("last_payment_error").and_then(error_details),
        cancellation_reason: str_field(object, "cancellation_reason"),
        created,
        updated: updated.max(created),
    })
}

/// Reads a refund from an event's object (or from a charge's `refunds` list),
/// or names the first needed field it lacks. `payment_intent` is the
/// charge's intent, used when the refund itself does not name one (older versions).
pub(crate) fn refund_from_event_object(
    object: &Value,
    provider: &str,
    payment_intent: Option<&str>,
) -> Result<Refund, Incomplete> {
    let status = match object.get("status").and_then(Value::as_str) {
        Some(status) => refund_status(status).ok_or(Incomplete("status"))?,
        None => return Err(Incomplete("status")),
    };
    let currency = currency_field(object)?;
    Ok(Refund {
        id: str_field(object, "id").ok_or(Incomplete("id"))?,
        provider: provider.to_owned(),
        payment_intent: id_field(object, "payment_intent")
            .or_else(|| payment_intent.map(str::to_owned))
            .ok_or(Incomplete("payment_intent"))?,
        amount: amount_field(object, "amount", currency)?,
        currency,
        status,
        reason: str_field(object, "reason"),
        failure_reason: str_field(object, "failure_reason"),
        metadata: metadata_field(object),
        created: object
            .get("created")
            .and_then(Value::as_i64)
            .ok_or(Incomplete("created"))?,
    })
}

/// Stripe's refund status names (gateway-core's are Stripe's).
pub(crate) fn refund_status(status: &str) -> Option<RefundStatus> {
    RefundStatus::parse(status)
}

/// What an event is about, by its type and its object's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// `payment_intent.*`: the object is the intent.
    Intent,
    /// `charge.refunded`: the object is the charge; the refund is the newest in its list.
    ChargeRefunded,
    /// `refund.*`, `charge.refund.updated`: the object is the refund.
    Refund,
    /// Anything else: acknowledged, not acted on.
    Unhandled,
}

/// Classifies an event by type, checked against the object's `object` field when present.
pub(crate) fn event_kind(event_type: &str, object: &Value) -> EventKind {
    let object_kind = object.get("object").and_then(Value::as_str);
    let kind = match event_type {
        t if t.starts_with("payment_intent.") => EventKind::Intent,
        "charge.refunded" => EventKind::ChargeRefunded,
        "charge.refund.updated" => EventKind::Refund,
        t if t.starts_with("refund.") => EventKind::Refund,
        _ => EventKind::Unhandled,
    };
    let expected = match kind {
        EventKind::Intent => "payment_intent",
        EventKind::ChargeRefunded => "charge",
        EventKind::Refund => "refund",
        EventKind::Unhandled => return EventKind::Unhandled,
    };
    match object_kind {
        Some(found) if found != expected => EventKind::Unhandled,
        _ => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_follow_type_and_object() {
        let intent = serde_json::json!({"object": "payment_intent"});
        let charge = serde_json::json!({"object": "charge"});
        assert_eq!(event_kind("payment_intent.succeeded", &intent), EventKind::Intent);
        assert_eq!(
            event_kind("payment_intent.succeeded", &charge),
            EventKind::Unhandled
        );
        assert_eq!(event_kind("charge.refunded", &charge), EventKind::ChargeRefunded);
        assert_eq!(
            event_kind("refund.updated", &serde_json::json!({})),
            EventKind::Refund
        );
        assert_eq!(event_kind("customer.created", &intent), EventKind::Unhandled);
    }
}
