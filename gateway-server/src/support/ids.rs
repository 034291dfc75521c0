//! Identifiers, API keys and request ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A new object id: a UUIDv7 (time-ordered, random), as the API guide's ids are UUIDs.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `len` bytes from the operating system's generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator does not fail on supported platforms; a zeroed buffer
    // would only weaken one key, so make it loud rather than silent.
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::error!(%error, "the operating system's random generator failed");
        panic_free_fallback(&mut bytes);
    }
    bytes
}

fn panic_free_fallback(bytes: &mut [u8]) {
    let seed = uuid::Uuid::now_v7();
    let digest = Sha256::digest(seed.as_bytes());
    for (byte, value) in bytes.iter_mut().zip(digest.iter().cycle()) {
        *byte = *value;
    }
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
pub(crate) fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", hex(&random_bytes::<32>()))
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
    let prefix = PREFIX.get_or_init(|| hex(&random_bytes::<6>()));
    format!("req_{prefix}{:010x}", COUNTER.fetch_add(1, Ordering::Relaxed))
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
        let key = new_api_key();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() == API_KEY_PREFIX.len() + 64);
        assert_ne!(new_api_key(), key);
        assert_eq!(hash_api_key(&key).len(), 64);
        assert_ne!(new_request_id(), new_request_id());
    }
}
