//! `GET /v1/events/stream`: the merchant's events as Server-Sent Events,
//! resumable with `Last-Event-ID` (what `gateway listen` reads).

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::app::core::Core;
use crate::app::event_stream::{self, EventCursor, StreamRequest, StreamedEvent};
use crate::http::auth::{Auth, WebhooksRead};
use crate::http::errors::ApiError;
use crate::http::extract::{Query, Validate};
use crate::http::routes::live::{end_frame, event_stream as sse_answer, Lifeline, Woke, KEEP_ALIVE};

/// Query of `GET /v1/events/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    /// Sign each event with this endpoint's secrets (`we_…`).
    endpoint: Option<String>,
    /// Comma-separated event types.
    types: Option<String>,
    /// Start after this event (`Last-Event-ID` wins when both are given).
    after: Option<String>,
}

impl Validate for StreamQuery {
    type Valid = StreamRequest;

    fn validate(self) -> Result<StreamRequest, ApiError> {
        Ok(StreamRequest {
            endpoint_id: self.endpoint,
            types: self.types.map(|types| {
                types
                    .split(',')
                    .map(str::trim)
                    .filter(|kind| !kind.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            after: self.after,
        })
    }
}

/// One event's frame: `id`, `event`, the optional `signature` field, and
/// the payload (one line of JSON) as `data`.
fn frame(event: &StreamedEvent) -> Bytes {
    let mut frame = Vec::with_capacity(event.payload.len() + 160);
    frame.extend_from_slice(b"id: ");
    frame.extend_from_slice(event.id.as_bytes());
    frame.extend_from_slice(b"\nevent: ");
    frame.extend_from_slice(event.event_type.as_bytes());
    if let Some(signature) = &event.signature {
        frame.extend_from_slice(b"\nsignature: ");
        frame.extend_from_slice(signature.as_bytes());
    }
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(event.payload.as_bytes());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// A stream between two frames.
struct Stream {
    core: web::Data<Core>,
    cursor: EventCursor,
    lifeline: Lifeline,
    done: bool,
}

impl Stream {
    /// The next frames to send (a batch of events, a keep-alive, or the end), and whether they are the last.
    async fn next_frames(&mut self) -> (Bytes, bool) {
        loop {
            match self.cursor.next_batch(&self.core).await {
                Ok(batch) if !batch.is_empty() => {
                    let frames: Vec<u8> = batch.iter().flat_map(|event| frame(event).to_vec()).collect();
                    return (Bytes::from(frames), false);
                }
                Ok(_) => {}
                Err(error) => return (end_frame(error), true),
            }
            match self.lifeline.wait(self.cursor.changed()).await {
                Woke::Ready(()) => continue,
                Woke::KeepAlive => return (Bytes::from_static(KEEP_ALIVE), false),
                Woke::Ended(why) => return (end_frame(why), true),
            }
        }
    }
}

/// The merchant's events as Server-Sent Events: each `id:` (event id),
/// `event:` (its type), `data:` (the payload exactly as an endpoint
/// receives it) and, with `endpoint`, a `signature:` field holding the
/// `Gateway-Signature` value. Starts with the next event, or after
/// `Last-Event-ID` / `after` (the events stored since, in order); a
/// comment every 15 s keeps the connection open. Ends with an `end` event
/// when the key is revoked, at the longest duration, or when the server stops.
#[utoipa::path(get, path = "/v1/events/stream", tag = "webhooks",
    params(("endpoint" = Option<String>, Query, description = "Sign each event as this endpoint's deliveries are (`we_…`)"),
           ("types" = Option<String>, Query, description = "Comma-separated event types (default: the endpoint's filter, or all)"),
           ("after" = Option<String>, Query, description = "Resume after this event id (the `Last-Event-ID` header wins)"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream of events, and a last `end` event when it ends")),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn stream(
    core: web::Data<Core>,
    req: HttpRequest,
    auth: Auth<WebhooksRead>,
    Query(mut request): Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(last) = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
    {
        request.after = Some(last.to_owned());
    }
    let (cursor, slot) = event_stream::open(&core, &auth, request).await?;
    let stream = Stream {
        lifeline: Lifeline::new(core.clone(), &req, slot),
        core,
        cursor,
        done: false,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        if s.done {
            return None;
        }
        let (frames, last) = s.next_frames().await;
        s.done = last;
        Some((Ok::<_, actix_web::Error>(frames), s))
    });
    Ok(sse_answer(body))
}
