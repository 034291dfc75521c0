//! Live payment status on the event bus's watchers: a long-poll
//! (`/v1/payments/{id}/wait`) and Server-Sent Events (`/v1/payments/{id}/events`).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use gateway_core::Watch;
use serde::Deserialize;

use crate::app::core::Core;
use crate::app::live::{self, settled, MAX_WAIT_SECS};
use crate::domain::scopes::Caller;
use crate::domain::views::PaymentView;
use crate::http::auth::{Auth, PaymentsRead};
use crate::http::errors::{success_bytes, ApiError};
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

struct Stream {
    state: web::Data<Core>,
    auth: Caller,
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
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    id: PaymentId,
) -> Result<HttpResponse, ApiError> {
    let (row, watch) = live::subscribe(&core, &auth, &id).await?;
    let stream = Stream {
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
