//! Live payment status on the event bus's watchers: a long-poll
//! (`/v1/payments/{id}/wait`) and Server-Sent Events (`/v1/payments/{id}/events`).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::{IntentStatus, PaymentStatus, Watch};
use serde::Deserialize;

use super::{check_id, parse_query};
use crate::app::core::Core;
use crate::domain::scopes::Scope;
use crate::domain::views::PaymentView;
use crate::http::auth::Auth;
use crate::http::errors::{ok, success_bytes, ApiError};
use crate::store::PaymentRow;

/// The longest wait a request may ask for, in seconds.
const MAX_WAIT_SECS: u64 = 60;

/// Query of `GET /v1/payments/{id}/wait`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Seconds to wait, 0 to 60 (default 30).
    timeout: Option<u64>,
}

/// Whether a payment reached an outcome a waiting client acts on.
fn settled(row: &PaymentRow) -> bool {
    row.intent.status.is_terminal()
        || row.status() == PaymentStatus::Failed
        || row.intent.status == IntentStatus::RequiresCapture
}

async fn load(state: &Core, auth: &Auth, id: &str) -> Result<PaymentRow, ApiError> {
    state
        .store
        .payment(&auth.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", id))
}

/// Wait until the payment completes, fails, is canceled or awaits capture,
/// or until `timeout` seconds pass; answers the payment either way.
#[utoipa::path(get, path = "/v1/payments/{id}/wait", tag = "payments",
    params(("id" = String, Path, description = "Payment id"),
           ("timeout" = Option<u64>, Query, description = "Seconds, 0 to 60, default 30")),
    responses((status = 200, description = "The payment (check `status`)", body = PaymentView)),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn wait(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let query: WaitQuery = parse_query(&req)?;
    let timeout = query.timeout.unwrap_or(30);
    if timeout > MAX_WAIT_SECS {
        return Err(ApiError::invalid_param(
            "timeout",
            "timeout must be 0 to 60 seconds",
        ));
    }
    let id = check_id("payment", &id)?;
    let row = load(&state, &auth, id).await?;
    if settled(&row) || timeout == 0 {
        return Ok(ok(&PaymentView::new(&row)));
    }
    // Subscribe first, then read again: a change between the two reads is not missed.
    let mut watch = state.bus.watch_payment(&row.intent.id);
    let mut row = load(&state, &auth, id).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    while !settled(&row) {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(_)) => row = load(&state, &auth, id).await?,
            Ok(None) => {
                row = load(&state, &auth, id).await?;
                break;
            }
            Err(_) => break,
        }
    }
    Ok(ok(&PaymentView::new(&row)))
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

struct Stream {
    state: web::Data<Core>,
    auth: Auth,
    id: String,
    watch: Watch,
    first: Option<PaymentRow>,
    done: bool,
}

/// Server-Sent Events: the payment now, then after each change, until it
/// settles; a comment every 15 s keeps the connection open.
#[utoipa::path(get, path = "/v1/payments/{id}/events", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "text/event-stream of `payment` events")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn events(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let id = check_id("payment", &id)?.to_owned();
    let row = load(&state, &auth, &id).await?;
    let watch = state.bus.watch_payment(&row.intent.id);
    let row = load(&state, &auth, &id).await?;
    let stream = Stream {
        state,
        auth,
        id,
        watch,
        first: Some(row),
        done: false,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(row) = s.first.take() {
            s.done = settled(&row);
            return Some((Ok::<_, actix_web::Error>(sse_frame(&row)), s));
        }
        match tokio::time::timeout(Duration::from_secs(15), s.watch.next()).await {
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s)),
            Ok(next) => {
                let row = s
                    .state
                    .store
                    .payment(&s.auth.merchant_id, &s.id)
                    .await
                    .ok()
                    .flatten()?;
                s.done = next.is_none() || settled(&row);
                Some((Ok(sse_frame(&row)), s))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body))
}
