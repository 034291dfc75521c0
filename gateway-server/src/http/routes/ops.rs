//! Operations: liveness, readiness, metrics, the OpenAPI document.

use crate::domain::error::Status;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::app::core::Core;
use crate::http::errors::ApiError;
use crate::http::extract::Success;

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
pub(crate) async fn healthz() -> Success {
    Success::of(&Health { status: "ok" })
}

/// Readiness: the database answers.
pub(crate) async fn readyz(state: web::Data<Core>) -> Result<Success, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Success::of(&Health { status: "ready" })),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            Err(ApiError::new(
                Status::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is not available",
            ))
        }
    }
}

/// Prometheus text exposition.
pub(crate) async fn metrics(state: web::Data<Core>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(state.metrics.render())
}

/// The OpenAPI 3.1 document, generated from the handlers and types.
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(crate::http::openapi::document())
}
