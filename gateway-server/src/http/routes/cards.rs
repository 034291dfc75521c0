//! `/v1/payments/cards`: save a card to a provider customer, list, delete.

use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::CreateCustomer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_id, parse_query, validate_email, validate_len};
use crate::app::core::Core;
use crate::app::idempotency::Outcome;
use crate::domain::error::Status;
use crate::domain::scopes::Scope;
use crate::http::auth::Auth;
use crate::http::body::{parse_json, read_body};
use crate::http::errors::{ok, success_bytes, ApiError};
use crate::http::idempotent;
use crate::store::{CardRow, Change, CustomerRow};
use crate::support::clock::{now_ms, rfc3339};
use crate::support::ids::new_id;

/// `POST /v1/payments/cards`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SaveCardRequest {
    /// The provider's payment method token collected client-side (`pm_…`).
    payment_method_id: String,
    /// The customer the card belongs to; one provider customer per email.
    customer_email: String,
    /// The customer's name.
    customer_name: Option<String>,
    /// Provider name; the gateway's default when omitted.
    provider: Option<String>,
    /// Make this the customer's default card (the first card always is).
    set_default: Option<bool>,
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
    fn new(row: &CardRow) -> Self {
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

/// Saved cards.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CardList {
    object: &'static str,
    data: Vec<CardView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardQuery {
    customer_email: Option<String>,
}

/// Save a card.
#[utoipa::path(post, path = "/v1/payments/cards", tag = "cards",
    request_body = SaveCardRequest,
    responses((status = 200, description = "The saved card", body = CardView)),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn create(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: SaveCardRequest = parse_json(&req, &body)?;
    if input.payment_method_id.is_empty() || input.payment_method_id.len() > 255 {
        return Err(ApiError::invalid_param(
            "payment_method_id",
            "payment_method_id must be 1 to 255 characters",
        ));
    }
    validate_email("customer_email", &input.customer_email)?;
    let email = input.customer_email.to_ascii_lowercase();
    if let Some(name) = &input.customer_name {
        validate_len("customer_name", name, 256)?;
    }
    let provider_name = match input.provider {
        Some(name) => name,
        None => state
            .providers
            .default_name()
            .ok_or_else(|| ApiError::missing_param("provider"))?
            .to_owned(),
    };
    let provider = state
        .providers
        .for_merchant(&*state.store, &state.sealer, &auth.merchant_id, &provider_name)
        .await?;
    let state = &state;
    let auth_ref = &auth;
    idempotent::run(state, &auth, &req, &body, |keys| async move {
        let _guard = state
            .customer_locks
            .lock((auth_ref.merchant_id.clone(), provider_name.clone(), email.clone()))
            .await;
        let merchant_id = auth_ref.merchant_id.to_string();
        let mut changes = Vec::new();
        let customer_id = match state.store.customer(&merchant_id, &provider_name, &email).await? {
            Some(customer) => customer.provider_customer_id,
            None => {
                let request = CreateCustomer {
                    email: Some(email.clone()),
                    name: input.customer_name.clone(),
                    metadata: Default::default(),
                };
                let customer = provider.create_customer(request, &keys.step("customer")?).await?;
                changes.push(Change::InsertCustomer(CustomerRow {
                    merchant_id: merchant_id.clone(),
                    provider: provider_name.clone(),
                    email: email.clone(),
                    provider_customer_id: customer.id.clone(),
                    created_at: now_ms(),
                }));
                customer.id
            }
        };
        let method = provider
            .attach_payment_method(&customer_id, &input.payment_method_id, &keys.step("attach")?)
            .await?;
        let card = method.card.ok_or_else(|| {
            ApiError::invalid_param("payment_method_id", "the payment method is not a card")
        })?;
        let has_default = state
            .store
            .cards(&merchant_id, Some(&email))
            .await?
            .iter()
            .any(|card| card.is_default && card.provider == provider_name);
        let is_default = input.set_default.unwrap_or(false) || !has_default;
        let row = CardRow {
            id: new_id(),
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
            status: Status::OK,
            body: success_bytes(&CardView::new(&row)),
            changes,
            updates: Vec::new(),
        })
    })
    .await
}

/// List saved cards (active ones), newest first.
#[utoipa::path(get, path = "/v1/payments/cards", tag = "cards",
    params(("customer_email" = Option<String>, Query, description = "Only this customer's cards")),
    responses((status = 200, description = "Saved cards", body = CardList)),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn list(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let query: CardQuery = parse_query(&req)?;
    let email = query.customer_email.map(|email| email.to_ascii_lowercase());
    let rows = state.store.cards(&auth.merchant_id, email.as_deref()).await?;
    Ok(ok(&CardList {
        object: "list",
        data: rows.iter().map(CardView::new).collect(),
    }))
}

/// Delete a saved card: detach it at the provider and deactivate it.
#[utoipa::path(delete, path = "/v1/payments/cards/{id}", tag = "cards",
    params(("id" = String, Path, description = "Saved card id")),
    responses((status = 200, description = "The deleted card", body = CardView),
              (status = 404, description = "No such card for this merchant")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn delete(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let id = check_id("saved card", &id)?;
    let mut card = state
        .store
        .card(&auth.merchant_id, id)
        .await?
        .filter(|card| card.active)
        .ok_or_else(|| ApiError::not_found("saved card", id))?;
    let provider = state
        .providers
        .for_merchant(&*state.store, &state.sealer, &auth.merchant_id, &card.provider)
        .await?;
    let key = gateway_core::IdempotencyKey::new(format!("gw_detach_{}", card.id))
        .map_err(|_| ApiError::internal())?;
    match provider
        .detach_payment_method(&card.provider_payment_method, &key)
        .await
    {
        Ok(_) => {}
        // Already gone at the provider: deactivating here is still right.
        Err(gateway_core::ProviderError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    state
        .store
        .commit(vec![Change::DeactivateCard {
            merchant_id: auth.merchant_id.to_string(),
            id: card.id.clone(),
        }])
        .await?;
    card.active = false;
    card.is_default = false;
    Ok(ok(&CardView::new(&card)))
}
