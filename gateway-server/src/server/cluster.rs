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
//! * Rows older than an hour are deleted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gateway_core::{EventBus, IntentChange};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::postgres::migrate;
use crate::support::ids::new_id;

/// The `LISTEN`/`NOTIFY` channel.
const CHANNEL: &str = "gateway_events";
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
        let fail = |error: &dyn std::fmt::Display| ClusterError(error.to_string());
        migrate(&pool).await.map_err(|error| fail(&error))?;
        let instance = format!("gw_{}", new_id());
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|error| fail(&error))?;
        listener.listen(CHANNEL).await.map_err(|error| fail(&error))?;
        // Subscribed first, then the high-water mark: nothing falls in between.
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM cluster_events")
            .fetch_one(&pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|error| fail(&error))?;
        let watch = bus.watch_all();
        let (wake, wakeups) = mpsc::channel(1);
        let inbound = Inbound {
            bus: bus.clone(),
            pool: pool.clone(),
            instance: instance.clone(),
            last,
            gaps: BTreeMap::new(),
        };
        let tasks = vec![
            tokio::spawn(listen(listener, wake)),
            tokio::spawn(inbound.run(wakeups)),
            tokio::spawn(outbound(watch, pool, instance.clone())),
        ];
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

/// Wakes the reader on every notification, and after the connection was lost
/// (sqlx re-establishes it and its `LISTEN` before returning).
async fn listen(mut listener: PgListener, wake: mpsc::Sender<()>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => backoff = Duration::from_millis(100),
            Ok(None) => {
                tracing::warn!("cluster bus: the LISTEN connection was lost; reconnected, catching up")
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::warn!(%error, "cluster bus: LISTEN failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        // A full channel already holds a wake-up: the reader will read everything.
        let _ = wake.try_send(());
    }
}

struct Inbound {
    bus: EventBus,
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
                let _ = self.bus.publish(change);
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
