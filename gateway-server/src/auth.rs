//! API keys: scopes, and the [`Auth`] extractor that turns `X-API-Key` or
//! `Authorization: Bearer` into the calling merchant.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};

use crate::errors::ApiError;
use crate::ids::hash_api_key;
use crate::state::AppState;

type LocalBoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// One permission an API key may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Read payments, refunds and saved cards.
    PaymentsRead,
    /// Create and change payments, refunds and saved cards.
    PaymentsWrite,
    /// Read the merchant's configuration and keys.
    MerchantRead,
    /// Change the merchant's configuration and keys.
    MerchantWrite,
    /// Read webhook configuration and deliveries.
    WebhooksRead,
}

impl Scope {
    /// Every scope.
    pub(crate) const ALL: [Scope; 5] = [
        Scope::PaymentsRead,
        Scope::PaymentsWrite,
        Scope::MerchantRead,
        Scope::MerchantWrite,
        Scope::WebhooksRead,
    ];

    /// The scope's name, e.g. `payments:write`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::PaymentsRead => "payments:read",
            Scope::PaymentsWrite => "payments:write",
            Scope::MerchantRead => "merchant:read",
            Scope::MerchantWrite => "merchant:write",
            Scope::WebhooksRead => "webhooks:read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Parses a scope name.
    pub(crate) fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name.trim())
    }
}

/// A set of scopes, written `payments:read,payments:write`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub(crate) fn all() -> Scopes {
        Scopes(Scope::ALL.iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    /// Whether `scope` is in the set.
    pub(crate) fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `other` is in this set.
    pub(crate) fn covers(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses a comma-separated list; the error names the unknown scope.
    pub(crate) fn parse_list(text: &str) -> Result<Scopes, String> {
        Scopes::from_names(text.split(',').map(str::trim).filter(|name| !name.is_empty()))
    }

    /// Parses scope names; the error names the unknown scope.
    pub(crate) fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        names.into_iter().try_fold(Scopes(0), |scopes, name| {
            Scope::parse(name)
                .map(|scope| Scopes(scopes.0 | scope.bit()))
                .ok_or_else(|| name.to_owned())
        })
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scope names, in a fixed order.
    pub(crate) fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|scope| self.contains(*scope))
            .map(Scope::as_str)
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// The authenticated caller: a merchant through one of its keys.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) merchant_id: Arc<str>,
    pub(crate) key_id: Arc<str>,
    pub(crate) scopes: Scopes,
}

impl Auth {
    /// 403 naming `scope` unless the key carries it.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the scope {}", scope.as_str()),
            )
            .with_param(scope.as_str()))
        }
    }
}

/// How long a looked-up key is trusted before it is read again (revocations
/// through this server apply at once; through the CLI within this time).
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Recently verified keys by hash, so a request costs no database read for auth.
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, (Option<Auth>, Instant)>>,
}

impl KeyCache {
    pub(crate) fn new() -> Self {
        KeyCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &str) -> Option<Option<Auth>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(auth, _)| auth.clone())
    }

    fn put(&self, hash: String, auth: Option<Auth>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        entries.insert(hash, (auth, Instant::now()));
    }

    /// Forgets a revoked key at once.
    pub(crate) fn forget_key(&self, key_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (auth, _)| auth.as_ref().is_none_or(|auth| &*auth.key_id != key_id));
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

fn presented_key(req: &HttpRequest) -> Option<&str> {
    if let Some(value) = req.headers().get("x-api-key") {
        return value.to_str().ok().map(str::trim);
    }
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(state: web::Data<AppState>, key: Option<String>) -> Result<Auth, ApiError> {
    let Some(key) = key.filter(|key| !key.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "send your API key in the X-API-Key header or as Authorization: Bearer <key>",
        ));
    };
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
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
    let auth = row.filter(|row| row.revoked_at.is_none()).map(|row| Auth {
        merchant_id: row.merchant_id.into(),
        key_id: row.id.into(),
        scopes: row.scopes,
    });
    state.keys.put(hash, auth.clone());
    let auth = auth.ok_or_else(invalid)?;
    state.rate_limiter.check(&auth.key_id)?;
    Ok(auth)
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Auth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let key = presented_key(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(ApiError::internal)?;
            authenticate(state, key).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scopes::parse_list("payments:read, merchant:write").unwrap();
        assert!(scopes.contains(Scope::PaymentsRead) && scopes.contains(Scope::MerchantWrite));
        assert!(!scopes.contains(Scope::PaymentsWrite));
        assert_eq!(scopes.to_string(), "payments:read,merchant:write");
        assert_eq!(Scopes::parse_list("payments:read,nope"), Err("nope".to_owned()));
        assert_eq!(Scopes::parse_list(&Scopes::all().to_string()), Ok(Scopes::all()));
        assert!(Scopes::all().covers(scopes) && !scopes.covers(Scopes::all()));
    }

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

    #[test]
    fn key_from_either_header() {
        use actix_web::test::TestRequest;
        let req = TestRequest::default()
            .insert_header(("X-API-Key", "k1"))
            .to_http_request();
        assert_eq!(presented_key(&req), Some("k1"));
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer k2"))
            .to_http_request();
        assert_eq!(presented_key(&req), Some("k2"));
        let req = TestRequest::default()
            .insert_header(("Authorization", "Basic xyz"))
            .to_http_request();
        assert_eq!(presented_key(&req), None);
    }
}
