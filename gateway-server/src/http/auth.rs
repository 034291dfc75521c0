//! The [`Auth`] extractor: `X-API-Key` or `Authorization: Bearer` turned
//! into the calling merchant (see `app::api_keys`), refused unless its key
//! carries the scope named in the type (`Auth<PaymentsWrite>`).
//!
//! `Auth` comes first among a handler's arguments: the extractors of this
//! layer take turns (see `http::turns`), so a caller who is not
//! authenticated (401) or lacks the scope (403) hears that before anything
//! about its path or body.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::app::api_keys;
use crate::app::core::Core;
use crate::domain::scopes::{Caller, Scope};
use crate::http::errors::ApiError;
use crate::http::turns::in_turn;
use crate::support::ids::hash_api_key;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

fn presented_key(req: &HttpRequest) -> Option<&str> {
    if let Some(value) = req.headers().get("x-api-key") {
        return value.to_str().ok().map(str::trim);
    }
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The hash of the key `req` presents (empty when none): what a stream
/// keeps to check that its key is still valid, never the key itself.
pub(crate) fn presented_key_hash(req: &HttpRequest) -> String {
    presented_key(req).map(hash_api_key).unwrap_or_default()
}

/// A scope a handler requires, as a type.
pub(crate) trait RequiredScope {
    const SCOPE: Scope;
}

macro_rules! scope_markers {
    ($($(#[$doc:meta])* $name:ident => $scope:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl RequiredScope for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scope_markers! {
    /// `payments:read`.
    PaymentsRead => PaymentsRead,
    /// `payments:write`.
    PaymentsWrite => PaymentsWrite,
    /// `merchant:read`.
    MerchantRead => MerchantRead,
    /// `merchant:write`.
    MerchantWrite => MerchantWrite,
    /// `webhooks:read`.
    WebhooksRead => WebhooksRead,
}

/// The authenticated caller, whose key carries scope `S`: 401 without a
/// valid key, 429 over its merchant's rate or after too many invalid keys
/// from the client's address, 403 without the scope.
#[derive(Debug)]
pub(crate) struct Auth<S> {
    caller: Caller,
    scope: PhantomData<S>,
}

impl<S> Auth<S> {
    /// The caller, owned.
    pub(crate) fn into_caller(self) -> Caller {
        self.caller
    }
}

impl<S> Deref for Auth<S> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S: RequiredScope + 'static> FromRequest for Auth<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Auth<S>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Core>>().cloned();
        let key = presented_key(req).map(str::to_owned);
        // The TCP peer: `X-Forwarded-For` is not trusted (no trusted proxies are configurable yet).
        let client = req.peer_addr().map(|addr| addr.ip());
        in_turn(req, async move {
            let state = state.ok_or_else(ApiError::internal)?;
            let caller = api_keys::authenticate(&state, key, client).await?;
            caller.require(S::SCOPE)?;
            Ok(Auth {
                caller,
                scope: PhantomData,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
