//! Saved cards: a card attached to the provider customer of an email (one
//! customer per merchant, provider and email), listed, and deleted.

use gateway_core::{CreateCustomer, IdempotencyKey, PaymentProvider, ProviderError, SavedPaymentMethod};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::idempotency::{self, Attempt, IdempotentRequest, Outcome, Reply};
use crate::app::lists::List;
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{CardRow, Change, CustomerRow};
use crate::support::clock::{now_ms, rfc3339};

/// A validated request to save a card.
#[derive(Debug)]
pub(crate) struct NewCard {
    pub(crate) payment_method_id: String,
    /// Lowercased.
    pub(crate) customer_email: String,
    pub(crate) customer_name: Option<String>,
    /// The gateway's default when `None`.
    pub(crate) provider: Option<String>,
    pub(crate) set_default: bool,
}

/// A saved card.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CardView {
    id: String,
    object: &'static str,
    provider: String,
    customer_email: String,
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
    is_default: bool,
    created_at: String,
}

impl CardView {
    pub(crate) fn new(row: &CardRow) -> Self {
        CardView {
            id: row.id.clone(),
            object: "card",
            provider: row.provider.clone(),
            customer_email: row.customer_email.clone(),
            brand: row.brand.clone(),
            last4: row.last4.clone(),
            exp_month: row.exp_month,
            exp_year: row.exp_year,
            is_default: row.is_default,
            created_at: rfc3339(row.created_at),
        }
    }
}

/// The method an attach whose answer was lost (or replayed as a 500) left on
/// the customer: the one card method the customer has that no saved card of
/// the merchant names. Anything else (none, or several) leaves the outcome
/// unknown and the error stands, for a retry with the same key.
async fn attached_unseen(
    core: &Core,
    provider: &dyn PaymentProvider,
    merchant_id: &str,
    customer_id: &str,
    error: ProviderError,
) -> Result<SavedPaymentMethod, ApiError> {
    let Ok(methods) = provider.list_payment_methods(customer_id).await else {
        return Err(error.into());
    };
    let saved = core.store.cards(merchant_id, None).await?;
    let mut unsaved = methods.into_iter().filter(|method| {
        !saved
            .iter()
            .any(|card| card.provider_customer_id == customer_id && card.provider_payment_method == method.id)
    });
    match (unsaved.next(), unsaved.next()) {
        (Some(method), None) => Ok(method),
        _ => Err(error.into()),
    }
}

/// Saves a card once per `Idempotency-Key`, creating the provider customer
/// of the email first if the merchant has none there yet.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewCard,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let provider_name = match input.provider.clone() {
        Some(name) => name,
        None => core
            .providers
            .default_name()
            .ok_or_else(|| ApiError::missing_param("provider"))?
            .to_owned(),
    };
    idempotency::run(core, caller, post, |mut attempt: Attempt| async move {
        // Looked up here, not before: a replay answers from its record whatever the configuration now.
        let (provider, account) = core
            .provider_account(&caller.merchant_id, &provider_name, None)
            .await?;
        // The in-progress record first: a retry after an ambiguous provider
        // call resumes with the same provider keys (one customer, one attach).
        attempt.write_ahead(core, Vec::new(), &[]).await?;
        let email = input.customer_email;
        let _guard = core
            .customer_locks
            .lock((caller.merchant_id.clone(), provider_name.clone(), email.clone()))
            .await;
        let merchant_id = caller.merchant_id.to_string();
        let mut changes = Vec::new();
        // A customer of another account (or of an unrecorded one) is unknown
        // here: a new one replaces it, the cards saved on it keep theirs.
        let stored = core.store.customer(&merchant_id, &provider_name, &email).await?;
        let customer_id = match stored.filter(|customer| customer.provider_account == Some(account)) {
            Some(customer) => customer.provider_customer_id,
            None => {
                let request = CreateCustomer {
                    email: Some(email.clone()),
                    name: input.customer_name.clone(),
                    metadata: Default::default(),
                };
                let customer = provider
                    .create_customer(request, &attempt.step("customer")?)
                    .await?;
                changes.push(Change::InsertCustomer(CustomerRow {
                    merchant_id: merchant_id.clone(),
                    provider: provider_name.clone(),
                    email: email.clone(),
                    provider_customer_id: customer.id.clone(),
                    provider_account: Some(account),
                    created_at: now_ms(),
                }));
                customer.id
            }
        };
        let attached = provider
            .attach_payment_method(&customer_id, &input.payment_method_id, &attempt.step("attach")?)
            .await;
        let method = match attached {
            Ok(method) => method,
            Err(error) if error.outcome_unknown() => {
                attached_unseen(core, &*provider, &merchant_id, &customer_id, error).await?
            }
            Err(error) => return Err(error.into()),
        };
        let card = method.card.ok_or_else(|| {
            ApiError::invalid_param("payment_method_id", "the payment method is not a card")
        })?;
        let has_default = core
            .store
            .cards(&merchant_id, Some(&email))
            .await?
            .iter()
            .any(|card| card.is_default && card.provider == provider_name);
        let is_default = input.set_default || !has_default;
        let row = CardRow {
            id: attempt.resource_id().to_owned(),
            merchant_id: merchant_id.clone(),
            provider: provider_name,
            provider_customer_id: customer_id,
            provider_payment_method: method.id,
            customer_email: email.clone(),
            brand: card.brand,
            last4: card.last4,
            exp_month: i64::from(card.exp_month),
            exp_year: i64::from(card.exp_year),
            is_default,
            active: true,
            provider_account: Some(account),
            created_at: now_ms(),
        };
        changes.push(Change::InsertCard(row.clone()));
        if is_default {
            changes.push(Change::SetDefaultCard {
                merchant_id,
                email,
                card_id: row.id.clone(),
            });
        }
        Ok(Outcome {
            replay: None,
            status: Status::OK,
            body: success_bytes(&CardView::new(&row)),
            changes,
            updates: Vec::new(),
        })
    })
    .await
}

/// The merchant's active cards, newest first; only the (lowercased) email's when given.
pub(crate) async fn list(
    core: &Core,
    caller: &Caller,
    customer_email: Option<&str>,
) -> Result<List<CardView>, ApiError> {
    let rows = core.store.cards(&caller.merchant_id, customer_email).await?;
    Ok(List::all(rows.iter().map(CardView::new).collect()))
}

/// Detaches a saved card at the provider and deactivates it; 404 unless it
/// is an active card of the merchant.
pub(crate) async fn delete(core: &Core, caller: &Caller, id: &str) -> Result<CardView, ApiError> {
    let mut card = core
        .store
        .card(&caller.merchant_id, id)
        .await?
        .filter(|card| card.active)
        .ok_or_else(|| ApiError::not_found("saved card", id))?;
    let provider = core.provider_for_card(&card).await?;
    let key = IdempotencyKey::new(format!("gw_detach_{}", card.id)).map_err(|_| ApiError::internal())?;
    match provider
        .detach_payment_method(&card.provider_payment_method, &key)
        .await
    {
        Ok(_) => {}
        // Already gone at the provider: deactivating here is still right.
        Err(ProviderError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    core.store
        .commit(vec![Change::DeactivateCard {
            merchant_id: caller.merchant_id.to_string(),
            id: card.id.clone(),
        }])
        .await?;
    card.active = false;
    card.is_default = false;
    Ok(CardView::new(&card))
}
