//! The one error type every provider operation returns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::intent::PaymentIntent;

/// A source error kept behind a provider error (shared so errors can be cloned and replayed).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a call to a payment provider.
///
/// Every variant keeps the provider's own code where it gave one, so nothing
/// is lost in translation, and none carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The card was declined (`card_declined`, `expired_card`, `incorrect_cvc`, …).
    #[error("card declined: {message}")]
    CardDeclined {
        /// The provider's error code (`card_declined`, `expired_card`, `incorrect_cvc`).
        code: String,
        /// The issuer's decline code (`insufficient_funds`, `generic_decline`, …).
        decline_code: Option<String>,
        /// A message safe to show the customer.
        message: String,
        /// The intent as it stands after the decline, when the provider returned it.
        intent: Option<Box<PaymentIntent>>,
    },
    /// The customer must authenticate (3-D Secure) but is not present (off-session).
    #[error("authentication required: {message}")]
    AuthenticationRequired {
        /// The provider's error code.
        code: String,
        /// The issuer's decline code, when given.
        decline_code: Option<String>,
        /// A message safe to show the customer.
        message: String,
        /// The intent as it stands, when the provider returned it.
        intent: Option<Box<PaymentIntent>>,
    },
    /// The request was refused as invalid; `param` names the offending parameter.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// The provider's error code (`amount_too_large`, `payment_intent_unexpected_state`, …).
        code: Option<String>,
        /// The parameter at fault.
        param: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The object does not exist at the provider.
    #[error("not found: {message}")]
    NotFound {
        /// The provider's error code (`resource_missing`).
        code: Option<String>,
        /// What was not found.
        message: String,
    },
    /// The idempotency key was used before with different parameters.
    #[error("idempotency conflict: {message}")]
    IdempotencyConflict {
        /// What the provider said.
        message: String,
    },
    /// Too many requests; retry after a pause.
    #[error("rate limited: {message}")]
    RateLimited {
        /// How long the provider asked to wait, when it said.
        retry_after: Option<Duration>,
        /// What the provider said.
        message: String,
    },
    /// The provider could not be reached or failed (5xx, connection, timeout).
    /// The outcome of a mutating call is unknown: retry with the same idempotency key.
    #[error("provider unavailable: {message}")]
    Unavailable {
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The request was sent and may have been carried out, but its answer
    /// never came (a timeout after sending) or could not be read (a success
    /// status with a body that does not parse). Never "failed": the caller
    /// resolves it by asking the provider (retrieve the object, or replay the
    /// call with the same idempotency key).
    #[error("provider outcome unknown: {message}")]
    OutcomeUnknown {
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The provider does not offer this operation (see [`crate::Capabilities`]).
    #[error("{provider} does not support {operation}")]
    Unsupported {
        /// The provider's name.
        provider: String,
        /// The operation asked for.
        operation: &'static str,
    },
    /// Anything else the provider reported.
    #[error("provider error: {message}")]
    Other {
        /// The provider's error code, when given.
        code: Option<String>,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<ErrorSource>,
    },
}

/// The kind of a [`ProviderError`], without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// See [`ProviderError::CardDeclined`].
    CardDeclined,
    /// See [`ProviderError::AuthenticationRequired`].
    AuthenticationRequired,
    /// See [`ProviderError::InvalidRequest`].
    InvalidRequest,
    /// See [`ProviderError::NotFound`].
    NotFound,
    /// See [`ProviderError::IdempotencyConflict`].
    IdempotencyConflict,
    /// See [`ProviderError::RateLimited`].
    RateLimited,
    /// See [`ProviderError::Unavailable`].
    Unavailable,
    /// See [`ProviderError::OutcomeUnknown`].
    OutcomeUnknown,
    /// See [`ProviderError::Unsupported`].
    Unsupported,
    /// See [`ProviderError::Other`].
    Other,
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ProviderErrorKind::CardDeclined => "card_declined",
            ProviderErrorKind::AuthenticationRequired => "authentication_required",
            ProviderErrorKind::InvalidRequest => "invalid_request",
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::IdempotencyConflict => "idempotency_conflict",
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Unavailable => "provider_unavailable",
            ProviderErrorKind::OutcomeUnknown => "provider_outcome_unknown",
            ProviderErrorKind::Unsupported => "unsupported",
            ProviderErrorKind::Other => "provider_error",
        };
        f.write_str(name)
    }
}

impl ProviderError {
    /// The kind of error, for matching without the details.
    pub fn kind(&self) -> ProviderErrorKind {
        match self {
            ProviderError::CardDeclined { .. } => ProviderErrorKind::CardDeclined,
            ProviderError::AuthenticationRequired { .. } => ProviderErrorKind::AuthenticationRequired,
            ProviderError::InvalidRequest { .. } => ProviderErrorKind::InvalidRequest,
            ProviderError::NotFound { .. } => ProviderErrorKind::NotFound,
            ProviderError::IdempotencyConflict { .. } => ProviderErrorKind::IdempotencyConflict,
            ProviderError::RateLimited { .. } => ProviderErrorKind::RateLimited,
            ProviderError::Unavailable { .. } => ProviderErrorKind::Unavailable,
            ProviderError::OutcomeUnknown { .. } => ProviderErrorKind::OutcomeUnknown,
            ProviderError::Unsupported { .. } => ProviderErrorKind::Unsupported,
            ProviderError::Other { .. } => ProviderErrorKind::Other,
        }
    }

    /// Whether the same call may succeed if retried (with the same idempotency key).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Unavailable { .. }
        )
    }

    /// Whether a mutating call that failed this way may still have been
    /// carried out (an outage, a timeout, an unreadable reply): its outcome is
    /// unknown until the provider is asked, and it must never be reported as failed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable { .. } | ProviderError::OutcomeUnknown { .. }
        )
    }

    /// An outcome-unknown error with a message and no source.
    pub fn outcome_unknown_with(message: impl Into<String>) -> Self {
        ProviderError::OutcomeUnknown {
            status: None,
            message: message.into(),
            source: None,
        }
    }

    /// The issuer's decline code, for declines.
    pub fn decline_code(&self) -> Option<&str> {
        match self {
            ProviderError::CardDeclined { decline_code, .. }
            | ProviderError::AuthenticationRequired { decline_code, .. } => decline_code.as_deref(),
            _ => None,
        }
    }

    /// The provider's own error code, where it gave one.
    pub fn provider_code(&self) -> Option<&str> {
        match self {
            ProviderError::CardDeclined { code, .. } | ProviderError::AuthenticationRequired { code, .. } => {
                Some(code)
            }
            ProviderError::InvalidRequest { code, .. }
            | ProviderError::NotFound { code, .. }
            | ProviderError::Other { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of the provider's answer, where the error kept one
    /// (an outage or an unreadable answer with a response).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProviderError::Unavailable { status, .. } | ProviderError::OutcomeUnknown { status, .. } => {
                *status
            }
            _ => None,
        }
    }

    /// The intent the provider returned with a decline, as it stands after it.
    pub fn intent(&self) -> Option<&PaymentIntent> {
        match self {
            ProviderError::CardDeclined { intent, .. }
            | ProviderError::AuthenticationRequired { intent, .. } => intent.as_deref(),
            _ => None,
        }
    }

    /// A provider-unavailable error with a message and no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ProviderError::Unavailable {
            status: None,
            message: message.into(),
            source: None,
        }
    }

    /// An invalid-request error naming the parameter at fault.
    pub fn invalid(code: Option<&str>, param: Option<&str>, message: impl Into<String>) -> Self {
        ProviderError::InvalidRequest {
            code: code.map(str::to_owned),
            param: param.map(str::to_owned),
            message: message.into(),
        }
    }

    /// A not-found error for a resource of `kind` with `id`.
    pub fn not_found(kind: &str, id: &str) -> Self {
        ProviderError::NotFound {
            code: Some("resource_missing".to_owned()),
            message: format!("no such {kind}: '{id}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outages_and_rate_limits_are_retryable() {
        assert!(ProviderError::unavailable("down").is_retryable());
        assert!(ProviderError::RateLimited {
            retry_after: None,
            message: "slow down".into()
        }
        .is_retryable());
        assert!(!ProviderError::invalid(None, Some("amount"), "bad").is_retryable());
        assert!(!ProviderError::not_found("payment_intent", "pi_x").is_retryable());
        assert!(!ProviderError::IdempotencyConflict { message: "x".into() }.is_retryable());
        let declined = ProviderError::CardDeclined {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
            intent: None,
        };
        assert!(!declined.is_retryable());
        assert_eq!(declined.kind(), ProviderErrorKind::CardDeclined);
        assert_eq!(declined.decline_code(), Some("insufficient_funds"));
        assert_eq!(declined.provider_code(), Some("card_declined"));
        assert!(!declined.outcome_unknown());
    }

    #[test]
    fn outages_and_unreadable_replies_leave_the_outcome_unknown() {
        assert!(ProviderError::unavailable("down").outcome_unknown());
        let unread = ProviderError::outcome_unknown_with("timed out after sending");
        assert!(unread.outcome_unknown());
        assert!(
            !unread.is_retryable(),
            "a call that may have run is resolved, not blindly retried"
        );
        assert_eq!(unread.kind().to_string(), "provider_outcome_unknown");
        assert!(!ProviderError::invalid(None, None, "bad").outcome_unknown());
    }
}
