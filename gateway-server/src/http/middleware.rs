//! What wraps every request: a request id, the access log and the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::app::core::Core;
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
