//! `Idempotency-Key` on every POST.
//!
//! * Requests with one key (per merchant) run one at a time: concurrent
//!   duplicates wait for the first and then replay its stored response, so
//!   they make exactly one provider call. Within a process an in-memory lock
//!   orders them; across instances sharing a database, a lease on the key
//!   (`Store::try_lease`) does, renewed while its holder works and running
//!   out after [`LEASE_MS`] if its holder died.
//! * Before a use case calls the provider it writes its rows ahead
//!   ([`Attempt::write_ahead`]) together with an **in-progress record**: the
//!   request's fingerprint and the id reserved for what it creates. The
//!   response is stored in the same transaction as the use case's final
//!   changes and replayed with `Idempotent-Replayed: true` for 24 hours.
//! * The fingerprint covers the method, the path and the body's canonical
//!   JSON (keys sorted, no whitespace), so a client that re-serializes its
//!   body is the same request; the same key with another request is refused
//!   with 422, also while the first is in progress or ended without an answer.
//! * A request whose record is in progress (it ended ambiguously: a timeout,
//!   an outage, a crash) is **resumed** by a retry with the same request:
//!   the same reserved id, hence the same provider keys, so the provider
//!   replays what it did instead of doing it again.
//! * Provider keys are derived from the merchant and the reserved id
//!   ([`ProviderKeys::for_resource`]), never from the body's bytes; without an
//!   `Idempotency-Key` the id is fresh, and the written-ahead row still lets
//!   reconciliation resolve an ambiguous call.
//! * Validation failures (before anything is written) are not stored, so a
//!   retry runs again; nor are answers that say "try again" ([`is_final`]:
//!   `202 Accepted` while an outcome is being resolved, `429`, `5xx`): the
//!   record stays in progress and a retry resumes.

use std::future::Future;

use gateway_core::{IdempotencyKey, MAX_IDEMPOTENCY_KEY_LEN};

use crate::app::core::Core;
use crate::app::leases::{Renewal, LEASE_MS};
use crate::app::payments::{commit_and_publish, IntentUpdate};
use crate::app::timeline;
use crate::domain::error::{ApiError, Status};
use crate::domain::records::StoredResponse;
use crate::domain::scopes::Caller;
use crate::store::{Change, IdempotencyRow, Store};
use crate::support::clock::now_ms;
use crate::support::ids::{new_id, sha256_hex};

/// How long a stored response is replayed.
pub(crate) const RETENTION_MS: i64 = crate::domain::records::IDEMPOTENCY_RETENTION_MS;

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
    /// The raw body: the fingerprint covers its canonical JSON.
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

/// What a POST handler produced: the response and the changes to commit with
/// it. An answer that is not [`is_final`] is not stored for replay.
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) body: Vec<u8>,
    pub(crate) changes: Vec<Change>,
    /// Intent changes to publish once committed.
    pub(crate) updates: Vec<IntentUpdate>,
    /// What is stored for replay when it must differ from `body`: the
    /// answer with a secret it carries (a new API key, a `client_secret`)
    /// left out, so no secret sits in the idempotency table. `None`: `body`.
    pub(crate) replay: Option<Vec<u8>>,
}

/// The provider keys of one operation: derived from the merchant and the id
/// reserved for the operation; one per step through [`IdempotencyKey::derive`].
#[derive(Clone, Debug)]
pub(crate) struct ProviderKeys {
    base: IdempotencyKey,
}

impl ProviderKeys {
    /// The keys of the operation `resource_id` of `merchant_id`: the same
    /// for every retry that resumes it (and for reconciliation), distinct for
    /// every other operation, whatever the request's bytes.
    pub(crate) fn for_resource(merchant_id: &str, resource_id: &str) -> Result<Self, ApiError> {
        let digest = sha256_hex(format!("{merchant_id}\n{resource_id}").as_bytes());
        let base = IdempotencyKey::new(format!("gw_{}", &digest[..40])).map_err(|_| ApiError::internal())?;
        Ok(ProviderKeys { base })
    }

    /// The provider key for one step of the operation (`create_intent`, `refund`, …).
    pub(crate) fn step(&self, step: &str) -> Result<IdempotencyKey, ApiError> {
        self.base.derive(step).map_err(|_| ApiError::internal())
    }
}

/// One run of a POST's use case: the id reserved for what it creates, its
/// provider keys, and the in-progress record to write ahead of the provider call.
pub(crate) struct Attempt {
    resource_id: String,
    keys: ProviderKeys,
    /// The in-progress record to write with the first write-ahead (`None`
    /// without an `Idempotency-Key`, or once written, or when resuming).
    begin: Option<IdempotencyRow>,
    resumed: bool,
}

impl Attempt {
    fn new(
        merchant_id: &str,
        resource_id: String,
        begin: Option<IdempotencyRow>,
        resumed: bool,
    ) -> Result<Self, ApiError> {
        Ok(Attempt {
            keys: ProviderKeys::for_resource(merchant_id, &resource_id)?,
            resource_id,
            begin,
            resumed,
        })
    }

    /// The id reserved for what this request creates (a payment, a refund, a
    /// card, or the operation itself): the same when a retry resumes it.
    pub(crate) fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// Whether this run resumes a request that ended without a stored answer:
    /// its written-ahead rows may exist, and its provider calls may have run.
    pub(crate) fn resumed(&self) -> bool {
        self.resumed
    }

    /// The provider key for one step (`create_intent`, `confirm`, `refund`, …).
    pub(crate) fn step(&self, step: &str) -> Result<IdempotencyKey, ApiError> {
        self.keys.step(step)
    }

    /// The operation's provider keys.
    pub(crate) fn keys(&self) -> &ProviderKeys {
        &self.keys
    }

    /// Commits `changes` (the rows that say money may move) with the
    /// in-progress record, before the provider is called, and publishes
    /// `updates`. A concurrent request that took the key first makes this fail
    /// with 409, so only one of them reaches the provider.
    pub(crate) async fn write_ahead(
        &mut self,
        core: &Core,
        mut changes: Vec<Change>,
        updates: &[IntentUpdate],
    ) -> Result<(), ApiError> {
        if let Some(record) = self.begin.take() {
            changes.push(Change::BeginIdempotency(record));
        }
        commit_and_publish(core, changes, updates)
            .await
            .map_err(|error| match error {
                crate::store::StoreError::Conflict(_) => in_progress_elsewhere(),
                other => other.into(),
            })
    }
}

/// 409: another request holds the key.
fn in_progress_elsewhere() -> ApiError {
    ApiError::conflict(
        "idempotency_key_in_use",
        "another request with this Idempotency-Key is in progress; retry shortly",
    )
    .with_param(HEADER)
}

/// The fingerprint of a request: method, path and the body's canonical JSON
/// (a body that is not JSON counts by its bytes).
fn fingerprint(request: &IdempotentRequest<'_>) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(request.body)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok());
    let body = canonical.as_deref().unwrap_or(request.body);
    let mut material = Vec::with_capacity(body.len() + 64);
    material.extend_from_slice(request.method.as_bytes());
    material.push(b' ');
    material.extend_from_slice(request.path.as_bytes());
    material.push(b'\n');
    material.extend_from_slice(body);
    sha256_hex(&material)
}

/// Which payment a POST is about, for its timeline (`app::timeline`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum About<'a> {
    /// No payment: nothing is recorded.
    Nothing,
    /// The payment it creates: the id reserved for the request.
    CreatedPayment,
    /// A stored payment (confirm, capture, cancel, refund).
    Payment(&'a str),
}

/// Runs `handler` once per merchant key of `caller`, storing and replaying
/// its outcome, and resuming it when it ended without one.
pub(crate) async fn run<F, Fut>(
    state: &Core,
    caller: &Caller,
    request: IdempotentRequest<'_>,
    handler: F,
) -> Result<Reply, ApiError>
where
    F: FnOnce(Attempt) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    run_about(state, caller, request, About::Nothing, handler).await
}

/// [`run`] for a POST about a payment: the request, how it was answered
/// (replayed or not) and the provider calls of its run go on the payment's
/// timeline, with the run's changes (a replay, or an answer that changed
/// nothing, in a small commit of its own). The use case says which payment
/// once it has found it (`timeline::concerns`); a replay names it from `about`.
pub(crate) async fn run_about<F, Fut>(
    state: &Core,
    caller: &Caller,
    request: IdempotentRequest<'_>,
    about: About<'_>,
    handler: F,
) -> Result<Reply, ApiError>
where
    F: FnOnce(Attempt) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    if matches!(about, About::Nothing) {
        return run_once(state, caller, request, about, handler).await;
    }
    timeline::recorded(state, timeline::Leftovers::Commit, async {
        let key = request.key.ok().flatten();
        timeline::request(request.method, request.path, key);
        let reply = run_once(state, caller, request, about, handler).await;
        match &reply {
            Ok(reply) => timeline::answered(reply.status.as_u16(), reply.replayed),
            Err(error) => timeline::answered(error.status().as_u16(), false),
        }
        reply
    })
    .await
}

/// [`run`], the timeline aside.
async fn run_once<F, Fut>(
    state: &Core,
    caller: &Caller,
    request: IdempotentRequest<'_>,
    about: About<'_>,
    handler: F,
) -> Result<Reply, ApiError>
where
    F: FnOnce(Attempt) -> Fut,
    Fut: Future<Output = Result<Outcome, ApiError>>,
{
    let auth = caller;
    let Some(key) = request.key.map_err(ApiError::clone)?.map(str::to_owned) else {
        // Locks the handler takes are held until its changes are committed.
        return crate::app::leases::hold_until_done(async {
            let attempt = Attempt::new(&auth.merchant_id, new_id(), None, false)?;
            let outcome = handler(attempt).await?;
            finish(state, outcome, None).await
        })
        .await;
    };
    let fingerprint = fingerprint(&request);
    let _guard = state
        .idempotency_locks
        .lock((auth.merchant_id.clone(), key.clone()))
        .await;
    let lease_name = format!("idempotency:{}:{key}", auth.merchant_id);
    let owner = new_id();
    let mut lease: Option<Renewal> = None;
    let found = loop {
        let found = lookup(state, auth, &key, &fingerprint).await?;
        if let Found::Done(response, resource) = found {
            replay_concerns(auth, about, resource.as_deref());
            return Ok(response);
        }
        if !state.store.leases_are_shared() {
            // One process: the lock above is the whole story; no lease, no second read.
            break found;
        }
        if state.store.try_lease(&lease_name, &owner, LEASE_MS).await? {
            let held = Renewal::start(state.store.clone(), lease_name.clone(), owner.clone(), LEASE_MS);
            // The holder before may have stored its response and let go between our two reads.
            let found = lookup(state, auth, &key, &fingerprint).await?;
            if let Found::Done(response, resource) = found {
                held.release_now().await;
                replay_concerns(auth, about, resource.as_deref());
                return Ok(response);
            }
            lease = Some(held);
            break found;
        }
        // Another instance runs this key now: wait for its stored response (or its lease to run out).
        tokio::time::sleep(LEASE_POLL).await;
    };
    let (record, attempt) = match found {
        Found::InProgress(record) => {
            let resource_id = record.resource_id.clone().unwrap_or_else(new_id);
            let attempt = Attempt::new(&auth.merchant_id, resource_id, None, true)?;
            (record, attempt)
        }
        Found::Nothing | Found::Done(..) => {
            let resource_id = new_id();
            let record = IdempotencyRow {
                merchant_id: auth.merchant_id.to_string(),
                key,
                fingerprint,
                response: None,
                resource_id: Some(resource_id.clone()),
                created_at: now_ms(),
            };
            let attempt = Attempt::new(&auth.merchant_id, resource_id, Some(record.clone()), false)?;
            (record, attempt)
        }
    };
    let response = crate::app::leases::hold_until_done(async {
        let outcome = handler(attempt).await?;
        finish(state, outcome, Some(record)).await
    })
    .await;
    if let Some(lease) = lease {
        lease.release_now().await;
    }
    response
}

/// Tells the timeline which payment a replayed answer is about: the one
/// the request names, or the one it created (its record's reserved id).
fn replay_concerns(caller: &Caller, about: About<'_>, resource: Option<&str>) {
    let payment = match about {
        About::Nothing => None,
        About::CreatedPayment => resource,
        About::Payment(id) => Some(id),
    };
    if let Some(payment) = payment {
        timeline::concerns(&caller.merchant_id, payment);
    }
}

/// What the store holds for a key, for this request.
enum Found {
    /// No record, or an expired one.
    Nothing,
    /// The stored response, and the id the request reserved.
    Done(Reply, Option<String>),
    /// The record of this request, in progress or ended without an answer.
    InProgress(IdempotencyRow),
}

/// The record for `key`, if there is a fresh one for this request; 422 if it
/// is another request's.
async fn lookup(state: &Core, auth: &Caller, key: &str, fingerprint: &str) -> Result<Found, ApiError> {
    let Some(stored) = state.store.idempotency(&auth.merchant_id, key).await? else {
        return Ok(Found::Nothing);
    };
    if stored.created_at < now_ms() - RETENTION_MS {
        return Ok(Found::Nothing);
    }
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
    Ok(match stored.response {
        Some(response) => Found::Done(
            Reply {
                status: Status::from_u16(response.status).unwrap_or(Status::OK),
                body: response.body,
                replayed: true,
            },
            stored.resource_id,
        ),
        None => Found::InProgress(stored),
    })
}

/// Whether an answer is final, so it is stored and replayed: not `202` (the
/// outcome is being resolved), `429` or a `5xx` (try again), after which a
/// retry resumes the request instead.
pub(crate) fn is_final(status: Status) -> bool {
    let code = status.as_u16();
    status != Status::ACCEPTED && code != 429 && code < 500
}

/// Commits the outcome's changes with its stored response (unless it is not
/// [`is_final`]: the record stays in progress).
async fn finish(
    state: &Core,
    mut outcome: Outcome,
    record: Option<IdempotencyRow>,
) -> Result<Reply, ApiError> {
    if let Some(mut record) = record.filter(|_| is_final(outcome.status)) {
        record.response = Some(StoredResponse {
            status: outcome.status.as_u16(),
            body: outcome.replay.take().unwrap_or_else(|| outcome.body.clone()),
        });
        outcome.changes.push(Change::SaveIdempotency(record));
    }
    // The request's timeline entry commits with its answer.
    timeline::answered(outcome.status.as_u16(), false);
    commit_and_publish(state, outcome.changes, &outcome.updates)
        .await
        .map_err(|error| match error {
            crate::store::StoreError::Conflict("the Idempotency-Key is held by another request") => {
                in_progress_elsewhere()
            }
            other => other.into(),
        })?;
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
    fn provider_keys_are_derived_per_merchant_operation_and_step() {
        let step = |keys: &ProviderKeys, step: &str| keys.step(step).unwrap();
        let a = ProviderKeys::for_resource("m1", "pay_1").unwrap();
        let b = ProviderKeys::for_resource("m1", "pay_1").unwrap();
        let c = ProviderKeys::for_resource("m2", "pay_1").unwrap();
        let d = ProviderKeys::for_resource("m1", "pay_2").unwrap();
        assert_eq!(step(&a, "create_intent"), step(&b, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&c, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&d, "create_intent"));
        assert_ne!(step(&a, "create_intent"), step(&a, "confirm"));
    }

    #[test]
    fn the_fingerprint_ignores_how_the_body_was_serialized() {
        let request = |body: &'static str| IdempotentRequest {
            key: Ok(Some("k")),
            method: "POST",
            path: "/v1/payments",
            body: body.as_bytes(),
        };
        let a = fingerprint(&request(
            r#"{"amount":"10.00","currency":"USD","metadata":{"a":"1","b":"2"}}"#,
        ));
        let b = fingerprint(&request(
            "{ \"currency\": \"USD\",\n \"metadata\": {\"b\":\"2\",\"a\":\"1\"}, \"amount\": \"10.00\" }",
        ));
        let c = fingerprint(&request(
            r#"{"amount":"10.00","currency":"USD","metadata":{"a":"1","b":"2"},"x":1}"#,
        ));
        let d = fingerprint(&request(
            r#"{"amount":"10.01","currency":"USD","metadata":{"a":"1","b":"2"}}"#,
        ));
        assert_eq!(a, b);
        assert_ne!(a, c, "an added field is another request");
        assert_ne!(a, d);
        assert_ne!(
            fingerprint(&request("not json")),
            fingerprint(&request("not json "))
        );
    }
}
