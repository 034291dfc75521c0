//! The response envelope and the one error type every handler returns.
//!
//! Success: `{"success": true, "data": …}`. Failure:
//! `{"success": false, "error": {"code", "message", "decline_code"?, "param"?}}`,
//! on every failure the server produces, extractor and routing errors included.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use gateway_core::{ProviderError, ProviderErrorKind};
use serde::Serialize;

use crate::storage::StoreError;

/// An API failure: HTTP status plus the envelope's error object (boxed: small to return).
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    code: String,
    message: String,
    param: Option<String>,
    decline_code: Option<String>,
    payment_id: Option<String>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decline_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<&'a str>,
}

#[derive(Serialize)]
struct FailureEnvelope<'a> {
    success: bool,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct SuccessEnvelope<'a, T: Serialize> {
    success: bool,
    data: &'a T,
}

impl ApiError {
    /// An error with `status`, machine-readable `code` and a human `message`.
    pub(crate) fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            status,
            code: code.into(),
            message: message.into(),
            param: None,
            decline_code: None,
            payment_id: None,
            retry_after: None,
        }))
    }

    /// Names the request parameter at fault.
    pub(crate) fn with_param(mut self, param: impl Into<String>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    /// Names the payment the failure concerns (a declined payment is still stored).
    pub(crate) fn with_payment(mut self, payment_id: impl Into<String>) -> Self {
        self.0.payment_id = Some(payment_id.into());
        self
    }

    /// 400 for a parameter that is present but wrong.
    pub(crate) fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "parameter_invalid", message).with_param(param)
    }

    /// 400 for a required parameter that is absent.
    pub(crate) fn missing_param(param: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "parameter_missing",
            format!("missing required parameter: {param}"),
        )
        .with_param(param)
    }

    /// 404 for an object the merchant cannot see (absent or another merchant's).
    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "resource_missing",
            format!("no such {kind}: '{id}'"),
        )
    }

    /// 409 for an operation the object's current state forbids.
    pub(crate) fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 for a well-formed request that cannot be carried out.
    pub(crate) fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 with `Retry-After: 1`.
    pub(crate) fn rate_limited(message: impl Into<String>) -> Self {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        error.0.retry_after = Some(1);
        error
    }

    /// 500 without details (they go to the log, never to the client).
    pub(crate) fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; it has been logged",
        )
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The machine-readable code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &str {
        &self.0.code
    }

    /// The serialized envelope.
    pub(crate) fn body_bytes(&self) -> Vec<u8> {
        let envelope = FailureEnvelope {
            success: false,
            error: ErrorBody {
                code: &self.0.code,
                message: &self.0.message,
                decline_code: self.0.decline_code.as_deref(),
                param: self.0.param.as_deref(),
                payment_id: self.0.payment_id.as_deref(),
            },
        };
        // Plain strings and options: serialization cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.code,
            self.0.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.0.status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(seconds) = self.0.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(self.body_bytes())
    }
}

/// `{"success": true, "data": data}` as bytes.
pub(crate) fn success_bytes<T: Serialize>(data: &T) -> Vec<u8> {
    serde_json::to_vec(&SuccessEnvelope { success: true, data }).unwrap_or_default()
}

/// A JSON response with a body already serialized.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body)
}

/// 200 with `{"success": true, "data": data}`.
pub(crate) fn ok<T: Serialize>(data: &T) -> HttpResponse {
    json_response(StatusCode::OK, success_bytes(data))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "storage error");
        match error {
            StoreError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_busy",
                "the database is busy; retry the request",
            ),
            _ => ApiError::internal(),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        let status = match &error {
            ProviderError::CardDeclined { .. } | ProviderError::AuthenticationRequired { .. } => {
                StatusCode::PAYMENT_REQUIRED
            }
            ProviderError::InvalidRequest { code, .. } => match code.as_deref() {
                Some(
                    "payment_intent_unexpected_state"
                    | "charge_not_captured"
                    | "payment_method_unexpected_state",
                ) => StatusCode::CONFLICT,
                Some("amount_too_large" | "charge_already_refunded") => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            },
            ProviderError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProviderError::IdempotencyConflict { .. } => StatusCode::CONFLICT,
            ProviderError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProviderError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProviderError::Unsupported { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_GATEWAY,
        };
        let code = match error.kind() {
            ProviderErrorKind::CardDeclined | ProviderErrorKind::AuthenticationRequired => {
                error.provider_code().unwrap_or("card_declined").to_owned()
            }
            ProviderErrorKind::InvalidRequest | ProviderErrorKind::NotFound => error
                .provider_code()
                .unwrap_or("provider_invalid_request")
                .to_owned(),
            ProviderErrorKind::Unavailable => "provider_unavailable".to_owned(),
            ProviderErrorKind::RateLimited => "rate_limited".to_owned(),
            ProviderErrorKind::IdempotencyConflict => "provider_idempotency_conflict".to_owned(),
            ProviderErrorKind::Unsupported => "unsupported".to_owned(),
            _ => "provider_error".to_owned(),
        };
        let message = match &error {
            ProviderError::CardDeclined { message, .. }
            | ProviderError::AuthenticationRequired { message, .. }
            | ProviderError::InvalidRequest { message, .. }
            | ProviderError::NotFound { message, .. }
            | ProviderError::IdempotencyConflict { message }
            | ProviderError::RateLimited { message, .. }
            | ProviderError::Unavailable { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let mut api = ApiError::new(status, code, message);
        api.0.decline_code = error.decline_code().map(str::to_owned);
        if let ProviderError::InvalidRequest {
            param: Some(param), ..
        } = &error
        {
            api.0.param = Some(param.clone());
        }
        if let ProviderError::RateLimited { retry_after, .. } = &error {
            api.0.retry_after = Some(retry_after.map_or(1, |d| d.as_secs().max(1)));
        }
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let error = ApiError::invalid_param("amount", "bad amount");
        let value: serde_json::Value = serde_json::from_slice(&error.body_bytes()).unwrap();
        assert_eq!(value["success"], false);
        assert_eq!(value["error"]["code"], "parameter_invalid");
        assert_eq!(value["error"]["param"], "amount");
        assert!(value["error"].get("decline_code").is_none());
        let ok: serde_json::Value = serde_json::from_slice(&success_bytes(&1)).unwrap();
        assert_eq!(ok, serde_json::json!({"success": true, "data": 1}));
    }

    #[test]
    fn provider_errors_map_to_statuses() {
        let declined = ProviderError::CardDeclined {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
            intent: None,
        };
        let api = ApiError::from(declined);
        assert_eq!(api.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(api.0.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(
            ApiError::from(ProviderError::unavailable("down")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(ProviderError::RateLimited {
                retry_after: None,
                message: "slow".into()
            })
            .status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
