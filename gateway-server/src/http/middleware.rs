//! What wraps every request: a request id, the access log and the metrics,
//! and the envelope on error responses actix writes itself.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{web, ResponseError};
use tracing::Instrument;

use crate::app::core::Core;
use crate::domain::error::{ApiError, Status};
use crate::support::ids::new_request_id;

/// Request id, access log and metrics for every request.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let request_id = new_request_id();
    let method = method_name(req.method());
    let metrics = req
        .app_data::<web::Data<Core>>()
        .map(|state| state.metrics.clone());
    let span = tracing::info_span!("request", request_id = %request_id, method, path = %req.path());
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("request-id"), value);
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe_request(&route, method, status, elapsed);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            route = %route,
            latency_us = elapsed.as_micros() as u64,
            "request"
        )
    });
    Ok(response)
}

fn method_name(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The failure envelope on an error response this layer did not write
/// itself (an actix extractor's or router's own answer, in text or empty):
/// a response already in JSON passes unchanged. What actix-http answers at
/// the protocol level, before a request reaches the app (a malformed
/// request line or header, a head too large or too slow), cannot be reached
/// here; see README's Limits.
pub(crate) fn envelope_errors<B>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json") || value.starts_with("text/event-stream"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let status = response.status();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "resource_missing",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "body_too_large",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        500..=599 => "internal_error",
        _ => "http_error",
    };
    let message = if status.is_server_error() {
        "an internal error occurred; it has been logged".to_owned()
    } else {
        format!(
            "the request was refused: {}",
            status.canonical_reason().unwrap_or("client error")
        )
    };
    let error = match Status::from_u16(status.as_u16()) {
        Some(ours) => ApiError::new(ours, code, message),
        None => ApiError::internal(),
    };
    let answer = error.error_response();
    Ok(ErrorHandlerResponse::Response(
        response.into_response(answer).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::ErrorHandlers;
    use actix_web::{test, web, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn error_responses_not_in_json_get_the_envelope() {
        let app = test::init_service(
            App::new()
                .wrap(ErrorHandlers::new().default_handler(envelope_errors))
                .route(
                    "/plain",
                    web::get().to(|| async { HttpResponse::BadRequest().body("plain text") }),
                )
                .route(
                    "/ours",
                    web::get().to(|| async {
                        ApiError::new(Status::CONFLICT, "ours", "already an envelope").error_response()
                    }),
                ),
        )
        .await;
        let response = test::call_service(&app, test::TestRequest::get().uri("/plain").to_request()).await;
        assert_eq!(response.status().as_u16(), 400);
        let body: serde_json::Value = test::read_body_json(response).await;
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "bad_request");
        let response = test::call_service(&app, test::TestRequest::get().uri("/ours").to_request()).await;
        let body: serde_json::Value = test::read_body_json(response).await;
        assert_eq!(body["error"]["code"], "ours");
    }
}
