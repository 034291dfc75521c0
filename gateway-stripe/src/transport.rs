//! Sending one call to Stripe: one deadline over every attempt and pause,
//! retries only where Stripe says a retry is safe, and an honest error when
//! the answer is lost.
//!
//! Why these retries, and no others:
//!
//! - Stripe "saves the status code and body of the first request made with a
//!   given idempotency key after endpoint execution begins. Retries with the
//!   same key return the saved response, including `500` errors"
//!   (docs.stripe.com/api/idempotent_requests). A 5xx retried under the same
//!   key only replays the 5xx, and says nothing about whether money moved:
//!   a 5xx ends a write as [`ProviderError::Unavailable`] with its status,
//!   for the caller to resolve (retrieve the object, reconcile).
//! - What never began executing is not saved, and Stripe says it can be
//!   retried: a 429 (`rate_limit`, `lock_timeout`), a 409
//!   `idempotency_key_in_use` (the first request with the key is still
//!   running), and a connection that could not be opened (async-stripe opens
//!   a new connection for every request, so nothing was written).
//! - A timeout (the request may have been sent and carried out) and a 2xx
//!   whose body cannot be read are [`ProviderError::OutcomeUnknown`], never
//!   retried here.
//! - Reads carry no key and change nothing: they may also retry a 5xx.
//!
//! async-stripe's own strategies (`Retry`, `ExponentialBackoff`) retry
//! 409, 424, 429 and 500–504 under the same key unless Stripe's
//! `Stripe-Should-Retry` header says no, and its timeout applies per
//! attempt; neither fits, so every request is sent `Once` (or
//! `Idempotent(key)`) and the policy here decides.

use std::time::Duration;

use gateway_core::{IdempotencyKey, ProviderError};
use stripe::{Client, RequestStrategy, StripeError, StripeRequest};
use tokio::time::Instant;

use crate::config::StripeConfig;
use crate::error::{is_connect_failure, is_error_status_without_stripe_body, map_error};

/// The longest pause between two retries, whatever the backoff says.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a call does at Stripe, which decides what may be retried.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call<'a> {
    /// A read (`GET`): no key, no side effect.
    Read,
    /// A write, sent with the caller's idempotency key.
    Write(&'a IdempotencyKey),
}

/// When a call that starts now must be over, by `config`'s timeout.
pub(crate) fn deadline(config: &StripeConfig) -> Instant {
    Instant::now() + config.timeout
}

/// Sends `request` until it succeeds, fails in a way not worth retrying, runs
/// out of retries, or reaches `deadline`.
pub(crate) async fn send<R>(
    client: &Client,
    config: &StripeConfig,
    request: &R,
    call: Call<'_>,
    deadline: Instant,
) -> Result<R::Output, ProviderError>
where
    R: StripeRequest + Sync,
    R::Output: miniserde::Deserialize + Send,
{
    let strategy = match call {
        Call::Write(key) => idempotent(key)?,
        Call::Read => RequestStrategy::Once,
    };
    let mut retry = 0;
    loop {
        let attempt = request
            .customize()
            .request_strategy(strategy.clone())
            .send(client);
        let error = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(output)) => return Ok(output),
            Ok(Err(error)) => error,
            Err(_elapsed) => return Err(timed_out(config.timeout)),
        };
        let retryable = safe_to_retry(&error, call);
        let error = map_error(error, crate::STRIPE_PROVIDER_NAME);
        if !retryable || retry >= config.max_retries {
            return Err(error);
        }
        let pause = backoff(config, retry, &error);
        if Instant::now() + pause >= deadline {
            // No time left for another attempt: the answer in hand is the answer.
            return Err(error);
        }
        // Kind and status only: messages and keys stay out of logs.
        tracing::warn!(
            kind = %error.kind(),
            status = ?match &error {
                ProviderError::Unavailable { status, .. } => *status,
                _ => None,
            },
            retry = retry + 1,
            max_retries = config.max_retries,
            pause_ms = pause.as_millis() as u64,
            "retrying a Stripe call"
        );
        tokio::time::sleep(pause).await;
        retry += 1;
    }
}

fn idempotent(key: &IdempotencyKey) -> Result<RequestStrategy, ProviderError> {
    // Core keys are 1..=255 visible ASCII characters, which Stripe's key type accepts.
    stripe::IdempotencyKey::new(key.as_str())
        .map(RequestStrategy::Idempotent)
        .map_err(|_| ProviderError::invalid(Some("invalid_idempotency_key"), None, "invalid idempotency key"))
}

/// Whether Stripe documents a retry of this failure as safe for this call (see the module docs).
fn safe_to_retry(error: &StripeError, call: Call<'_>) -> bool {
    let read = matches!(call, Call::Read);
    match error {
        StripeError::Stripe(api, status) => {
            let in_use = api
                .code
                .as_ref()
                .is_some_and(|code| code.as_str() == "idempotency_key_in_use");
            *status == 429 || *status == 409 || in_use || (read && *status >= 500)
        }
        StripeError::ClientError(message) => is_connect_failure(message),
        StripeError::JSONDeserialize(message) => read && is_error_status_without_stripe_body(message),
        StripeError::Timeout | StripeError::ConfigError(_) => false,
    }
}

/// The pause before retry number `retry + 1`: doubling from the configured
/// backoff, at least what a rate limit asked for, at most [`MAX_BACKOFF`].
pub(crate) fn backoff(config: &StripeConfig, retry: u32, error: &ProviderError) -> Duration {
    let exponential = config.retry_backoff.saturating_mul(2u32.saturating_pow(retry));
    let asked = match error {
        ProviderError::RateLimited {
            retry_after: Some(after),
            ..
        } => *after,
        _ => Duration::ZERO,
    };
    exponential.max(asked).min(MAX_BACKOFF)
}

/// The call's deadline passed with an attempt in flight: it may have been carried out.
fn timed_out(limit: Duration) -> ProviderError {
    ProviderError::OutcomeUnknown {
        status: None,
        message: format!(
            "Stripe did not answer within {} ms; the request may have been carried out",
            limit.as_millis()
        ),
        source: Some(std::sync::Arc::new(StripeError::Timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut config = StripeConfig::new("sk_test_x");
        config.retry_backoff = Duration::from_millis(100);
        let outage = ProviderError::unavailable("down");
        assert_eq!(backoff(&config, 0, &outage), Duration::from_millis(100));
        assert_eq!(backoff(&config, 2, &outage), Duration::from_millis(400));
        assert_eq!(backoff(&config, 40, &outage), MAX_BACKOFF);
        let limited = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        };
        assert_eq!(backoff(&config, 0, &limited), Duration::from_secs(2));
    }

    fn api_error(code: Option<&str>) -> Box<stripe::ApiErrors> {
        let mut error = serde_json::json!({"type": "api_error", "message": "x"});
        if let Some(code) = code {
            error["type"] = "invalid_request_error".into();
            error["code"] = code.into();
        }
        Box::new(miniserde::json::from_str(&error.to_string()).expect("an ApiErrors"))
    }

    #[test]
    fn only_what_stripe_did_not_execute_is_retried_under_a_key() {
        let key = IdempotencyKey::new("k").unwrap();
        let write = Call::Write(&key);
        let status = |status: u16, code: Option<&str>| StripeError::Stripe(api_error(code), status);
        assert!(safe_to_retry(&status(429, Some("rate_limit")), write));
        assert!(safe_to_retry(&status(429, Some("lock_timeout")), write));
        assert!(safe_to_retry(&status(409, Some("idempotency_key_in_use")), write));
        for code in [500, 502, 503, 504] {
            assert!(
                !safe_to_retry(&status(code, None), write),
                "{code} is replayed under the key"
            );
            assert!(safe_to_retry(&status(code, None), Call::Read), "{code} on a read");
        }
        assert!(!safe_to_retry(&status(400, Some("parameter_missing")), write));
        assert!(!safe_to_retry(&status(402, Some("card_declined")), Call::Read));
        let refused = StripeError::ClientError("client error (Connect)".into());
        assert!(safe_to_retry(&refused, write), "nothing was sent");
        let reset = StripeError::ClientError("client error (SendRequest)".into());
        assert!(!safe_to_retry(&reset, write), "it may have been sent");
        assert!(!safe_to_retry(&StripeError::Timeout, Call::Read));
        let unreadable = StripeError::JSONDeserialize("error deserializing request data".into());
        assert!(!safe_to_retry(&unreadable, write));
        assert!(!safe_to_retry(&unreadable, Call::Read));
    }
}
