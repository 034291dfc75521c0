//! Live payment status on the event bus's watchers: waiting for a payment
//! to settle, and watching each change of it; [`LiveLimits`] bounds how
//! many of them a merchant holds open, and for how long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_core::{IntentStatus, PaymentStatus, Watch};
use tokio::sync::watch;

use crate::app::core::Core;
use crate::app::payments_api::load;
use crate::domain::error::{ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::PaymentRow;

/// The longest wait a request may ask for, in seconds.
pub(crate) const MAX_WAIT_SECS: u64 = 60;

/// Whether a payment reached an outcome a waiting client acts on.
pub(crate) fn settled(row: &PaymentRow) -> bool {
    row.intent.status.is_terminal()
        || row.status() == PaymentStatus::Failed
        || row.intent.status == IntentStatus::RequiresCapture
}

/// What bounds the live requests (event streams and long polls): how many
/// one merchant holds open at once, how long a stream lives, and the
/// server's stop, which ends them all.
pub(crate) struct LiveLimits {
    per_merchant: usize,
    max_duration: Duration,
    open: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    stopping: watch::Sender<bool>,
}

/// One open live request of a merchant; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct LiveSlot {
    merchant_id: Arc<str>,
    open: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.merchant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.merchant_id);
            }
        }
    }
}

impl LiveLimits {
    /// At most `per_merchant` live requests per merchant (0: no limit), streams ending after `max_duration`.
    pub(crate) fn new(per_merchant: usize, max_duration: Duration) -> Self {
        LiveLimits {
            per_merchant,
            max_duration,
            open: Arc::default(),
            stopping: watch::Sender::new(false),
        }
    }

    /// A place for one more live request of the caller's merchant; 429 when it holds its maximum.
    pub(crate) fn open(&self, caller: &Caller) -> Result<LiveSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(caller.merchant_id.clone()).or_insert(0);
        if self.per_merchant > 0 && *count >= self.per_merchant {
            return Err(ApiError::new(
                Status::TOO_MANY_REQUESTS,
                "too_many_live_requests",
                format!(
                    "this merchant already holds {} event streams and long polls open; close one first",
                    self.per_merchant
                ),
            )
            .with_retry_after(5));
        }
        *count += 1;
        Ok(LiveSlot {
            merchant_id: caller.merchant_id.clone(),
            open: self.open.clone(),
        })
    }

    /// How long an event stream lives at most.
    pub(crate) fn max_duration(&self) -> Duration {
        self.max_duration
    }

    /// Ends every live request (the server stops).
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once the server stops.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The payment once it settles, or as it is after `timeout` (or when the server stops).
pub(crate) async fn wait(
    core: &Core,
    caller: &Caller,
    id: &str,
    timeout: Duration,
) -> Result<PaymentRow, ApiError> {
    let row = load(core, caller, id).await?;
    if settled(&row) || timeout.is_zero() {
        return Ok(row);
    }
    let _slot = core.live.open(caller)?;
    let (mut row, mut watch) = watch(core, caller, id, &row).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let stopped = core.live.stopped();
    tokio::pin!(stopped);
    while !settled(&row) {
        tokio::select! {
            next = tokio::time::timeout_at(deadline, watch.next()) => match next {
                Ok(Some(_)) => row = load(core, caller, id).await?,
                Ok(None) => {
                    row = load(core, caller, id).await?;
                    break;
                }
                Err(_) => break,
            },
            () = &mut stopped => break,
        }
    }
    Ok(row)
}

/// Subscribes to the changes of `row` (loaded before), then reads it again:
/// a change between the two reads is not missed.
async fn watch(
    core: &Core,
    caller: &Caller,
    id: &str,
    row: &PaymentRow,
) -> Result<(PaymentRow, Watch), ApiError> {
    let watch = core.bus.watch_payment(&row.intent.id);
    Ok((load(core, caller, id).await?, watch))
}

/// The payment now, a watch on its later changes, and the stream's place
/// among its merchant's live requests (429 when they are at their maximum).
pub(crate) async fn subscribe(
    core: &Core,
    caller: &Caller,
    id: &str,
) -> Result<(PaymentRow, Watch, LiveSlot), ApiError> {
    let row = load(core, caller, id).await?;
    let slot = core.live.open(caller)?;
    let (row, watch) = watch(core, caller, id, &row).await?;
    Ok((row, watch, slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scopes::Scopes;

    #[test]
    fn live_requests_are_capped_per_merchant() {
        let limits = LiveLimits::new(2, Duration::from_secs(1));
        let caller = |merchant: &str| Caller {
            merchant_id: merchant.into(),
            key_id: "key_1".into(),
            scopes: Scopes::all(),
        };
        let first = limits.open(&caller("m_a")).unwrap();
        let _second = limits.open(&caller("m_a")).unwrap();
        let refused = limits.open(&caller("m_a")).unwrap_err();
        assert_eq!(refused.code(), "too_many_live_requests");
        assert!(
            limits.open(&caller("m_b")).is_ok(),
            "another merchant has its own"
        );
        drop(first);
        assert!(
            limits.open(&caller("m_a")).is_ok(),
            "a closed one frees its place"
        );
    }
}
