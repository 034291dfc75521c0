//! Operations: liveness, readiness, metrics, the OpenAPI document.

use crate::domain::error::Status;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::http::errors::ApiError;
use crate::http::extract::Success;

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    #[schema(value_type = String)]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub(crate) async fn healthz() -> Success {
    Success::of(&Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The database answers", body = Health)))]
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
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4",
               content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(state: web::Data<Core>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(state.metrics.render())
}

/// The OpenAPI 3.1 document, generated from the handlers and types.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (not in the success envelope)",
               content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(crate::http::openapi::document())
}
