//! Webhooks over HTTP: inbound provider webhooks (`/v1/webhooks/…`) and the
//! merchant's outbound deliveries (`/v1/webhook-deliveries`).

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::core::Core;
pub(crate) use crate::app::deliveries::DeliveryView;
use crate::app::deliveries::{self, DeliverySearch};
pub(crate) use crate::app::inbound_api::Received;
use crate::app::inbound_api::{self, Arrival};
use crate::domain::error::Status;
use crate::domain::records::DeliveryStatus;
use crate::http::auth::{Auth, MerchantWrite, WebhooksRead};
use crate::http::body::read_body;
use crate::http::errors::ApiError;
use crate::http::extract::{DeliveryId, ListQuery, Page, Success};
use crate::http::idempotent::{Post, Replied};

/// The largest inbound webhook body accepted.
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// `POST /v1/webhooks/{provider}`: the gateway-wide account's webhooks
/// (for Stripe, the secret from `STRIPE_WEBHOOK_SECRET`).
#[utoipa::path(post, path = "/v1/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "Provider name, e.g. stripe")),
    responses((status = 200, description = "Stored (or a duplicate); processed in the background", body = Received),
              (status = 400, description = "Missing or bad signature; nothing stored"),
              (status = 415, description = "Not JSON")))]
pub(crate) async fn receive_global(
    core: web::Data<Core>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<Success, ApiError> {
    receive(core, req, path.into_inner(), None, payload).await
}

/// `POST /v1/webhooks/{provider}/{merchant_id}`: webhooks of a merchant's own
/// provider account, verified with the secrets it stored.
#[utoipa::path(post, path = "/v1/webhooks/{provider}/{merchant_id}", tag = "webhooks",
    params(("provider" = String, Path, description = "Provider name, e.g. stripe"),
           ("merchant_id" = String, Path, description = "The merchant whose account sends them")),
    responses((status = 200, description = "Stored (or a duplicate); processed in the background", body = Received),
              (status = 400, description = "Missing or bad signature; nothing stored")))]
pub(crate) async fn receive_merchant(
    core: web::Data<Core>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<Success, ApiError> {
    let (provider, merchant) = path.into_inner();
    receive(core, req, provider, Some(merchant), payload).await
}

/// The body (at most [`MAX_WEBHOOK_BYTES`], JSON) and headers handed to
/// `app::inbound_api::receive`.
async fn receive(
    core: web::Data<Core>,
    req: HttpRequest,
    provider: String,
    merchant: Option<String>,
    payload: web::Payload,
) -> Result<Success, ApiError> {
    let body = read_body(&req, payload, MAX_WEBHOOK_BYTES).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        core.metrics.observe_webhook("inbound", "refused");
        return Err(ApiError::new(
            Status::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "webhooks must be sent as application/json",
        ));
    }
    let headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let arrival = Arrival {
        provider,
        merchant,
        headers,
        body: body.to_vec(),
    };
    Ok(Success::of(
        &inbound_api::receive(core.into_inner(), arrival).await?,
    ))
}

/// A page of deliveries (`app::lists::List` of [`DeliveryView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeliveryList {
    object: &'static str,
    data: Vec<DeliveryView>,
    has_more: bool,
    next_cursor: Option<String>,
}

/// Query of `GET /v1/webhook-deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    payment_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl ListQuery for DeliveryQuery {
    const CURSOR_KIND: &'static str = "delivery";
    type Search = DeliverySearch;

    fn take_page(&mut self) -> (Option<u32>, Option<String>) {
        (self.limit.take(), self.cursor.take())
    }

    fn search(self) -> Result<DeliverySearch, ApiError> {
        let status = match &self.status {
            None => None,
            Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
                ApiError::invalid_param("status", "status must be pending, delivered or failed")
            })?),
        };
        Ok(DeliverySearch {
            status,
            event_type: self.event_type,
            payment_id: self.payment_id,
        })
    }
}

/// List outbound webhook deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhook-deliveries", tag = "webhooks",
    params(("status" = Option<String>, Query, description = "pending, delivered or failed"),
           ("type" = Option<String>, Query, description = "Event type, e.g. payment.completed"),
           ("payment_id" = Option<String>, Query, description = "Only this payment's"),
           ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn list_deliveries(
    core: web::Data<Core>,
    auth: Auth<WebhooksRead>,
    query: Page<DeliveryQuery>,
) -> Result<Success, ApiError> {
    let page = deliveries::list(&core, &auth, query.search, query.page).await?;
    Ok(Success::of(
        &page.list(|row| &row.id, |row| DeliveryView::new(row, None)),
    ))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/webhook-deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery (event) id")),
    responses((status = 200, description = "The delivery", body = DeliveryView)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn get_delivery(
    core: web::Data<Core>,
    auth: Auth<WebhooksRead>,
    id: DeliveryId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&deliveries::get(&core, &auth, &id).await?))
}

/// Send a delivery again now (after it failed, or to replay a delivered one).
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery (event) id")),
    responses((status = 200, description = "The delivery, queued", body = DeliveryView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn retry_delivery(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    post: Post,
    id: DeliveryId,
) -> Result<Replied, ApiError> {
    Ok(Replied(
        deliveries::retry(&core, &auth, &id, post.request()).await?,
    ))
}
