//! Retention: stored inbound provider events, merchant webhook deliveries and
//! their attempts, and merchant events (`GET /v1/events`) are deleted once
//! older than the configured period (`Config::retention`, 30 days by
//! default), so hostile or merely busy traffic cannot grow the database
//! without bound.
//!
//! Nothing still needed goes: an inbound event not processed yet, a
//! delivery still pending (to be retried), or a merchant event with a
//! pending delivery, is kept whatever its age. Rows go
//! in bounded batches ([`BATCH`] per statement, a pause between batches), so
//! a prune never holds the database for long.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Store, StoreError};
use crate::support::clock::now_ms;
use crate::support::ids::new_id;

/// Rows deleted per statement.
pub(crate) const BATCH: u32 = 1_000;

/// The pause between two batches, leaving the database to other writers.
const PAUSE: Duration = Duration::from_millis(50);

/// How often the loop prunes.
const INTERVAL: Duration = Duration::from_secs(600);

/// The default retention period: 30 days.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What one prune pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Processed inbound provider events.
    pub webhook_events: u64,
    /// Finished merchant webhook deliveries (with their attempts).
    pub deliveries: u64,
    /// Merchant events without a pending delivery.
    pub events: u64,
}

/// Deletes everything finished before `before`, in batches of `batch`
/// with `pause` between them, until a batch comes back short.
pub(crate) async fn prune_before(
    store: &dyn Store,
    before: i64,
    batch: u32,
    pause: Duration,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    loop {
        let done = store.prune_webhook_events(before, batch).await?;
        pruned.webhook_events += done;
        if done < u64::from(batch) {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    loop {
        let done = store.prune_deliveries(before, batch).await?;
        pruned.deliveries += done;
        if done < u64::from(batch) {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    // After the deliveries: an event whose deliveries all finished goes with them.
    loop {
        let done = store.prune_events(before, batch).await?;
        pruned.events += done;
        if done < u64::from(batch) {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    Ok(pruned)
}

/// One prune pass now, for rows older than `retention`.
pub(crate) async fn prune_once(store: &dyn Store, retention: Duration) -> Result<Pruned, StoreError> {
    let before = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    prune_before(store, before, BATCH, PAUSE).await
}

/// Prunes every [`INTERVAL`] (the first pass at start), until aborted. With
/// several instances on one database, one of them prunes at a time (the
/// `retention` lease, held across passes and taken over when it runs out).
pub(crate) async fn prune_loop(store: Arc<dyn Store>, retention: Duration) {
    let owner = new_id();
    let lease_ms = i64::try_from(INTERVAL.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if store.leases_are_shared() {
            match store.try_lease("retention", &owner, lease_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "taking the retention lease failed");
                    continue;
                }
            }
        }
        match prune_once(&*store, retention).await {
            Ok(pruned) if pruned == Pruned::default() => {}
            Ok(pruned) => tracing::info!(
                webhook_events = pruned.webhook_events,
                deliveries = pruned.deliveries,
                events = pruned.events,
                "pruned old webhook events and deliveries"
            ),
            Err(error) => tracing::warn!(%error, "pruning old webhook events and deliveries failed"),
        }
    }
}
