//! The [`Auth`] extractor: `X-API-Key` or `Authorization: Bearer` turned
//! into the calling merchant (see `app::api_keys`).

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::app::api_keys;
use crate::app::core::Core;
pub(crate) use crate::domain::scopes::Caller as Auth;
use crate::http::errors::ApiError;

type LocalBoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

fn presented_key(req: &HttpRequest) -> Option<&str> {
    if let Some(value) = req.headers().get("x-api-key") {
        return value.to_str().ok().map(str::trim);
    }
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Auth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Core>>().cloned();
        let key = presented_key(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(ApiError::internal)?;
            api_keys::authenticate(&state, key).await
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
