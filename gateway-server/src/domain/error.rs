//! The API's wire envelope and the one error type every use case and handler
//! returns (the HTTP layer renders it; see `http::errors`).
//!
//! Success: `{"success": true, "data": …}`. Failure:
//! `{"success": false, "error": {"code", "message", "decline_code"?, "param"?}}`,
//! on every failure the server produces, extractor and routing errors included.

use std::fmt;

use gateway_core::{ProviderError, ProviderErrorKind};
use serde::Serialize;

/// An HTTP status code the API answers with, named as in RFC 9110
/// (the HTTP layer turns it into its own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Status(u16);

impl Status {
    pub(crate) const OK: Status = Status(200);
    /// Taken, outcome not known yet (a provider call that may have run).
    pub(crate) const ACCEPTED: Status = Status(202);
    pub(crate) const BAD_REQUEST: Status = Status(400);
    pub(crate) const UNAUTHORIZED: Status = Status(401);
    pub(crate) const PAYMENT_REQUIRED: Status = Status(402);
    pub(crate) const FORBIDDEN: Status = Status(403);
    pub(crate) const NOT_FOUND: Status = Status(404);
    pub(crate) const METHOD_NOT_ALLOWED: Status = Status(405);
    pub(crate) const CONFLICT: Status = Status(409);
    /// The request (its body) did not arrive in time.
    pub(crate) const REQUEST_TIMEOUT: Status = Status(408);
    pub(crate) const PAYLOAD_TOO_LARGE: Status = Status(413);
    pub(crate) const UNSUPPORTED_MEDIA_TYPE: Status = Status(415);
    pub(crate) const UNPROCESSABLE_ENTITY: Status = Status(422);
    pub(crate) const TOO_MANY_REQUESTS: Status = Status(429);
    pub(crate) const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub(crate) const BAD_GATEWAY: Status = Status(502);
    pub(crate) const SERVICE_UNAVAILABLE: Status = Status(503);

    /// A stored status (an idempotent replay); `None` outside 100..=599.
    pub(crate) fn from_u16(code: u16) -> Option<Status> {
        (100..=599).contains(&code).then_some(Status(code))
    }

    /// The numeric code.
    pub(crate) fn as_u16(self) -> u16 {
        self.0
    }
}

/// An API failure: HTTP status plus the envelope's error object (boxed: small to return).
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: Status,
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
    pub(crate) fn new(status: Status, code: impl Into<String>, message: impl Into<String>) -> Self {
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
        ApiError::new(Status::BAD_REQUEST, "parameter_invalid", message).with_param(param)
    }

    /// 400 for a required parameter that is absent.
    pub(crate) fn missing_param(param: &str) -> Self {
        ApiError::new(
            Status::BAD_REQUEST,
            "parameter_missing",
            format!("missing required parameter: {param}"),
        )
        .with_param(param)
    }

    /// 404 for an object the merchant cannot see (absent or another merchant's).
    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(
            Status::NOT_FOUND,
            "resource_missing",
            format!("no such {kind}: '{id}'"),
        )
    }

    /// 409 for an operation the object's current state forbids.
    pub(crate) fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(Status::CONFLICT, code, message)
    }

    /// 422 for a well-formed request that cannot be carried out.
    pub(crate) fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(Status::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 with `Retry-After: 1`.
    pub(crate) fn rate_limited(message: impl Into<String>) -> Self {
        let mut error = ApiError::new(Status::TOO_MANY_REQUESTS, "rate_limited", message);
        error.0.retry_after = Some(1);
        error
    }

    /// Sets `Retry-After` to `seconds` (at least 1).
    pub(crate) fn with_retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after = Some(seconds.max(1));
        self
    }

    /// 500 without details (they go to the log, never to the client).
    pub(crate) fn internal() -> Self {
        ApiError::new(
            Status::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; it has been logged",
        )
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> Status {
        self.0.status
    }

    /// Seconds a client should wait before retrying (`Retry-After`), if any.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.0.retry_after
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

/// `{"success": true, "data": data}` as bytes.
pub(crate) fn success_bytes<T: Serialize>(data: &T) -> Vec<u8> {
    serde_json::to_vec(&SuccessEnvelope { success: true, data }).unwrap_or_default()
}

impl From<crate::support::ids::RandomUnavailable> for ApiError {
    /// 503 `random_unavailable`: no key or secret is made without the
    /// operating system's generator (the cause is logged where it failed).
    fn from(_: crate::support::ids::RandomUnavailable) -> Self {
        ApiError::new(
            Status::SERVICE_UNAVAILABLE,
            "random_unavailable",
            "the server cannot generate secrets right now; nothing was created; retry later",
        )
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        let status = match &error {
            ProviderError::CardDeclined { .. } | ProviderError::AuthenticationRequired { .. } => {
                Status::PAYMENT_REQUIRED
            }
            ProviderError::InvalidRequest { code, .. } => match code.as_deref() {
                Some(
                    "payment_intent_unexpected_state"
                    | "charge_not_captured"
                    | "payment_method_unexpected_state",
                ) => Status::CONFLICT,
                Some("amount_too_large" | "charge_already_refunded") => Status::UNPROCESSABLE_ENTITY,
                _ => Status::BAD_REQUEST,
            },
            ProviderError::NotFound { .. } => Status::NOT_FOUND,
            ProviderError::IdempotencyConflict { .. } => Status::CONFLICT,
            ProviderError::RateLimited { .. } => Status::TOO_MANY_REQUESTS,
            ProviderError::Unavailable { .. } => Status::SERVICE_UNAVAILABLE,
            ProviderError::OutcomeUnknown { .. } => Status::BAD_GATEWAY,
            ProviderError::Unsupported { .. } => Status::UNPROCESSABLE_ENTITY,
            _ => Status::BAD_GATEWAY,
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
            ProviderErrorKind::OutcomeUnknown => "provider_outcome_unknown".to_owned(),
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
            | ProviderError::Unavailable { message, .. }
            | ProviderError::OutcomeUnknown { message, .. } => message.clone(),
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
        assert_eq!(api.status(), Status::PAYMENT_REQUIRED);
        assert_eq!(api.0.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(
            ApiError::from(ProviderError::unavailable("down")).status(),
            Status::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(ProviderError::RateLimited {
                retry_after: None,
                message: "slow".into()
            })
            .status(),
            Status::TOO_MANY_REQUESTS
        );
    }
}
