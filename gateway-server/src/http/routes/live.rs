//! Live payment status on the event bus's watchers: a long-poll
//! (`/v1/payments/{id}/wait`) and Server-Sent Events (`/v1/payments/{id}/events`).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::Watch;
use serde::Deserialize;

use crate::app::api_keys;
use crate::app::core::Core;
use crate::app::live::{self, settled, LiveSlot, MAX_WAIT_SECS};
use crate::domain::scopes::Caller;
use crate::domain::views::PaymentView;
use crate::http::auth::{presented_key_hash, Auth, PaymentsRead};
use crate::http::errors::{success_bytes, ApiError, Status};
use crate::http::extract::{PaymentId, Query, Success, Validate};
use crate::store::PaymentRow;

/// Query of `GET /v1/payments/{id}/wait`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Seconds to wait, 0 to 60 (default 30).
    timeout: Option<u64>,
}

impl Validate for WaitQuery {
    type Valid = Duration;

    fn validate(self) -> Result<Duration, ApiError> {
        let timeout = self.timeout.unwrap_or(30);
        if timeout > MAX_WAIT_SECS {
            return Err(ApiError::invalid_param(
                "timeout",
                "timeout must be 0 to 60 seconds",
            ));
        }
        Ok(Duration::from_secs(timeout))
    }
}

/// Wait until the payment completes, fails, is canceled or awaits capture,
/// or until `timeout` seconds pass; answers the payment either way.
#[utoipa::path(get, path = "/v1/payments/{id}/wait", tag = "payments",
    params(("id" = String, Path, description = "Payment id"),
           ("timeout" = Option<u64>, Query, description = "Seconds, 0 to 60, default 30")),
    responses((status = 200, description = "The payment (check `status`)", body = PaymentView)),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn wait(
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    Query(timeout): Query<WaitQuery>,
    id: PaymentId,
) -> Result<Success, ApiError> {
    let row = live::wait(&core, &auth, &id, timeout).await?;
    Ok(Success::of(&PaymentView::new(&row)))
}

fn sse_frame(row: &PaymentRow) -> Bytes {
    let data = success_bytes(&PaymentView::new(row));
    let mut frame = Vec::with_capacity(data.len() + 64);
    frame.extend_from_slice(b"event: payment\nid: ");
    frame.extend_from_slice(row.updated_at.to_string().as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(&data);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// What every event stream shares: the key that opened it, checked again
/// every [`KEY_CHECK_EVERY`] (a revoked key ends the stream), the time it
/// ends at the latest, the server's stop, the keep-alive comments, and its
/// place among the merchant's live requests.
pub(crate) struct Lifeline {
    state: web::Data<Core>,
    key_hash: String,
    until: tokio::time::Instant,
    _slot: LiveSlot,
}

/// What a stream's wait ended with.
pub(crate) enum Woke<T> {
    /// What it waited for.
    Ready(T),
    /// Nothing for [`KEEP_ALIVE_EVERY`]: send [`KEEP_ALIVE`].
    KeepAlive,
    /// The stream ends: its last frame is [`end_frame`] of this.
    Ended(ApiError),
}

/// The comment a quiet stream sends.
pub(crate) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

impl Lifeline {
    /// The lifeline of a stream opened by `req` now, holding `slot`.
    pub(crate) fn new(state: web::Data<Core>, req: &HttpRequest, slot: LiveSlot) -> Self {
        let until = tokio::time::Instant::now() + state.live.max_duration();
        Lifeline {
            key_hash: presented_key_hash(req),
            state,
            until,
            _slot: slot,
        }
    }

    /// Waits for `next`, a keep-alive, or the stream's end.
    pub(crate) async fn wait<T>(&self, next: impl std::future::Future<Output = T>) -> Woke<T> {
        let keep_alive = tokio::time::Instant::now() + KEEP_ALIVE_EVERY;
        let stopped = self.state.live.stopped();
        tokio::pin!(stopped, next);
        loop {
            let check = tokio::time::sleep(KEY_CHECK_EVERY);
            tokio::select! {
                value = &mut next => return Woke::Ready(value),
                () = tokio::time::sleep_until(keep_alive) => return Woke::KeepAlive,
                () = tokio::time::sleep_until(self.until) => return Woke::Ended(ApiError::new(
                    Status::REQUEST_TIMEOUT,
                    "stream_expired",
                    "the stream reached its longest duration; open a new one to keep watching",
                )),
                () = &mut stopped => return Woke::Ended(ApiError::new(
                    Status::SERVICE_UNAVAILABLE,
                    "server_stopping",
                    "the server is stopping; reconnect shortly",
                )),
                () = check => {
                    if !api_keys::still_valid(&self.state, &self.key_hash).await {
                        return Woke::Ended(ApiError::new(
                            Status::UNAUTHORIZED,
                            "invalid_api_key",
                            "the API key was revoked: the stream ends",
                        ));
                    }
                }
            }
        }
    }
}

/// A payment's event stream between two frames.
struct Stream {
    state: web::Data<Core>,
    auth: Caller,
    id: String,
    watch: Watch,
    first: Option<PaymentRow>,
    done: bool,
    lifeline: Lifeline,
}

/// How often a stream checks that its key is still valid.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a quiet stream sends a comment, keeping the connection open.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// The last frame of a stream that ends early: an `end` event carrying the
/// failure envelope that says why.
pub(crate) fn end_frame(why: ApiError) -> Bytes {
    let data = why.body_bytes();
    let mut frame = Vec::with_capacity(data.len() + 32);
    frame.extend_from_slice(b"event: end\ndata: ");
    frame.extend_from_slice(&data);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The answer that sends `frames` as `text/event-stream`.
pub(crate) fn event_stream(
    frames: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(frames)
}

impl Stream {
    /// The next frame, and whether it is the last.
    async fn next_frame(&mut self) -> Option<(Bytes, bool)> {
        if let Some(row) = self.first.take() {
            return Some((sse_frame(&row), settled(&row)));
        }
        match self.lifeline.wait(self.watch.next()).await {
            Woke::KeepAlive => Some((Bytes::from_static(KEEP_ALIVE), false)),
            Woke::Ended(why) => Some((end_frame(why), true)),
            Woke::Ready(next) => {
                let row = self
                    .state
                    .store
                    .payment(&self.auth.merchant_id, &self.id)
                    .await
                    .ok()
                    .flatten()?;
                Some((sse_frame(&row), next.is_none() || settled(&row)))
            }
        }
    }
}

/// Server-Sent Events: the payment now, then after each change, until it
/// settles; a comment every 15 s keeps the connection open. A stream ends
/// early, with an `end` event naming why, when its key is revoked, when it
/// reaches its longest duration (`GATEWAY_LIVE_STREAM_MAX`), or when the
/// server stops; a merchant holds at most `GATEWAY_LIVE_PER_MERCHANT`
/// streams and long polls open (429 beyond).
#[utoipa::path(get, path = "/v1/payments/{id}/events", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "text/event-stream of `payment` events, and a last `end` event when it ends before the payment settles")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn events(
    core: web::Data<Core>,
    req: HttpRequest,
    auth: Auth<PaymentsRead>,
    id: PaymentId,
) -> Result<HttpResponse, ApiError> {
    let (row, watch, slot) = live::subscribe(&core, &auth, &id).await?;
    let stream = Stream {
        lifeline: Lifeline::new(core.clone(), &req, slot),
        state: core,
        auth: auth.into_caller(),
        id: id.into_string(),
        watch,
        first: Some(row),
        done: false,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        if s.done {
            return None;
        }
        let (frame, last) = s.next_frame().await?;
        s.done = last;
        Some((Ok::<_, actix_web::Error>(frame), s))
    });
    Ok(event_stream(body))
}
