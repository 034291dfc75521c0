//! API keys: who a presented key belongs to (cached), and each key's rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::app::core::Core;
use crate::app::invalidation::CACHE_TTL;
use crate::domain::error::{ApiError, Status};
use crate::domain::scopes::Caller;
use crate::support::ids::hash_api_key;

/// Recently verified keys by hash, so a request costs no database read for
/// auth. An entry is trusted for [`CACHE_TTL`]; a revocation is forgotten at
/// once here and, through `app::invalidation`, on the other instances.
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, (Option<Caller>, Instant)>>,
}

impl KeyCache {
    pub(crate) fn new() -> Self {
        KeyCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &str) -> Option<Option<Caller>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(auth, _)| auth.clone())
    }

    fn put(&self, hash: String, auth: Option<Caller>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(hash, (auth, Instant::now()));
    }

    /// Forgets a revoked key.
    pub(crate) fn forget_key(&self, key_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (auth, _)| auth.as_ref().is_none_or(|auth| &*auth.key_id != key_id));
    }

    /// Forgets every key: each is read again on its next use.
    pub(crate) fn forget_all(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A token bucket per API key: `rate` requests per second, bursts up to `rate`.
pub(crate) struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<Arc<str>, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests per second per key; 0 disables limiting.
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimiter {
            rate: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key_id`; 429 when the bucket is empty.
    fn check(&self, key_id: &Arc<str>) -> Result<(), ApiError> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let (tokens, last) = buckets.entry(key_id.clone()).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::rate_limited(format!(
                "more than {} requests per second with this API key; retry shortly",
                self.rate
            )))
        }
    }
}

/// The caller an API key belongs to: 401 for a missing, unknown or revoked
/// key, 429 when the key is over its rate.
pub(crate) async fn authenticate(state: &Core, key: Option<String>) -> Result<Caller, ApiError> {
    let Some(key) = key.filter(|key| !key.is_empty()) else {
        return Err(ApiError::new(
            Status::UNAUTHORIZED,
            "missing_api_key",
            "send your API key in the X-API-Key header or as Authorization: Bearer <key>",
        ));
    };
    let invalid = || {
        ApiError::new(
            Status::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is invalid or has been revoked",
        )
    };
    let hash = hash_api_key(&key);
    if let Some(cached) = state.keys.get(&hash) {
        let auth = cached.ok_or_else(invalid)?;
        state.rate_limiter.check(&auth.key_id)?;
        return Ok(auth);
    }
    let row = state.store.api_key_by_hash(&hash).await?;
    let auth = row.filter(|row| row.revoked_at.is_none()).map(|row| Caller {
        merchant_id: row.merchant_id.into(),
        key_id: row.id.into(),
        scopes: row.scopes,
    });
    state.keys.put(hash, auth.clone());
    let auth = auth.ok_or_else(invalid)?;
    state.rate_limiter.check(&auth.key_id)?;
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_refuses() {
        let limiter = RateLimiter::new(3);
        let key: Arc<str> = "key_1".into();
        for _ in 0..3 {
            assert!(limiter.check(&key).is_ok());
        }
        assert!(limiter.check(&key).is_err());
        assert!(limiter.check(&"key_2".into()).is_ok(), "buckets are per key");
        let unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.check(&key).is_ok()));
    }
}
