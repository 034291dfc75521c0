//! `Idempotency-Key` at the HTTP edge: the header read and validated, the
//! request handed to `app::idempotency`, its reply turned into a response.

use std::future::Future;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, ProviderKeys, HEADER};
use crate::domain::scopes::Caller;
use crate::http::errors::{json_response, ApiError};

/// Runs `handler` once per merchant key (see `app::idempotency::run`) and
/// answers with its stored or fresh response.
pub(crate) async fn run<F, Fut>(
    state: &Core,
    caller: &Caller,
    req: &HttpRequest,
    body: &[u8],
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(ProviderKeys) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    let key = match req.headers().get(HEADER) {
        Some(value) => Some(idempotency::validate_key(value.to_str().ok())?),
        None => None,
    };
    let request = IdempotentRequest {
        caller,
        key,
        method: req.method().as_str(),
        path: req.path(),
        body,
    };
    let reply = idempotency::run(state, request, handler).await?;
    let mut response = json_response(reply.status, reply.body);
    if reply.replayed {
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}
