//! Confirm, capture and cancel: one provider call on a stored payment under
//! its lock, the intent it returns stored through `apply_intent_change`.

use std::future::Future;
use std::sync::Arc;

use gateway_core::{
    format_minor_units, CancelIntent, CaptureIntent, ConfirmIntent, IdempotencyKey, IntentStatus,
    PaymentIntent, PaymentProvider, ProviderError,
};

use super::{load, payment_outcome, split_result};
use crate::app::amounts::Decimal;
use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::payments::{apply_intent_change, ChangeSource};
use crate::domain::error::ApiError;
use crate::domain::scopes::Caller;
use crate::store::PaymentRow;

/// A validated confirm: the payment method (if none is attached yet) and the return URL.
#[derive(Debug)]
pub(crate) struct Confirm {
    pub(crate) payment_method: Option<String>,
    pub(crate) return_url: Option<String>,
}

/// A validated capture: how much, everything authorized when `None`.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) amount: Option<Decimal>,
}

/// A validated cancel and its reason.
#[derive(Debug)]
pub(crate) struct Cancel {
    pub(crate) reason: Option<String>,
}

/// One change to a stored payment: `check` refuses it for the row's state
/// (or works out what to ask for), `call` asks the provider with the key of
/// `step`.
struct PaymentChange<'a, Check, Call> {
    core: &'a Core,
    caller: &'a Caller,
    post: IdempotentRequest<'a>,
    id: &'a str,
    step: &'static str,
    check: Check,
    call: Call,
}

impl<'a, Check, Call, Value, Fut> PaymentChange<'a, Check, Call>
where
    Check: FnOnce(&PaymentRow) -> Result<Value, ApiError>,
    Call: FnOnce(Arc<dyn PaymentProvider>, String, IdempotencyKey, Value) -> Fut,
    Fut: Future<Output = Result<PaymentIntent, ProviderError>>,
{
    /// Runs the change once per `Idempotency-Key`, under the payment's lock.
    async fn run(self) -> Result<Reply, ApiError> {
        let PaymentChange {
            core,
            caller,
            post,
            id,
            step,
            check,
            call,
        } = self;
        idempotency::run(core, caller, post, |keys| async move {
            let _guard = core.payment_locks.lock(id.to_owned()).await;
            let mut row = load(core, caller, id).await?;
            let value = check(&row)?;
            let provider = core.provider_for(&caller.merchant_id, &row.provider).await?;
            let key = keys.step(step)?;
            let (intent, error) = split_result(call(provider, row.intent.id.clone(), key, value).await)?;
            let mut changes = Vec::new();
            let mut updates = Vec::new();
            if let Some((change, update)) = apply_intent_change(&mut row, intent, ChangeSource::Api) {
                changes.push(change);
                updates.push(update);
            }
            let (status, body) = payment_outcome(&row, error);
            Ok(Outcome {
                status,
                body,
                changes,
                updates,
            })
        })
        .await
    }
}

/// 409: the payment's state forbids `action`.
fn state_error(row: &PaymentRow, action: &str) -> ApiError {
    ApiError::conflict(
        "payment_unexpected_state",
        format!(
            "cannot {action} payment {} while it is {} ({})",
            row.id,
            row.status(),
            row.intent.status
        ),
    )
}

/// Confirms a payment created with `confirm: false` (or retries a failed one).
pub(crate) async fn confirm(
    core: &Core,
    caller: &Caller,
    id: &str,
    input: Confirm,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let check = |row: &PaymentRow| {
        if !matches!(
            row.intent.status,
            IntentStatus::RequiresPaymentMethod
                | IntentStatus::RequiresConfirmation
                | IntentStatus::RequiresAction
        ) {
            return Err(state_error(row, "confirm"));
        }
        if input.payment_method.is_none() && row.intent.payment_method.is_none() {
            return Err(ApiError::missing_param("payment_method"));
        }
        Ok(ConfirmIntent {
            payment_method: input.payment_method.clone(),
            return_url: input.return_url.clone(),
            off_session: false,
        })
    };
    PaymentChange {
        core,
        caller,
        post,
        id,
        step: "confirm",
        check,
        call: |provider: Arc<dyn PaymentProvider>, intent_id: String, key, request| async move {
            provider.confirm_intent(&intent_id, request, &key).await
        },
    }
    .run()
    .await
}

/// Captures an authorized payment, in full or in part (the rest is released).
pub(crate) async fn capture(
    core: &Core,
    caller: &Caller,
    id: &str,
    input: Capture,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let check = |row: &PaymentRow| {
        if row.intent.status != IntentStatus::RequiresCapture {
            return Err(state_error(row, "capture"));
        }
        let Some(amount) = &input.amount else {
            return Ok(CaptureIntent {
                amount_to_capture: None,
            });
        };
        let money = amount.in_currency(row.intent.currency, "amount")?;
        if money.minor_units() > row.intent.amount_capturable {
            return Err(ApiError::unprocessable(
                "amount_too_large",
                format!(
                    "cannot capture {} {}: only {} is authorized",
                    money.to_decimal_string(),
                    row.intent.currency,
                    format_minor_units(row.intent.amount_capturable, row.intent.currency)
                ),
            )
            .with_param("amount"));
        }
        Ok(CaptureIntent {
            amount_to_capture: Some(money.minor_units()),
        })
    };
    PaymentChange {
        core,
        caller,
        post,
        id,
        step: "capture",
        check,
        call: |provider: Arc<dyn PaymentProvider>, intent_id: String, key, request| async move {
            provider.capture_intent(&intent_id, request, &key).await
        },
    }
    .run()
    .await
}

/// Cancels a payment that is not captured.
pub(crate) async fn cancel(
    core: &Core,
    caller: &Caller,
    id: &str,
    input: Cancel,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let check = |row: &PaymentRow| {
        if row.intent.status.is_terminal() {
            return Err(state_error(row, "cancel"));
        }
        Ok(CancelIntent {
            reason: input.reason.clone(),
        })
    };
    PaymentChange {
        core,
        caller,
        post,
        id,
        step: "cancel",
        check,
        call: |provider: Arc<dyn PaymentProvider>, intent_id: String, key, request| async move {
            provider.cancel_intent(&intent_id, request, &key).await
        },
    }
    .run()
    .await
}
