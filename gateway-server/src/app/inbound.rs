//! Inbound provider webhooks after they are stored: processing, and the
//! sweep that processes what a crash or a provider outage left behind.
//!
//! An event is processed at most once: its effects (the payment change, a
//! refund record, the outbox rows) commit in one transaction with the
//! [`Change::FinishWebhookEvent`] that marks it processed, and that change
//! fails the transaction when another run got there first.
//!
//! Events come in any order: a non-terminal intent state is retrieved from
//! the provider before it is applied ([`current_intent`] says why), and a
//! refund only moves forward ([`apply_refund`]). An event that cannot be
//! applied yet is retried by the sweep at its next attempt time, with
//! backoff; one about an intent whose metadata names no gateway payment is
//! not this gateway's and is finished at once ([`without_payment`]).

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{
    EventObject, PaymentIntent, PaymentProvider, ProviderErrorKind, VerifiedWebhook,
    GATEWAY_PAYMENT_METADATA_KEY,
};

use crate::app::core::Core;
use crate::app::payments::{apply_intent_change, apply_refund, commit_and_publish, ChangeSource};
use crate::app::timeline;
use crate::store::{Change, EventKey, StoreError, WebhookEventRow, EVENT_ALREADY_PROCESSED};
use crate::support::clock::now_ms;

/// Processing attempts before an event is set aside (marked processed with its last error).
const MAX_ATTEMPTS: i64 = 50;

/// How long an event about an intent whose metadata names a gateway payment
/// with no row (yet) is retried: the API call that created the intent may
/// still be committing its payment.
const UNKNOWN_INTENT_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The pause after an event's first failed attempt; it doubles after each
/// further one, up to [`MAX_RETRY_DELAY_MS`] (50 attempts span about 20 hours).
const FIRST_RETRY_DELAY_MS: i64 = 1_000;

/// The longest pause between two attempts of one event.
const MAX_RETRY_DELAY_MS: i64 = 30 * 60 * 1000;

/// The pause before the next attempt of an event that has failed `failures` times (1-based).
fn retry_delay_ms(failures: i64) -> i64 {
    let doublings = (failures - 1).clamp(0, 30) as u32;
    FIRST_RETRY_DELAY_MS
        .saturating_mul(1i64 << doublings)
        .min(MAX_RETRY_DELAY_MS)
}

/// What processing did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Processed {
    /// Applied (or found nothing to change) and marked processed.
    Done,
    /// Already processed by an earlier run.
    AlreadyDone,
    /// Left for a later attempt (provider unavailable, intent not known yet).
    Later,
}

/// The provider account an event key names.
pub(crate) async fn provider_for(state: &Core, key: &EventKey) -> Option<Arc<dyn PaymentProvider>> {
    if key.account.is_empty() {
        state.providers.global(&key.provider)
    } else {
        state
            .providers
            .for_merchant(&*state.store, &state.sealer, &key.account, &key.provider)
            .await
            .ok()
    }
}

/// Processes a stored event if, read again under its lock, it is still not
/// processed and its next attempt is still due before `due_before`: the
/// sweep's list may be stale (the request that stored the event may have
/// just made an attempt and scheduled the next one).
async fn process_if_due(state: &Core, key: &EventKey, due_before: i64) -> Processed {
    let _guard = state.event_locks.lock(key.clone()).await;
    let row = match state.store.webhook_event(key).await {
        Ok(Some(row)) if row.processed_at.is_none() && row.next_attempt_at <= due_before => row,
        Ok(Some(row)) if row.processed_at.is_none() => return Processed::Later,
        Ok(_) => return Processed::AlreadyDone,
        Err(error) => {
            tracing::warn!(event = %key.event_id, %error, "reading a stored webhook event failed");
            return Processed::Later;
        }
    };
    process_locked(state, row).await
}

/// Processes an event just stored, without reading it back. If it was a
/// duplicate of one processed already, the commit that would mark it
/// processed again fails, and nothing it computed is applied.
pub(crate) async fn process_stored(state: &Core, row: WebhookEventRow) -> Processed {
    let _guard = state.event_locks.lock(row.key.clone()).await;
    process_locked(state, row).await
}

async fn process_locked(state: &Core, row: WebhookEventRow) -> Processed {
    let key = &row.key;
    let applied = timeline::recorded(state, timeline::Leftovers::Commit, apply(state, &row)).await;
    match applied {
        Ok(processed) => processed,
        Err(Failure::Conflict) => Processed::AlreadyDone,
        Err(Failure::Retry(error)) => {
            tracing::warn!(
                event = %key.event_id,
                attempts = row.attempts + 1,
                error = %error,
                changed = row.last_error.as_deref() != Some(error.as_str()),
                "webhook processing failed; will retry"
            );
            let change = if row.attempts + 1 >= MAX_ATTEMPTS {
                Change::FinishWebhookEvent {
                    key: key.clone(),
                    at: now_ms(),
                    note: Some(format!("gave up: {error}")),
                }
            } else {
                Change::WebhookEventFailed {
                    key: key.clone(),
                    error,
                    retry_at: now_ms() + retry_delay_ms(row.attempts + 1),
                }
            };
            let _ = state.store.commit(vec![change]).await;
            Processed::Later
        }
    }
}

enum Failure {
    Conflict,
    Retry(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => Failure::Conflict,
            other => Failure::Retry(other.to_string()),
        }
    }
}

fn finish(key: &EventKey, note: Option<&str>) -> Change {
    Change::FinishWebhookEvent {
        key: key.clone(),
        at: now_ms(),
        note: note.map(str::to_owned),
    }
}

async fn apply(state: &Core, row: &WebhookEventRow) -> Result<Processed, Failure> {
    let key = &row.key;
    let Some(provider) = provider_for(state, key).await else {
        return Err(Failure::Retry(format!(
            "provider {:?} is not available",
            key.provider
        )));
    };
    let webhook = VerifiedWebhook {
        event_id: key.event_id.clone(),
        event_type: row.event_type.clone(),
        created: None,
        object_id: None,
        body: row.body.clone(),
    };
    let event = match provider.interpret_webhook(&webhook).await {
        Ok(event) => event,
        Err(error) if error.is_retryable() => return Err(Failure::Retry(error.to_string())),
        Err(error) => {
            tracing::warn!(event = %key.event_id, %error, "webhook event cannot be interpreted; set aside");
            let note = format!("not interpretable: {error}");
            state.store.commit(vec![finish(key, Some(&note))]).await?;
            return Ok(Processed::Done);
        }
    };
    let merchant = (!key.account.is_empty()).then_some(key.account.as_str());
    let intent_id = match &event.object {
        EventObject::Intent { intent } => intent.id.clone(),
        EventObject::Refund { refund } => refund.payment_intent.clone(),
        _ => {
            state
                .store
                .commit(vec![finish(key, Some("ignored event type"))])
                .await?;
            return Ok(Processed::Done);
        }
    };
    let Some(payment) = state
        .store
        .payment_by_provider_ref(merchant, provider.name(), &intent_id)
        .await?
    else {
        return without_payment(state, &*provider, row, &event.object, &intent_id).await;
    };
    let _payment_guard = state.payment_locks.lock(payment.id.clone()).await;
    // Re-read under the lock: an API call may have changed it meanwhile.
    let Some(mut payment) = state.store.payment(&payment.merchant_id, &payment.id).await? else {
        return Err(Failure::Retry("payment vanished".to_owned()));
    };
    let (mut changes, mut updates) = match event.object {
        EventObject::Intent { intent } => {
            let Some(intent) = current_intent(&*provider, intent).await? else {
                state
                    .store
                    .commit(vec![finish(key, Some("the provider no longer has the intent"))])
                    .await?;
                return Ok(Processed::Done);
            };
            match apply_intent_change(&mut payment, intent, ChangeSource::Webhook) {
                Some((change, update)) => (vec![change], vec![update]),
                None => (Vec::new(), Vec::new()),
            }
        }
        EventObject::Refund { refund } => {
            let stored = state.store.refunds_of_payment(&payment.id).await?;
            let applied = apply_refund(&mut payment, &stored, refund, ChangeSource::Webhook);
            (applied.changes, applied.updates)
        }
        _ => (Vec::new(), Vec::new()),
    };
    for update in &mut updates {
        update.event_id = event.id.clone();
    }
    changes.push(finish(key, None));
    // The event goes on the payment's timeline with what it changed.
    timeline::concerns(&payment.merchant_id, &payment.id);
    timeline::note(row.received_at.saturating_mul(1000), received(row, false));
    match commit_and_publish(state, changes, &updates).await {
        Ok(()) => Ok(Processed::Done),
        Err(StoreError::Conflict(EVENT_ALREADY_PROCESSED)) => {
            // A second delivery of an event applied before: recorded alone, as a duplicate.
            timeline::note(row.received_at.saturating_mul(1000), received(row, true));
            Err(Failure::Conflict)
        }
        Err(error) => Err(error.into()),
    }
}

/// The timeline entry of a provider webhook about a payment.
fn received(row: &WebhookEventRow, duplicate: bool) -> timeline::Entry {
    timeline::Entry::WebhookReceived {
        provider: row.key.provider.clone(),
        event_id: row.key.event_id.clone(),
        event_type: row.event_type.clone(),
        duplicate,
    }
}

/// The intent state to apply for an intent event: the event's own snapshot
/// when it is terminal, else the intent as the provider has it now (`None`
/// when the provider no longer knows it).
///
/// Webhooks arrive in any order and more than once. A terminal snapshot
/// (`succeeded`, `canceled`) is never stale: nothing follows it, and the
/// transition rule refuses any later move. A non-terminal snapshot may be:
/// an old attempt's `payment_failed` delivered after `processing`, or a
/// `requires_action` delivered after the failure, looks like a legal move
/// and would send merchants a false `payment.failed` or `payment.pending`
/// (and take processing → failed → succeeded). So before a non-terminal
/// transition the intent is retrieved, and its current state applied.
///
/// Retrieval, rather than comparing the event's time with the last applied
/// state's: Stripe's event `created` has one-second resolution (processing
/// and succeeded commonly share a second), the intent object has no update
/// time of its own, and API answers applied between two events have no
/// event time at all. The retrieved state is exact, whatever the order, for
/// one read per non-terminal event; if the provider cannot answer, the event
/// is retried later rather than applied blind.
async fn current_intent(
    provider: &dyn PaymentProvider,
    snapshot: PaymentIntent,
) -> Result<Option<PaymentIntent>, Failure> {
    if snapshot.status.is_terminal() {
        return Ok(Some(snapshot));
    }
    match provider.retrieve_intent(&snapshot.id).await {
        Ok(current) => Ok(Some(current)),
        Err(error) if error.kind() == ProviderErrorKind::NotFound => Ok(None),
        Err(error) => Err(Failure::Retry(error.to_string())),
    }
}

/// An event about an intent no payment row names. An intent whose metadata
/// names no gateway payment ([`GATEWAY_PAYMENT_METADATA_KEY`]) is not this
/// gateway's (an invoice, another application on the same account): the
/// event is finished at once, not retried. One that names a gateway payment
/// is retried (with backoff) while its payment may still be stored.
async fn without_payment(
    state: &Core,
    provider: &dyn PaymentProvider,
    row: &WebhookEventRow,
    object: &EventObject,
    intent_id: &str,
) -> Result<Processed, Failure> {
    let key = &row.key;
    let intent = match object {
        EventObject::Intent { intent } => intent.clone(),
        // A refund names its intent only: ask the provider for the intent.
        _ => match provider.retrieve_intent(intent_id).await {
            Ok(intent) => intent,
            Err(error) if error.kind() == ProviderErrorKind::NotFound => {
                state
                    .store
                    .commit(vec![finish(key, Some("unknown intent"))])
                    .await?;
                return Ok(Processed::Done);
            }
            Err(error) => return Err(Failure::Retry(error.to_string())),
        },
    };
    let Some(gateway_payment) = intent.metadata.get(GATEWAY_PAYMENT_METADATA_KEY).cloned() else {
        state
            .store
            .commit(vec![finish(
                key,
                Some("not ours: the intent names no gateway payment"),
            )])
            .await?;
        return Ok(Processed::Done);
    };
    // An intent whose creation reply was lost: the draft its metadata names adopts it.
    let adopted = crate::app::resolve::adopt_intent(state, &intent, ChangeSource::Webhook)
        .await
        .map_err(|error| Failure::Retry(error.to_string()))?;
    if adopted.is_some() {
        if matches!(object, EventObject::Intent { .. }) {
            state
                .store
                .commit(vec![finish(key, Some("adopted by its draft payment"))])
                .await?;
            return Ok(Processed::Done);
        }
        return Err(Failure::Retry(format!(
            "payment {gateway_payment} adopted intent {intent_id}; the event applies next"
        )));
    }
    if now_ms() - row.received_at > UNKNOWN_INTENT_WINDOW_MS {
        state
            .store
            .commit(vec![finish(key, Some("intent of no payment of this gateway"))])
            .await?;
        return Ok(Processed::Done);
    }
    Err(Failure::Retry(format!(
        "no payment {gateway_payment} for intent {intent_id} yet"
    )))
}

/// Processes stored events whose next attempt is due (a crash, a failed
/// attempt backing off) every `interval`, starting at once: the longest
/// due first, so events that keep failing wait their turn and never starve
/// the others.
pub(crate) async fn sweep_loop(state: Arc<Core>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        sweep_once(&state, now_ms()).await;
    }
}

/// Processes the stored events not yet processed whose next attempt is due
/// before `due_before` (200 at most); returns how many it took up.
pub(crate) async fn sweep_once(state: &Core, due_before: i64) -> usize {
    let rows = match state.store.unprocessed_webhook_events(due_before, 200).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "listing unprocessed webhook events failed");
            return 0;
        }
    };
    let count = rows.len();
    for row in rows {
        process_if_due(state, &row.key, due_before).await;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_second_to_half_an_hour() {
        assert_eq!(retry_delay_ms(1), 1_000);
        assert_eq!(retry_delay_ms(2), 2_000);
        assert_eq!(retry_delay_ms(11), 1_024_000);
        assert_eq!(retry_delay_ms(12), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(1_000), MAX_RETRY_DELAY_MS);
        let total: i64 = (1..MAX_ATTEMPTS).map(retry_delay_ms).sum();
        let hours = total / 3_600_000;
        assert!(
            (12..24).contains(&hours),
            "{hours} h: given up before the unknown-intent window ends"
        );
    }
}
