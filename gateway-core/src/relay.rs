//! Relays a provider's events to the bus, remembering intent statuses in memory.
//!
//! The server does the same durably (webhooks stored, statuses in its
//! database); this relay is for tests, examples and single-process tools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::bus::{EventBus, Publication};
use crate::error::ProviderError;
use crate::events::{ChangeSource, IntentChange, IntentChangeContext};
use crate::intent::IntentStatus;
use crate::provider::PaymentProvider;
use crate::webhook::{EventObject, ProviderEvent};

/// Publishes provider events on a bus as intent changes, applying the
/// legal-transition rule against the statuses it has seen.
pub struct MemoryRelay {
    provider: Arc<dyn PaymentProvider>,
    bus: EventBus,
    statuses: Mutex<HashMap<String, IntentStatus>>,
}

impl MemoryRelay {
    /// A relay from `provider` to `bus`.
    pub fn new(provider: Arc<dyn PaymentProvider>, bus: EventBus) -> Self {
        MemoryRelay {
            provider,
            bus,
            statuses: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes the changes `event` makes (received as a webhook on this
    /// instance; [`IntentChange::from_provider_event`]); none when it changes
    /// nothing. Refund events carry the intent retrieved from the provider.
    pub async fn relay(&self, event: &ProviderEvent) -> Result<Vec<Publication>, ProviderError> {
        let intent = match &event.object {
            EventObject::Intent { intent } => intent.clone(),
            EventObject::Refund { refund } => self.provider.retrieve_intent(&refund.payment_intent).await?,
            _ => return Ok(Vec::new()),
        };
        let context = IntentChangeContext {
            event_id: event.id.clone(),
            source: ChangeSource::Webhook,
            local: true,
            received_at: event.created,
            merchant: None,
        };
        let changes = {
            let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
            let previous = statuses.get(&intent.id).copied();
            let changes = IntentChange::from_provider_event(event, intent, previous, context);
            if let Some(last) = changes.last() {
                statuses.insert(last.intent.id.clone(), last.intent.status);
            }
            changes
        };
        Ok(changes
            .into_iter()
            .map(|change| self.bus.publish(change))
            .collect())
    }

    /// Relays `events` in order and waits for their handlers.
    pub async fn relay_all(&self, events: &[ProviderEvent]) -> Result<(), ProviderError> {
        for event in events {
            for publication in self.relay(event).await? {
                publication.done().await;
            }
        }
        Ok(())
    }
}
