//! Confirm, capture and cancel: one provider call on a stored payment under
//! its lock, the intent it returns stored through `apply_intent_change`.

use gateway_core::{
    format_minor_units, CancelIntent, CaptureIntent, ConfirmIntent, IdempotencyKey, IntentStatus,
    PaymentIntent, PaymentProvider, ProviderError,
};
use serde_json::value::RawValue;

use super::{load, payment_outcome, split_result};
use crate::app::amounts::amount_in;
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

/// A capture: how much, everything authorized when `None` (read in the
/// payment's currency once its state allows a capture).
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) amount: Option<Box<RawValue>>,
}

/// A validated cancel and its reason.
#[derive(Debug)]
pub(crate) struct Cancel {
    pub(crate) reason: Option<String>,
}

/// What a change asks the provider, worked out from the stored payment.
enum Call {
    Confirm(ConfirmIntent),
    Capture(CaptureIntent),
    Cancel(CancelIntent),
}

impl Call {
    /// The step its provider key is derived for.
    fn step(&self) -> &'static str {
        match self {
            Call::Confirm(_) => "confirm",
            Call::Capture(_) => "capture",
            Call::Cancel(_) => "cancel",
        }
    }

    async fn send(
        self,
        provider: &dyn PaymentProvider,
        intent_id: &str,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        match self {
            Call::Confirm(request) => provider.confirm_intent(intent_id, request, key).await,
            Call::Capture(request) => provider.capture_intent(intent_id, request, key).await,
            Call::Cancel(request) => provider.cancel_intent(intent_id, request, key).await,
        }
    }
}

/// Changes the stored payment `id` once per `Idempotency-Key`, under its
/// lock: `check` refuses the change for the payment's state or works out the
/// provider call, whose intent is stored through `apply_intent_change`.
async fn change_payment(
    core: &Core,
    caller: &Caller,
    post: IdempotentRequest<'_>,
    id: &str,
    check: impl FnOnce(&PaymentRow) -> Result<Call, ApiError>,
) -> Result<Reply, ApiError> {
    idempotency::run(core, caller, post, |keys| async move {
        let _guard = core.payment_locks.lock(id.to_owned()).await;
        let mut row = load(core, caller, id).await?;
        let call = check(&row)?;
        let provider = core.provider_for(&caller.merchant_id, &row.provider).await?;
        let key = keys.step(call.step())?;
        let (intent, error) = split_result(call.send(&*provider, &row.intent.id, &key).await)?;
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
        Ok(Call::Confirm(ConfirmIntent {
            payment_method: input.payment_method.clone(),
            return_url: input.return_url.clone(),
            off_session: false,
        }))
    };
    change_payment(core, caller, post, id, check).await
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
            return Ok(Call::Capture(CaptureIntent {
                amount_to_capture: None,
            }));
        };
        let money = amount_in(amount, row.intent.currency, "amount")?;
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
        Ok(Call::Capture(CaptureIntent {
            amount_to_capture: Some(money.minor_units()),
        }))
    };
    change_payment(core, caller, post, id, check).await
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
        Ok(Call::Cancel(CancelIntent {
            reason: input.reason.clone(),
        }))
    };
    change_payment(core, caller, post, id, check).await
}
