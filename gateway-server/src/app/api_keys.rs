//! API keys: who a presented key belongs to (cached, in bounded maps), the
//! per-merchant rate limit, and the limit on failed authentications per
//! client address.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::app::core::Core;
use crate::app::invalidation::CACHE_TTL;
use crate::domain::error::{ApiError, Status};
use crate::domain::scopes::Caller;
use crate::support::bounded::BoundedMap;
use crate::support::ids::hash_api_key;

/// Most valid keys the cache holds.
pub(crate) const VALID_KEYS_CACHED: usize = 50_000;
/// Most unknown or revoked keys the cache holds (apart from the valid ones,
/// so a flood of invalid keys never evicts a valid one).
pub(crate) const INVALID_KEYS_CACHED: usize = 10_000;
/// Most merchants or client addresses a limiter tracks at once; the oldest
/// bucket is forgotten (as if full) beyond that.
pub(crate) const BUCKETS_TRACKED: usize = 100_000;

/// Recently verified keys by hash, so a request costs no database read for
/// auth. An entry is trusted for [`CACHE_TTL`]; a revocation is forgotten at
/// once here and, through `app::invalidation`, on the other instances.
///
/// Valid and invalid keys live in separate [`BoundedMap`]s (each insert and
/// eviction O(1)), each behind its own lock.
pub(crate) struct KeyCache {
    valid: Mutex<BoundedMap<String, (Caller, Instant)>>,
    invalid: Mutex<BoundedMap<String, Instant>>,
}

impl KeyCache {
    /// A cache of at most `valid` valid and `invalid` invalid keys.
    pub(crate) fn new(valid: usize, invalid: usize) -> Self {
        KeyCache {
            valid: Mutex::new(BoundedMap::new(valid)),
            invalid: Mutex::new(BoundedMap::new(invalid)),
        }
    }

    /// `Some(Some(caller))` for a cached valid key, `Some(None)` for a cached invalid one.
    fn get(&self, hash: &str) -> Option<Option<Caller>> {
        {
            let valid = self.valid.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((caller, at)) = valid.get(hash) {
                if at.elapsed() < CACHE_TTL {
                    return Some(Some(caller.clone()));
                }
            }
        }
        let invalid = self.invalid.lock().unwrap_or_else(PoisonError::into_inner);
        invalid
            .get(hash)
            .filter(|at| at.elapsed() < CACHE_TTL)
            .map(|_| None)
    }

    fn put(&self, hash: String, auth: Option<Caller>) {
        let now = Instant::now();
        match auth {
            Some(caller) => {
                self.invalid
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(hash.as_str());
                self.valid
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(hash, (caller, now));
            }
            None => {
                self.valid
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(hash.as_str());
                self.invalid
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(hash, now);
            }
        }
    }

    /// How many valid and invalid keys it holds.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let valid = self.valid.lock().unwrap_or_else(PoisonError::into_inner).len();
        let invalid = self.invalid.lock().unwrap_or_else(PoisonError::into_inner).len();
        (valid, invalid)
    }

    /// Forgets a revoked key.
    pub(crate) fn forget_key(&self, key_id: &str) {
        self.valid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (caller, _)| &*caller.key_id != key_id);
    }

    /// Forgets every key: each is read again on its next use.
    pub(crate) fn forget_all(&self) {
        self.valid.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.invalid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Token buckets by key (a merchant, a client address): `rate` tokens a
/// second, holding at most `burst`; at most [`BUCKETS_TRACKED`] buckets.
pub(crate) struct Buckets<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<BoundedMap<K, (f64, Instant)>>,
}

impl<K: Eq + std::hash::Hash + Clone> Buckets<K> {
    /// `rate` tokens per second, bursts up to `burst` (at least 1); a rate of 0 takes nothing.
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        Buckets {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(BoundedMap::new(BUCKETS_TRACKED)),
        }
    }

    /// Whether this limiter limits anything.
    pub(crate) fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    fn refill(&self, entry: &mut (f64, Instant), now: Instant) {
        let (tokens, last) = entry;
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
    }

    /// Takes one token for `key`: `Err(seconds until the next token)` when empty.
    pub(crate) fn take(&self, key: &K) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.get(key).is_none() {
            buckets.insert(key.clone(), (self.burst, now));
        }
        let Some(entry) = buckets.get_mut(key) else {
            return Ok(());
        };
        self.refill(entry, now);
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            Ok(())
        } else {
            Err(self.wait_secs(entry.0))
        }
    }

    /// `Err(seconds until the next token)` when `key`'s bucket is empty; takes nothing.
    pub(crate) fn check(&self, key: &K) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        match buckets.get_mut(key) {
            None => Ok(()),
            Some(entry) => {
                self.refill(entry, now);
                if entry.0 >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait_secs(entry.0))
                }
            }
        }
    }

    fn wait_secs(&self, tokens: f64) -> u64 {
        Duration::from_secs_f64(((1.0 - tokens) / self.rate).clamp(0.0, 86_400.0))
            .as_secs()
            .max(1)
    }

    /// How many buckets it tracks.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The request rate of each merchant, all its keys together: `per_second`
/// requests per second, bursts up to `burst`.
pub(crate) struct RateLimiter {
    per_second: u32,
    buckets: Buckets<Arc<str>>,
}

impl RateLimiter {
    /// `per_second` requests per second per merchant, bursts up to `burst`; 0 disables limiting.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            per_second,
            buckets: Buckets::new(f64::from(per_second), burst.max(per_second)),
        }
    }

    /// Takes one token for the caller's merchant; 429 when its bucket is empty.
    fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        self.buckets.take(&caller.merchant_id).map_err(|wait| {
            ApiError::rate_limited(format!(
                "more than {} requests per second for this merchant (all its API keys together); retry shortly",
                self.per_second
            ))
            .with_retry_after(wait)
        })
    }
}

/// Failed authentications (unknown or revoked keys) per client address:
/// `per_minute` of them, then 429 until the bucket refills.
pub(crate) struct AuthFailures {
    buckets: Buckets<IpAddr>,
}

impl AuthFailures {
    /// `per_minute` failures a minute per address (bursts up to as many); 0 disables the limit.
    pub(crate) fn new(per_minute: u32) -> Self {
        AuthFailures {
            buckets: Buckets::new(f64::from(per_minute) / 60.0, per_minute),
        }
    }

    fn refused(wait: u64) -> ApiError {
        ApiError::new(
            Status::TOO_MANY_REQUESTS,
            "too_many_failed_authentications",
            "too many requests with an invalid API key from this address; retry later",
        )
        .with_retry_after(wait)
    }

    /// 429 while `client` is over its failures.
    fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        match client {
            Some(client) => self.buckets.check(&client).map_err(AuthFailures::refused),
            None => Ok(()),
        }
    }

    /// Counts a failure of `client`.
    fn record(&self, client: Option<IpAddr>) {
        if let Some(client) = client {
            let _ = self.buckets.take(&client);
        }
    }
}

/// The caller an API key belongs to: 401 for a missing, unknown or revoked
/// key, 429 when its merchant is over its rate, or when `client` (the
/// peer's address) sent too many invalid keys lately (a valid key already
/// cached still passes: the limit costs honest callers nothing).
pub(crate) async fn authenticate(
    state: &Core,
    key: Option<String>,
    client: Option<IpAddr>,
) -> Result<Caller, ApiError> {
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
    let cached = state.keys.get(&hash);
    if let Some(Some(auth)) = cached {
        state.rate_limiter.check(&auth)?;
        return Ok(auth);
    }
    state.auth_failures.check(client)?;
    let auth = match cached {
        Some(cached) => cached,
        None => {
            let auth = lookup(state, &hash).await?;
            state.keys.put(hash, auth.clone());
            auth
        }
    };
    let Some(auth) = auth else {
        state.auth_failures.record(client);
        return Err(invalid());
    };
    state.rate_limiter.check(&auth)?;
    Ok(auth)
}

/// The caller of the key whose hash is `hash`, from the store; `None` when unknown or revoked.
async fn lookup(state: &Core, hash: &str) -> Result<Option<Caller>, ApiError> {
    let row = state.store.api_key_by_hash(hash).await?;
    Ok(row.filter(|row| row.revoked_at.is_none()).map(|row| Caller {
        merchant_id: row.merchant_id.into(),
        key_id: row.id.into(),
        scopes: row.scopes,
    }))
}

/// Whether the key hashed `hash` is still valid (through the cache, so a
/// revocation heard by this instance counts at once; no rate limit): for
/// streams that outlive the request that authenticated them. A store
/// failure keeps the stream.
pub(crate) async fn still_valid(state: &Core, hash: &str) -> bool {
    match state.keys.get(hash) {
        Some(cached) => cached.is_some(),
        None => match lookup(state, hash).await {
            Ok(auth) => {
                let valid = auth.is_some();
                state.keys.put(hash.to_owned(), auth);
                valid
            }
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scopes::Scopes;

    fn caller(merchant: &str, key: &str) -> Caller {
        Caller {
            merchant_id: merchant.into(),
            key_id: key.into(),
            scopes: Scopes::all(),
        }
    }

    #[test]
    fn rate_limit_is_per_merchant_with_a_burst() {
        let limiter = RateLimiter::new(2, 3);
        let (a1, a2) = (caller("m_a", "key_1"), caller("m_a", "key_2"));
        for _ in 0..3 {
            assert!(limiter.check(&a1).is_ok());
        }
        let refused = limiter.check(&a2).unwrap_err();
        assert_eq!(refused.status(), Status::TOO_MANY_REQUESTS);
        assert!(refused.retry_after().is_some());
        assert!(
            limiter.check(&caller("m_b", "key_3")).is_ok(),
            "buckets are per merchant"
        );
        let unlimited = RateLimiter::new(0, 0);
        assert!((0..1000).all(|_| unlimited.check(&a1).is_ok()));
    }

    #[test]
    fn failures_per_address_then_refused() {
        let failures = AuthFailures::new(3);
        let (one, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(failures.check(Some(one)).is_ok());
            failures.record(Some(one));
        }
        let refused = failures.check(Some(one)).unwrap_err();
        assert_eq!(refused.code(), "too_many_failed_authentications");
        assert!(refused.retry_after().unwrap() >= 1);
        assert!(failures.check(Some(other)).is_ok());
        assert!(failures.check(None).is_ok());
    }

    #[test]
    fn buckets_stay_bounded() {
        let buckets: Buckets<u32> = Buckets::new(1.0, 1);
        for n in 0..(BUCKETS_TRACKED as u32 + 5000) {
            let _ = buckets.take(&n);
        }
        assert_eq!(buckets.tracked(), BUCKETS_TRACKED);
    }

    #[test]
    fn a_flood_of_invalid_keys_keeps_the_cache_bounded_and_the_valid_keys() {
        let cache = KeyCache::new(100, 1000);
        for n in 0..50 {
            cache.put(format!("valid_{n}"), Some(caller("m_a", &format!("key_{n}"))));
        }
        for n in 0..100_000 {
            cache.put(format!("invalid_{n}"), None);
        }
        assert_eq!(cache.sizes(), (50, 1000));
        for n in 0..50 {
            let cached = cache.get(&format!("valid_{n}")).expect("still cached");
            assert_eq!(&*cached.expect("valid").key_id, format!("key_{n}"));
        }
        assert!(matches!(cache.get("invalid_99999"), Some(None)));
        assert!(
            cache.get("invalid_0").is_none(),
            "the oldest invalid keys were evicted"
        );
        cache.forget_key("key_7");
        assert!(cache.get("valid_7").is_none());
        assert_eq!(cache.sizes().0, 49);
    }
}
