//! Live payment status on the event bus's watchers: waiting for a payment
//! to settle, and watching each change of it.

use std::time::Duration;

use gateway_core::{IntentStatus, PaymentStatus, Watch};

use crate::app::core::Core;
use crate::app::payments_api::load;
use crate::domain::error::ApiError;
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

/// The payment once it settles, or as it is after `timeout`.
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
    let (mut row, mut watch) = watch(core, caller, id, &row).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    while !settled(&row) {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(_)) => row = load(core, caller, id).await?,
            Ok(None) => {
                row = load(core, caller, id).await?;
                break;
            }
            Err(_) => break,
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

/// The payment now and a watch on its later changes.
pub(crate) async fn subscribe(
    core: &Core,
    caller: &Caller,
    id: &str,
) -> Result<(PaymentRow, Watch), ApiError> {
    let row = load(core, caller, id).await?;
    watch(core, caller, id, &row).await
}
