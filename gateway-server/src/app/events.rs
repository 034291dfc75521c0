//! The merchant's events (`GET /v1/events`, `GET /v1/events/{id}`): every
//! merchant-visible change, stored with the change whether or not it was
//! delivered anywhere, with the deliveries made of it; and sending an event
//! again (`POST /v1/events/{id}/resend`).
//!
//! An event's view is its payload exactly as endpoints receive it
//! ([`outbound::event_payload`]) plus `payment_id`, `created_at` and, for one
//! event, its deliveries with their attempts. Events are kept for
//! `Config::retention` (`app::retention`), longer while a delivery of theirs
//! is pending.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::deliveries::{with_attempts, DeliveryView};
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::lists::{Page, PageRequest};
use crate::app::outbound::{delivery_of, event_payload, receives};
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{Change, EndpointRow, EventFilter, EventRow};
use crate::support::clock::{now_ms, rfc3339};

/// A merchant-visible event: the payload endpoints receive, and where it went.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventView {
    /// `evt_…`.
    id: String,
    object: &'static str,
    /// `payment.completed`, …
    #[serde(rename = "type")]
    event_type: String,
    /// Unix seconds, as in the payload.
    created: i64,
    /// Increasing in the order events were stored (the payload's `sequence`).
    sequence: i64,
    payment_id: String,
    created_at: String,
    /// `{payment, refund?}` as in the payload.
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// Every delivery of the event with its attempts (one event only).
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryView>>,
}

impl EventView {
    /// The view of `row`, with its deliveries when given.
    pub(crate) fn new(row: &EventRow, deliveries: Option<Vec<DeliveryView>>) -> Self {
        let payload: serde_json::Value = serde_json::from_str(&event_payload(row)).unwrap_or_default();
        EventView {
            id: row.id.clone(),
            object: "event",
            event_type: row.event_type.clone(),
            created: row.created_at / 1000,
            sequence: row.seq,
            payment_id: row.payment_id.clone(),
            created_at: rfc3339(row.created_at),
            data: payload.get("data").cloned().unwrap_or_default(),
            deliveries,
        }
    }
}

/// The filters of `GET /v1/events`, validated.
#[derive(Debug, Default)]
pub(crate) struct EventSearch {
    pub(crate) event_type: Option<String>,
    pub(crate) payment_id: Option<String>,
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
}

/// One page of the merchant's events, newest first; 400 for a cursor that
/// names no event of the merchant.
pub(crate) async fn list(
    core: &Core,
    caller: &Caller,
    search: EventSearch,
    page: PageRequest,
) -> Result<Page<EventRow>, ApiError> {
    let before_seq = page
        .cursor_seq(|cursor| async move {
            Ok(core
                .store
                .event(&caller.merchant_id, &cursor)
                .await?
                .map(|row| row.seq))
        })
        .await?;
    let filter = EventFilter {
        event_type: search.event_type,
        payment_id: search.payment_id,
        since_ms: search.since_ms,
        until_ms: search.until_ms,
        before_seq,
        limit: page.fetch(),
    };
    let rows = core.store.events(&caller.merchant_id, &filter).await?;
    Ok(Page::cut(rows, &page))
}

async fn load(core: &Core, caller: &Caller, id: &str) -> Result<EventRow, ApiError> {
    core.store
        .event(&caller.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("event", id))
}

/// The most deliveries an event's answer shows, the newest: an event resent
/// again and again must not make its answer (and the attempts read for it)
/// grow without bound.
const DELIVERIES_SHOWN: u32 = 50;

/// The newest deliveries of `event` with their attempts, oldest first.
async fn deliveries_of(
    core: &Core,
    caller: &Caller,
    event: &EventRow,
) -> Result<Vec<DeliveryView>, ApiError> {
    let rows = core
        .store
        .event_deliveries(&caller.merchant_id, &event.id, DELIVERIES_SHOWN)
        .await?;
    with_attempts(core, &rows).await
}

/// One of the merchant's events with its deliveries and their attempts; 404
/// if there is none (another merchant's included).
pub(crate) async fn get(core: &Core, caller: &Caller, id: &str) -> Result<EventView, ApiError> {
    let event = load(core, caller, id).await?;
    let deliveries = deliveries_of(core, caller, &event).await?;
    Ok(EventView::new(&event, Some(deliveries)))
}

/// Sends an event again, once per `Idempotency-Key`: a new delivery to
/// `endpoint_id` (any of the merchant's endpoints, enabled or not: the
/// merchant asked for it), or, without one, to every enabled endpoint whose
/// `enabled_events` match. 404 for an unknown event or endpoint; 409
/// `no_matching_endpoint` when no endpoint would receive it. Answers the
/// event with its deliveries, the new ones included.
pub(crate) async fn resend(
    core: &Core,
    caller: &Caller,
    id: &str,
    endpoint_id: Option<String>,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let reply = idempotency::run(core, caller, post, |_keys| async move {
        let event = load(core, caller, id).await?;
        let targets: Vec<EndpointRow> = match &endpoint_id {
            Some(endpoint_id) => vec![core
                .store
                .endpoint(&caller.merchant_id, endpoint_id)
                .await?
                .ok_or_else(|| ApiError::not_found("webhook endpoint", endpoint_id))?],
            None => core
                .store
                .endpoints(&caller.merchant_id)
                .await?
                .into_iter()
                .filter(|endpoint| endpoint.enabled && receives(&endpoint.enabled_events, &event.event_type))
                .collect(),
        };
        if targets.is_empty() {
            return Err(ApiError::conflict(
                "no_matching_endpoint",
                format!(
                    "no enabled webhook endpoint receives {} events: add one, enable one, or name one \
                     with endpoint_id",
                    event.event_type
                ),
            ));
        }
        let now = now_ms();
        let new: Vec<_> = targets
            .iter()
            .map(|endpoint| delivery_of(&event, endpoint, now))
            .collect();
        let mut deliveries = deliveries_of(core, caller, &event).await?;
        deliveries.extend(new.iter().map(|row| DeliveryView::new(row, Some(Vec::new()))));
        Ok(Outcome {
            replay: None,
            status: Status::OK,
            body: success_bytes(&EventView::new(&event, Some(deliveries))),
            changes: new
                .into_iter()
                .map(|row| Change::InsertDelivery(Box::new(row)))
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
