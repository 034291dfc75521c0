//! `/v1/events`: the merchant's events, one with its deliveries, and
//! sending one again.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::core::Core;
pub(crate) use crate::app::events::EventView;
use crate::app::events::{self, EventSearch};
use crate::http::auth::{Auth, MerchantWrite, WebhooksRead};
use crate::http::errors::ApiError;
use crate::http::extract::{check_id, EventId, ListQuery, Page, Success, Validate};
use crate::http::idempotent::{Idempotent, Replied};
use crate::http::routes::payments::time_param;

/// A page of events (`app::lists::List` of [`EventView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventList {
    object: &'static str,
    data: Vec<EventView>,
    has_more: bool,
    next_cursor: Option<String>,
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    payment_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl ListQuery for EventQuery {
    const CURSOR_KIND: &'static str = "event";
    type Search = EventSearch;

    fn take_page(&mut self) -> (Option<u32>, Option<String>) {
        (self.limit.take(), self.cursor.take())
    }

    fn search(self) -> Result<EventSearch, ApiError> {
        Ok(EventSearch {
            event_type: self.event_type,
            payment_id: self.payment_id,
            since_ms: time_param("since", self.since.as_deref())?,
            until_ms: time_param("until", self.until.as_deref())?,
        })
    }
}

/// List events, newest first: every merchant-visible change, whether or not
/// it was delivered anywhere (kept for the retention period).
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("type" = Option<String>, Query, description = "Event type, e.g. payment.completed"),
           ("payment_id" = Option<String>, Query, description = "Only this payment's"),
           ("since" = Option<String>, Query, description = "Created at or after (RFC 3339, inclusive)"),
           ("until" = Option<String>, Query, description = "Created at or before (RFC 3339, inclusive)"),
           ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of events", body = EventList)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn list(
    core: web::Data<Core>,
    auth: Auth<WebhooksRead>,
    query: Page<EventQuery>,
) -> Result<Success, ApiError> {
    let page = events::list(&core, &auth, query.search, query.page).await?;
    Ok(Success::of(
        &page.list(|row| &row.id, |row| EventView::new(row, None)),
    ))
}

/// One event with every delivery made of it and their attempts.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "Event id (evt_…)")),
    responses((status = 200, description = "The event and its deliveries", body = EventView)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn get(
    core: web::Data<Core>,
    auth: Auth<WebhooksRead>,
    id: EventId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&events::get(&core, &auth, &id).await?))
}

/// `POST /v1/events/{id}/resend` (the body is optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResendRequest {
    /// Only to this endpoint (`we_…`); without it, to every enabled
    /// endpoint whose `enabled_events` match.
    endpoint_id: Option<String>,
}

impl Validate for ResendRequest {
    type Valid = Option<String>;

    fn validate(self) -> Result<Option<String>, ApiError> {
        self.endpoint_id
            .map(|id| {
                check_id("webhook endpoint", &id)?;
                Ok(id)
            })
            .transpose()
    }
}

/// Send an event again: a new delivery (same event id and payload) to the
/// endpoint named, or to every enabled endpoint whose filter matches.
#[utoipa::path(post, path = "/v1/events/{id}/resend", tag = "events",
    params(("id" = String, Path, description = "Event id (evt_…)")),
    request_body(content = ResendRequest, description = "Optional: {\"endpoint_id\": \"we_…\"}"),
    responses((status = 200, description = "The event with its deliveries, the new ones queued", body = EventView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn resend(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    body: Idempotent<ResendRequest>,
    id: EventId,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        events::resend(&core, &auth, &id, value, post.request()).await?,
    ))
}
