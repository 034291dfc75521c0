//! Locks that hold across instances sharing a database.
//!
//! [`SharedLocks`] has the shape of [`KeyedLocks`]: `lock(key).await` gives a
//! guard. Within a process the in-memory lock orders the holders; with
//! several instances (PostgreSQL) the holder also takes a lease on the key in
//! the database (`Store::try_lease`), which the guard gives back when dropped
//! and which runs out by itself if the instance dies. While held, a lease is
//! renewed every third of its length ([`Renewal`]), so a holder that works
//! longer than [`LEASE_MS`] (a slow provider) never loses it to another
//! instance. So two instances never change one payment at the same time (a
//! refund on each would otherwise add to the same stale `amount_refunded`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::store::Store;
use crate::support::ids::new_id;

/// How long a lease lasts if its holder never gives it back (or stops renewing it).
pub(crate) const LEASE_MS: i64 = 60_000;
/// How often a waiter asks again.
const POLL: Duration = Duration::from_millis(20);

tokio::task_local! {
    /// Locks whose guards were dropped inside [`hold_until_done`]: released when it ends.
    static DEFERRED: RefCell<Vec<Held>>;
}

/// Runs `work`, keeping every [`SharedLocks`] lock taken inside it until it
/// has finished. A POST handler computes its changes under a payment's lock
/// and returns them; they are committed after the handler returned, so the
/// lock must outlive the handler until that commit.
pub(crate) async fn hold_until_done<T>(work: impl Future<Output = T>) -> T {
    DEFERRED
        .scope(RefCell::new(Vec::new()), async {
            let output = work.await;
            // Give the leases back before answering, so the next holder need not wait.
            let held = DEFERRED.with(|deferred| std::mem::take(&mut *deferred.borrow_mut()));
            for Held { lease, rest } in held {
                if let Some(lease) = lease {
                    lease.release_now().await;
                }
                drop(rest);
            }
            output
        })
        .await
}

type LocalMap<K> = Arc<Mutex<HashMap<K, Arc<AsyncMutex<()>>>>>;

/// Per-key locks, shared with the other instances when the store's leases are.
pub(crate) struct SharedLocks<K: Eq + Hash + Clone + Send + 'static> {
    local: LocalMap<K>,
    store: Arc<dyn Store>,
    /// Whether other instances share the database (leases are taken only then).
    shared: bool,
    /// The lease name of a key.
    name: fn(&K) -> String,
}

/// What a guard holds: the local lock (and its key, to forget unused keys)
/// and the lease, if one was taken.
struct Parts<K: Eq + Hash + Clone + Send + 'static> {
    map: LocalMap<K>,
    key: K,
    local: Option<OwnedMutexGuard<()>>,
    lease: Option<Renewal>,
}

impl<K: Eq + Hash + Clone + Send + 'static> Drop for Parts<K> {
    fn drop(&mut self) {
        // Outside `hold_until_done`: the lease goes back in the background (see `Renewal`'s drop).
        drop(self.lease.take());
        drop(self.local.take());
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// A held lease, renewed in the background every third of its length until
/// it is released (or dropped: then it runs out by itself).
pub(crate) struct Renewal {
    store: Arc<dyn Store>,
    name: String,
    owner: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Renewal {
    /// Starts renewing the lease `name` that `owner` holds for `lease_ms`.
    pub(crate) fn start(store: Arc<dyn Store>, name: String, owner: String, lease_ms: i64) -> Self {
        let task = {
            let (store, name, owner) = (store.clone(), name.clone(), owner.clone());
            tokio::spawn(async move {
                let period = Duration::from_millis((lease_ms / 3).max(1) as u64);
                let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    ticker.tick().await;
                    match store.try_lease(&name, &owner, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(lease = %name, "a lease ran out while its holder worked");
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, lease = %name, "renewing a lease failed; retrying")
                        }
                    }
                }
            })
        };
        Renewal {
            store,
            name,
            owner,
            task: Some(task),
        }
    }

    /// Stops renewing and gives the lease back, waiting until it is.
    pub(crate) async fn release_now(mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let _ = task.await;
        if let Err(error) = self.store.release_lease(&self.name, &self.owner).await {
            tracing::warn!(%error, "releasing a lease failed; it runs out by itself");
        }
    }
}

impl Drop for Renewal {
    /// Gives the lease back in the background, once the renewal has stopped
    /// (so it cannot take the lease again); without a runtime it runs out by itself.
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let (store, name, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.owner),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = task.await;
                if let Err(error) = store.release_lease(&name, &owner).await {
                    tracing::warn!(%error, "releasing a lease failed; it runs out by itself");
                }
            });
        }
    }
}

/// Type-erased [`Parts`], kept until the end of [`hold_until_done`].
struct Held {
    /// The lease, given back (awaited) when `hold_until_done` ends.
    lease: Option<Renewal>,
    /// The rest (the local lock), released after it.
    rest: Box<dyn Send>,
}

/// Holds a key. Dropping it releases the lock, or, inside
/// [`hold_until_done`], when that ends.
pub(crate) struct SharedGuard<K: Eq + Hash + Clone + Send + 'static> {
    parts: Option<Parts<K>>,
}

impl<K: Eq + Hash + Clone + Send + 'static> SharedLocks<K> {
    pub(crate) fn new(store: Arc<dyn Store>, name: fn(&K) -> String) -> Self {
        SharedLocks {
            local: Arc::default(),
            shared: store.leases_are_shared(),
            store,
            name,
        }
    }

    /// Waits for `key` here, then (shared) for its lease.
    pub(crate) async fn lock(&self, key: K) -> SharedGuard<K> {
        let mutex = {
            let mut map = self.local.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(key.clone()).or_default().clone()
        };
        let mut parts = Parts {
            map: self.local.clone(),
            local: Some(mutex.lock_owned().await),
            lease: None,
            key,
        };
        if self.shared {
            let name = (self.name)(&parts.key);
            let owner = new_id();
            let mut failures = 0u32;
            loop {
                match self.store.try_lease(&name, &owner, LEASE_MS).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(error) => {
                        failures += 1;
                        // The database is unreachable: what follows fails anyway; do not wait forever.
                        if failures >= 50 {
                            tracing::warn!(%error, lease = %name, "cannot take a lease; going on without it");
                            break;
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            }
            parts.lease = Some(Renewal::start(self.store.clone(), name, owner, LEASE_MS));
        }
        SharedGuard { parts: Some(parts) }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Drop for SharedGuard<K> {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            let mut parts = Some(parts);
            let _ = DEFERRED.try_with(|deferred| {
                if let Some(mut parts) = parts.take() {
                    let lease = parts.lease.take();
                    deferred.borrow_mut().push(Held {
                        lease,
                        rest: Box::new(parts),
                    });
                }
            });
            // Outside `hold_until_done`: released now.
            drop(parts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_dropped_inside_hold_until_done_is_released_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store: Arc<dyn Store> = Arc::new(crate::store::SqliteStore::open(&url).await.unwrap());
        let locks = Arc::new(SharedLocks::new(store, |key: &String| key.clone()));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = {
            let (locks, order) = (locks.clone(), order.clone());
            tokio::spawn(hold_until_done(async move {
                drop(locks.lock("p".to_owned()).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
                order.lock().unwrap().push("first committed");
            }))
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _second = locks.lock("p".to_owned()).await;
        order.lock().unwrap().push("second locked");
        first.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["first committed", "second locked"]);
        drop(_second);
        assert!(
            locks.local.lock().unwrap().is_empty(),
            "unused keys are forgotten"
        );
    }
}
