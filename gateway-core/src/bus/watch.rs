//! Watchers: streams of intent changes, for everything or one intent.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{lock, BusInner};
use crate::events::SharedChange;
use crate::intent::{IntentStatus, PaymentIntent};

/// How many ended intents the bus remembers, so a late watcher still sees the end.
const REMEMBERED_ENDINGS: usize = 10_000;

type Sender = (u64, UnboundedSender<SharedChange>);

#[derive(Default)]
pub(super) struct Watchers {
    next_id: u64,
    all: Vec<Sender>,
    by_intent: HashMap<String, Vec<Sender>>,
    /// The terminal change of recently ended intents, oldest first.
    endings: HashMap<String, SharedChange>,
    ending_order: std::collections::VecDeque<String>,
}

impl Watchers {
    /// Sends `change` to every watcher of everything and of its intent; a
    /// terminal change ends the intent's watchers.
    pub(super) fn deliver(&mut self, change: &SharedChange) {
        self.all
            .retain(|(_, sender)| sender.send(Arc::clone(change)).is_ok());
        let intent_id = &change.intent.id;
        if let Some(senders) = self.by_intent.get_mut(intent_id) {
            senders.retain(|(_, sender)| sender.send(Arc::clone(change)).is_ok());
            if senders.is_empty() {
                self.by_intent.remove(intent_id);
            }
        }
        if change.intent.status.is_terminal() {
            self.by_intent.remove(intent_id);
            if self
                .endings
                .insert(intent_id.clone(), Arc::clone(change))
                .is_none()
            {
                self.ending_order.push_back(intent_id.clone());
                if self.ending_order.len() > REMEMBERED_ENDINGS {
                    if let Some(oldest) = self.ending_order.pop_front() {
                        self.endings.remove(&oldest);
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: u64, intent_id: Option<&str>) {
        match intent_id {
            None => self.all.retain(|(watcher, _)| *watcher != id),
            Some(intent_id) => {
                if let Some(senders) = self.by_intent.get_mut(intent_id) {
                    senders.retain(|(watcher, _)| *watcher != id);
                    if senders.is_empty() {
                        self.by_intent.remove(intent_id);
                    }
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.all.len() + self.by_intent.values().map(Vec::len).sum::<usize>()
    }
}

/// A stream of intent changes from [`super::EventBus::watch_all`] or
/// [`super::EventBus::watch_payment`]. Dropping it unregisters it.
pub struct Watch {
    receiver: UnboundedReceiver<SharedChange>,
    bus: Weak<BusInner>,
    id: u64,
    intent_id: Option<String>,
}

impl Watch {
    pub(super) fn register(inner: &Arc<BusInner>, intent_id: Option<&str>) -> Watch {
        let (sender, receiver) = unbounded_channel();
        let mut watchers = lock(&inner.watchers);
        watchers.next_id += 1;
        let id = watchers.next_id;
        match intent_id {
            None => watchers.all.push((id, sender)),
            Some(intent_id) => match watchers.endings.get(intent_id) {
                // Already ended: give the ending, then the stream ends.
                Some(ending) => {
                    let _ = sender.send(Arc::clone(ending));
                }
                None => watchers
                    .by_intent
                    .entry(intent_id.to_owned())
                    .or_default()
                    .push((id, sender)),
            },
        }
        Watch {
            receiver,
            bus: Arc::downgrade(inner),
            id,
            intent_id: intent_id.map(str::to_owned),
        }
    }

    /// The next change; `None` once the watched intent ended (after its last change) or the bus is gone.
    pub async fn next(&mut self) -> Option<SharedChange> {
        self.receiver.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(inner) = self.bus.upgrade() {
            lock(&inner.watchers).remove(self.id, self.intent_id.as_deref());
        }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("intent_id", &self.intent_id)
            .finish()
    }
}

/// Why [`super::EventBus::wait_for_payment`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The intent was canceled.
    #[error("payment intent {} was canceled", .0.id)]
    Canceled(Box<PaymentIntent>),
    /// It did not end within the timeout.
    #[error("payment intent did not end in time")]
    TimedOut,
    /// The bus shut down.
    #[error("the event bus shut down")]
    Closed,
}

pub(super) async fn wait_for_payment(
    mut watch: Watch,
    timeout: Duration,
) -> Result<PaymentIntent, WaitError> {
    let ended = async {
        while let Some(change) = watch.next().await {
            match change.intent.status {
                IntentStatus::Succeeded => return Ok(change.intent.clone()),
                IntentStatus::Canceled => return Err(WaitError::Canceled(Box::new(change.intent.clone()))),
                _ => {}
            }
        }
        Err(WaitError::Closed)
    };
    tokio::time::timeout(timeout, ended)
        .await
        .unwrap_or(Err(WaitError::TimedOut))
}
