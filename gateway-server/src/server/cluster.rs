//! The cluster event bus: several gateway instances on one PostgreSQL
//! database see each other's intent changes.
//!
//! A [`ClusterRelay`] joins an instance's [`EventBus`] to the database:
//!
//! * **Out**: every change published on the local bus with
//!   `context.local == true` is written to the `cluster_events` table, and a
//!   `NOTIFY gateway_events` carries only the row id (notification payloads
//!   are limited to 8000 bytes; an intent with metadata can be larger).
//! * **In**: a `LISTEN gateway_events` connection wakes the relay, which reads
//!   the rows after the last id it saw and publishes the other instances'
//!   changes on the local bus with `context.local = false` (so `local_only`
//!   handlers skip them, and watchers and `wait_for_payment` see them). The
//!   bus drops an event id it has already seen.
//! * **Catching up**: the relay also reads the table every second, and at
//!   once after the listening connection was lost and re-established, so what
//!   was published meanwhile still arrives. Ids are taken when a row is
//!   inserted but become visible when its transaction commits, so an id
//!   skipped over is watched for a while (a writer that commits late) before
//!   it is given up as a rolled-back insert.
//!   A relay that starts also watches the ids below the newest row that
//!   are missing (rows of transactions still open), so a row committed
//!   late with a lower id than one already visible is not missed.
//! * Rows older than an hour are deleted.
//! * **Cache invalidations**: what a change made stale in the instances'
//!   caches (a revoked API key, a merchant's new credentials or webhook URL,
//!   see `app::invalidation`) is sent as a small `NOTIFY
//!   gateway_invalidations` payload, and the others forget it on arrival.
//!   Notices are not stored: after the listening connection was lost, the
//!   relay subscribes again and forgets everything cached, and no cached
//!   value outlives its TTL anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::{EventBus, IntentChange};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::invalidation::Invalidation;
use crate::store::postgres::migrate;
use crate::support::ids::new_id;
use crate::support::metrics::Metrics;

/// The `LISTEN`/`NOTIFY` channel of bus events.
const CHANNEL: &str = "gateway_events";
/// The `LISTEN`/`NOTIFY` channel of cache invalidations.
const INVALIDATIONS: &str = "gateway_invalidations";
/// How often the table is read even without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long an id skipped over is waited for.
const GAP_GRACE: Duration = Duration::from_secs(30);
/// The most skipped ids watched at once.
const MAX_GAPS: usize = 10_000;
/// Rows read per query.
const PAGE: i64 = 500;
/// Changes written per insert.
const BATCH: usize = 256;
/// How long rows stay in `cluster_events`, in milliseconds.
const RETENTION_MS: i64 = 60 * 60 * 1000;
/// How often old rows are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[error("cluster bus: {0}")]
pub struct ClusterError(String);

/// The cache side of a relay: what this instance's changes made stale goes
/// out from `outgoing`; what the others announce comes in on `incoming`.
#[derive(Debug)]
pub(crate) struct CacheLink {
    pub(crate) outgoing: mpsc::UnboundedReceiver<Invalidation>,
    pub(crate) incoming: mpsc::UnboundedSender<Invalidation>,
}

/// Carries an instance's bus events to and from the other instances on the
/// same PostgreSQL database. Dropping it (or [`ClusterRelay::stop`]) stops it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use gateway_core::EventBus;
/// use gateway_server::cluster::ClusterRelay;
///
/// let pool = sqlx::PgPool::connect("postgres://gateway@db/gateway").await?;
/// let bus = EventBus::new();
/// let relay = ClusterRelay::start(bus.clone(), pool).await?;
/// // Changes published on `bus` now reach the other instances, and theirs reach `bus`.
/// relay.stop();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClusterRelay {
    instance: String,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterRelay {
    /// Applies the PostgreSQL migrations if needed, subscribes, and starts
    /// relaying. Changes published on `bus` from now on reach the other
    /// instances; theirs published from now on reach `bus`.
    pub async fn start(bus: EventBus, pool: PgPool) -> Result<ClusterRelay, ClusterError> {
        ClusterRelay::start_linked(bus, pool, None, Arc::new(Metrics::new())).await
    }

    /// [`ClusterRelay::start`], also carrying cache invalidations over
    /// `caches`, and counting the changes it publishes (and their handlers'
    /// runs) in `metrics`.
    pub(crate) async fn start_linked(
        bus: EventBus,
        pool: PgPool,
        caches: Option<CacheLink>,
        metrics: Arc<Metrics>,
    ) -> Result<ClusterRelay, ClusterError> {
        let fail = |error: &dyn std::fmt::Display| ClusterError(error.to_string());
        migrate(&pool).await.map_err(|error| fail(&error))?;
        let instance = format!("gw_{}", new_id());
        let listener = subscribe(&pool).await.map_err(|error| fail(&error))?;
        // Subscribed first, then the high-water mark: nothing falls in between.
        let (last, missing) = starting_point(&pool).await.map_err(|error| fail(&error))?;
        let now = Instant::now();
        let watch = bus.watch_all();
        let (wake, wakeups) = mpsc::channel(1);
        let inbound = Inbound {
            bus: bus.clone(),
            metrics,
            pool: pool.clone(),
            instance: instance.clone(),
            last,
            gaps: missing.into_iter().map(|id| (id, now)).collect(),
        };
        let (outgoing, incoming) = match caches {
            Some(link) => (Some(link.outgoing), Some(link.incoming)),
            None => (None, None),
        };
        let mut tasks = vec![
            tokio::spawn(listen(pool.clone(), listener, wake, incoming)),
            tokio::spawn(inbound.run(wakeups)),
            tokio::spawn(outbound(watch, pool.clone(), instance.clone())),
        ];
        if let Some(outgoing) = outgoing {
            tasks.push(tokio::spawn(announce_loop(outgoing, pool)));
        }
        tracing::info!(instance = %instance, "cluster bus relay started");
        Ok(ClusterRelay { instance, tasks })
    }

    /// This instance's id in the `cluster_events` table (`origin`).
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// Stops relaying (changes not yet written are dropped).
    pub fn stop(self) {}
}

impl Drop for ClusterRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A connection listening on both channels.
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, INVALIDATIONS]).await?;
    Ok(listener)
}

/// The newest id, and the ids below it not visible yet that a transaction
/// still open may hold, read in one snapshot. Only ids taken in the last
/// [`GAP_GRACE`] (after the newest row older than that), at most
/// [`MAX_GAPS`] of them, are watched, as for gaps found later.
async fn starting_point(pool: &PgPool) -> Result<(i64, Vec<i64>), sqlx::Error> {
    let row = sqlx::query(
        "WITH newest AS (SELECT COALESCE(MAX(id), 0) AS id FROM cluster_events), \
         settled AS (SELECT GREATEST( \
             COALESCE((SELECT id FROM cluster_events \
                       WHERE created_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - $1 \
                       ORDER BY created_at DESC LIMIT 1), 0), \
             (SELECT id FROM newest) - $2) AS id) \
         SELECT newest.id AS last, ARRAY( \
             SELECT candidate FROM generate_series(settled.id + 1, newest.id - 1) AS candidate \
             WHERE NOT EXISTS (SELECT 1 FROM cluster_events WHERE id = candidate) \
             ORDER BY candidate) AS missing \
         FROM newest, settled",
    )
    .bind(GAP_GRACE.as_millis() as i64)
    .bind(MAX_GAPS as i64)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("last")?, row.try_get("missing")?))
}

/// Wakes the reader on every event notification and hands invalidations to
/// `incoming`. When the connection is lost it subscribes again on a new one,
/// then wakes the reader (to catch up) and forgets every cached value (its
/// notices may have been missed).
async fn listen(
    pool: PgPool,
    mut listener: PgListener,
    wake: mpsc::Sender<()>,
    incoming: Option<mpsc::UnboundedSender<Invalidation>>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == INVALIDATIONS => {
                match serde_json::from_str::<Invalidation>(notification.payload()) {
                    Ok(invalidation) => {
                        if let Some(incoming) = &incoming {
                            let _ = incoming.send(invalidation);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cluster bus: skipped an unreadable invalidation"),
                }
                continue;
            }
            Ok(Some(_)) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Ok(None) | Err(_) => {
                tracing::warn!("cluster bus: the LISTEN connection was lost; reconnecting, then catching up");
                drop(listener);
                let Some(again) = resubscribe(&pool).await else {
                    return;
                };
                listener = again;
                if let Some(incoming) = &incoming {
                    let _ = incoming.send(Invalidation::Everything);
                }
            }
        }
        // A full channel already holds a wake-up: the reader will read everything.
        let _ = wake.try_send(());
    }
}

/// A new listening connection, retried with backoff; `None` once the pool is closed.
async fn resubscribe(pool: &PgPool) -> Option<PgListener> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if pool.is_closed() {
            return None;
        }
        match subscribe(pool).await {
            Ok(listener) => return Some(listener),
            Err(sqlx::Error::PoolClosed) => return None,
            Err(error) => {
                tracing::warn!(%error, "cluster bus: LISTEN failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Tells the other instances (and any listening relay) that `invalidation`
/// is stale. A `NOTIFY` payload is at most 8000 bytes; these are ids.
pub(crate) async fn announce(pool: &PgPool, invalidation: &Invalidation) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(invalidation).map_err(|error| sqlx::Error::Encode(error.into()))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(INVALIDATIONS)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

/// Announces this instance's invalidations, retrying while the database is unreachable.
async fn announce_loop(mut outgoing: mpsc::UnboundedReceiver<Invalidation>, pool: PgPool) {
    while let Some(invalidation) = outgoing.recv().await {
        let mut backoff = Duration::from_millis(100);
        loop {
            match announce(&pool, &invalidation).await {
                Ok(()) => break,
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "cluster bus: announcing an invalidation failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

struct Inbound {
    bus: EventBus,
    metrics: Arc<Metrics>,
    pool: PgPool,
    instance: String,
    /// The highest id read.
    last: i64,
    /// Ids below `last` not seen yet, and since when.
    gaps: BTreeMap<i64, Instant>,
}

impl Inbound {
    async fn run(mut self, mut wakeups: mpsc::Receiver<()>) {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listening = true;
        let mut pruned = Instant::now();
        loop {
            tokio::select! {
                woke = wakeups.recv(), if listening => listening = woke.is_some(),
                _ = poll.tick() => {}
            }
            if self.pool.is_closed() {
                return;
            }
            if let Err(error) = self.catch_up().await {
                tracing::warn!(%error, "cluster bus: reading events failed; retrying");
            }
            if pruned.elapsed() >= PRUNE_INTERVAL {
                pruned = Instant::now();
                let pruning = sqlx::query(
                    "DELETE FROM cluster_events WHERE created_at < \
                     (extract(epoch from clock_timestamp()) * 1000)::bigint - $1",
                )
                .bind(RETENTION_MS)
                .execute(&self.pool)
                .await;
                if let Err(error) = pruning {
                    tracing::warn!(%error, "cluster bus: pruning events failed");
                }
            }
        }
    }

    /// Reads every row after `last` (and the gaps) and publishes the other instances' changes.
    async fn catch_up(&mut self) -> Result<(), sqlx::Error> {
        loop {
            let gaps: Vec<i64> = self.gaps.keys().copied().collect();
            let rows = sqlx::query(
                "SELECT id, CASE WHEN origin = $3 THEN NULL ELSE payload END AS payload \
                 FROM cluster_events WHERE id > $1 OR id = ANY($2) ORDER BY id LIMIT $4",
            )
            .bind(self.last)
            .bind(&gaps)
            .bind(&self.instance)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let now = Instant::now();
            let mut advanced = false;
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                if id > self.last {
                    for skipped in (self.last + 1)..id {
                        if self.gaps.len() >= MAX_GAPS {
                            break;
                        }
                        self.gaps.insert(skipped, now);
                    }
                    self.last = id;
                    advanced = true;
                } else {
                    self.gaps.remove(&id);
                }
                let payload: Option<String> = row.try_get("payload")?;
                if let Some(payload) = payload {
                    self.publish(id, &payload);
                }
            }
            if !advanced || rows.len() < PAGE as usize {
                break;
            }
        }
        self.gaps.retain(|_, since| since.elapsed() < GAP_GRACE);
        Ok(())
    }

    fn publish(&self, id: i64, payload: &str) {
        match serde_json::from_str::<IntentChange>(payload) {
            Ok(mut change) => {
                change.context.local = false;
                // A duplicate (an event id this bus saw already) is dropped by the bus.
                self.metrics.publish_counted_in_background(&self.bus, change);
            }
            Err(error) => tracing::warn!(id, %error, "cluster bus: skipped an unreadable event"),
        }
    }
}

/// Adds `change` to `batch` if this instance received it (changes from other
/// instances are theirs to relay).
fn keep(change: &IntentChange, batch: &mut Vec<String>) {
    if change.context.local {
        match serde_json::to_string(change) {
            Ok(json) => batch.push(json),
            Err(error) => tracing::warn!(%error, "cluster bus: cannot encode a change"),
        }
    }
}

/// Writes the local bus's own changes to `cluster_events`, in batches.
async fn outbound(mut watch: gateway_core::Watch, pool: PgPool, instance: String) {
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = watch.next().await else {
            return;
        };
        keep(&first, &mut batch);
        while batch.len() < BATCH {
            // Whatever else is already waiting goes in the same insert.
            match tokio::time::timeout(Duration::ZERO, watch.next()).await {
                Ok(Some(change)) => keep(&change, &mut batch),
                _ => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let written = sqlx::query(
                "WITH inserted AS ( \
                   INSERT INTO cluster_events (origin, payload, created_at) \
                   SELECT $1, payload, (extract(epoch from clock_timestamp()) * 1000)::bigint \
                   FROM unnest($2::text[]) AS payload RETURNING id) \
                 SELECT pg_notify($3, MAX(id)::text) FROM inserted",
            )
            .bind(&instance)
            .bind(&batch)
            .bind(CHANNEL)
            .execute(&pool)
            .await;
            match written {
                Ok(_) => break,
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, pending = batch.len(), "cluster bus: writing events failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
