//! Identifiers, API keys and request ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A new object id: a UUIDv7 (time-ordered, random), as the API guide's ids are UUIDs.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The operating system's random generator failed: no key, secret or
/// nonce can be made, and none is made another way.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator is unavailable: {0}")]
pub(crate) struct RandomUnavailable(String);

/// `N` bytes from the operating system's generator, or an error: never a
/// weaker substitute (a key made from a clock or a UUID could be guessed).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    random_bytes_from(|bytes| getrandom::fill(bytes).map_err(|error| error.to_string()))
}

/// `N` bytes from `source`; its failure is passed on, logged, and nothing else is used.
fn random_bytes_from<const N: usize>(
    source: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<[u8; N], RandomUnavailable> {
    let mut bytes = [0u8; N];
    source(&mut bytes).map_err(|error| {
        tracing::error!(%error, "the operating system's random generator failed");
        RandomUnavailable(error)
    })?;
    Ok(bytes)
}

/// Whether the generator works: the server checks it before starting.
pub(crate) fn check_random() -> Result<(), RandomUnavailable> {
    random_bytes::<16>().map(drop)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Decodes hex (either case).
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 of `data`, hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The prefix every API key starts with.
pub(crate) const API_KEY_PREFIX: &str = "gw_sk_";

/// A new API key: 256 random bits, shown once, stored only as a hash.
pub(crate) fn new_api_key() -> Result<String, RandomUnavailable> {
    Ok(format!("{API_KEY_PREFIX}{}", hex(&random_bytes::<32>()?)))
}

/// What is stored for an API key: its SHA-256. The key is 256 random bits, so
/// a fast hash is enough (no dictionary to attack); lookups stay O(1).
pub(crate) fn hash_api_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// A request id: `req_` + this process's random prefix + a counter.
pub(crate) fn new_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Not a secret: only unique within the logs. Without a generator (the
    // server does not start then) the process id and start time do.
    let prefix = PREFIX.get_or_init(|| match random_bytes::<6>() {
        Ok(bytes) => hex(&bytes),
        Err(_) => format!("{:x}{:x}", std::process::id(), now_nanos()),
    });
    format!("req_{prefix}{:010x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_keys() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fFF"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        let key = new_api_key().unwrap();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() == API_KEY_PREFIX.len() + 64);
        assert_ne!(new_api_key().unwrap(), key);
        assert_eq!(hash_api_key(&key).len(), 64);
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn a_failing_generator_is_an_error_never_a_fallback() {
        let error = random_bytes_from::<32>(|_| Err("no entropy".to_owned())).unwrap_err();
        assert!(
            error.to_string().contains("random generator is unavailable"),
            "{error}"
        );
        let filled = random_bytes_from::<4>(|bytes| {
            bytes.copy_from_slice(&[1, 2, 3, 4]);
            Ok(())
        })
        .unwrap();
        assert_eq!(filled, [1, 2, 3, 4]);
        assert!(check_random().is_ok());
    }
}
