//! Confirm, capture and cancel: one provider call on a stored payment under
//! its lock, the intent it returns stored through `apply_intent_change`.

use gateway_core::{
    format_minor_units, CancelIntent, CaptureIntent, ConfirmIntent, IdempotencyKey, IntentStatus,
    PaymentIntent, PaymentProvider, ProviderError,
};
use serde_json::value::RawValue;

use super::{load, Steps};
use crate::app::amounts::amount_in;
use crate::app::core::Core;
use crate::app::idempotency::{self, About, IdempotentRequest, Outcome, Reply};
use crate::app::payments::ChangeSource;
use crate::app::timeline;
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::records::PendingStep;
use crate::domain::scopes::Caller;
use crate::domain::views::PaymentView;
use crate::store::{Change, PaymentRow};

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
    /// The step written ahead on the payment; its name is the provider key's step.
    fn step(&self) -> PendingStep {
        match self {
            Call::Confirm(_) => PendingStep::Confirm,
            Call::Capture(_) => PendingStep::Capture,
            Call::Cancel(_) => PendingStep::Cancel,
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
/// provider call. The step is written on the row before the call, so an
/// unknown outcome (answered `202`) is resolved by a retry of the same
/// request or by reconciliation; the answer is stored through `apply_intent_change`.
async fn change_payment(
    core: &Core,
    caller: &Caller,
    post: IdempotentRequest<'_>,
    id: &str,
    check: impl FnOnce(&PaymentRow) -> Result<Call, ApiError>,
) -> Result<Reply, ApiError> {
    idempotency::run_about(core, caller, post, About::Payment(id), |mut attempt| async move {
        let _guard = core.payment_locks.lock(id.to_owned()).await;
        let mut row = load(core, caller, id).await?;
        // The caller's payment: this request goes on its timeline, refused or not.
        timeline::concerns(&row.merchant_id, &row.id);
        let call = match check(&row) {
            Ok(call) => call,
            // A retry of a call that reconciliation has since resolved: the payment as it is now.
            Err(_) if attempt.resumed() && row.pending_step.is_none() => {
                return Ok(Outcome {
                    replay: None,
                    status: Status::OK,
                    body: success_bytes(&PaymentView::new(&row)),
                    changes: Vec::new(),
                    updates: Vec::new(),
                })
            }
            Err(error) => return Err(error),
        };
        let step = call.step();
        let confirming = matches!(call, Call::Confirm(_));
        match row.pending_step {
            // This request's own call, written ahead by the attempt it resumes.
            Some(pending) if pending == step && attempt.resumed() => {}
            Some(_) => return Err(outcome_pending(&row)),
            None => {
                row.pending_step = Some(step);
                if let Call::Confirm(confirm) = &call {
                    if confirm.return_url.is_some() {
                        row.return_url = confirm.return_url.clone();
                    }
                }
                attempt
                    .write_ahead(core, vec![Change::update_payment(&mut row)], &[])
                    .await?;
            }
        }
        let provider = core.provider_for_payment(&row).await?;
        let key = attempt.step(step.as_str())?;
        let result = call.send(&*provider, &row.intent.id, &key).await;
        let steps = Steps {
            core,
            provider: &*provider,
            keys: attempt.keys(),
            source: ChangeSource::Api,
            after_earlier_call: attempt.resumed(),
        };
        let settled = steps.settle(row, result, Vec::new(), Vec::new());
        Ok(match confirming {
            true => settled.into_outcome_with_client_secret(),
            false => settled.into_outcome(),
        })
    })
    .await
}

/// 409: the outcome of the payment's last provider call is still unknown.
fn outcome_pending(row: &PaymentRow) -> ApiError {
    ApiError::conflict(
        "payment_outcome_unknown",
        format!(
            "payment {} is waiting for the provider's answer to an earlier call; retry that request \
             with its Idempotency-Key, or wait for reconciliation",
            row.id
        ),
    )
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
    let reply = change_payment(core, caller, post, id, check).await?;
    super::refill_client_secret(core, caller, reply).await
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
