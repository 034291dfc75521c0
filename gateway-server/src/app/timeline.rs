//! The payment timeline: what happened to one payment, in time order.
//!
//! **Recording.** A use case runs inside [`recorded`], a task-local record of
//! one run: the provider calls its `CheckedProvider` observes
//! ([`record_call`], from `app::providers`), the API request it answers
//! ([`request`] / [`answered`], from `app::idempotency`), the provider webhook
//! it applies ([`note`], from `app::inbound`), and the payment it concerns
//! ([`concerns`]). `payments::commit_and_publish` adds what the run has
//! collected, and a `status_changed` entry for every update, to the changes
//! it commits ([`add_to_commit`]): the entries are stored in the same
//! transaction as the change they describe, so a timeline never shows a
//! change that did not commit and never misses one that did, and the hot
//! path (`POST /v1/payments`) makes no extra round trip. What a run collected
//! without a write of its own (a replayed answer, a refused request, a
//! duplicate webhook, a reconciliation that changed nothing) is committed
//! alone when the run ends. Handler outcomes are recorded by a small task
//! once the bus has finished a published change ([`record_handlers`]).
//!
//! **Bounded.** A payment keeps at most [`CAP`] entries besides its status
//! changes (the store's insert counts them; see `Change::InsertTimeline`).
//! Past that the other entries are dropped — a flood of replays of one key
//! stops at the cap — while `status_changed` entries are still recorded
//! (a payment's lifecycle bounds them); the answer then says `truncated: true`.
//!
//! **No secrets.** Entries hold only the fields below: no body, no
//! `client_secret`, no API or provider key, no card data. A handler's error
//! message is kept, cut to [`ERROR_MAX_CHARS`].
//!
//! **Reading.** [`timeline`] merges the stored entries with the payment's
//! merchant webhook deliveries, read from the outbox at query time (never
//! copied here), by time; the whole bounded list is answered at once.

use std::cell::RefCell;
use std::future::Future;

use gateway_core::{HandlerOutcome, IntentStatus, ObservedCall, PaymentStatus, ProviderErrorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::lists::List;
use crate::app::payments::{ChangeSource, IntentUpdate};
use crate::domain::error::ApiError;
use crate::domain::scopes::Caller;
use crate::store::{Change, DeliveryFilter, DeliveryRow, TimelineRow};
use crate::support::clock::{now_us, rfc3339};

/// The most entries other than status changes a payment keeps.
pub(crate) const CAP: i64 = 200;

/// The most merchant deliveries a timeline shows (the oldest first).
pub(crate) const DELIVERIES_SHOWN: u32 = 100;

/// The longest handler error message kept, in characters.
pub(crate) const ERROR_MAX_CHARS: usize = 500;

/// The kind that is recorded past the cap.
const STATUS_CHANGED: &str = "status_changed";

/// A payment's status at one point: the merchant-facing one and the intent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TimelineStatus)]
pub(crate) struct StatusPoint {
    /// `pending`, `completed`, `failed`, `canceled`, `refunded`, `partially_refunded`.
    status: String,
    /// The provider intent's status (`requires_action`, `succeeded`, …).
    intent_status: String,
}

impl StatusPoint {
    fn new(status: PaymentStatus, intent: IntentStatus) -> Self {
        StatusPoint {
            status: status.as_str().to_owned(),
            intent_status: intent.as_str().to_owned(),
        }
    }
}

/// One entry of a timeline, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = TimelineEntryFields)]
pub(crate) enum Entry {
    /// An API request about the payment, and how it was answered.
    ApiRequest {
        method: String,
        path: String,
        /// The request's `Idempotency-Key`, if it sent one.
        idempotency_key: Option<String>,
        /// Whether the answer was a stored one, replayed.
        replayed: bool,
        /// The HTTP status answered.
        status: u16,
    },
    /// A call to the payment's provider.
    ProviderCall {
        provider: String,
        /// `create_intent`, `confirm_intent`, `capture_intent`, `cancel_intent`,
        /// `retrieve_intent`, `create_refund`, `retrieve_refund`, `interpret_webhook`, …
        operation: String,
        /// `ok`, `declined`, `error`, or `unknown` (the provider left the outcome unknown).
        outcome: String,
        /// For `error`: its kind (`unavailable`, `invalid_request`, …).
        error_kind: Option<String>,
        /// The HTTP status of the provider's answer, when known.
        http_status: Option<u16>,
        /// How long the provider took, in milliseconds.
        latency_ms: u64,
    },
    /// A provider webhook about the payment.
    WebhookReceived {
        provider: String,
        event_id: String,
        event_type: String,
        /// A second delivery of an event already stored and applied.
        duplicate: bool,
    },
    /// The payment's status moved.
    StatusChanged {
        /// `null` when the payment was created.
        from: Option<StatusPoint>,
        to: StatusPoint,
        /// `api`, `webhook` or `reconcile`.
        source: String,
    },
    /// A payment handler (plugin) finished with one of the payment's changes.
    Handler {
        handler: String,
        /// The bus event it was given.
        event_id: String,
        attempts: u32,
        /// `succeeded` or `failed`.
        outcome: String,
        /// The last failure, when it never succeeded.
        error: Option<String>,
    },
    /// A merchant webhook delivery of the payment (read from the outbox).
    Delivery {
        delivery_id: String,
        /// `payment.completed`, …
        event_type: String,
        /// `pending`, `delivered` or `failed`.
        status: String,
        attempts: i64,
        /// The merchant endpoint's last HTTP status, if it answered.
        last_http_status: Option<i64>,
    },
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::ApiRequest { .. } => "api_request",
            Entry::ProviderCall { .. } => "provider_call",
            Entry::WebhookReceived { .. } => "webhook_received",
            Entry::StatusChanged { .. } => STATUS_CHANGED,
            Entry::Handler { .. } => "handler",
            Entry::Delivery { .. } => "delivery",
        }
    }

    /// The entry a committed update calls for.
    fn status_changed(update: &IntentUpdate) -> Entry {
        let from = match (update.previous_status, update.previous) {
            (Some(status), Some(intent)) => Some(StatusPoint::new(status, intent)),
            _ => None,
        };
        Entry::StatusChanged {
            from,
            to: StatusPoint::new(update.status, update.intent.status),
            source: source_name(update.source),
        }
    }
}

/// `api`, `webhook`, `reconcile`: gateway-core's own names for a source.
fn source_name(source: ChangeSource) -> String {
    serde_json::to_value(source)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An entry as the API shows it: when, then its type and fields.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TimelineEntry {
    /// RFC 3339.
    at: String,
    #[serde(flatten)]
    entry: Entry,
}

/// A payment's timeline: every entry at once (it is bounded), oldest first.
#[derive(Debug, Serialize)]
pub(crate) struct Timeline {
    #[serde(flatten)]
    list: List<TimelineEntry>,
    /// Whether entries past the cap were dropped (status changes never are).
    truncated: bool,
}

/// A timeline time (Unix µs: entries of one run are often less than a
/// millisecond apart) in milliseconds.
fn at_ms(at_us: i64) -> i64 {
    at_us.div_euclid(1000)
}

// ---- recording -------------------------------------------------------------

tokio::task_local! {
    /// What the current run collected (see [`recorded`]).
    static RUN: RefCell<Run>;
}

/// One run of a use case: the payment it concerns and the entries not stored yet.
#[derive(Default)]
struct Run {
    subject: Option<Subject>,
    pending: Vec<(i64, Entry)>,
    request: Option<Request>,
}

/// A merchant's payment.
#[derive(Clone)]
struct Subject {
    merchant_id: String,
    payment_id: String,
}

/// The API request a run answers, until it is answered.
struct Request {
    method: String,
    path: String,
    idempotency_key: Option<String>,
    at: i64,
}

/// What [`recorded`] does with entries no commit took when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftovers {
    /// Commits them alone (for the payment the run concerns).
    Commit,
    /// Drops them (a read that changed nothing records nothing).
    Drop,
}

/// Runs `work` as one recorded run (inside another, it is part of that one).
pub(crate) async fn recorded<T>(core: &Core, leftovers: Leftovers, work: impl Future<Output = T>) -> T {
    if RUN.try_with(|_| ()).is_ok() {
        return work.await;
    }
    RUN.scope(RefCell::new(Run::default()), async {
        let output = work.await;
        if leftovers == Leftovers::Commit {
            let rows = RUN.with(|run| {
                let mut run = run.borrow_mut();
                let subject = run.subject.clone();
                subject.map(|subject| rows_for(&subject, std::mem::take(&mut run.pending)))
            });
            if let Some(rows) = rows.filter(|rows| !rows.is_empty()) {
                if let Err(error) = core.store.commit(vec![insert(rows)]).await {
                    tracing::warn!(%error, "storing timeline entries failed");
                }
            }
        }
        output
    })
    .await
}

/// Says which payment the current run concerns (its entries go to it).
pub(crate) fn concerns(merchant_id: &str, payment_id: &str) {
    let _ = RUN.try_with(|run| {
        run.borrow_mut().subject = Some(Subject {
            merchant_id: merchant_id.to_owned(),
            payment_id: payment_id.to_owned(),
        });
    });
}

/// Adds an entry of `at` (Unix µs: see [`at_ms`]) to the current run.
pub(crate) fn note(at: i64, entry: Entry) {
    let _ = RUN.try_with(|run| run.borrow_mut().pending.push((at, entry)));
}

/// The API request the current run answers (its entry is added by [`answered`]).
pub(crate) fn request(method: &str, path: &str, idempotency_key: Option<&str>) {
    let _ = RUN.try_with(|run| {
        run.borrow_mut().request = Some(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            idempotency_key: idempotency_key.map(str::to_owned),
            at: now_us(),
        });
    });
}

/// The current run's request was answered `status`: its entry is added
/// (once; later calls do nothing), first among the entries of its time.
pub(crate) fn answered(status: u16, replayed: bool) {
    let _ = RUN.try_with(|run| {
        let mut run = run.borrow_mut();
        if let Some(request) = run.request.take() {
            let entry = Entry::ApiRequest {
                method: request.method,
                path: request.path,
                idempotency_key: request.idempotency_key,
                replayed,
                status,
            };
            run.pending.insert(0, (request.at, entry));
        }
    });
}

/// A provider call, as `CheckedProvider` reported it (outside a run: not recorded).
pub(crate) fn record_call(call: &ObservedCall<'_>) {
    let latency_ms = u64::try_from(call.elapsed.as_millis()).unwrap_or(u64::MAX);
    let latency_us = i64::try_from(call.elapsed.as_micros()).unwrap_or(i64::MAX);
    let (outcome, error_kind, http_status) = match call.outcome {
        Ok(()) => ("ok", None, None),
        Err(error) => {
            let outcome = match error.kind() {
                ProviderErrorKind::CardDeclined | ProviderErrorKind::AuthenticationRequired => "declined",
                ProviderErrorKind::OutcomeUnknown => "unknown",
                _ => "error",
            };
            let kind = (outcome == "error").then(|| error_kind_name(error.kind()));
            (outcome, kind, error.http_status())
        }
    };
    let entry = Entry::ProviderCall {
        provider: call.provider.to_owned(),
        operation: call.operation.to_owned(),
        outcome: outcome.to_owned(),
        error_kind,
        http_status,
        latency_ms,
    };
    // At its start: the calls and the changes they led to stay in order.
    note(now_us().saturating_sub(latency_us), entry);
}

/// An error kind's name (`unavailable`, `invalid_request`, …).
fn error_kind_name(kind: ProviderErrorKind) -> String {
    let name = format!("{kind:?}");
    let mut snake = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

/// Adds to `changes` the timeline entries they call for: a `status_changed`
/// entry per update, and what the current run collected (for the payment it
/// concerns, or else the payment the changes are about).
pub(crate) fn add_to_commit(changes: &mut Vec<Change>, updates: &[IntentUpdate]) {
    let now = now_us();
    let mut statuses: Vec<TimelineRow> = updates
        .iter()
        .map(|update| {
            let subject = Subject {
                merchant_id: update.merchant_id.clone(),
                payment_id: update.payment_id.clone(),
            };
            row(&subject, now, &Entry::status_changed(update))
        })
        .collect();
    let mut rows = Vec::new();
    let _ = RUN.try_with(|run| {
        let mut run = run.borrow_mut();
        let subject = run.subject.clone().or_else(|| subject_of(changes, updates));
        if let Some(subject) = subject {
            rows = rows_for(&subject, std::mem::take(&mut run.pending));
        }
    });
    rows.append(&mut statuses);
    if !rows.is_empty() {
        // By time (a stable sort): what the run collected comes before the changes it led to.
        rows.sort_by_key(|row| row.at);
        changes.push(insert(rows));
    }
}

/// The payment a commit is about, when the run did not say.
fn subject_of(changes: &[Change], updates: &[IntentUpdate]) -> Option<Subject> {
    if let Some(update) = updates.first() {
        return Some(Subject {
            merchant_id: update.merchant_id.clone(),
            payment_id: update.payment_id.clone(),
        });
    }
    changes.iter().find_map(|change| match change {
        Change::InsertPayment(row) | Change::UpdatePayment(row) => Some(Subject {
            merchant_id: row.merchant_id.clone(),
            payment_id: row.id.clone(),
        }),
        Change::InsertRefund(row) | Change::UpdateRefund(row) => Some(Subject {
            merchant_id: row.merchant_id.clone(),
            payment_id: row.payment_id.clone(),
        }),
        _ => None,
    })
}

fn rows_for(subject: &Subject, pending: Vec<(i64, Entry)>) -> Vec<TimelineRow> {
    let mut rows: Vec<TimelineRow> = pending
        .iter()
        .map(|(at, entry)| row(subject, *at, entry))
        .collect();
    rows.sort_by_key(|row| row.at);
    rows
}

fn row(subject: &Subject, at: i64, entry: &Entry) -> TimelineRow {
    TimelineRow {
        seq: 0,
        merchant_id: subject.merchant_id.clone(),
        payment_id: subject.payment_id.clone(),
        at,
        kind: entry.kind().to_owned(),
        // A tagged enum of strings and numbers always serializes.
        detail: serde_json::to_string(entry).unwrap_or_default(),
    }
}

fn insert(rows: Vec<TimelineRow>) -> Change {
    Change::InsertTimeline {
        rows,
        cap: CAP,
        uncapped_kind: STATUS_CHANGED,
    }
}

/// Records how the handlers fared with the published changes of `update`,
/// by a task of its own once the bus has finished with them (nothing waits
/// for it: not the request, not the handlers).
pub(crate) fn record_handlers(
    core: &Core,
    update: &IntentUpdate,
    dispatched: Vec<impl Future<Output = Vec<HandlerOutcome>> + Send + 'static>,
) {
    if dispatched.is_empty() {
        return;
    }
    let store = core.store.clone();
    let subject = Subject {
        merchant_id: update.merchant_id.clone(),
        payment_id: update.payment_id.clone(),
    };
    tokio::spawn(async move {
        let mut rows = Vec::new();
        for handlers in dispatched {
            for outcome in handlers.await {
                let entry = Entry::Handler {
                    handler: outcome.handler.to_owned(),
                    event_id: outcome.event_id().to_owned(),
                    attempts: outcome.attempts,
                    outcome: if outcome.succeeded() {
                        "succeeded"
                    } else {
                        "failed"
                    }
                    .to_owned(),
                    error: outcome
                        .error
                        .as_ref()
                        .map(|error| error.chars().take(ERROR_MAX_CHARS).collect()),
                };
                rows.push(row(&subject, now_us(), &entry));
            }
        }
        if rows.is_empty() {
            return;
        }
        if let Err(error) = store.commit(vec![insert(rows)]).await {
            tracing::warn!(payment = %subject.payment_id, %error, "storing handler outcomes failed");
        }
    });
}

// ---- reading ---------------------------------------------------------------

/// The timeline of the caller's payment `id` (404 if it is not the caller's).
pub(crate) async fn timeline(core: &Core, caller: &Caller, id: &str) -> Result<Timeline, ApiError> {
    let payment = crate::app::payments_api::load(core, caller, id).await?;
    let stored = core.store.timeline(&caller.merchant_id, &payment.id).await?;
    let filter = DeliveryFilter {
        payment_id: Some(payment.id.clone()),
        limit: DELIVERIES_SHOWN,
        ..DeliveryFilter::default()
    };
    let mut deliveries: Vec<(i64, Entry)> = core
        .store
        .deliveries(&caller.merchant_id, &filter)
        .await?
        .into_iter()
        .map(delivery_entry)
        .collect();
    deliveries.reverse();
    Ok(assemble(stored, deliveries))
}

/// A merchant webhook delivery as an entry, at its creation.
fn delivery_entry(delivery: DeliveryRow) -> (i64, Entry) {
    (
        delivery.created_at.saturating_mul(1000),
        Entry::Delivery {
            delivery_id: delivery.id,
            event_type: delivery.event_type,
            status: delivery.status.as_str().to_owned(),
            attempts: delivery.attempts,
            last_http_status: delivery.last_status,
        },
    )
}

/// The stored entries (in order) cut to the cap, merged with the deliveries
/// (oldest first) by time; in the same millisecond, recorded entries come first.
fn assemble(stored: Vec<TimelineRow>, deliveries: Vec<(i64, Entry)>) -> Timeline {
    let mut capped = 0i64;
    let mut truncated = false;
    let mut recorded: Vec<(i64, Entry)> = Vec::with_capacity(stored.len());
    for row in stored {
        if row.kind != STATUS_CHANGED {
            capped += 1;
            if capped > CAP {
                truncated = true;
                continue;
            }
        }
        match serde_json::from_str::<Entry>(&row.detail) {
            Ok(entry) => recorded.push((row.at, entry)),
            Err(error) => tracing::warn!(seq = row.seq, %error, "skipped an unreadable timeline entry"),
        }
    }
    let mut delivered = deliveries.into_iter();
    let mut merged = Vec::with_capacity(recorded.len() + DELIVERIES_SHOWN as usize);
    let mut next_delivery = delivered.next();
    for (at, entry) in recorded {
        // A delivery's time is in milliseconds: it follows the entries of its millisecond.
        while let Some((delivery_at, _)) = &next_delivery {
            if at_ms(*delivery_at) >= at_ms(at) {
                break;
            }
            merged.extend(next_delivery.take());
            next_delivery = delivered.next();
        }
        merged.push((at, entry));
    }
    merged.extend(next_delivery);
    merged.extend(delivered);
    let data = merged
        .into_iter()
        .map(|(at, entry)| TimelineEntry {
            at: rfc3339(at_ms(at)),
            entry,
        })
        .collect();
    Timeline {
        list: List::all(data),
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: i64, at: i64, entry: &Entry) -> TimelineRow {
        let subject = Subject {
            merchant_id: "m1".into(),
            payment_id: "p1".into(),
        };
        TimelineRow {
            seq,
            ..row(&subject, at, entry)
        }
    }

    fn webhook(id: &str) -> Entry {
        Entry::WebhookReceived {
            provider: "mock".into(),
            event_id: id.into(),
            event_type: "payment_intent.succeeded".into(),
            duplicate: false,
        }
    }

    #[test]
    fn entries_are_tagged_by_type_and_read_back() {
        let entry = Entry::ApiRequest {
            method: "POST".into(),
            path: "/v1/payments".into(),
            idempotency_key: Some("k1".into()),
            replayed: true,
            status: 200,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["type"], "api_request");
        assert_eq!(json["replayed"], true);
        assert_eq!(serde_json::from_value::<Entry>(json).unwrap(), entry);
        assert_eq!(
            error_kind_name(ProviderErrorKind::InvalidRequest),
            "invalid_request"
        );
        assert_eq!(error_kind_name(ProviderErrorKind::Unavailable), "unavailable");
    }

    #[test]
    fn assembling_cuts_at_the_cap_but_keeps_status_changes_and_merges_deliveries() {
        let status = Entry::StatusChanged {
            from: None,
            to: StatusPoint::new(PaymentStatus::Pending, IntentStatus::RequiresConfirmation),
            source: "api".into(),
        };
        let mut rows = Vec::new();
        for i in 0..(CAP + 1) {
            rows.push(stored(i, (10 + i) * 1000 + 500, &webhook(&format!("evt_{i}"))));
        }
        rows.push(stored(CAP + 1, 10_000_000, &status));
        let delivery = Entry::Delivery {
            delivery_id: "evt_d".into(),
            event_type: "payment.completed".into(),
            status: "delivered".into(),
            attempts: 1,
            last_http_status: Some(200),
        };
        let timeline = assemble(rows, vec![(12_000, delivery)]);
        assert!(timeline.truncated);
        let json = serde_json::to_value(&timeline).unwrap();
        let data = json["data"].as_array().unwrap();
        assert_eq!(
            data.len() as i64,
            CAP + 2,
            "the cap's entries, the status change, the delivery"
        );
        assert_eq!(json["object"], "list");
        assert_eq!(
            data[2]["type"], "webhook_received",
            "recorded first at the same time"
        );
        assert_eq!(data[3]["type"], "delivery");
        assert_eq!(data[3]["last_http_status"], 200);
        assert_eq!(data.last().unwrap()["type"], "status_changed");
    }
}
