//! `POST /v1/payments`: a new payment through the merchant's provider,
//! charging a payment method or a saved card.

use gateway_core::{CaptureMethod, IntentStatus, Metadata, Money, PaymentIntent};

use super::steps::Steps;
use crate::app::core::Core;
use crate::app::idempotency::{self, Attempt, IdempotentRequest, Reply};
use crate::app::payments::ChangeSource;
use crate::app::timeline;
use crate::domain::error::ApiError;
use crate::domain::records::{PendingStep, ProviderAccount};
use crate::domain::scopes::Caller;
use crate::store::{CardRow, Change, PaymentRow};
use crate::support::clock::now_ms;

/// A validated request for a new payment: each field checked on its own,
/// and `payment_method` / `saved_card_id` / `confirm` consistent.
#[derive(Debug)]
pub(crate) struct NewPayment {
    pub(crate) amount: Money,
    /// The provider named by the request, if any.
    pub(crate) provider: Option<String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) return_url: Option<String>,
    /// A saved card to charge off-session instead of `payment_method`.
    pub(crate) saved_card_id: Option<String>,
    pub(crate) capture_method: CaptureMethod,
    pub(crate) confirm: bool,
    /// With the order id, if one was sent.
    pub(crate) metadata: Metadata,
    pub(crate) description: Option<String>,
    pub(crate) customer_email: Option<String>,
}

/// The saved card the payment charges, if it names one: active and the merchant's.
async fn saved_card(core: &Core, caller: &Caller, input: &NewPayment) -> Result<Option<CardRow>, ApiError> {
    let Some(card_id) = &input.saved_card_id else {
        return Ok(None);
    };
    let card = core
        .store
        .card(&caller.merchant_id, card_id)
        .await?
        .filter(|card| card.active)
        .ok_or_else(|| ApiError::not_found("saved card", card_id).with_param("saved_card_id"))?;
    Ok(Some(card))
}

/// The provider the payment goes through: the one named, the saved card's,
/// or the gateway's default.
fn provider_name(core: &Core, input: &NewPayment, card: Option<&CardRow>) -> Result<String, ApiError> {
    match (&input.provider, card) {
        (Some(name), Some(card)) if *name != card.provider => Err(ApiError::invalid_param(
            "provider",
            format!("the saved card belongs to provider {:?}", card.provider),
        )),
        (Some(name), _) => Ok(name.clone()),
        (None, Some(card)) => Ok(card.provider.clone()),
        (None, None) => core
            .providers
            .default_name()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::missing_param("provider")),
    }
}

/// The payment row written ahead of the provider call: its gateway id (the
/// id reserved for the request), the draft of the intent asked for (no
/// provider id yet), the step to run and the account it is made on.
fn draft_row(
    caller: &Caller,
    attempt: &Attempt,
    input: &NewPayment,
    provider_name: &str,
    account: ProviderAccount,
    card: Option<&CardRow>,
    idempotency_key: Option<&str>,
) -> PaymentRow {
    let mut draft = PaymentIntent::new(
        "",
        provider_name,
        input.amount,
        IntentStatus::RequiresPaymentMethod,
    );
    draft.capture_method = input.capture_method;
    draft.metadata = input.metadata.clone();
    draft.description = input.description.clone();
    match card {
        Some(card) => {
            draft.customer = Some(card.provider_customer_id.clone());
            draft.payment_method = Some(card.provider_payment_method.clone());
        }
        None => draft.payment_method = input.payment_method.clone(),
    }
    let now = now_ms();
    PaymentRow {
        id: attempt.resource_id().to_owned(),
        merchant_id: caller.merchant_id.to_string(),
        provider: provider_name.to_owned(),
        intent: draft,
        amount_refunded: 0,
        idempotency_key: idempotency_key.map(str::to_owned),
        saved_card_id: card.map(|card| card.id.clone()),
        customer_email: input.customer_email.clone(),
        return_url: input.return_url.clone(),
        provider_account: Some(account),
        pending_step: Some(if input.confirm {
            PendingStep::CreateConfirm
        } else {
            PendingStep::Create
        }),
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Creates a payment, once per `Idempotency-Key`: the payment row is stored
/// before the provider is asked, the intent is created unconfirmed and
/// stored, and only then confirmed (when asked), so every call that can move
/// money is on a known intent. A declined payment is stored as failed and
/// answered with the provider's refusal; an unknown outcome is answered `202`
/// and resolved by a retry with the same key or by reconciliation.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewPayment,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    // A replay answers from the stored record: the lookups below run only for a fresh or resumed request.
    let about = idempotency::About::CreatedPayment;
    let reply = idempotency::run_about(core, caller, post, about, |mut attempt: Attempt| async move {
        let _guard = core.payment_locks.lock(attempt.resource_id().to_owned()).await;
        // Only a resumed request can have written its row already: a fresh one skips the read.
        let stored = match attempt.resumed() {
            true => {
                core.store
                    .payment(&caller.merchant_id, attempt.resource_id())
                    .await?
            }
            false => None,
        };
        let (provider, mut row) = match stored {
            // A resumed request goes on with the account its row was written on.
            Some(row) => (core.provider_for_payment(&row).await?, row),
            None => {
                let card = saved_card(core, caller, &input).await?;
                let provider_name = provider_name(core, &input, card.as_ref())?;
                // A saved card is charged on the account it was saved on.
                let pinned = card.as_ref().and_then(|card| card.provider_account);
                let (provider, account) = core
                    .provider_account(&caller.merchant_id, &provider_name, pinned)
                    .await?;
                let key = post.key.ok().flatten();
                let row = draft_row(
                    caller,
                    &attempt,
                    &input,
                    &provider_name,
                    account,
                    card.as_ref(),
                    key,
                );
                attempt
                    .write_ahead(core, vec![Change::InsertPayment(Box::new(row.clone()))], &[])
                    .await?;
                (provider, row)
            }
        };
        // Stored now (written ahead, or by the run this one resumes): the timeline's subject.
        timeline::concerns(&row.merchant_id, &row.id);
        let mut early = Vec::new();
        if attempt.resumed()
            && input.confirm
            && row.pending_step.is_none()
            && row.intent.status == IntentStatus::RequiresConfirmation
        {
            // Reconciliation stored the intent this request created: confirm it as asked.
            row.pending_step = Some(PendingStep::Confirm);
            early.push(Change::update_payment(&mut row));
        }
        let steps = Steps {
            core,
            provider: &*provider,
            keys: attempt.keys(),
            source: ChangeSource::Api,
            after_earlier_call: attempt.resumed(),
        };
        let advanced = steps.advance(row, early).await?;
        Ok(advanced.into_outcome_with_client_secret())
    })
    .await?;
    super::refill_client_secret(core, caller, reply).await
}
