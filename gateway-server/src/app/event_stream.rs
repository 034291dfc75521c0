//! A merchant's events as a resumable stream (`GET /v1/events/stream`, what
//! `gateway listen` reads): the stored events after a position, in `seq`
//! order, then each new one as it is stored. The position is an event id
//! (`Last-Event-ID`), so a client that reconnects gets what it missed, in
//! order, and nothing twice; the store's `events_after` never skips an event
//! (see `EventStore::events_after`). With an endpoint, each event carries
//! the `Gateway-Signature` value that endpoint's deliveries would carry.

use gateway_core::Watch;

use crate::app::core::Core;
use crate::app::live::LiveSlot;
use crate::app::outbound::{endpoint_signer, event_payload, EVENT_TYPES};
use crate::domain::error::{ApiError, Status};
use crate::domain::scopes::Caller;

/// What a stream is asked for, validated.
#[derive(Debug, Default)]
pub(crate) struct StreamRequest {
    /// Sign each event as this endpoint's deliveries are signed.
    pub(crate) endpoint_id: Option<String>,
    /// Only these event types (none given: the endpoint's filter, or every type).
    pub(crate) types: Option<Vec<String>>,
    /// Start after this event (`Last-Event-ID`, or `after`); none: with the next event.
    pub(crate) after: Option<String>,
}

/// One event as the stream sends it.
#[derive(Debug)]
pub(crate) struct StreamedEvent {
    pub(crate) id: String,
    pub(crate) event_type: String,
    /// The body exactly as an endpoint receives it.
    pub(crate) payload: String,
    /// The `Gateway-Signature` value, when the stream names an endpoint.
    pub(crate) signature: Option<String>,
}

/// An open stream: where it stands, what it sends, and what wakes it.
pub(crate) struct EventCursor {
    caller: Caller,
    endpoint_id: Option<String>,
    /// Empty: every type.
    types: Vec<String>,
    /// The `seq` of the last event sent.
    after_seq: i64,
    /// Every committed change on the bus (this instance's and, on
    /// PostgreSQL, the others'): a hint that new events may be stored.
    changes: Watch,
}

/// Events read per batch.
const BATCH: u32 = 100;

/// Opens a stream for the caller: checks the endpoint and the resume point,
/// and takes a place among the merchant's live requests (429 when full),
/// held by the slot returned.
pub(crate) async fn open(
    core: &Core,
    caller: &Caller,
    request: StreamRequest,
) -> Result<(EventCursor, LiveSlot), ApiError> {
    let endpoint = match &request.endpoint_id {
        Some(id) => Some(
            core.store
                .endpoint(&caller.merchant_id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("webhook endpoint", id).with_param("endpoint"))?,
        ),
        None => None,
    };
    let types = match (request.types, &endpoint) {
        (Some(types), _) => stream_types(types)?,
        (None, Some(endpoint)) => crate::app::webhook_endpoints::event_list(&endpoint.enabled_events),
        (None, None) => Vec::new(),
    };
    let types = if types.iter().any(|kind| kind == "*") {
        Vec::new()
    } else {
        types
    };
    let slot = core.live.open(caller)?;
    // Subscribed before the position is read: an event stored in between is not missed.
    let changes = core.bus.watch_all();
    let after_seq = match &request.after {
        Some(id) => {
            core.store
                .event(&caller.merchant_id, id)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        Status::NOT_FOUND,
                        "event_not_found",
                        format!(
                            "cannot resume after {id}: it is not one of this merchant's events, or retention \
                             removed it; reconnect without Last-Event-ID to start with the next event"
                        ),
                    )
                    .with_param("after")
                })?
                .seq
        }
        None => latest_seq(core, caller).await?,
    };
    let cursor = EventCursor {
        caller: caller.clone(),
        endpoint_id: request.endpoint_id,
        types,
        after_seq,
        changes,
    };
    Ok((cursor, slot))
}

/// The `types` of a stream: known event types, at least one; 400 naming `types` otherwise.
fn stream_types(types: Vec<String>) -> Result<Vec<String>, ApiError> {
    if let Some(unknown) = types.iter().find(|kind| !EVENT_TYPES.contains(&kind.as_str())) {
        return Err(ApiError::invalid_param(
            "types",
            format!(
                "unknown event type {unknown:?} in types; known: {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    if types.is_empty() {
        return Err(ApiError::invalid_param(
            "types",
            "types needs at least one event type (leave it out for every type)",
        ));
    }
    Ok(types)
}

/// The `seq` of the merchant's newest event (0 without any).
async fn latest_seq(core: &Core, caller: &Caller) -> Result<i64, ApiError> {
    let newest = core
        .store
        .events(
            &caller.merchant_id,
            &crate::store::EventFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await?;
    Ok(newest.first().map_or(0, |event| event.seq))
}

impl EventCursor {
    /// The events stored after the last one sent (at most a batch), in order.
    pub(crate) async fn next_batch(&mut self, core: &Core) -> Result<Vec<StreamedEvent>, ApiError> {
        let rows = core
            .store
            .events_after(&self.caller.merchant_id, self.after_seq, &self.types, BATCH)
            .await?;
        // The endpoint's secrets are read and opened once per batch.
        let signer = match (&self.endpoint_id, rows.is_empty()) {
            (Some(endpoint), false) => Some(endpoint_signer(core, &self.caller.merchant_id, endpoint).await?),
            _ => None,
        };
        let timestamp = (core.clock)();
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            self.after_seq = row.seq;
            let payload = event_payload(&row);
            batch.push(StreamedEvent {
                signature: signer
                    .as_ref()
                    .map(|signer| signer.sign(payload.as_bytes(), timestamp)),
                id: row.id,
                event_type: row.event_type,
                payload,
            });
        }
        Ok(batch)
    }

    /// Resolves when new events may be stored: a change on the bus, or
    /// [`POLL`] as the net under a missed notice.
    pub(crate) async fn changed(&mut self) {
        use futures_util::FutureExt;
        match tokio::time::timeout(POLL, self.changes.next()).await {
            // The bus is gone (the server stops): poll only.
            Ok(None) => tokio::time::sleep(POLL).await,
            // One read covers every change already waiting.
            Ok(Some(_)) => while let Some(Some(_)) = self.changes.next().now_or_never() {},
            Err(_) => {}
        }
    }
}

/// The longest a stream waits before reading the store again.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);
