//! `/v1/payments/cards`: save a card to a provider customer, list, delete.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) use crate::app::cards::CardView;
use crate::app::cards::{self, NewCard};
use crate::app::core::Core;
use crate::http::auth::{Auth, PaymentsRead, PaymentsWrite};
use crate::http::errors::ApiError;
use crate::http::extract::{Query, SavedCardId, Success, Validate};
use crate::http::idempotent::{Idempotent, Replied};
use crate::http::validate::{validate_email, validate_len};

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

impl Validate for SaveCardRequest {
    type Valid = NewCard;

    fn validate(self) -> Result<NewCard, ApiError> {
        if self.payment_method_id.is_empty() || self.payment_method_id.len() > 255 {
            return Err(ApiError::invalid_param(
                "payment_method_id",
                "payment_method_id must be 1 to 255 characters",
            ));
        }
        validate_email("customer_email", &self.customer_email)?;
        if let Some(name) = &self.customer_name {
            validate_len("customer_name", name, 256)?;
        }
        Ok(NewCard {
            payment_method_id: self.payment_method_id,
            customer_email: self.customer_email.to_ascii_lowercase(),
            customer_name: self.customer_name,
            provider: self.provider,
            set_default: self.set_default.unwrap_or(false),
        })
    }
}

/// Saved cards (`app::lists::List` of [`CardView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct CardList {
    object: &'static str,
    data: Vec<CardView>,
}

/// Query of `GET /v1/payments/cards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardQuery {
    customer_email: Option<String>,
}

impl Validate for CardQuery {
    /// The email, lowercased.
    type Valid = Option<String>;

    fn validate(self) -> Result<Option<String>, ApiError> {
        Ok(self.customer_email.map(|email| email.to_ascii_lowercase()))
    }
}

/// Save a card.
#[utoipa::path(post, path = "/v1/payments/cards", tag = "cards",
    request_body = SaveCardRequest,
    responses((status = 200, description = "The saved card", body = CardView)),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn create(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<SaveCardRequest>,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(cards::create(&core, &auth, value, post.request()).await?))
}

/// List saved cards (active ones), newest first.
#[utoipa::path(get, path = "/v1/payments/cards", tag = "cards",
    params(("customer_email" = Option<String>, Query, description = "Only this customer's cards")),
    responses((status = 200, description = "Saved cards", body = CardList)),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn list(
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    Query(email): Query<CardQuery>,
) -> Result<Success, ApiError> {
    Ok(Success::of(&cards::list(&core, &auth, email.as_deref()).await?))
}

/// Delete a saved card: detach it at the provider and deactivate it.
#[utoipa::path(delete, path = "/v1/payments/cards/{id}", tag = "cards",
    params(("id" = String, Path, description = "Saved card id")),
    responses((status = 200, description = "The deleted card", body = CardView),
              (status = 404, description = "No such card for this merchant")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn delete(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    id: SavedCardId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&cards::delete(&core, &auth, &id).await?))
}
