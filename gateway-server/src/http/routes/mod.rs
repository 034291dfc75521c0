//! HTTP routes, one module per resource, and the one way a resource is
//! registered ([`endpoint`]): its methods, and 405 with `Allow` for the rest.

pub(crate) mod cards;
pub(crate) mod event_stream;
pub(crate) mod events;
pub(crate) mod live;
pub(crate) mod merchant;
pub(crate) mod ops;
pub(crate) mod payments;
pub(crate) mod refunds;
pub(crate) mod webhook_endpoints;
pub(crate) mod webhooks;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, ResponseError};

use crate::domain::error::Status;
use crate::http::errors::ApiError;

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        endpoint("/v1/payments")
            .post(payments::create)
            .get(payments::list),
    )
    .service(
        endpoint("/v1/payments/cards")
            .post(cards::create)
            .get(cards::list),
    )
    .service(endpoint("/v1/payments/cards/{id}").delete(cards::delete))
    .service(endpoint("/v1/payments/{id}").get(payments::get))
    .service(endpoint("/v1/payments/{id}/wait").get(live::wait))
    .service(endpoint("/v1/payments/{id}/events").get(live::events))
    .service(endpoint("/v1/webhooks/{provider}").post(webhooks::receive_global))
    .service(endpoint("/v1/webhooks/{provider}/{merchant_id}").post(webhooks::receive_merchant))
    .service(endpoint("/v1/webhook-deliveries").get(webhooks::list_deliveries))
    .service(endpoint("/v1/webhook-deliveries/{id}").get(webhooks::get_delivery))
    .service(endpoint("/v1/webhook-deliveries/{id}/retry").post(webhooks::retry_delivery))
    .service(endpoint("/v1/payments/{id}/confirm").post(payments::confirm))
    .service(endpoint("/v1/payments/{id}/capture").post(payments::capture))
    .service(endpoint("/v1/payments/{id}/cancel").post(payments::cancel))
    .service(endpoint("/v1/payments/{id}/timeline").get(payments::timeline))
    .service(endpoint("/v1/refunds").post(refunds::create))
    .service(endpoint("/v1/refunds/{id}").get(refunds::get))
    .service(endpoint("/v1/merchant").get(merchant::get))
    .service(endpoint("/v1/merchant/providers").put(merchant::put_providers))
    .service(
        endpoint("/v1/merchant/webhook")
            .put(merchant::put_webhook)
            .get(merchant::get_webhook)
            .delete(merchant::delete_webhook),
    )
    .service(
        endpoint("/v1/merchant/api_keys")
            .post(merchant::create_key)
            .get(merchant::list_keys),
    )
    .service(endpoint("/v1/merchant/api_keys/{id}").delete(merchant::revoke_key))
    .service(endpoint("/v1/events").get(events::list))
    // Before `/v1/events/{id}`, which would take `stream` for an id.
    .service(endpoint("/v1/events/stream").get(event_stream::stream))
    .service(endpoint("/v1/events/{id}").get(events::get))
    .service(endpoint("/v1/events/{id}/resend").post(events::resend))
    .service(
        endpoint("/v1/webhook-endpoints")
            .post(webhook_endpoints::create)
            .get(webhook_endpoints::list),
    )
    .service(
        endpoint("/v1/webhook-endpoints/{id}")
            .get(webhook_endpoints::get)
            .on(Method::PATCH, webhook_endpoints::update)
            .delete(webhook_endpoints::delete),
    )
    .service(endpoint("/v1/webhook-endpoints/{id}/rotate-secret").post(webhook_endpoints::rotate_secret))
    .service(endpoint("/healthz").get(ops::healthz))
    .service(endpoint("/readyz").get(ops::readyz))
    .service(endpoint("/metrics").get(ops::metrics))
    .service(endpoint("/openapi.json").get(ops::openapi));
}

/// `endpoint.get(handler)` for `endpoint.on(Method::GET, handler)`, and so on.
macro_rules! method_shortcuts {
    ($($name:ident => $method:ident,)*) => {$(
        #[doc = concat!("`handler` answers ", stringify!($method), ".")]
        pub(crate) fn $name<F, Args>(self, handler: F) -> Self
        where
            F: Handler<Args>,
            Args: FromRequest + 'static,
            F::Output: Responder + 'static,
        {
            self.on(Method::$method, handler)
        }
    )*};
}

/// A resource under construction: a handler per method, and the methods
/// listed for `Allow`.
pub(crate) struct Endpoint {
    resource: Resource,
    methods: Vec<Method>,
}

/// The resource at `path`; add its methods with [`Endpoint::get`] and the like.
pub(crate) fn endpoint(path: &str) -> Endpoint {
    Endpoint {
        resource: web::resource(path),
        methods: Vec::new(),
    }
}

impl Endpoint {
    /// `handler` answers `method`.
    pub(crate) fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }

    method_shortcuts! {
        get => GET,
        post => POST,
        put => PUT,
        delete => DELETE,
    }

    /// The `Allow` value: the methods in the order they were added.
    fn allow(&self) -> HeaderValue {
        let names: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        HeaderValue::from_str(&names.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl HttpServiceFactory for Endpoint {
    fn register(self, config: &mut AppService) {
        let allow = self.allow();
        self.resource
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move { method_not_allowed(&req, allow) }
            }))
            .register(config);
    }
}

/// 405 in the envelope, with `Allow` naming the methods the resource answers (RFC 9110).
fn method_not_allowed(req: &HttpRequest, allow: HeaderValue) -> HttpResponse {
    let error = ApiError::new(
        Status::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    );
    let mut response = error.error_response();
    response.headers_mut().insert(ALLOW, allow);
    response
}

/// 404 in the envelope for any unknown path.
pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        Status::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};

    use super::*;

    async fn ok() -> HttpResponse {
        HttpResponse::NoContent().finish()
    }

    #[actix_web::test]
    async fn other_methods_get_405_with_allow() {
        let app =
            test::init_service(App::new().service(endpoint("/things").get(ok).post(ok).delete(ok))).await;
        let response = test::call_service(&app, test::TestRequest::patch().uri("/things").to_request()).await;
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers().get(ALLOW).unwrap(), "GET, POST, DELETE");
        let body = test::read_body(response).await;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "method_not_allowed");
        assert_eq!(value["error"]["message"], "PATCH is not allowed on /things");
        let response =
            test::call_service(&app, test::TestRequest::delete().uri("/things").to_request()).await;
        assert_eq!(response.status().as_u16(), 204);
    }
}
