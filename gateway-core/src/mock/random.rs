//! Random values for a mock account's defaults (id seed, webhook secret),
//! without a random-number crate: the standard library's per-process random
//! hash keys, mixed with the time and a counter.
//!
//! Not for secrets that guard money: the mock's webhook secret only has to
//! differ per process, so no public value opens a gateway's mock endpoint.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A value that differs per call and per process.
pub(super) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_from_call_to_call() {
        let values: std::collections::HashSet<u64> = (0..100).map(|_| random_u64()).collect();
        assert_eq!(values.len(), 100);
    }
}
