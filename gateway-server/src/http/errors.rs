//! How the HTTP layer answers: [`ApiError`] rendered as the failure envelope,
//! and JSON responses with a serialized body (the success envelope's
//! responder is `http::extract::Success`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

pub(crate) use crate::domain::error::ApiError;
pub(crate) use crate::domain::error::{success_bytes, Status};

/// actix's status for one of ours.
pub(crate) fn http_status(status: Status) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        http_status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(http_status(self.status()));
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status() == Status::REQUEST_TIMEOUT {
            // The rest of a late body may still come: the connection cannot be reused.
            response.force_close();
        }
        response.body(self.body_bytes())
    }
}

/// A JSON response with a body already serialized.
pub(crate) fn json_response(status: Status, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(http_status(status))
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body)
}
