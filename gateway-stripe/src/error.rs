//! The one mapping from Stripe's errors to the gateway's [`ProviderError`].

use std::sync::Arc;

use gateway_core::ProviderError;
use stripe::{ApiErrors, ApiErrorsType, StripeError};

use crate::convert::intent_from_stripe;

/// Maps an error of the async-stripe client to a [`ProviderError`].
///
/// | Stripe says | becomes |
/// | --- | --- |
/// | `card_error` with `authentication_required` (code or decline code) | [`ProviderError::AuthenticationRequired`] |
/// | any other `card_error` (`card_declined` + decline code, `expired_card`, `incorrect_cvc`, …) | [`ProviderError::CardDeclined`] |
/// | `idempotency_error` | [`ProviderError::IdempotencyConflict`] |
/// | HTTP 409 or `idempotency_key_in_use` (a request with the key is still running) | [`ProviderError::Unavailable`] (retryable) |
/// | HTTP 404 | [`ProviderError::NotFound`] |
/// | HTTP 429 (`rate_limit`, `lock_timeout`) | [`ProviderError::RateLimited`] (retryable) |
/// | HTTP 5xx, `api_error` | [`ProviderError::Unavailable`] with the status (Stripe replays it under the same key) |
/// | `invalid_request_error`, other 4xx | [`ProviderError::InvalidRequest`] with `code` and `param` |
/// | 401 / 403 (bad or restricted key) | [`ProviderError::Other`] with `authentication_error` / `permission_error` |
/// | a connection that could not be opened (nothing was sent) | [`ProviderError::Unavailable`] without status (retryable) |
/// | an error status whose body is not Stripe's (a proxy's 502 page) | [`ProviderError::Unavailable`] without status |
/// | a timeout, a connection lost after sending, a 2xx body that cannot be read | [`ProviderError::OutcomeUnknown`] |
/// | client configuration | [`ProviderError::Other`] |
///
/// The intent a decline carries is kept, converted to the gateway's type.
/// Nothing here copies the client's `Debug`/`Display` of Stripe's error,
/// which would include the intent's client secret.
pub(crate) fn map_error(error: StripeError, provider: &str) -> ProviderError {
    match error {
        StripeError::Stripe(api, status) => map_api_error(&api, status, provider),
        StripeError::Timeout => ProviderError::OutcomeUnknown {
            status: None,
            message: "Stripe did not answer in time; the request may have been carried out".to_owned(),
            source: Some(Arc::new(StripeError::Timeout)),
        },
        StripeError::ClientError(message) if is_connect_failure(&message) => ProviderError::Unavailable {
            status: None,
            message: format!("could not connect to Stripe, nothing was sent: {message}"),
            source: None,
        },
        StripeError::ClientError(message) => ProviderError::OutcomeUnknown {
            status: None,
            message: format!("the connection to Stripe failed after sending: {message}"),
            source: None,
        },
        // async-stripe keeps no status for an error body that is not Stripe's
        // JSON (a proxy's 502 or 504 page): Stripe may have run the request.
        StripeError::JSONDeserialize(message) if is_error_status_without_stripe_body(&message) => {
            ProviderError::Unavailable {
                status: None,
                message: format!("Stripe answered an error status with an unreadable body: {message}"),
                source: None,
            }
        }
        // A success status whose body does not parse: the call went through,
        // and what it did cannot be read.
        StripeError::JSONDeserialize(message) => ProviderError::OutcomeUnknown {
            status: None,
            message: format!("Stripe's answer cannot be read: {message}"),
            source: None,
        },
        StripeError::ConfigError(message) => ProviderError::Other {
            code: Some("client_configuration".to_owned()),
            message: format!("Stripe client configuration: {message}"),
            source: None,
        },
    }
}

/// Whether async-stripe's `ClientError` text is hyper-util's for a connection
/// that could not be opened (`client error (Connect)`): with a new connection
/// per request (async-stripe keeps no idle ones), nothing was sent.
pub(crate) fn is_connect_failure(message: &str) -> bool {
    message.starts_with("client error (Connect)")
}

/// Whether async-stripe's `JSONDeserialize` text is the one it gives an
/// error status whose body is not Stripe's error JSON (its success bodies
/// that do not parse say `error deserializing request data`).
pub(crate) fn is_error_status_without_stripe_body(message: &str) -> bool {
    message == "error deserializing Stripe error"
}

fn map_api_error(api: &ApiErrors, status: u16, provider: &str) -> ProviderError {
    let code = api.code.as_ref().map(|code| code.as_str().to_owned());
    let decline_code = api.decline_code.clone();
    let message = api
        .message
        .clone()
        .unwrap_or_else(|| format!("Stripe answered HTTP {status}"));
    let is = |name: &str| code.as_deref() == Some(name);
    match &api.type_ {
        ApiErrorsType::CardError => {
            let intent = api
                .payment_intent
                .as_ref()
                .and_then(|intent| intent_from_stripe(intent, provider).ok())
                .map(Box::new);
            let code = code.unwrap_or_else(|| "card_declined".to_owned());
            if code == "authentication_required" || decline_code.as_deref() == Some("authentication_required")
            {
                ProviderError::AuthenticationRequired {
                    code,
                    decline_code,
                    message,
                    intent,
                }
            } else {
                ProviderError::CardDeclined {
                    code,
                    decline_code,
                    message,
                    intent,
                }
            }
        }
        _ if status == 409 || is("idempotency_key_in_use") => ProviderError::Unavailable {
            status: Some(status),
            message,
            source: None,
        },
        ApiErrorsType::IdempotencyError => ProviderError::IdempotencyConflict { message },
        _ if status == 404 => ProviderError::NotFound { code, message },
        _ if status == 429 => ProviderError::RateLimited {
            // async-stripe does not expose the response's headers.
            retry_after: None,
            message,
        },
        _ if status >= 500 => ProviderError::Unavailable {
            status: Some(status),
            message,
            source: None,
        },
        ApiErrorsType::ApiError => ProviderError::Unavailable {
            status: Some(status),
            message,
            source: None,
        },
        _ if status == 401 => ProviderError::Other {
            code: code.or_else(|| Some("authentication_error".to_owned())),
            message,
            source: None,
        },
        _ if status == 403 => ProviderError::Other {
            code: code.or_else(|| Some("permission_error".to_owned())),
            message,
            source: None,
        },
        ApiErrorsType::InvalidRequestError => ProviderError::InvalidRequest {
            code,
            param: api.param.clone(),
            message,
        },
        _ if (400..500).contains(&status) => ProviderError::InvalidRequest {
            code,
            param: api.param.clone(),
            message,
        },
        _ => ProviderError::Other {
            code,
            message,
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use gateway_core::{IntentStatus, ProviderErrorKind};
    use stripe::ApiErrorsCode;

    use super::*;

    fn api_error(type_: &str, code: Option<&str>) -> ApiErrors {
        ApiErrors {
            advice_code: None,
            charge: None,
            code: code.map(|code| ApiErrorsCode::from_str(code).unwrap()),
            decline_code: None,
            doc_url: None,
            message: Some(format!("{type_} message")),
            network_advice_code: None,
            network_decline_code: None,
            param: None,
            payment_intent: None,
            payment_method: None,
            payment_method_type: None,
            request_log_url: None,
            setup_intent: None,
            source: None,
            type_: ApiErrorsType::from_str(type_).unwrap(),
        }
    }

    fn map(api: ApiErrors, status: u16) -> ProviderError {
        map_error(StripeError::Stripe(Box::new(api), status), "stripe")
    }

    #[test]
    fn card_declined_keeps_each_decline_code() {
        for decline in [
            "insufficient_funds",
            "generic_decline",
            "lost_card",
            "stolen_card",
            "do_not_honor",
            "fraudulent",
        ] {
            let mut api = api_error("card_error", Some("card_declined"));
            api.decline_code = Some(decline.to_owned());
            let error = map(api, 402);
            assert_eq!(error.kind(), ProviderErrorKind::CardDeclined, "{decline}");
            assert_eq!(error.provider_code(), Some("card_declined"));
            assert_eq!(error.decline_code(), Some(decline));
            assert!(!error.is_retryable());
            assert_eq!(error.to_string(), "card declined: card_error message");
        }
    }

    #[test]
    fn incorrect_cvc_and_expired_card_are_declines_with_their_code() {
        for code in [
            "incorrect_cvc",
            "expired_card",
            "processing_error",
            "incorrect_number",
        ] {
            let error = map(api_error("card_error", Some(code)), 402);
            assert_eq!(error.kind(), ProviderErrorKind::CardDeclined, "{code}");
            assert_eq!(error.provider_code(), Some(code));
            assert_eq!(error.decline_code(), None);
        }
        let no_code = map(api_error("card_error", None), 402);
        assert_eq!(no_code.provider_code(), Some("card_declined"));
    }

    #[test]
    fn authentication_required_by_code_or_decline_code() {
        let by_code = map(api_error("card_error", Some("authentication_required")), 402);
        assert_eq!(by_code.kind(), ProviderErrorKind::AuthenticationRequired);
        let mut api = api_error("card_error", Some("card_declined"));
        api.decline_code = Some("authentication_required".to_owned());
        let by_decline = map(api, 402);
        assert_eq!(by_decline.kind(), ProviderErrorKind::AuthenticationRequired);
        assert_eq!(by_decline.decline_code(), Some("authentication_required"));
    }

    #[test]
    fn invalid_request_keeps_code_and_param() {
        let mut api = api_error("invalid_request_error", Some("parameter_invalid_integer"));
        api.param = Some("amount".to_owned());
        match map(api, 400) {
            ProviderError::InvalidRequest { code, param, message } => {
                assert_eq!(code.as_deref(), Some("parameter_invalid_integer"));
                assert_eq!(param.as_deref(), Some("amount"));
                assert_eq!(message, "invalid_request_error message");
            }
            other => panic!("{other:?}"),
        }
        let state = map(
            api_error("invalid_request_error", Some("payment_intent_unexpected_state")),
            400,
        );
        assert_eq!(state.provider_code(), Some("payment_intent_unexpected_state"));
    }

    #[test]
    fn idempotency_errors() {
        let conflict = map(api_error("idempotency_error", None), 400);
        assert_eq!(conflict.kind(), ProviderErrorKind::IdempotencyConflict);
        assert!(!conflict.is_retryable());
        let in_flight = map(
            api_error("invalid_request_error", Some("idempotency_key_in_use")),
            409,
        );
        assert_eq!(in_flight.kind(), ProviderErrorKind::Unavailable);
        assert!(in_flight.is_retryable());
    }

    #[test]
    fn not_found_rate_limited_and_outages() {
        let missing = map(api_error("invalid_request_error", Some("resource_missing")), 404);
        assert_eq!(missing.kind(), ProviderErrorKind::NotFound);
        assert_eq!(missing.provider_code(), Some("resource_missing"));

        let limited = map(api_error("invalid_request_error", Some("rate_limit")), 429);
        assert_eq!(limited.kind(), ProviderErrorKind::RateLimited);
        assert!(limited.is_retryable());

        for status in [500, 502, 503, 504] {
            let outage = map(api_error("api_error", None), status);
            assert!(
                matches!(outage, ProviderError::Unavailable { status: Some(s), .. } if s == status),
                "{outage:?}"
            );
            assert!(outage.is_retryable());
        }
        let unauthorized = map(api_error("invalid_request_error", None), 401);
        assert_eq!(unauthorized.kind(), ProviderErrorKind::Other);
        assert_eq!(unauthorized.provider_code(), Some("authentication_error"));
    }

    #[test]
    fn what_may_have_run_is_outcome_unknown_and_what_was_not_sent_is_unavailable() {
        let timeout = map_error(StripeError::Timeout, "stripe");
        assert_eq!(timeout.kind(), ProviderErrorKind::OutcomeUnknown);
        assert!(timeout.outcome_unknown() && !timeout.is_retryable());
        assert!(std::error::Error::source(&timeout).is_some());
        let refused = map_error(
            StripeError::ClientError("client error (Connect)".into()),
            "stripe",
        );
        assert_eq!(refused.kind(), ProviderErrorKind::Unavailable);
        assert!(refused.to_string().contains("nothing was sent"));
        let reset = map_error(
            StripeError::ClientError("client error (SendRequest)".into()),
            "stripe",
        );
        assert_eq!(reset.kind(), ProviderErrorKind::OutcomeUnknown);
        let garbled = map_error(
            StripeError::JSONDeserialize("error deserializing request data".into()),
            "stripe",
        );
        assert_eq!(garbled.kind(), ProviderErrorKind::OutcomeUnknown);
        let proxy = map_error(
            StripeError::JSONDeserialize("error deserializing Stripe error".into()),
            "stripe",
        );
        assert!(
            matches!(proxy, ProviderError::Unavailable { status: None, .. }),
            "{proxy:?}"
        );
        let config = map_error(StripeError::ConfigError("bad url".into()), "stripe");
        assert_eq!(config.kind(), ProviderErrorKind::Other);
        assert!(!config.is_retryable());
    }

    #[test]
    fn a_decline_keeps_the_intent() {
        let mut api = api_error("card_error", Some("card_declined"));
        api.decline_code = Some("insufficient_funds".to_owned());
        api.payment_intent = Some(crate::convert::tests::sample_intent());
        let error = map(api, 402);
        let intent = error.intent().expect("the intent is kept");
        assert_eq!(intent.id, "pi_sample");
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(intent.provider, "stripe");
    }
}
