//! Outbound merchant webhooks: events, the outbox and the delivery worker.
//!
//! * Every payment change that merchants hear about (`payment.completed`, …)
//!   becomes an event ([`EventRow`], whether or not the merchant has an
//!   endpoint) and one outbox row ([`DeliveryRow`]) per enabled endpoint whose
//!   `enabled_events` match, in the SAME transaction as the change
//!   ([`outbox_changes`], called by `payments::commit_and_publish`), so a
//!   committed change is never without its event and webhooks and vice versa.
//! * Every delivery of an event sends the same bytes ([`event_payload`]),
//!   signed with each of the endpoint's valid secrets, newest first
//!   ([`EndpointSigner`]: two `v1=` values during a rotation's grace period).
//! * The worker claims due rows for a lease before sending (a crash mid-send
//!   frees them when the lease ends), POSTs the signed payload, records every
//!   attempt (HTTP status, latency, error) and either marks the row delivered
//!   (a 2xx within the timeout) or schedules the next attempt with
//!   exponential backoff (less a random fifth at most, so deliveries that
//!   failed together do not come back together), giving up after the last one.
//! * Fairness: the worker keeps a rolling pool of at most
//!   [`DeliveryLimits::concurrency`] deliveries in flight (as each one ends,
//!   the next claimable one starts), and the claim lets merchants take turns,
//!   none with more than [`DeliveryLimits::per_merchant`] in flight across
//!   instances. An endpoint that failed [`DeliveryLimits::endpoint_failures`]
//!   times in a row is backed off as a whole: none of its deliveries is
//!   tried before its next retry time (the merchant's other endpoints go on);
//!   a 2xx resets it.
//! * Delivery is at-least-once: a delivery that was in flight when the
//!   process died is sent again after the lease. Receivers deduplicate on the
//!   event `id` (also sent as `Gateway-Event-Id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gateway_core::{IntentStatus, PaymentStatus, RefundStatus};
use tokio::sync::Notify;

use crate::app::core::Core;
use crate::app::invalidation::CACHE_TTL;
use crate::app::refunds::RefundView;
use crate::domain::changes::{IntentUpdate, UpdateKind};
use crate::domain::error::ApiError;
use crate::domain::views::PaymentView;
use crate::store::{
    AttemptRow, Change, DeliveryOutcome, DeliveryRow, DeliveryStatus, EndpointRow, EndpointSecretRow,
    EventRow, Store, StoreError,
};
use crate::support::clock::now_ms;
use crate::support::crypto::Sealer;
use crate::support::ids::{hex, new_id, random_bytes, RandomUnavailable};

/// The header carrying the signature of an outbound webhook.
pub(crate) const SIGNATURE_HEADER: &str = "Gateway-Signature";

/// When deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySchedule {
    /// The pause after the first failed attempt; it doubles after each further one.
    pub first_retry: Duration,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// How long the merchant's endpoint has to answer 2xx.
    pub timeout: Duration,
}

impl Default for DeliverySchedule {
    /// 30 s, doubling up to 12 h, 16 attempts: the last one about 3 days
    /// (77 hours) after the first.
    fn default() -> Self {
        DeliverySchedule {
            first_retry: Duration::from_secs(30),
            max_delay: Duration::from_secs(12 * 3600),
            max_attempts: 16,
            timeout: Duration::from_secs(10),
        }
    }
}

impl DeliverySchedule {
    /// The pause after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.first_retry.saturating_mul(factor).min(self.max_delay)
    }

    /// [`DeliverySchedule::delay_after`] less a random share of at most a
    /// fifth (jitter): deliveries that failed together spread out, and each
    /// pause is still longer than the one before.
    pub fn jittered_delay_after(&self, attempt: u32) -> Duration {
        let delay = self.delay_after(attempt);
        // Jitter is no secret: without the generator, no jitter.
        let share = f64::from(random_bytes::<2>().map(u16::from_le_bytes).unwrap_or(0)) / f64::from(u16::MAX);
        delay.saturating_sub(delay.mul_f64(JITTER * share))
    }

    /// How long a claimed delivery stays owned by its worker.
    fn lease(&self) -> Duration {
        self.timeout.saturating_mul(2) + Duration::from_secs(5)
    }
}

/// How many deliveries run at once, and when a failing endpoint is backed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLimits {
    /// Deliveries in flight at once in this instance (`GATEWAY_WEBHOOK_CONCURRENCY`, default 32).
    pub concurrency: u32,
    /// Deliveries of one merchant in flight at once, across instances
    /// (`GATEWAY_WEBHOOK_PER_MERCHANT`, default 4).
    pub per_merchant: u32,
    /// Consecutive failed attempts after which a merchant's endpoint is backed
    /// off as a whole (`GATEWAY_WEBHOOK_ENDPOINT_FAILURES`, default 5).
    pub endpoint_failures: u32,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        DeliveryLimits {
            concurrency: 32,
            per_merchant: 4,
            endpoint_failures: 5,
        }
    }
}

/// The largest share of a retry delay taken off at random.
const JITTER: f64 = 0.2;

/// A merchant's webhook endpoints as cached, and when they were read.
type CachedEndpoints = (Arc<Vec<EndpointRow>>, Instant);

/// Shared outbound state: the worker's wake-up and a cache of each
/// merchant's webhook endpoints (trusted for [`CACHE_TTL`]; forgotten at
/// once on a change, here and, through `app::invalidation`, on the other instances).
pub(crate) struct Outbound {
    notify: Notify,
    urls: Mutex<HashMap<String, CachedEndpoints>>,
    pub(crate) schedule: DeliverySchedule,
    pub(crate) limits: DeliveryLimits,
}

impl Outbound {
    pub(crate) fn new(schedule: DeliverySchedule) -> Self {
        Outbound {
            notify: Notify::new(),
            urls: Mutex::new(HashMap::new()),
            schedule,
            limits: DeliveryLimits::default(),
        }
    }

    /// The same, with these delivery limits.
    pub(crate) fn with_limits(mut self, limits: DeliveryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Tells the worker new deliveries are due.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    fn cached_urls(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedEndpoints>> {
        self.urls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The merchant's webhook endpoints, oldest first (cached;
    /// [`Outbound::forget_url`] on change).
    async fn endpoints(
        &self,
        store: &dyn Store,
        merchant_id: &str,
    ) -> Result<Arc<Vec<EndpointRow>>, StoreError> {
        if let Some((endpoints, _)) = self
            .cached_urls()
            .get(merchant_id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
        {
            return Ok(endpoints.clone());
        }
        let endpoints = Arc::new(store.endpoints(merchant_id).await?);
        let mut urls = self.cached_urls();
        if urls.len() > 10_000 {
            urls.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        urls.insert(merchant_id.to_owned(), (endpoints.clone(), Instant::now()));
        Ok(endpoints)
    }

    /// Forgets a merchant's cached endpoints after they changed.
    pub(crate) fn forget_url(&self, merchant_id: &str) {
        self.cached_urls().remove(merchant_id);
    }

    /// Forgets every cached endpoint.
    pub(crate) fn forget_all_urls(&self) {
        self.cached_urls().clear();
    }
}

/// The merchant event an update announces, if any.
pub(crate) fn event_type(update: &IntentUpdate) -> Option<&'static str> {
    match update.kind {
        // A refund that failed or was canceled gave its amount back.
        UpdateKind::Refunded if update.refund.as_ref().map(|r| r.status) == Some(RefundStatus::Failed) => {
            Some("refund.failed")
        }
        UpdateKind::Refunded if update.refund.as_ref().map(|r| r.status) == Some(RefundStatus::Canceled) => {
            Some("refund.canceled")
        }
        UpdateKind::Refunded => match update.status {
            PaymentStatus::Refunded => Some("payment.refunded"),
            PaymentStatus::PartiallyRefunded => Some("payment.partially_refunded"),
            _ => None,
        },
        UpdateKind::IntentChanged if update.previous == Some(update.intent.status) => None,
        UpdateKind::Created | UpdateKind::IntentChanged => match update.intent.status {
            IntentStatus::Succeeded => Some("payment.completed"),
            IntentStatus::RequiresAction => Some("payment.pending"),
            IntentStatus::RequiresCapture => Some("payment.requires_capture"),
            IntentStatus::Canceled => Some("payment.canceled"),
            IntentStatus::RequiresPaymentMethod if update.status == PaymentStatus::Failed => {
                Some("payment.failed")
            }
            _ => None,
        },
    }
}

/// Every event type merchants receive, the names `enabled_events` takes.
pub(crate) const EVENT_TYPES: [&str; 9] = [
    "payment.completed",
    "payment.failed",
    "payment.pending",
    "payment.requires_capture",
    "payment.canceled",
    "payment.refunded",
    "payment.partially_refunded",
    "refund.failed",
    "refund.canceled",
];

/// Whether an endpoint receiving `enabled_events` (a JSON array; `"*"`:
/// every type) receives events of `event_type`.
pub(crate) fn receives(enabled_events: &str, event_type: &str) -> bool {
    serde_json::from_str::<Vec<String>>(enabled_events)
        .unwrap_or_default()
        .iter()
        .any(|name| name == "*" || name == event_type)
}

/// A new event id (`evt_…`).
fn new_event_id() -> String {
    format!("evt_{}", new_id().replace('-', ""))
}

/// A new delivery id (`whd_…`).
pub(crate) fn new_delivery_id() -> String {
    format!("whd_{}", new_id().replace('-', ""))
}

/// A pending delivery of `event` to `endpoint`, due at `now`.
pub(crate) fn delivery_of(event: &EventRow, endpoint: &EndpointRow, now: i64) -> DeliveryRow {
    DeliveryRow {
        seq: 0,
        id: new_delivery_id(),
        merchant_id: event.merchant_id.clone(),
        payment_id: event.payment_id.clone(),
        event_type: event.event_type.clone(),
        source_event: event.source_event.clone(),
        payment: event.payment.clone(),
        refund: event.refund.clone(),
        url: endpoint.url.clone(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        delivered_at: None,
        last_status: None,
        last_error: None,
        event_id: event.id.clone(),
        endpoint_id: Some(endpoint.id.clone()),
        // Filled by the store from the event.
        event_seq: event.seq,
        event_created_at: event.created_at,
    }
}

/// A new signing secret (`whsec_` + 256 random bits, hex).
pub(crate) fn new_signing_secret() -> Result<String, RandomUnavailable> {
    Ok(format!("whsec_{}", hex(&random_bytes::<32>()?)))
}

/// The associated data binding a sealed signing secret to its merchant (the
/// secrets of before endpoints, `bound_to = 'merchant'`).
pub(crate) fn secret_aad(merchant_id: &str) -> String {
    format!("webhook-signing-secret:{merchant_id}")
}

/// What an endpoint secret's `bound_to` is when its associated data names
/// the merchant and the endpoint ([`endpoint_secret_aad`]): every secret made
/// since endpoints exist.
pub(crate) const BOUND_TO_ENDPOINT: &str = "endpoint";

/// The associated data binding a sealed signing secret to its endpoint.
pub(crate) fn endpoint_secret_aad(merchant_id: &str, endpoint_id: &str) -> String {
    format!("webhook-signing-secret:{merchant_id}:{endpoint_id}")
}

/// A current signing secret sealed for `endpoint_id`, made `at`.
pub(crate) fn sealed_secret(
    core: &Core,
    merchant_id: &str,
    endpoint_id: &str,
    secret: &str,
    at: i64,
) -> Result<EndpointSecretRow, ApiError> {
    seal_secret(&core.sealer, merchant_id, endpoint_id, secret, at)
}

/// [`sealed_secret`] with `sealer`.
fn seal_secret(
    sealer: &Sealer,
    merchant_id: &str,
    endpoint_id: &str,
    secret: &str,
    at: i64,
) -> Result<EndpointSecretRow, ApiError> {
    Ok(EndpointSecretRow {
        endpoint_id: endpoint_id.to_owned(),
        merchant_id: merchant_id.to_owned(),
        sealed: sealer.seal(
            secret.as_bytes(),
            endpoint_secret_aad(merchant_id, endpoint_id).as_bytes(),
        )?,
        bound_to: BOUND_TO_ENDPOINT.to_owned(),
        created_at: at,
        expires_at: None,
    })
}

/// The signer of the endpoint's secrets valid at `now` (Unix ms), opened
/// with `sealer`; `None` when it has no valid secret.
async fn secrets_signer(
    store: &dyn Store,
    sealer: &Sealer,
    merchant_id: &str,
    endpoint_id: &str,
    now: i64,
) -> Result<Option<EndpointSigner>, String> {
    let rows = store
        .endpoint_secrets(endpoint_id, now)
        .await
        .map_err(|e| e.to_string())?;
    let secrets = rows
        .iter()
        .filter(|row| row.merchant_id == merchant_id)
        .map(|row| {
            let aad = if row.bound_to == BOUND_TO_ENDPOINT {
                endpoint_secret_aad(merchant_id, endpoint_id)
            } else {
                secret_aad(merchant_id)
            };
            sealer
                .open(&row.sealed, aad.as_bytes())
                .map_err(|_| "the signing secret cannot be opened with this master key".to_owned())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((!secrets.is_empty()).then_some(EndpointSigner { secrets }))
}

/// Signs payloads for one of the merchant's endpoints as its deliveries are
/// signed: with every secret of the endpoint valid when it was made, newest
/// first (`t=…,v1=<new>,v1=<old>` during a rotation's grace period). Made
/// once for a batch of payloads; it holds opened secrets, so it has no
/// `Debug` and is never logged.
pub(crate) struct EndpointSigner {
    secrets: Vec<Vec<u8>>,
}

impl EndpointSigner {
    /// The `Gateway-Signature` value for `payload`, signed at `timestamp` (Unix seconds).
    pub(crate) fn sign(&self, payload: &[u8], timestamp: i64) -> String {
        gateway_core::signature::sign_header_all(payload, &self.secrets, timestamp)
    }
}

/// The signer for one of the merchant's endpoints now. 404 if the endpoint
/// is not the merchant's; 409 `endpoint_has_no_secret` if it has no valid secret.
pub(crate) async fn endpoint_signer(
    core: &Core,
    merchant_id: &str,
    endpoint_id: &str,
) -> Result<EndpointSigner, ApiError> {
    signer_at(&*core.store, &core.sealer, merchant_id, endpoint_id, now_ms()).await
}

/// [`endpoint_signer`] with the secrets valid at `now` (Unix ms).
async fn signer_at(
    store: &dyn Store,
    sealer: &Sealer,
    merchant_id: &str,
    endpoint_id: &str,
    now: i64,
) -> Result<EndpointSigner, ApiError> {
    store
        .endpoint(merchant_id, endpoint_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint", endpoint_id))?;
    secrets_signer(store, sealer, merchant_id, endpoint_id, now)
        .await
        .map_err(|error| {
            tracing::error!(endpoint = %endpoint_id, %error, "opening webhook signing secrets failed");
            ApiError::internal()
        })?
        .ok_or_else(|| {
            ApiError::conflict(
                "endpoint_has_no_secret",
                "this webhook endpoint has no valid signing secret: rotate its secret",
            )
        })
}

/// Adds to `changes` the events `updates` call for and, for each, a
/// delivery to every enabled endpoint of the merchant whose `enabled_events`
/// match; `true` if any event was added (the worker and the readers of
/// events are then woken, [`Outbound::wake`]).
pub(crate) async fn outbox_changes(
    state: &Core,
    updates: &[IntentUpdate],
    changes: &mut Vec<Change>,
) -> Result<bool, StoreError> {
    let mut added = Vec::new();
    for update in updates {
        let Some(kind) = event_type(update) else {
            continue;
        };
        let row = changes.iter().rev().find_map(|change| match change {
            Change::InsertPayment(row) | Change::UpdatePayment(row) if row.id == update.payment_id => {
                Some(&**row)
            }
            _ => None,
        });
        let Some(row) = row else {
            continue;
        };
        let payment = serde_json::to_string(&PaymentView::new(row))
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        // A refund's event carries the refund too, as stored by the same changes.
        let refund = update
            .refund
            .as_ref()
            .and_then(|refund| {
                changes.iter().rev().find_map(|change| match change {
                    Change::InsertRefund(row) | Change::UpdateRefund(row) if row.refund.id == refund.id => {
                        Some(&**row)
                    }
                    _ => None,
                })
            })
            .map(|row| serde_json::to_string(&RefundView::new(row)))
            .transpose()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let now = now_ms();
        let event = EventRow {
            seq: 0,
            id: new_event_id(),
            merchant_id: update.merchant_id.clone(),
            payment_id: update.payment_id.clone(),
            event_type: kind.to_owned(),
            source_event: update.event_id.clone(),
            payment,
            refund,
            created_at: now,
        };
        let endpoints = state
            .outbound
            .endpoints(&*state.store, &update.merchant_id)
            .await?;
        let deliveries: Vec<Change> = endpoints
            .iter()
            .filter(|endpoint| endpoint.enabled && receives(&endpoint.enabled_events, kind))
            .map(|endpoint| Change::InsertDelivery(Box::new(delivery_of(&event, endpoint, now))))
            .collect();
        added.push(Change::InsertEvent(Box::new(event)));
        added.extend(deliveries);
    }
    let any = !added.is_empty();
    changes.extend(added);
    Ok(any)
}

/// The JSON body merchants receive: `{id, object, type, created, sequence,
/// data: {payment, refund?}}` (`refund` for a refund's event). Built from
/// stored columns, so every attempt sends the same bytes.
fn payload_of(
    id: &str,
    event_type: &str,
    created_at: i64,
    seq: i64,
    payment: &str,
    refund: Option<&str>,
) -> String {
    let id = serde_json::to_string(id).unwrap_or_default();
    let kind = serde_json::to_string(event_type).unwrap_or_default();
    let refund = refund
        .map(|refund| format!(",\"refund\":{refund}"))
        .unwrap_or_default();
    format!(
        "{{\"id\":{id},\"object\":\"event\",\"type\":{kind},\"created\":{},\"sequence\":{seq},\"data\":{{\"payment\":{payment}{refund}}}}}",
        created_at / 1000,
    )
}

/// The exact body a delivery sends: its event's payload ([`event_payload`]).
pub(crate) fn payload(row: &DeliveryRow) -> String {
    payload_of(
        &row.event_id,
        &row.event_type,
        row.event_created_at,
        row.event_seq,
        &row.payment,
        row.refund.as_deref(),
    )
}

/// The exact body every delivery of `event` sends to an endpoint (the
/// bytes `Gateway-Signature` signs): `id` is the event id, `sequence` its `seq`.
pub(crate) fn event_payload(event: &EventRow) -> String {
    payload_of(
        &event.id,
        &event.event_type,
        event.created_at,
        event.seq,
        &event.payment,
        event.refund.as_deref(),
    )
}

/// Runs the delivery worker on its own thread (the HTTP client is not `Send`)
/// until `stop` is notified.
pub(crate) fn spawn_worker(state: Arc<Core>, stop: Arc<Notify>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot start the webhook delivery worker");
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            tokio::select! {
                () = run_worker(state) => {}
                () = stop.notified() => {}
            }
        });
    })
}

async fn run_worker(state: Arc<Core>) {
    let schedule = state.outbound.schedule;
    // Redirects off; connects only where the egress policy allows (app::egress).
    let client = (state.egress.webhook_client)(schedule.timeout);
    // The soonest retry this worker scheduled: it wakes for it on time
    // instead of at the next poll.
    let mut next_due: Option<i64> = None;
    let limits = state.outbound.limits;
    // The rolling pool: every delivery in flight, each its own task on this
    // thread; as one ends, the next starts. Tasks, not futures polled only
    // by this loop: a delivery holding a database connection must go on
    // while the loop awaits its claim, or the two starve each other of the
    // connection pool.
    let mut running = tokio::task::JoinSet::new();
    loop {
        let free = (limits.concurrency as usize).saturating_sub(running.len());
        if free > 0 {
            let now = now_ms();
            let lease = schedule.lease().as_millis() as i64;
            let free = u32::try_from(free).unwrap_or(u32::MAX);
            match state
                .store
                .claim_deliveries(now, now + lease, free, limits.per_merchant)
                .await
            {
                Ok(claimed) => {
                    for row in claimed {
                        let (state, client) = (Arc::clone(&state), client.clone());
                        running.spawn_local(async move { deliver(&state, &client, row).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming webhook deliveries failed"),
            }
        }
        let now = now_ms();
        let poll = 250;
        let wait = next_due.map_or(poll, |due| (due - now).clamp(0, poll));
        if next_due.is_some_and(|due| due <= now + poll) {
            next_due = None;
        }
        let mut note = |retry_at: Option<i64>| {
            if let Some(at) = retry_at {
                next_due = Some(next_due.map_or(at, |due| due.min(at)));
            }
        };
        tokio::select! {
            Some(ended) = running.join_next(), if !running.is_empty() => {
                note(delivery_retry(ended));
                // Every other delivery that ended too, before claiming again.
                while let Some(ended) = running.try_join_next() {
                    note(delivery_retry(ended));
                }
            }
            _ = tokio::time::timeout(Duration::from_millis(wait as u64), state.outbound.notify.notified()) => {}
        }
    }
}

/// When an ended delivery task's next attempt is due; a task that panicked
/// schedules nothing (its claim lapses and the delivery is claimed again).
fn delivery_retry(ended: Result<Option<i64>, tokio::task::JoinError>) -> Option<i64> {
    ended.unwrap_or_else(|error| {
        tracing::error!(%error, "a webhook delivery task failed");
        None
    })
}

/// Where a delivery goes now and how it is signed: its endpoint's current
/// URL and valid secrets (newest first), or, for a delivery of before
/// endpoints without one, its own URL and the merchant's secret of then.
async fn destination(state: &Core, row: &DeliveryRow) -> Result<(String, EndpointSigner), String> {
    let Some(endpoint_id) = &row.endpoint_id else {
        let sealed = state
            .store
            .signing_secret(&row.merchant_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no signing secret: set the webhook URL again".to_owned())?;
        let secret = state
            .sealer
            .open(&sealed, secret_aad(&row.merchant_id).as_bytes())
            .map_err(|_| "the signing secret cannot be opened with this master key".to_owned())?;
        return Ok((
            row.url.clone(),
            EndpointSigner {
                secrets: vec![secret],
            },
        ));
    };
    let endpoint = state
        .store
        .endpoint(&row.merchant_id, endpoint_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| ENDPOINT_DELETED.to_owned())?;
    let signer = secrets_signer(
        &*state.store,
        &state.sealer,
        &row.merchant_id,
        endpoint_id,
        now_ms(),
    )
    .await?
    .ok_or_else(|| "no valid signing secret: rotate the endpoint's secret".to_owned())?;
    Ok((endpoint.url, signer))
}

/// The last error of a delivery whose endpoint was deleted.
pub(crate) const ENDPOINT_DELETED: &str = "the webhook endpoint was deleted";

/// Makes one attempt; returns when the next one is due, if any.
async fn deliver(state: &Core, client: &awc::Client, row: DeliveryRow) -> Option<i64> {
    let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX).saturating_add(1);
    let body = payload(&row);
    let started = Instant::now();
    let at = now_ms();
    let destination = destination(state, &row).await;
    let gone = matches!(&destination, Err(error) if error == ENDPOINT_DELETED);
    let result: Result<u16, String> = match destination {
        Err(error) => Err(error),
        Ok((url, signer)) => {
            let signature = signer.sign(body.as_bytes(), (state.clock)());
            let request = client
                .post(&url)
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("User-Agent", "Gateway-Webhooks/1"))
                .insert_header((SIGNATURE_HEADER, signature))
                .insert_header(("Gateway-Event-Id", row.event_id.as_str()))
                .timeout(state.outbound.schedule.timeout);
            match request.send_body(body).await {
                Ok(response) => Ok(response.status().as_u16()),
                // The egress connector refused every address the host
                // resolved to (or it did not resolve): one fixed text, so
                // attempts never tell a local port's state.
                Err(awc::error::SendRequestError::Connect(awc::error::ConnectError::Resolver(_))) => {
                    Err(crate::app::egress::DESTINATION_NOT_ALLOWED.to_owned())
                }
                Err(error) => Err(error.to_string()),
            }
        }
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let (http_status, error) = match &result {
        Ok(status) if (200..300).contains(status) => (Some(i64::from(*status)), None),
        Ok(status) => (Some(i64::from(*status)), Some(format!("HTTP {status}"))),
        Err(error) => (None, Some(error.chars().take(500).collect::<String>())),
    };
    let schedule = state.outbound.schedule;
    let now = now_ms();
    let outcome = if error.is_none() {
        DeliveryOutcome::Delivered
    } else if gone || attempt >= schedule.max_attempts {
        DeliveryOutcome::GaveUp
    } else {
        DeliveryOutcome::RetryAt(now + schedule.jittered_delay_after(attempt).as_millis() as i64)
    };
    // The endpoint's own next retry: the delivery's, or (given up) as if there were one.
    let endpoint_retry_at = match outcome {
        DeliveryOutcome::Delivered => None,
        DeliveryOutcome::RetryAt(at) => Some(at),
        DeliveryOutcome::GaveUp => Some(now + schedule.jittered_delay_after(attempt).as_millis() as i64),
    };
    let endpoint = row
        .endpoint_id
        .clone()
        .map(|endpoint_id| match endpoint_retry_at {
            None => Change::EndpointRecovered { endpoint_id },
            Some(retry_at) => Change::EndpointFailed {
                endpoint_id,
                retry_at,
                after: i64::from(state.outbound.limits.endpoint_failures),
            },
        });
    tracing::info!(
        delivery = %row.id,
        event = %row.event_id,
        merchant = %row.merchant_id,
        event_type = %row.event_type,
        attempt,
        status = ?http_status,
        latency_ms,
        outcome = ?outcome,
        "webhook delivery attempt"
    );
    state.metrics.observe_webhook(
        "outbound",
        match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::RetryAt(_) => "retry",
            DeliveryOutcome::GaveUp => "gave_up",
        },
    );
    let change = Change::RecordAttempt {
        attempt: AttemptRow {
            delivery_id: row.id.clone(),
            attempt: i64::from(attempt),
            at,
            http_status,
            latency_ms,
            error,
        },
        outcome,
    };
    let changes = std::iter::once(change).chain(endpoint).collect();
    if let Err(error) = state.store.commit(changes).await {
        // The claim expires; the delivery is attempted again (at-least-once).
        tracing::warn!(delivery = %row.id, %error, "recording a webhook attempt failed");
    }
    endpoint_retry_at
}

#[cfg(test)]
mod tests {
    use gateway_core::{Currency, Money, PaymentErrorDetails, PaymentIntent};

    use super::*;
    use crate::domain::changes::ChangeSource;

    fn update(
        kind: UpdateKind,
        previous: Option<IntentStatus>,
        status: IntentStatus,
        refunded: i64,
    ) -> IntentUpdate {
        let amount = Money::from_minor(1000, Currency::USD).unwrap();
        let mut intent = PaymentIntent::fixture("pi_1", amount).status(status).received(
            if status == IntentStatus::Succeeded {
                1000
            } else {
                0
            },
        );
        if status == IntentStatus::RequiresPaymentMethod {
            intent = intent.last_payment_error(PaymentErrorDetails {
                code: Some("card_declined".into()),
                decline_code: Some("generic_decline".into()),
                message: "declined".into(),
            });
        }
        let intent = intent.build();
        IntentUpdate {
            kind,
            source: ChangeSource::Api,
            merchant_id: "m".into(),
            payment_id: "p".into(),
            previous,
            previous_status: None,
            status: PaymentStatus::derive(&intent, refunded),
            intent,
            event_id: "e".into(),
            refund: None,
        }
    }

    /// A refund of the payment (1000 received) in `status`, `refunded` left counted.
    fn refund_update(status: gateway_core::RefundStatus, refunded: i64) -> IntentUpdate {
        let mut update = update(
            UpdateKind::Refunded,
            Some(IntentStatus::Succeeded),
            IntentStatus::Succeeded,
            refunded,
        );
        update.refund = Some(gateway_core::Refund {
            id: "re_1".into(),
            provider: "mock".into(),
            payment_intent: "pi_1".into(),
            amount: 600,
            currency: Currency::USD,
            status,
            reason: None,
            failure_reason: None,
            metadata: Default::default(),
            created: 0,
        });
        update
    }

    #[test]
    fn merchant_event_types() {
        use IntentStatus as S;
        let cases = [
            (
                update(UpdateKind::Created, None, S::Succeeded, 0),
                Some("payment.completed"),
            ),
            (
                update(UpdateKind::Created, None, S::RequiresPaymentMethod, 0),
                Some("payment.failed"),
            ),
            (
                update(UpdateKind::Created, None, S::RequiresAction, 0),
                Some("payment.pending"),
            ),
            (
                update(
                    UpdateKind::IntentChanged,
                    Some(S::RequiresAction),
                    S::RequiresCapture,
                    0,
                ),
                Some("payment.requires_capture"),
            ),
            (
                update(
                    UpdateKind::IntentChanged,
                    Some(S::RequiresCapture),
                    S::Canceled,
                    0,
                ),
                Some("payment.canceled"),
            ),
            (
                update(UpdateKind::IntentChanged, Some(S::Succeeded), S::Succeeded, 0),
                None,
            ),
            (
                update(
                    UpdateKind::IntentChanged,
                    Some(S::RequiresAction),
                    S::Processing,
                    0,
                ),
                None,
            ),
            (
                update(UpdateKind::Refunded, Some(S::Succeeded), S::Succeeded, 400),
                Some("payment.partially_refunded"),
            ),
            (
                update(UpdateKind::Refunded, Some(S::Succeeded), S::Succeeded, 1000),
                Some("payment.refunded"),
            ),
            (
                refund_update(gateway_core::RefundStatus::Failed, 0),
                Some("refund.failed"),
            ),
            (
                refund_update(gateway_core::RefundStatus::Canceled, 400),
                Some("refund.canceled"),
            ),
            (
                refund_update(gateway_core::RefundStatus::Succeeded, 400),
                Some("payment.partially_refunded"),
            ),
        ];
        for (update, expected) in cases {
            assert_eq!(event_type(&update), expected, "{update:?}");
        }
    }

    #[tokio::test]
    async fn an_endpoint_is_signed_for_with_every_valid_secret_newest_first() {
        use gateway_core::signature::verify_header;

        use crate::store::{EndpointRow, MerchantRow, SqliteStore};
        use crate::support::crypto::MasterKey;

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("g.db").display()))
            .await
            .unwrap();
        let sealer = Sealer::new(&MasterKey::generate().unwrap());
        let now = 1_700_000_000_000;
        let endpoint = EndpointRow {
            id: "we_1".into(),
            merchant_id: "m1".into(),
            url: "https://merchant.example/hooks".into(),
            enabled: true,
            enabled_events: "[\"*\"]".into(),
            description: None,
            failures: 0,
            blocked_until: 0,
            created_at: now,
            updated_at: now,
        };
        // A secret of before endpoints (sealed for the merchant only), then a
        // rotation with an hour's grace.
        let mut migrated = seal_secret(&sealer, "m1", "we_1", "whsec_old", now).unwrap();
        migrated.sealed = sealer.seal(b"whsec_old", secret_aad("m1").as_bytes()).unwrap();
        migrated.bound_to = "merchant".into();
        store
            .commit(vec![
                Change::InsertMerchant(MerchantRow {
                    id: "m1".into(),
                    name: "m".into(),
                    webhook_url: None,
                    created_at: now,
                }),
                Change::InsertEndpoint(Box::new(endpoint)),
                Change::AddEndpointSecret(Box::new(migrated)),
                Change::ExpireEndpointSecrets {
                    endpoint_id: "we_1".into(),
                    until: now + 3_600_000,
                    now: now + 10,
                },
                Change::AddEndpointSecret(Box::new(
                    seal_secret(&sealer, "m1", "we_1", "whsec_new", now + 10).unwrap(),
                )),
            ])
            .await
            .unwrap();
        let body = br#"{"id":"evt_1"}"#;
        let tolerance = Duration::from_secs(300);
        let header = signer_at(&store, &sealer, "m1", "we_1", now + 20)
            .await
            .unwrap()
            .sign(body, 1_700_000_000);
        let new = gateway_core::signature::sign_header(body, b"whsec_new", 1_700_000_000);
        assert!(header.starts_with(&new), "new first: {header}");
        assert_eq!(header.matches("v1=").count(), 2);
        for secret in ["whsec_old", "whsec_new"] {
            let verified = verify_header(&header, body, &[secret], tolerance, 1_700_000_000);
            assert_eq!(verified, Ok(1_700_000_000), "{secret}");
        }
        // After the grace period, the new one only.
        let later = signer_at(&store, &sealer, "m1", "we_1", now + 3_600_000)
            .await
            .unwrap()
            .sign(body, 1_700_003_600);
        assert_eq!(later.matches("v1=").count(), 1);
        assert!(verify_header(&later, body, &["whsec_old"], tolerance, 1_700_003_600).is_err());
        // Another merchant's endpoint is a 404.
        let foreign = signer_at(&store, &sealer, "m2", "we_1", now + 20).await;
        assert_eq!(foreign.err().map(|e| e.status().as_u16()), Some(404));
    }

    #[test]
    fn production_schedule_reaches_about_three_days() {
        let schedule = DeliverySchedule::default();
        let total: Duration = (1..schedule.max_attempts).map(|n| schedule.delay_after(n)).sum();
        let hours = total.as_secs() / 3600;
        assert!((60..=96).contains(&hours), "{hours} h");
        assert_eq!(schedule.delay_after(1), Duration::from_secs(30));
        assert_eq!(schedule.delay_after(2), Duration::from_secs(60));
        assert_eq!(schedule.delay_after(40), schedule.max_delay);
    }

    #[test]
    fn jitter_takes_at_most_a_fifth_and_delays_still_grow() {
        let schedule = DeliverySchedule::default();
        for attempt in 1..schedule.max_attempts {
            let full = schedule.delay_after(attempt);
            for _ in 0..50 {
                let jittered = schedule.jittered_delay_after(attempt);
                assert!(
                    jittered <= full && jittered >= full.mul_f64(0.8),
                    "{jittered:?} of {full:?}"
                );
                if full < schedule.max_delay {
                    assert!(jittered < schedule.delay_after(attempt + 1).mul_f64(0.8));
                }
            }
        }
        let spread: std::collections::HashSet<Duration> =
            (0..20).map(|_| schedule.jittered_delay_after(3)).collect();
        assert!(spread.len() > 1, "the delays differ");
    }
}
