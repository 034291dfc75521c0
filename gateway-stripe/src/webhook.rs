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

use gateway_core::{
    CaptureMethod, Currency, IntentStatus, Metadata, NextAction, PaymentErrorDetails, PaymentIntent, Refund,
    RefundStatus, UnixTimestamp, VerifiedWebhook, WebhookError, WebhookRequest,
};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header Stripe signs webhooks in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// The only signature scheme Stripe uses for live webhooks; `v0` is a test scheme and is ignored.
const SCHEME: &str = "v1";

/// Why a `Stripe-Signature` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header has no readable timestamp (`t=`), or cannot be read at all.
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(&'static str),
    /// The header has a timestamp but no `v1` signature.
    #[error("no v1 signature in the Stripe-Signature header")]
    NoSignature,
    /// No `v1` signature matches the body under any configured secret.
    #[error("no signature matches the payload")]
    BadSignature,
    /// The signature is good but its timestamp is too far from now, in the past or the future.
    #[error("timestamp {timestamp} is outside the tolerance of {tolerance_secs} s around {now}")]
    OutsideTolerance {
        /// The signed timestamp.
        timestamp: i64,
        /// The time it was checked against.
        now: i64,
        /// The tolerance in seconds.
        tolerance_secs: u64,
    },
    /// No webhook secret is configured, so nothing can be verified.
    #[error("no webhook secret configured")]
    NoSecrets,
}

impl From<SignatureError> for WebhookError {
    fn from(error: SignatureError) -> Self {
        match error {
            SignatureError::Malformed(reason) => WebhookError::Malformed {
                reason: reason.to_owned(),
            },
            SignatureError::NoSignature => WebhookError::NoSignature,
            SignatureError::BadSignature => WebhookError::BadSignature,
            SignatureError::OutsideTolerance { tolerance_secs, .. } => {
                WebhookError::OutsideTolerance { tolerance_secs }
            }
            SignatureError::NoSecrets => WebhookError::NotConfigured,
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn signature_for(secret: &[u8], timestamp: &str, payload: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Checks a `Stripe-Signature` header against the raw `payload`, as Stripe's
/// own libraries do, and returns the signed timestamp.
///
/// The header is `t=<unix time>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`; the
/// signature is HMAC-SHA256 under a webhook secret of `"{t}.{payload}"`.
/// Any `v1` value may match, under any of `secrets` (rotation); comparisons
/// are constant-time. Checks run in Stripe's order: a header without a
/// timestamp is [`SignatureError::Malformed`], one without `v1` is
/// [`SignatureError::NoSignature`], a mismatch is
/// [`SignatureError::BadSignature`], and only a good signature is then held
/// to the `tolerance` around `now`, in the past and in the future
/// ([`SignatureError::OutsideTolerance`]). A zero tolerance demands the
/// exact second; unlike some of Stripe's libraries, it never turns the
/// replay check off.
pub fn verify_signature<S: AsRef<[u8]>>(
    header: &str,
    payload: &[u8],
    secrets: &[S],
    tolerance: Duration,
    now: UnixTimestamp,
) -> Result<UnixTimestamp, SignatureError> {
    let mut timestamp_text = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" if timestamp_text.is_none() => timestamp_text = Some(value.trim()),
            SCHEME => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp_text =
        timestamp_text.ok_or(SignatureError::Malformed("no timestamp (t=) in the header"))?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::Malformed("the timestamp (t=) is not a whole number"))?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let candidates: Vec<[u8; 32]> = signatures.iter().filter_map(|s| decode_hex_32(s)).collect();
    let mut matched = false;
    for secret in secrets {
        // The timestamp is signed exactly as it appears in the header.
        let expected = signature_for(secret.as_ref(), timestamp_text, payload);
        for candidate in &candidates {
            matched |= bool::from(expected.ct_eq(candidate));
        }
    }
    if !matched {
        return Err(SignatureError::BadSignature);
    }
    let tolerance_secs = tolerance.as_secs();
    let tolerance_i64 = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if now.saturating_sub(timestamp) > tolerance_i64 || timestamp.saturating_sub(now) > tolerance_i64 {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            now,
            tolerance_secs,
        });
    }
    Ok(timestamp)
}

/// A valid `Stripe-Signature` header for `payload` signed with `secret` at
/// `timestamp`, as Stripe would send it: for tests and local tools.
pub fn generate_test_header(payload: &[u8], secret: &str, timestamp: UnixTimestamp) -> String {
    let timestamp = timestamp.to_string();
    let signature = signature_for(secret.as_bytes(), &timestamp, payload);
    format!("t={timestamp},{SCHEME}={}", encode_hex(&signature))
}

/// Verifies an inbound request and reads, leniently, what is needed to store it.
pub(crate) fn verify_request<S: AsRef<[u8]>>(
    request: &WebhookRequest,
    secrets: &[S],
    tolerance: Duration,
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
    Ok(PaymentIntent {
        id,
        provider: provider.to_owned(),
        amount: int("amount")?,
        amount_received: int("amount_received")?,
        amount_capturable: int("amount_capturable")?,
        currency: currency_field(object)?,
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
    Ok(Refund {
        id: str_field(object, "id").ok_or(Incomplete("id"))?,
        provider: provider.to_owned(),
        payment_intent: id_field(object, "payment_intent")
            .or_else(|| payment_intent.map(str::to_owned))
            .ok_or(Incomplete("payment_intent"))?,
        amount: object
            .get("amount")
            .and_then(Value::as_i64)
            .ok_or(Incomplete("amount"))?,
        currency: currency_field(object)?,
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

/// Stripe's refund status names.
pub(crate) fn refund_status(status: &str) -> Option<RefundStatus> {
    Some(match status {
        "pending" => RefundStatus::Pending,
        "requires_action" => RefundStatus::RequiresAction,
        "succeeded" => RefundStatus::Succeeded,
        "failed" => RefundStatus::Failed,
        "canceled" => RefundStatus::Canceled,
        _ => return None,
    })
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

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn generated_headers_verify_and_tampering_does_not() {
        let body = br#"{"id":"evt_1","type":"payment_intent.created"}"#;
        let header = generate_test_header(body, SECRET, 1_000);
        assert_eq!(
            verify_signature(&header, body, &[SECRET], Duration::from_secs(300), 1_010),
            Ok(1_000)
        );
        assert_eq!(
            verify_signature(&header, b"{}", &[SECRET], Duration::from_secs(300), 1_010),
            Err(SignatureError::BadSignature)
        );
        let empty: [&str; 0] = [];
        assert_eq!(
            verify_signature(&header, body, &empty, Duration::from_secs(300), 1_010),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let hex = encode_hex(&bytes);
        assert_eq!(decode_hex_32(&hex).unwrap().to_vec(), bytes);
        assert_eq!(decode_hex_32(&hex.to_uppercase()).unwrap().to_vec(), bytes);
        assert!(decode_hex_32("zz").is_none());
        assert!(decode_hex_32(&"g".repeat(64)).is_none());
    }

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
