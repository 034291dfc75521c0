//! `POST /v1/payments`: a new payment through the merchant's provider,
//! charging a payment method or a saved card.

use gateway_core::{CaptureMethod, CreateIntent, Metadata, Money};

use super::{payment_outcome, split_result};
use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, ProviderKeys, Reply};
use crate::app::payments::{new_payment, ChangeSource};
use crate::domain::error::ApiError;
use crate::domain::scopes::Caller;
use crate::store::{CardRow, PaymentRow};
use crate::support::clock::now_ms;
use crate::support::ids::new_id;

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

/// What the provider is asked to create.
fn intent_request(input: &NewPayment, card: Option<&CardRow>) -> CreateIntent {
    let mut request = CreateIntent::new(input.amount);
    request.capture_method = input.capture_method;
    request.confirm = input.confirm;
    request.return_url = input.return_url.clone();
    request.metadata = input.metadata.clone();
    request.description = input.description.clone();
    request.receipt_email = input.customer_email.clone();
    match card {
        Some(card) => {
            request.customer = Some(card.provider_customer_id.clone());
            request.payment_method = Some(card.provider_payment_method.clone());
            request.off_session = true;
        }
        None => request.payment_method = input.payment_method.clone(),
    }
    request
}

/// Creates a payment, once per `Idempotency-Key`. A declined payment is
/// stored as failed and answered with the provider's refusal.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewPayment,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let card = saved_card(core, caller, &input).await?;
    let provider_name = provider_name(core, &input, card.as_ref())?;
    let provider = core.provider_for(&caller.merchant_id, &provider_name).await?;
    let request = intent_request(&input, card.as_ref());
    idempotency::run(core, caller, post, |keys: ProviderKeys| async move {
        let key = keys.step("create_intent")?;
        let (intent, error) = split_result(provider.create_intent(request, &key).await)?;
        let now = now_ms();
        let row = PaymentRow {
            id: new_id(),
            merchant_id: caller.merchant_id.to_string(),
            provider: provider_name,
            intent,
            amount_refunded: 0,
            idempotency_key: post.key.ok().flatten().map(str::to_owned),
            saved_card_id: card.map(|card| card.id),
            customer_email: input.customer_email,
            return_url: input.return_url,
            created_at: now,
            updated_at: now,
        };
        let (status, body) = payment_outcome(&row, error);
        let (change, update) = new_payment(row, ChangeSource::Api);
        Ok(Outcome {
            status,
            body,
            changes: vec![change],
            updates: vec![update],
        })
    })
    .await
}
