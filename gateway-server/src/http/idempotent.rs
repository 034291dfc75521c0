//! `Idempotency-Key` at the HTTP edge: the header read and validated, the
//! request handed to `app::idempotency` as an [`IdempotentRequest`], its
//! reply turned into a response ([`Replied`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Responder};
use serde::de::DeserializeOwned;

use crate::app::idempotency::{self, IdempotentRequest, Reply, HEADER};
use crate::http::errors::{json_response, ApiError};
use crate::http::extract::{validated_body, Validate};
use crate::http::turns::in_turn;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The request's `Idempotency-Key` if it sent one, validated.
fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get(HEADER) {
        Some(value) => Ok(Some(idempotency::validate_key(value.to_str().ok())?)),
        None => Ok(None),
    }
}

/// A POST as `app::idempotency` fingerprints it: its `Idempotency-Key`
/// (validated here; a refused key is answered when the request reaches
/// `app::idempotency::run`, after the use case's own checks, as the API
/// always has), method, path and raw body.
///
/// As an extractor on its own: a POST without a body (anything sent is ignored).
#[derive(Debug)]
pub(crate) struct Post {
    key: Result<Option<String>, ApiError>,
    method: String,
    path: String,
    body: web::Bytes,
}

impl Post {
    fn of(req: &HttpRequest, body: web::Bytes) -> Self {
        Post {
            key: key_of(req),
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
            body,
        }
    }

    /// The request as `app::idempotency` sees it.
    pub(crate) fn request(&self) -> IdempotentRequest<'_> {
        IdempotentRequest {
            key: self.key.as_ref().map(Option::as_deref),
            method: &self.method,
            path: &self.path,
            body: &self.body,
        }
    }
}

impl FromRequest for Post {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let post = Post::of(req, web::Bytes::new());
        in_turn(req, async move { Ok(post) })
    }
}

/// A POST's JSON body validated as `T` (see `http::extract::Json`) and the
/// [`Post`] its raw bytes and `Idempotency-Key` make.
#[derive(Debug)]
pub(crate) struct Idempotent<T: Validate> {
    /// The validated request.
    pub(crate) value: T::Valid,
    pub(crate) post: Post,
}

impl<T: Validate + DeserializeOwned + 'static> FromRequest for Idempotent<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = validated_body::<T>(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let (value, body) = body.await?;
            Ok(Idempotent {
                value,
                post: Post::of(&req, body),
            })
        })
    }
}

/// An idempotent POST's answer: fresh, or the stored one with
/// `Idempotent-Replayed: true`.
pub(crate) struct Replied(pub(crate) Reply);

impl Responder for Replied {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        let Replied(reply) = self;
        let mut response = json_response(reply.status, reply.body);
        if reply.replayed {
            response.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
        }
        response
    }
}
