//! `Idempotency-Key` on every POST.
//!
//! * Requests with one key (per merchant) run one at a time: concurrent
//!   duplicates wait for the first and then replay its stored response, so
//!   they make exactly one provider call. Within a process an in-memory lock
//!   orders them; across instances sharing a database, a lease on the key
//!   (`Store::try_lease`) does, and runs out after [`LEASE_MS`] if its holder died.
//! * The response of a request that ran is stored in the same transaction as
//!   its changes and replayed with `Idempotent-Replayed: true` for 24 hours;
//!   the same key with a different method, path or body is refused with 422.
//! * Validation failures and retryable provider failures (5xx, 429) are not
//!   stored, so a retry runs again.
//! * The key sent to the provider is derived from the merchant's key, so a
//!   retry after a crash between the provider call and the commit reuses it
//!   and the provider replays its first result instead of charging again.

use std::future::Future;

use gateway_core::{IdempotencyKey, MAX_IDEMPOTENCY_KEY_LEN};

use crate::app::core::Core;
use crate::app::payments::{commit_and_publish, IntentUpdate};
use crate::domain::error::{ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{Change, IdempotencyRow, Store};
use crate::support::clock::now_ms;
use crate::support::ids::{new_id, sha256_hex};

/// How long a stored response is replayed.
pub(crate) const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// How long a request may hold its key's lease; a duplicate on another
/// instance waits at most this long if the holder's instance died.
pub(crate) const LEASE_MS: i64 = 60_000;

/// How often a duplicate on another instance checks whether the first finished.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The header carrying the merchant's key.
pub(crate) const HEADER: &str = "Idempotency-Key";

/// A POST as idempotency sees it: its key and what it asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdempotentRequest<'a> {
    /// The merchant's `Idempotency-Key` if it sent one, as [`validate_key`]
    /// judged it: a refused key is answered by [`run`].
    pub(crate) key: Result<Option<&'a str>, &'a ApiError>,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// The raw body: the fingerprint covers its bytes.
    pub(crate) body: &'a [u8],
}

/// The answer to a POST: fresh, or the stored one replayed.
pub(crate) struct Reply {
    pub(crate) status: Status,
    /// The serialized envelope.
    pub(crate) body: Vec<u8>,
    /// Whether this is a stored answer (`Idempotent-Replayed: true`).
    pub(crate) replayed: bool,
}

/// What a POST handler produced: the response and the changes to commit with it.
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) body: Vec<u8>,
    pub(crate) changes: Vec<Change>,
    /// Intent changes to publish once committed.
    pub(crate) updates: Vec<IntentUpdate>,
}

/// The provider keys for one request: derived from the merchant's key when it
/// sent one, random otherwise; one per step through [`IdempotencyKey::derive`].
#[derive(Clone, Debug)]
pub(crate) struct ProviderKeys {
    base: IdempotencyKey,
}

impl ProviderKeys {
    /// From the merchant, its key and the request's fingerprint: a retry of
    /// the same request gets the same provider keys; the key reused for another
    /// request after its record expired does not collide at the provider.
    fn derived(merchant_id: &str, key: &str, fingerprint: &str) -> Result<Self, ApiError> {
        let digest = sha256_hex(format!("{merchant_id}\n{key}\n{fingerprint}").as_bytes());
        ProviderKeys::with_base(format!("gw_{}", &digest[..40]))
    }

    fn random() -> Result<Self, ApiError> {
        ProviderKeys::with_base(format!("gw_{}", new_id()))
    }

    fn with_base(base: String) -> Result<Self, ApiError> {
        let base = IdempotencyKey::new(base).map_err(|_| ApiError::internal())?;
        Ok(ProviderKeys { base })
    }

    /// The provider key for one step of the request (`create_intent`, `refund`, …).
    pub(crate) fn step(&self, step: &str) -> Result<IdempotencyKey, ApiError> {
        self.base.derive(step).map_err(|_| ApiError::internal())
    }
}

/// Runs `handler` once per merchant key of `caller`, storing and replaying its outcome.
pub(crate) async fn run<F, Fut>(
    state: &Core,
    caller: &Caller,
    request: IdempotentRequest<'_>,
    handler: F,
) -> Result<Reply, ApiError>
where
    F: FnOnce(ProviderKeys) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    let auth = caller;
    let body = request.body;
    let Some(key) = request.key.map_err(ApiError::clone)?.map(str::to_owned) else {
        // Locks the handler takes are held until its changes are committed.
        return crate::app::leases::hold_until_done(async {
            let outcome = handler(ProviderKeys::random()?).await?;
            finish(state, outcome, None).await
        })
        .await;
    };
    let fingerprint = {
        let mut material = Vec::with_capacity(body.len() + 64);
        material.extend_from_slice(request.method.as_bytes());
        material.push(b' ');
        material.extend_from_slice(request.path.as_bytes());
        material.push(b'\n');
        material.extend_from_slice(body);
        sha256_hex(&material)
    };
    let _guard = state
        .idempotency_locks
        .lock((auth.merchant_id.clone(), key.clone()))
        .await;
    let mut lease = Lease {
        store: state.store.clone(),
        name: format!("idempotency:{}:{key}", auth.merchant_id),
        owner: new_id(),
        held: false,
    };
    loop {
        if let Some(response) = replay(state, auth, &key, &fingerprint).await? {
            return Ok(response);
        }
        if !state.store.leases_are_shared() {
            // One process: the lock above is the whole story; no lease, no second read.
            break;
        }
        if state.store.try_lease(&lease.name, &lease.owner, LEASE_MS).await? {
            lease.held = true;
            // The holder before may have stored its response and let go between our two reads.
            if let Some(response) = replay(state, auth, &key, &fingerprint).await? {
                lease.release().await;
                return Ok(response);
            }
            break;
        }
        // Another instance runs this key now: wait for its stored response (or its lease to run out).
        tokio::time::sleep(LEASE_POLL).await;
    }
    let keys = ProviderKeys::derived(&auth.merchant_id, &key, &fingerprint)?;
    let response = crate::app::leases::hold_until_done(async {
        let outcome = handler(keys).await?;
        let record = IdempotencyRow {
            merchant_id: auth.merchant_id.to_string(),
            key,
            fingerprint,
            status: outcome.status.as_u16(),
            body: outcome.body.clone(),
            created_at: now_ms(),
        };
        finish(state, outcome, Some(record)).await
    })
    .await;
    lease.release().await;
    response
}

/// The stored response for `key`, if there is a fresh one for this request.
async fn replay(
    state: &Core,
    auth: &Caller,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Reply>, ApiError> {
    if let Some(stored) = state.store.idempotency(&auth.merchant_id, key).await? {
        if stored.created_at >= now_ms() - RETENTION_MS {
            if stored.fingerprint != *fingerprint {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    format!(
                        "the Idempotency-Key {key:?} was used with a different request; \
                         use a new key for a new request"
                    ),
                )
                .with_param(HEADER));
            }
            return Ok(Some(Reply {
                status: Status::from_u16(stored.status).unwrap_or(Status::OK),
                body: stored.body,
                replayed: true,
            }));
        }
    }
    Ok(None)
}

/// A key's lease while its request runs; released when done, or (if the
/// request is dropped midway) by a background task.
struct Lease {
    store: std::sync::Arc<dyn Store>,
    name: String,
    owner: String,
    held: bool,
}

impl Lease {
    async fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            if let Err(error) = self.store.release_lease(&self.name, &self.owner).await {
                tracing::warn!(%error, "releasing an idempotency lease failed; it runs out by itself");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.held {
            let (store, name, owner) = (
                self.store.clone(),
                std::mem::take(&mut self.name),
                std::mem::take(&mut self.owner),
            );
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = store.release_lease(&name, &owner).await;
                });
            }
        }
    }
}

async fn finish(
    state: &Core,
    mut outcome: Outcome,
    record: Option<IdempotencyRow>,
) -> Result<Reply, ApiError> {
    if let Some(record) = record {
        outcome.changes.push(Change::SaveIdempotency(record));
    }
    commit_and_publish(state, outcome.changes, &outcome.updates).await?;
    Ok(Reply {
        status: outcome.status,
        body: outcome.body,
        replayed: false,
    })
}

/// The `Idempotency-Key` header's value as a key: 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters (`None`: not text).
pub(crate) fn validate_key(value: Option<&str>) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::new(
            Status::BAD_REQUEST,
            "idempotency_key_invalid",
            format!("the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        )
        .with_param(HEADER)
    };
    let key = value.ok_or_else(invalid)?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(key.to_owned())
}

/// Deletes stored responses older than 24 hours, every ten minutes.
pub(crate) async fn purge_loop(store: std::sync::Arc<dyn Store>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        interval.tick().await;
        match store.purge_idempotency(now_ms() - RETENTION_MS).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "purging idempotency keys failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_keys_are_derived_per_merchant_and_step() {
        let a = ProviderKeys::derived("m1", "order-1", "f").unwrap();
        let b = ProviderKeys::derived("m1", "order-1", "f").unwrap();
        let c = ProviderKeys::derived("m2", "order-1", "f").unwrap();
        let d = ProviderKeys::derived("m1", "order-1", "g").unwrap();
        let step = |keys: &ProviderKeys, step: &str| keys.step(step).unwrap();
        assert_eq!(step(&a, "create_intent"), step(&b, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&c, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&d, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&a, "capture"));
        assert_ne!(
            step(&ProviderKeys::random().unwrap(), "x"),
            step(&ProviderKeys::random().unwrap(), "x")
        );
    }
}
