//! The merchant's outbound webhook deliveries: listed, read with every
//! attempt, and sent again on request.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::lists::{Page, PageRequest};
use crate::app::outbound::payload;
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{Change, DeliveryFilter, DeliveryRow, DeliveryStatus};
use crate::support::clock::{now_ms, rfc3339};

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
    /// The delivery's id (`whd_…`; a delivery made before events existed
    /// has its event's id, `evt_…`).
    id: String,
    object: &'static str,
    /// The event delivered (the payload's `id` and `Gateway-Event-Id`;
    /// receivers deduplicate on it).
    event_id: String,
    /// The endpoint it goes to (none for a delivery of before endpoints
    /// whose merchant had removed its URL).
    endpoint_id: Option<String>,
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
    pub(crate) fn new(row: &DeliveryRow, attempts: Option<Vec<AttemptView>>) -> Self {
        DeliveryView {
            id: row.id.clone(),
            object: "webhook_delivery",
            event_id: row.event_id.clone(),
            endpoint_id: row.endpoint_id.clone(),
            event_type: row.event_type.clone(),
            payment_id: row.payment_id.clone(),
            url: row.url.clone(),
            status: row.status.as_str().to_owned(),
            sequence: row.event_seq,
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

/// The filters of `GET /v1/webhook-deliveries`, validated.
#[derive(Debug, Default)]
pub(crate) struct DeliverySearch {
    pub(crate) status: Option<DeliveryStatus>,
    pub(crate) event_type: Option<String>,
    pub(crate) payment_id: Option<String>,
}

/// One page of the merchant's deliveries, newest first; 400 for a cursor
/// that names no delivery of the merchant.
pub(crate) async fn list(
    core: &Core,
    caller: &Caller,
    search: DeliverySearch,
    page: PageRequest,
) -> Result<Page<DeliveryRow>, ApiError> {
    let before_seq = page
        .cursor_seq(|cursor| async move {
            Ok(core
                .store
                .delivery(&caller.merchant_id, &cursor)
                .await?
                .map(|row| row.seq))
        })
        .await?;
    let filter = DeliveryFilter {
        status: search.status,
        event_type: search.event_type,
        payment_id: search.payment_id,
        before_seq,
        limit: page.fetch(),
    };
    let rows = core.store.deliveries(&caller.merchant_id, &filter).await?;
    Ok(Page::cut(rows, &page))
}

async fn load(core: &Core, caller: &Caller, id: &str) -> Result<DeliveryRow, ApiError> {
    core.store
        .delivery(&caller.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery", id))
}

/// The views of `rows`, each with its attempts in order, read in one query.
pub(crate) async fn with_attempts(core: &Core, rows: &[DeliveryRow]) -> Result<Vec<DeliveryView>, ApiError> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut attempts: HashMap<String, Vec<AttemptView>> = HashMap::new();
    for a in core.store.delivery_attempts(&ids).await? {
        attempts.entry(a.delivery_id).or_default().push(AttemptView {
            attempt: a.attempt,
            at: rfc3339(a.at),
            http_status: a.http_status,
            latency_ms: a.latency_ms,
            error: a.error,
        });
    }
    Ok(rows
        .iter()
        .map(|row| DeliveryView::new(row, Some(attempts.remove(&row.id).unwrap_or_default())))
        .collect())
}

/// One delivery of the merchant with every attempt; 404 if there is none.
pub(crate) async fn get(core: &Core, caller: &Caller, id: &str) -> Result<DeliveryView, ApiError> {
    view_with_attempts(core, &load(core, caller, id).await?).await
}

/// The view of one delivery with its attempts.
async fn view_with_attempts(core: &Core, row: &DeliveryRow) -> Result<DeliveryView, ApiError> {
    let mut views = with_attempts(core, std::slice::from_ref(row)).await?;
    Ok(views.remove(0))
}

/// Queues a delivered or failed delivery again now, once per
/// `Idempotency-Key`; 409 while it is still pending, or when its endpoint
/// was deleted. Answers the delivery as queued.
pub(crate) async fn retry(
    core: &Core,
    caller: &Caller,
    id: &str,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let reply = idempotency::run(core, caller, post, |_keys| async move {
        let mut row = load(core, caller, id).await?;
        if row.status == DeliveryStatus::Pending {
            return Err(ApiError::conflict(
                "delivery_pending",
                "this delivery is still being retried; wait for it to be delivered or to fail",
            ));
        }
        if let Some(endpoint_id) = &row.endpoint_id {
            if core
                .store
                .endpoint(&caller.merchant_id, endpoint_id)
                .await?
                .is_none()
            {
                return Err(ApiError::conflict(
                    "endpoint_deleted",
                    "this delivery's webhook endpoint was deleted: resend its event \
                     (POST /v1/events/{id}/resend) to another endpoint",
                ));
            }
        }
        let at = now_ms();
        // What the change below makes of the row.
        row.status = DeliveryStatus::Pending;
        row.next_attempt_at = at;
        Ok(Outcome {
            replay: None,
            status: Status::OK,
            body: success_bytes(&view_with_attempts(core, &row).await?),
            // A retry by hand is the merchant saying its endpoint works
            // again: it is no longer backed off as a whole.
            changes: std::iter::once(Change::RetryDelivery {
                merchant_id: caller.merchant_id.to_string(),
                id: row.id.clone(),
                at,
            })
            .chain(
                row.endpoint_id
                    .clone()
                    .map(|endpoint_id| Change::EndpointRecovered { endpoint_id }),
            )
            .collect(),
            updates: Vec::new(),
        })
    })
    .await?;
    if !reply.replayed {
        core.outbound.wake();
    }
    Ok(reply)
}
