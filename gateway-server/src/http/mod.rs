//! The HTTP layer, above `app`: actix routes and the extractors handlers
//! are written with (`auth`, `extract`, `idempotent`), the request types and
//! their validation, the error envelope, and the OpenAPI document. A handler
//! extracts a validated request and calls one `app` use case.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod errors;
pub(crate) mod extract;
pub(crate) mod idempotent;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub(crate) mod routes;
pub(crate) mod turns;
pub(crate) mod validate;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App};

use crate::app::core::Core;
use crate::domain::error::{ApiError, Status};

/// The whole HTTP application over `core`: state, path errors in the
/// envelope, the request middleware around every route and the 404 fallback.
/// (A function returning the `App`, not a `ServiceConfig`, so the middleware
/// wraps the app itself instead of adding a routing layer.)
pub(crate) fn app(
    core: web::Data<Core>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(core)
        .app_data(web::PathConfig::default().error_handler(|error, req| {
            ApiError::new(
                Status::NOT_FOUND,
                "resource_missing",
                format!("no such object at {}: {error}", req.path()),
            )
            .into()
        }))
        .wrap(ErrorHandlers::new().default_handler(middleware::envelope_errors))
        .wrap(from_fn(middleware::observe))
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
}
