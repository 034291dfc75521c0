//! Signed payloads: `t=<unix time>,v1=<hex HMAC-SHA256>` over `"{t}.{payload}"`.
//!
//! The scheme of Stripe's `Stripe-Signature` header, used to verify Stripe's
//! webhooks and to sign the gateway's own webhooks to merchants
//! (`Gateway-Signature`), so a merchant verifies them as they would Stripe's.
//!
//! ```
//! use std::time::Duration;
//! use gateway_core::signature::{sign_header, verify_header};
//!
//! let body = br#"{"id":"evt_1"}"#;
//! let header = sign_header(body, b"whsec_secret", 1_700_000_000);
//! let verified = verify_header(&header, body, &["whsec_old", "whsec_secret"], Duration::from_secs(300), 1_700_000_010);
//! assert_eq!(verified, Ok(1_700_000_000));
//! ```

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::intent::UnixTimestamp;
use crate::webhook::WebhookError;

/// The signature scheme: HMAC-SHA256 in hex. Other schemes (Stripe's test `v0`) are ignored.
const SCHEME: &str = "v1";

/// Why a signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header has no readable timestamp (`t=`), or cannot be read at all.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// The header has a timestamp but no `v1` signature.
    #[error("no v1 signature in the signature header")]
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

fn decode_signature(text: &str) -> Option<[u8; 32]> {
    let mut signature = [0u8; 32];
    hex::decode_to_slice(text, &mut signature).ok()?;
    Some(signature)
}

/// Checks a signature header against the raw `payload`, as Stripe's own
/// libraries check `Stripe-Signature`, and returns the signed timestamp.
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
pub fn verify_header<S: AsRef<[u8]>>(
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
    let candidates: Vec<[u8; 32]> = signatures.iter().filter_map(|s| decode_signature(s)).collect();
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

/// The header signing `payload` with `secret` at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "{timestamp}.{payload}">`.
pub fn sign_header(payload: &[u8], secret: &[u8], timestamp: UnixTimestamp) -> String {
    let timestamp = timestamp.to_string();
    let signature = signature_for(secret, &timestamp, payload);
    format!("t={timestamp},{SCHEME}={}", hex::encode(signature))
}

/// The header signing `payload` with each of `secrets` at `timestamp`:
/// `t=<timestamp>,v1=<first>,v1=<second>…`, in the order given. During a
/// secret rotation a sender signs with the new and the old secret, so a
/// receiver that knows either verifies ([`verify_header`] accepts any `v1`).
/// With one secret it is [`sign_header`]'s header.
pub fn sign_header_all<S: AsRef<[u8]>>(payload: &[u8], secrets: &[S], timestamp: UnixTimestamp) -> String {
    let timestamp = timestamp.to_string();
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let signature = signature_for(secret.as_ref(), &timestamp, payload);
        header.push_str(&format!(",{SCHEME}={}", hex::encode(signature)));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const TOLERANCE: Duration = Duration::from_secs(300);

    #[test]
    fn signed_headers_verify_and_tampering_does_not() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign_header(body, SECRET, 1_000);
        assert!(header.starts_with("t=1000,v1="));
        assert_eq!(
            verify_header(&header, body, &[SECRET], TOLERANCE, 1_010),
            Ok(1_000)
        );
        assert_eq!(
            verify_header(&header, b"{}", &[SECRET], TOLERANCE, 1_010),
            Err(SignatureError::BadSignature)
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(
            verify_header(&header, body, &none, TOLERANCE, 1_010),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn any_v1_under_any_secret_matches_and_tolerance_applies_both_ways() {
        let body = b"payload";
        let header = sign_header(body, b"new", 5_000);
        let signature = header.split_once(",v1=").unwrap().1;
        let both = format!("t=5000,v1={},v1={signature},v0=ignored", "ab".repeat(32));
        assert_eq!(
            verify_header(&both, body, &[&b"old"[..], b"new"], TOLERANCE, 5_000),
            Ok(5_000)
        );
        assert!(matches!(
            verify_header(&header, body, &[b"new"], TOLERANCE, 5_301),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            verify_header(&header, body, &[b"new"], TOLERANCE, 4_699),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert_eq!(
            verify_header(&header, body, &[b"new"], TOLERANCE, 5_300),
            Ok(5_000)
        );
    }

    #[test]
    fn a_header_signed_with_several_secrets_verifies_under_each() {
        let body = br#"{"id":"evt_2"}"#;
        let header = sign_header_all(body, &[&b"new"[..], b"old"], 7_000);
        assert_eq!(header.matches(",v1=").count(), 2);
        assert!(header.starts_with(&sign_header(body, b"new", 7_000)));
        for secret in [&b"new"[..], b"old"] {
            assert_eq!(
                verify_header(&header, body, &[secret], TOLERANCE, 7_000),
                Ok(7_000)
            );
        }
        assert_eq!(
            verify_header(&header, body, &[b"other"], TOLERANCE, 7_000),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(sign_header_all(body, &[SECRET], 1), sign_header(body, SECRET, 1));
    }

    #[test]
    fn malformed_headers() {
        assert!(matches!(
            verify_header("v1=abc", b"x", &[SECRET], TOLERANCE, 0),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_header("t=soon,v1=ab", b"x", &[SECRET], TOLERANCE, 0),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_header("t=1", b"x", &[SECRET], TOLERANCE, 0),
            Err(SignatureError::NoSignature)
        );
        assert_eq!(
            verify_header("t=1,v1=zz", b"x", &[SECRET], TOLERANCE, 1),
            Err(SignatureError::BadSignature)
        );
    }
}
