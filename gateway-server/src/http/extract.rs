//! The extractors handlers are written with, and the success responder.
//!
//! * [`Json<T>`]: the body, read within the size limit, `application/json`,
//!   strictly parsed into `T` and validated by `T`'s [`Validate`].
//! * [`Query<T>`]: the query string, strictly parsed and validated.
//! * [`Page<Q>`]: a list's query: `limit` and `cursor` checked, filters validated.
//! * [`Id<K>`]: a path id of kind `K`, refused (404) when it cannot be one.
//! * [`Success`]: 200 with `{"success": true, "data": …}`.
//!
//! They take turns (see `http::turns`): a request is refused for the first
//! fault in the order of the handler's arguments.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Responder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::core::Core;
use crate::app::lists::{PageRequest, DEFAULT_LIMIT, MAX_LIMIT};
use crate::domain::error::Status;
use crate::http::body::{parse_json, read_body};
use crate::http::errors::{json_response, success_bytes, ApiError};
use crate::http::turns::in_turn;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A request type's own checks, turning what was sent into what the use
/// case takes.
pub(crate) trait Validate: Sized {
    /// The validated request.
    type Valid;

    /// 400 (naming the parameter) for anything the request may not say.
    fn validate(self) -> Result<Self::Valid, ApiError>;
}

/// The largest request body this server accepts (`Core::max_body_bytes`).
pub(crate) fn body_limit(req: &HttpRequest) -> Result<usize, ApiError> {
    req.app_data::<web::Data<Core>>()
        .map(|core| core.max_body_bytes)
        .ok_or_else(ApiError::internal)
}

/// A strict JSON body of type `T`, validated: 413 over the size limit, 415
/// for another content type, 400 naming the position or the parameter.
/// An empty body reads as `{}`.
#[derive(Debug)]
pub(crate) struct Json<T: Validate>(pub(crate) T::Valid);

/// The body of `req`, read and validated as `T` in its turn; also its raw bytes.
pub(crate) fn validated_body<T: Validate + DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<Result<(T::Valid, web::Bytes), ApiError>> {
    let payload = web::Payload::from_request(req, payload).into_inner();
    let request = req.clone();
    in_turn(req, async move {
        let req = request;
        let payload = payload.map_err(|_| ApiError::internal())?;
        let body = read_body(&req, payload, body_limit(&req)?).await?;
        let input: T = parse_json(&req, &body)?;
        Ok((input.validate()?, body))
    })
}

impl<T: Validate + DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = validated_body::<T>(req, payload);
        Box::pin(async move { Ok(Json(body.await?.0)) })
    }
}

/// Parses the query string strictly into `T`.
fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| {
            ApiError::new(
                Status::BAD_REQUEST,
                "parameter_invalid",
                format!("invalid query string: {error}"),
            )
        })
}

/// A strict query string of type `T`, validated.
#[derive(Debug)]
pub(crate) struct Query<T: Validate>(pub(crate) T::Valid);

impl<T: Validate + DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = parse_query::<T>(req).and_then(T::validate);
        in_turn(req, async move { Ok(Query(parsed?)) })
    }
}

/// The query of a paged list: its filters, `limit` and `cursor`.
pub(crate) trait ListQuery: DeserializeOwned {
    /// What the cursor names (`payment`), for the 404 of an absurd one.
    const CURSOR_KIND: &'static str;
    /// The validated filters.
    type Search;

    /// Takes `limit` and the cursor out of the query.
    fn take_page(&mut self) -> (Option<u32>, Option<String>);

    /// Validates what remains: the filters.
    fn search(self) -> Result<Self::Search, ApiError>;
}

/// A page request and the list's filters: `limit` 1 to 100 (default 20),
/// the cursor a plausible id.
#[derive(Debug)]
pub(crate) struct Page<Q: ListQuery> {
    pub(crate) search: Q::Search,
    pub(crate) page: PageRequest,
}

impl<Q: ListQuery> Page<Q> {
    fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        let mut query: Q = parse_query(req)?;
        let (limit, cursor) = query.take_page();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_param(
                "limit",
                "limit must be between 1 and 100",
            ));
        }
        let search = query.search()?;
        if let Some(cursor) = &cursor {
            // A cursor that cannot be an id is a bad query, not a missing object.
            check_id(Q::CURSOR_KIND, cursor)
                .map_err(|_| ApiError::invalid_param("cursor", "unknown cursor"))?;
        }
        Ok(Page {
            search,
            page: PageRequest { limit, cursor },
        })
    }
}

impl<Q: ListQuery + 'static> FromRequest for Page<Q> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = Page::<Q>::parse(req);
        in_turn(req, async move { parsed })
    }
}

/// Ids are opaque; an absurd one (empty, over 100 bytes) is refused as not
/// found before it reaches storage.
pub(crate) fn check_id<'a>(kind: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.is_empty() || id.len() > 100 {
        Err(ApiError::not_found(kind, id.get(..100).unwrap_or(id)))
    } else {
        Ok(id)
    }
}

/// What an id names, as its 404 says it.
pub(crate) trait IdKind {
    const NAME: &'static str;
}

/// The id kinds of the API's paths.
pub(crate) mod kind {
    macro_rules! kinds {
        ($($name:ident => $text:literal,)*) => {$(
            #[doc = concat!("A ", $text, " id.")]
            #[derive(Debug)]
            pub(crate) struct $name;

            impl super::IdKind for $name {
                const NAME: &'static str = $text;
            }
        )*};
    }

    kinds! {
        Payment => "payment",
        Refund => "refund",
        SavedCard => "saved card",
        ApiKey => "api key",
        Delivery => "webhook delivery",
        Event => "event",
        WebhookEndpoint => "webhook endpoint",
    }
}

/// An id of kind `K`, from the path's `{id}` or a request field.
#[derive(Debug, Clone)]
pub(crate) struct Id<K> {
    id: String,
    kind: PhantomData<K>,
}

pub(crate) type PaymentId = Id<kind::Payment>;
pub(crate) type RefundId = Id<kind::Refund>;
pub(crate) type SavedCardId = Id<kind::SavedCard>;
pub(crate) type ApiKeyId = Id<kind::ApiKey>;
pub(crate) type DeliveryId = Id<kind::Delivery>;
pub(crate) type EventId = Id<kind::Event>;
pub(crate) type WebhookEndpointId = Id<kind::WebhookEndpoint>;

impl<K: IdKind> Id<K> {
    /// 404 naming the kind unless `id` can be one.
    pub(crate) fn parse(id: String) -> Result<Self, ApiError> {
        check_id(K::NAME, &id)?;
        Ok(Id {
            id,
            kind: PhantomData,
        })
    }

    /// The id, owned.
    pub(crate) fn into_string(self) -> String {
        self.id
    }
}

impl<K> Deref for Id<K> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl<K: IdKind + 'static> FromRequest for Id<K> {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The path's own extractor, for its error (the `PathConfig` of `http::app`).
        let path = web::Path::<String>::from_request(req, payload)
            .into_inner()
            .map_err(|error| {
                error
                    .as_error::<ApiError>()
                    .cloned()
                    .unwrap_or_else(ApiError::internal)
            });
        in_turn(req, async move { Id::parse(path?.into_inner()) })
    }
}

/// 200 with `{"success": true, "data": …}`, serialized when made.
#[derive(Debug)]
pub(crate) struct Success(Vec<u8>);

impl Success {
    /// The envelope around `data`.
    pub(crate) fn of<T: Serialize>(data: &T) -> Self {
        Success(success_bytes(data))
    }
}

impl Responder for Success {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        json_response(Status::OK, self.0)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        status: Option<String>,
        limit: Option<u32>,
        cursor: Option<String>,
    }

    impl ListQuery for Listing {
        const CURSOR_KIND: &'static str = "thing";
        type Search = Option<String>;

        fn take_page(&mut self) -> (Option<u32>, Option<String>) {
            (self.limit.take(), self.cursor.take())
        }

        fn search(self) -> Result<Option<String>, ApiError> {
            match self.status.as_deref() {
                None | Some("open") => Ok(self.status),
                Some(_) => Err(ApiError::invalid_param("status", "status must be open")),
            }
        }
    }

    fn page(query: &str) -> Result<Page<Listing>, ApiError> {
        Page::parse(&TestRequest::with_uri(&format!("/things?{query}")).to_http_request())
    }

    #[test]
    fn pages_check_limit_then_filters_then_cursor() {
        let ok = page("status=open&limit=5&cursor=t_1").unwrap();
        assert_eq!(ok.search.as_deref(), Some("open"));
        assert_eq!(
            ok.page,
            PageRequest {
                limit: 5,
                cursor: Some("t_1".to_owned())
            }
        );
        assert_eq!(page("").unwrap().page.limit, DEFAULT_LIMIT);
        assert_eq!(page("limit=0").unwrap_err().code(), "parameter_invalid");
        assert_eq!(
            page("limit=101&status=x").unwrap_err().body_bytes(),
            page("limit=0").unwrap_err().body_bytes()
        );
        assert_eq!(page("status=x&cursor=").unwrap_err().code(), "parameter_invalid");
        // A cursor that cannot be an id is a bad query (400), not a missing object.
        let absurd = page(&format!("cursor={}", "c".repeat(101))).unwrap_err();
        assert_eq!(absurd.status(), Status::BAD_REQUEST);
        assert!(String::from_utf8(absurd.body_bytes())
            .unwrap()
            .contains(r#""param":"cursor""#));
        assert_eq!(page("nope=1").unwrap_err().code(), "parameter_invalid");
    }

    #[test]
    fn ids_refuse_what_cannot_be_an_id() {
        assert_eq!(&*PaymentId::parse("pay_1".to_owned()).unwrap(), "pay_1");
        let long = PaymentId::parse("x".repeat(101)).unwrap_err();
        assert_eq!(long.status(), Status::NOT_FOUND);
        assert!(String::from_utf8(long.body_bytes())
            .unwrap()
            .contains(&format!("no such payment: '{}'", "x".repeat(100))));
        assert!(SavedCardId::parse(String::new()).is_err());
    }
}
