//! Webhooks over HTTP: inbound provider webhooks (`/v1/webhooks/…`) and the
//! merchant's outbound deliveries (`/v1/webhook-deliveries`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::{WebhookError, WebhookRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_id, parse_query};
use crate::app::core::Core;
use crate::app::outbound::payload;
use crate::domain::error::Status;
use crate::domain::scopes::Scope;
use crate::http::auth::Auth;
use crate::http::body::read_body;
use crate::http::errors::{ok, ApiError};
use crate::store::{Change, DeliveryFilter, DeliveryRow, DeliveryStatus, EventKey, WebhookEventRow};
use crate::support::clock::{now_ms, rfc3339};

/// The largest inbound webhook body accepted.
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// What an accepted webhook is answered with.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Received {
    received: bool,
    event_id: String,
}

/// `POST /v1/webhooks/{provider}`: the gateway-wide account's webhooks
/// (for Stripe, the secret from `STRIPE_WEBHOOK_SECRET`).
#[utoipa::path(post, path = "/v1/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "Provider name, e.g. stripe")),
    responses((status = 200, description = "Stored (or a duplicate); processed in the background", body = Received),
              (status = 400, description = "Missing or bad signature; nothing stored"),
              (status = 415, description = "Not JSON")))]
pub(crate) async fn receive_global(
    state: web::Data<Core>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    receive(state, req, path.into_inner(), None, payload).await
}

/// `POST /v1/webhooks/{provider}/{merchant_id}`: webhooks of a merchant's own
/// provider account, verified with the secrets it stored.
#[utoipa::path(post, path = "/v1/webhooks/{provider}/{merchant_id}", tag = "webhooks",
    params(("provider" = String, Path, description = "Provider name, e.g. stripe"),
           ("merchant_id" = String, Path, description = "The merchant whose account sends them")),
    responses((status = 200, description = "Stored (or a duplicate); processed in the background", body = Received),
              (status = 400, description = "Missing or bad signature; nothing stored")))]
pub(crate) async fn receive_merchant(
    state: web::Data<Core>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (provider, merchant) = path.into_inner();
    receive(state, req, provider, Some(merchant), payload).await
}

fn refused(state: &Core, provider: &str, merchant: Option<&str>, error: &WebhookError) -> ApiError {
    state.metrics.observe_webhook("inbound", "refused");
    // The error names what is wrong, never a secret or a signature value.
    tracing::warn!(provider, merchant = merchant.unwrap_or(""), %error, "refused an inbound webhook");
    let code = match error {
        WebhookError::NotConfigured => "webhook_not_configured",
        WebhookError::InvalidPayload { .. } => "webhook_payload_invalid",
        _ => "webhook_signature_invalid",
    };
    ApiError::new(Status::BAD_REQUEST, code, format!("webhook refused: {error}"))
}

async fn receive(
    state: web::Data<Core>,
    req: HttpRequest,
    provider_name: String,
    merchant: Option<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, MAX_WEBHOOK_BYTES).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        state.metrics.observe_webhook("inbound", "refused");
        return Err(ApiError::new(
            Status::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "webhooks must be sent as application/json",
        ));
    }
    if provider_name.len() > 32 || merchant.as_ref().is_some_and(|m| m.len() > 100) {
        return Err(ApiError::not_found("webhook endpoint", &provider_name));
    }
    let provider = match &merchant {
        None => state.providers.global(&provider_name),
        Some(merchant_id) => {
            if state.store.merchant(merchant_id).await?.is_none() {
                return Err(ApiError::not_found("merchant", merchant_id));
            }
            state
                .providers
                .for_merchant(&*state.store, &state.sealer, merchant_id, &provider_name)
                .await
                .ok()
        }
    };
    let Some(provider) = provider else {
        return Err(ApiError::not_found(
            "webhook endpoint for provider",
            &provider_name,
        ));
    };
    let mut request = WebhookRequest::new(body.to_vec(), (state.clock)());
    for (name, value) in req.headers() {
        if let Ok(value) = value.to_str() {
            request = request.with_header(name.as_str(), value);
        }
    }
    let verified = provider
        .verify_webhook(&request)
        .map_err(|error| refused(&state, &provider_name, merchant.as_deref(), &error))?;
    if verified.event_id.is_empty() || verified.event_id.len() > 255 || verified.event_type.len() > 255 {
        return Err(refused(
            &state,
            &provider_name,
            merchant.as_deref(),
            &WebhookError::InvalidPayload {
                reason: "event id or type missing or too long".to_owned(),
            },
        ));
    }
    let key = EventKey {
        provider: provider.name().to_owned(),
        account: merchant.unwrap_or_default(),
        event_id: verified.event_id.clone(),
    };
    let row = WebhookEventRow {
        key: key.clone(),
        event_type: verified.event_type,
        body: verified.body,
        received_at: now_ms(),
        processed_at: None,
        attempts: 0,
        last_error: None,
    };
    state
        .store
        .commit(vec![Change::InsertWebhookEvent(Box::new(row.clone()))])
        .await?;
    state.metrics.observe_webhook("inbound", "stored");
    // Durable now: answer, and process in the background (the sweep takes over after a crash).
    let background = state.clone();
    tokio::spawn(async move {
        crate::app::inbound::process_stored(&background, row).await;
    });
    Ok(ok(&Received {
        received: true,
        event_id: key.event_id,
    }))
}

/// One attempt to deliver a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptView {
    attempt: i64,
    at: String,
    /// The merchant endpoint's HTTP status, if it answered.
    http_status: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
}

/// An outbound webhook and its delivery.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// The event id (the payload's `id`; receivers deduplicate on it).
    id: String,
    object: &'static str,
    event_type: String,
    payment_id: String,
    url: String,
    /// `pending`, `delivered` or `failed` (retries exhausted).
    status: String,
    sequence: i64,
    attempts: i64,
    next_attempt_at: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
    last_http_status: Option<i64>,
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<AttemptView>>,
    /// The exact JSON body sent (signed with `Gateway-Signature`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

impl DeliveryView {
    fn new(row: &DeliveryRow, attempts: Option<Vec<AttemptView>>) -> Self {
        DeliveryView {
            id: row.id.clone(),
            object: "webhook_delivery",
            event_type: row.event_type.clone(),
            payment_id: row.payment_id.clone(),
            url: row.url.clone(),
            status: row.status.as_str().to_owned(),
            sequence: row.seq,
            attempts: row.attempts,
            next_attempt_at: (row.status == DeliveryStatus::Pending).then(|| rfc3339(row.next_attempt_at)),
            created_at: rfc3339(row.created_at),
            delivered_at: row.delivered_at.map(rfc3339),
            last_http_status: row.last_status,
            last_error: row.last_error.clone(),
            attempt_log: attempts,
            payload: serde_json::from_str(&payload(row)).unwrap_or_default(),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
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
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::WebhooksRead)?;
    let query: DeliveryQuery = parse_query(&req)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let status = match &query.status {
        None => None,
        Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
            ApiError::invalid_param("status", "status must be pending, delivered or failed")
        })?),
    };
    let before_seq = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            state
                .store
                .delivery(&auth.merchant_id, check_id("delivery", cursor)?)
                .await?
                .ok_or_else(|| ApiError::invalid_param("cursor", "unknown cursor"))?
                .seq,
        ),
    };
    let filter = DeliveryFilter {
        status,
        event_type: query.event_type,
        payment_id: query.payment_id,
        before_seq,
        limit: limit + 1,
    };
    let mut rows = state.store.deliveries(&auth.merchant_id, &filter).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(ok(&DeliveryList {
        object: "list",
        next_cursor: if has_more {
            rows.last().map(|row| row.id.clone())
        } else {
            None
        },
        data: rows.iter().map(|row| DeliveryView::new(row, None)).collect(),
        has_more,
    }))
}

async fn delivery_view(state: &Core, auth: &Auth, id: &str) -> Result<DeliveryView, ApiError> {
    let row = state
        .store
        .delivery(&auth.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery", id))?;
    let attempts = state
        .store
        .delivery_attempts(&row.id)
        .await?
        .into_iter()
        .map(|a| AttemptView {
            attempt: a.attempt,
            at: rfc3339(a.at),
            http_status: a.http_status,
            latency_ms: a.latency_ms,
            error: a.error,
        })
        .collect();
    Ok(DeliveryView::new(&row, Some(attempts)))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/webhook-deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery (event) id")),
    responses((status = 200, description = "The delivery", body = DeliveryView)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn get_delivery(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::WebhooksRead)?;
    let id = check_id("webhook delivery", &id)?;
    Ok(ok(&delivery_view(&state, &auth, id).await?))
}

/// Send a delivery again now (after it failed, or to replay a delivered one).
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery (event) id")),
    responses((status = 200, description = "The delivery, queued", body = DeliveryView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn retry_delivery(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantWrite)?;
    let id = check_id("webhook delivery", &id)?;
    let row = state
        .store
        .delivery(&auth.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery", id))?;
    if row.status == DeliveryStatus::Pending {
        return Err(ApiError::conflict(
            "delivery_pending",
            "this delivery is still being retried; wait for it to be delivered or to fail",
        ));
    }
    state
        .store
        .commit(vec![Change::RetryDelivery {
            merchant_id: auth.merchant_id.to_string(),
            id: row.id.clone(),
            at: now_ms(),
        }])
        .await?;
    state.outbound.wake();
    Ok(ok(&delivery_view(&state, &auth, id).await?))
}
