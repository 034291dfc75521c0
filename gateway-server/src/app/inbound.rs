//! Inbound provider webhooks after they are stored: processing, and the
//! sweep that processes what a crash or a provider outage left behind.
//!
//! An event is processed at most once: its effects (the payment change, a
//! refund record, the outbox rows) commit in one transaction with the
//! [`Change::FinishWebhookEvent`] that marks it processed, and that change
//! fails the transaction when another run got there first.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{EventObject, PaymentProvider, ProviderErrorKind, VerifiedWebhook};

use crate::app::core::Core;
use crate::app::payments::{apply_intent_change, apply_refund, commit_and_publish, ChangeSource};
use crate::store::{Change, EventKey, RefundRow, StoreError, WebhookEventRow};
use crate::support::clock::now_ms;
use crate::support::ids::new_id;

/// Processing attempts before an event is set aside (marked processed with its last error).
const MAX_ATTEMPTS: i64 = 50;

/// How long an event about an intent the gateway does not know (yet) is
/// retried: the provider may deliver it before the API call that created the
/// intent has committed its payment.
const UNKNOWN_INTENT_WINDOW_MS: i64 = 24 * 3600 * 1000;

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

/// Processes a stored event unless it was processed already.
pub(crate) async fn process(state: &Core, key: &EventKey) -> Processed {
    let _guard = state.event_locks.lock(key.clone()).await;
    let row = match state.store.webhook_event(key).await {
        Ok(Some(row)) if row.processed_at.is_none() => row,
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
    match apply(state, &row).await {
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
    let (intent_id, refund) = match &event.object {
        EventObject::Intent { intent } => (intent.id.clone(), None),
        EventObject::Refund { refund } => (refund.payment_intent.clone(), Some(refund.clone())),
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
        // An intent whose creation reply was lost: its metadata names the draft it belongs to.
        if let EventObject::Intent { intent } = &event.object {
            let adopted = crate::app::resolve::adopt_intent(state, intent, ChangeSource::Webhook)
                .await
                .map_err(|error| Failure::Retry(error.to_string()))?;
            if adopted.is_some() {
                state
                    .store
                    .commit(vec![finish(key, Some("adopted by its draft payment"))])
                    .await?;
                return Ok(Processed::Done);
            }
        }
        // Not (yet) a payment of this gateway: confirm with the provider that
        // the intent exists, and retry while its creation may still commit.
        match provider.retrieve_intent(&intent_id).await {
            Err(error) if error.kind() == ProviderErrorKind::NotFound => {
                state
                    .store
                    .commit(vec![finish(key, Some("unknown intent"))])
                    .await?;
                return Ok(Processed::Done);
            }
            Err(error) if error.is_retryable() => return Err(Failure::Retry(error.to_string())),
            _ => {}
        }
        if now_ms() - row.received_at > UNKNOWN_INTENT_WINDOW_MS {
            state
                .store
                .commit(vec![finish(key, Some("intent of no payment of this gateway"))])
                .await?;
            return Ok(Processed::Done);
        }
        return Err(Failure::Retry(format!("no payment for intent {intent_id} yet")));
    };
    let _payment_guard = state.payment_locks.lock(payment.id.clone()).await;
    // Re-read under the lock: an API call may have changed it meanwhile.
    let Some(mut payment) = state.store.payment(&payment.merchant_id, &payment.id).await? else {
        return Err(Failure::Retry("payment vanished".to_owned()));
    };
    let mut changes = Vec::new();
    let mut updates = Vec::new();
    match refund {
        None => {
            let EventObject::Intent { intent } = event.object else {
                return Err(Failure::Retry("unreachable".to_owned()));
            };
            if let Some((change, mut update)) =
                apply_intent_change(&mut payment, intent, ChangeSource::Webhook)
            {
                update.event_id = event.id.clone();
                changes.push(change);
                updates.push(update);
            }
        }
        Some(refund) => {
            let known = state
                .store
                .refund_by_provider_id(&payment.id, &refund.id)
                .await?
                .is_some();
            if !known {
                // A refund made outside the API (the provider's dashboard).
                if refund.status.holds_funds() {
                    let (change, mut update) =
                        apply_refund(&mut payment, refund.amount, ChangeSource::Webhook);
                    update.event_id = event.id.clone();
                    update.refund = Some(refund.clone());
                    changes.push(change);
                    updates.push(update);
                }
                changes.push(Change::InsertRefund(Box::new(RefundRow {
                    id: new_id(),
                    merchant_id: payment.merchant_id.clone(),
                    payment_id: payment.id.clone(),
                    refund,
                    created_at: now_ms(),
                })));
            }
        }
    }
    changes.push(finish(key, None));
    commit_and_publish(state, changes, &updates).await?;
    Ok(Processed::Done)
}

/// Processes stored events left unprocessed (by a crash, or a failed
/// attempt) every `interval`, starting at once.
pub(crate) async fn sweep_loop(state: Arc<Core>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let rows = match state.store.unprocessed_webhook_events(200).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "listing unprocessed webhook events failed");
                continue;
            }
        };
        let now = now_ms();
        let interval_ms = interval.as_millis() as i64;
        for row in rows {
            // Back off quadratically for events that keep failing.
            if row.attempts >= 3 && now - row.received_at < row.attempts * row.attempts * interval_ms {
                continue;
            }
            process(&state, &row.key).await;
        }
    }
}
