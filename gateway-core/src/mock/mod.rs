//! [`MockProvider`]: Stripe's test mode in memory, for tests and the sandbox
//! (deterministic for a given seed: [`MockConfig::deterministic`]).
//!
//! ```
//! use gateway_core::{CreateIntent, Currency, IdempotencyKey, IntentStatus, Money, MockProvider, PaymentProvider};
//!
//! # tokio_test_block(async {
//! let mock = MockProvider::new();
//! let mut request = CreateIntent::new(Money::parse("50.00", Currency::USD).unwrap());
//! request.payment_method = Some("pm_card_visa".into());
//! request.confirm = true;
//! let key = IdempotencyKey::new("order-42").unwrap();
//! let intent = mock.create_intent(request.clone(), &key).await.unwrap();
//! assert_eq!(intent.status, IntentStatus::Succeeded);
//! // The same key and parameters replay the first result: no second charge.
//! assert_eq!(mock.create_intent(request, &key).await.unwrap(), intent);
//! assert_eq!(mock.stats().charges_made, 1);
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! Test payment methods: `pm_card_visa`, `pm_card_mastercard` succeed;
//! `pm_card_chargeDeclined` (`generic_decline`),
//! `pm_card_chargeDeclinedInsufficientFunds`, `pm_card_chargeDeclinedExpiredCard`,
//! `pm_card_chargeDeclinedIncorrectCvc` decline with Stripe's codes;
//! `pm_card_threeDSecure2Required` asks for 3-D Secure on-session (finish it
//! with [`MockProvider::complete_authentication`]) and declines with
//! `authentication_required` off-session. Refunds succeed at once, except on
//! `pm_card_pendingRefund` (pending until [`MockProvider::settle_refund`],
//! then succeeded) and `pm_card_refundFail` (succeeded, then failed when settled).

mod bounded;
mod cards;
mod ids;
mod ledger;
mod random;
mod state;

pub use self::ledger::{Ledger, LedgerMethod, MoneyMovement, MovementKind};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use self::bounded::BoundedMap;
use self::state::Account;
use crate::customer::{Customer, SavedPaymentMethod};
use crate::error::ProviderError;
use crate::intent::{PaymentIntent, UnixTimestamp};
use crate::provider::{
    CancelIntent, Capabilities, CaptureIntent, ConfirmIntent, CreateCustomer, CreateIntent, CreateRefund,
    IdempotencyKey, PaymentProvider, UpdateIntent,
};
use crate::refund::Refund;
use crate::registry::{ProviderConfig, ProviderFactory};
use crate::webhook::{ProviderEvent, VerifiedWebhook, WebhookError, WebhookRequest};

/// The header carrying the mock's webhook secret.
pub const MOCK_SIGNATURE_HEADER: &str = "Mock-Signature";

/// A fault the mock injects into the next call it receives (or the next
/// call of one operation, with [`MockProvider::inject_fault_on`]).
///
/// Faults "before" leave the account untouched; faults "after" carry the
/// call out (money may move) and then keep its answer from the caller, the
/// ways a real provider's answer goes missing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The provider is down: the call fails before anything happens.
    Unavailable,
    /// The provider rate-limits the call before anything happens.
    RateLimited,
    /// The call is delayed by this long (on tokio's clock: pause it in tests), then runs.
    Slow(Duration),
    /// The call is carried out, its result saved under the idempotency key,
    /// and then the response is lost: the caller sees `Unavailable`.
    /// A retry with the same key gets the saved result, not a second charge.
    LostResponse,
    /// The provider answers 500 before doing anything (nothing is saved
    /// under the key: a retry runs the call).
    ServerErrorBefore,
    /// The call is carried out, then the provider answers 500 and, as
    /// Stripe does, saves that 500 under the idempotency key: a retry with
    /// the same key replays the 500, never the result.
    ServerErrorAfter,
    /// The call is carried out and its result saved under the key, but the
    /// answer never arrives (the caller's timeout after sending):
    /// [`ProviderError::OutcomeUnknown`] without a status.
    TimeoutAfterSend,
    /// The call is carried out and its result saved under the key, but the
    /// reply cannot be parsed: [`ProviderError::OutcomeUnknown`] with status 200.
    UnreadableReply,
}

impl Fault {
    /// Whether the call is carried out although its answer never reaches
    /// the caller (money may have moved: the outcome is unknown to it).
    pub fn hides_a_carried_out_call(&self) -> bool {
        self.hiding_error().is_some()
    }

    /// The error the caller sees in place of the answer, if the fault hides it.
    fn hiding_error(&self) -> Option<ProviderError> {
        match self {
            Fault::LostResponse => Some(ProviderError::Unavailable {
                status: None,
                message: "connection reset after the request was sent (injected)".to_owned(),
                source: None,
            }),
            Fault::ServerErrorAfter => Some(server_error()),
            Fault::TimeoutAfterSend => Some(ProviderError::OutcomeUnknown {
                status: None,
                message: "timed out waiting for the answer after sending the request (injected)".to_owned(),
                source: None,
            }),
            Fault::UnreadableReply => Some(ProviderError::OutcomeUnknown {
                status: Some(200),
                message: "the reply could not be parsed (injected)".to_owned(),
                source: None,
            }),
            _ => None,
        }
    }

    /// The error the call fails with before anything happens, for faults "before".
    fn refusal(&self) -> Option<ProviderError> {
        match self {
            Fault::Unavailable => Some(ProviderError::Unavailable {
                status: Some(503),
                message: "mock provider unavailable (injected)".to_owned(),
                source: None,
            }),
            Fault::RateLimited => Some(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
                message: "mock provider rate limit (injected)".to_owned(),
            }),
            Fault::ServerErrorBefore => Some(server_error()),
            _ => None,
        }
    }
}

/// Stripe's answer to a request that hit an error on its side.
fn server_error() -> ProviderError {
    ProviderError::Unavailable {
        status: Some(500),
        message: "An unknown error occurred (injected 500)".to_owned(),
        source: None,
    }
}

/// How the mock account starts.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The provider name it reports (default `mock`).
    pub name: String,
    /// Seed for ids: the same seed gives the same ids (random by default,
    /// so ids never repeat across processes; [`MockConfig::deterministic`] fixes it).
    pub seed: u64,
    /// The clock's start; every change moves it one second.
    pub start_time: UnixTimestamp,
    /// The value webhooks must carry in [`MOCK_SIGNATURE_HEADER`] (random
    /// by default, so no public value opens a gateway's mock endpoint).
    pub webhook_secret: String,
    /// How much the account remembers (everything, by default).
    pub retention: Retention,
    /// What the account reports it can do ([`Capabilities::FULL`] by default;
    /// narrower to test a gateway against a less capable provider).
    pub capabilities: Capabilities,
}

/// How much a mock account remembers; `None` keeps everything.
///
/// Tests keep everything. A long-running sandbox sets limits, as the `mock`
/// provider the gateway server builds does: past them the oldest intents,
/// idempotency records and untaken events are forgotten, and memory stays flat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Payment intents (the oldest become `NotFound`).
    pub intents: Option<usize>,
    /// Idempotency records (an older key runs again, as at Stripe after 24 hours).
    pub idempotency_keys: Option<usize>,
    /// Emitted events not yet taken.
    pub events: Option<usize>,
}

impl Retention {
    /// Limits for a sandbox that runs for days: 20 000 intents and keys, 1 000 events.
    pub const SANDBOX: Retention = Retention {
        intents: Some(20_000),
        idempotency_keys: Some(20_000),
        events: Some(1_000),
    };
}

impl Default for MockConfig {
    /// A random id seed and webhook secret, the clock at 2023-11-14, everything kept.
    fn default() -> Self {
        MockConfig {
            name: "mock".to_owned(),
            seed: random::random_u64(),
            start_time: 1_700_000_000,
            webhook_secret: format!(
                "whsec_mock_{:016x}{:016x}",
                random::random_u64(),
                random::random_u64()
            ),
            retention: Retention::default(),
            capabilities: Capabilities::FULL,
        }
    }
}

impl MockConfig {
    /// A configuration a test can replay: ids from `seed`, and a webhook
    /// secret derived from it (`whsec_mock_seed_{seed}`).
    pub fn deterministic(seed: u64) -> Self {
        MockConfig {
            seed,
            webhook_secret: format!("whsec_mock_seed_{seed}"),
            ..MockConfig::default()
        }
    }
}

/// Counters a test asserts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockStats {
    /// Calls received per operation, replays and faulted calls included.
    pub calls: BTreeMap<&'static str, u64>,
    /// Calls carried out per operation (not replayed from an idempotency key, not faulted).
    pub executed: BTreeMap<&'static str, u64>,
    /// Results replayed from an idempotency key.
    pub replays: u64,
    /// Authorizations that went through: the number of times a customer was charged.
    pub charges_made: u64,
}

impl MockStats {
    /// Calls received for `operation` (`create_intent`, `confirm_intent`, …).
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// Calls carried out for `operation`.
    pub fn executed(&self, operation: &str) -> u64 {
        self.executed.get(operation).copied().unwrap_or(0)
    }
}

/// A mutating call with its parameters: the fingerprint an idempotency key is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    CreateIntent(CreateIntent),
    UpdateIntent(String, UpdateIntent),
    ConfirmIntent(String, ConfirmIntent),
    CaptureIntent(String, CaptureIntent),
    CancelIntent(String, CancelIntent),
    CreateRefund(CreateRefund),
    CreateCustomer(CreateCustomer),
    Attach(String, String),
    Detach(String),
}

/// What a call returned, kept to replay it.
#[derive(Debug, Clone)]
enum Outcome {
    Intent(PaymentIntent),
    Refund(Refund),
    Customer(Customer),
    PaymentMethod(SavedPaymentMethod),
    PaymentMethods(Vec<SavedPaymentMethod>),
}

macro_rules! outcome_as {
    ($fn_name:ident, $variant:ident, $ty:ty) => {
        fn $fn_name(result: Result<Outcome, ProviderError>) -> Result<$ty, ProviderError> {
            match result? {
                Outcome::$variant(value) => Ok(value),
                other => Err(ProviderError::Other {
                    code: None,
                    message: format!("mock replayed a mismatched outcome: {other:?}"),
                    source: None,
                }),
            }
        }
    };
}

outcome_as!(as_intent, Intent, PaymentIntent);
outcome_as!(as_refund, Refund, Refund);
outcome_as!(as_customer, Customer, Customer);
outcome_as!(as_payment_method, PaymentMethod, SavedPaymentMethod);
outcome_as!(as_payment_methods, PaymentMethods, Vec<SavedPaymentMethod>);

#[derive(Debug)]
struct Inner {
    account: Account,
    idempotency: BoundedMap<IdempotencyKey, (Call, Result<Outcome, ProviderError>)>,
    /// Injected faults in order, each for any operation or one named operation.
    faults: VecDeque<(Option<&'static str>, Fault)>,
    stats: MockStats,
    webhook_secret: String,
}

/// Stripe's test mode in memory: deterministic, no network, no sleeps.
///
/// Cloning gives another handle to the same account, so a test can keep one
/// while the gateway holds another as `Arc<dyn PaymentProvider>`.
#[derive(Debug, Clone)]
pub struct MockProvider {
    inner: Arc<Mutex<Inner>>,
    name: Arc<str>,
    capabilities: Capabilities,
}

impl Default for MockProvider {
    fn default() -> Self {
        MockProvider::new()
    }
}

impl MockProvider {
    /// A mock account with the default configuration (random ids and
    /// webhook secret, clock at 2023-11-14).
    pub fn new() -> Self {
        MockProvider::with_config(MockConfig::default())
    }

    /// A mock account from `config`.
    pub fn with_config(config: MockConfig) -> Self {
        let inner = Inner {
            account: Account::new(
                config.name.clone(),
                config.seed,
                config.start_time,
                config.retention,
            ),
            idempotency: BoundedMap::new(config.retention.idempotency_keys),
            faults: VecDeque::new(),
            stats: MockStats::default(),
            webhook_secret: config.webhook_secret,
        };
        MockProvider {
            inner: Arc::new(Mutex::new(inner)),
            capabilities: config.capabilities,
            name: config.name.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every change is applied whole).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a fault for the next call the mock receives (faults apply in order, one per call).
    pub fn inject_fault(&self, fault: Fault) {
        self.lock().faults.push_back((None, fault));
    }

    /// Queues a fault for the next call of `operation` (`create_intent`,
    /// `confirm_intent`, `create_refund`, …); calls of other operations pass it by.
    pub fn inject_fault_on(&self, operation: &'static str, fault: Fault) {
        self.lock().faults.push_back((Some(operation), fault));
    }

    /// Removes the faults not applied yet; returns how many there were.
    pub fn clear_faults(&self) -> usize {
        let mut inner = self.lock();
        let pending = inner.faults.len();
        inner.faults.clear();
        pending
    }

    /// The provider's truth: every intent, refund, customer and payment
    /// method, and every movement of money with the idempotency key of the
    /// call that made it.
    pub fn ledger(&self) -> Ledger {
        self.lock().account.ledger()
    }

    /// The counters so far.
    pub fn stats(&self) -> MockStats {
        let inner = self.lock();
        MockStats {
            charges_made: inner.account.charges_made,
            ..inner.stats.clone()
        }
    }

    /// Every event emitted so far and not taken, oldest first.
    pub fn events(&self) -> Vec<ProviderEvent> {
        self.lock().account.events()
    }

    /// Takes the emitted events, oldest first, leaving none.
    pub fn take_events(&self) -> Vec<ProviderEvent> {
        self.lock().account.take_events()
    }

    /// Every event emitted from now on, as the provider's webhooks would deliver them.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<ProviderEvent> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().account.subscribers.push(sender);
        receiver
    }

    /// The customer finishes 3-D Secure for an intent in `requires_action`:
    /// `succeed` authorizes it, otherwise it fails back to `requires_payment_method`.
    pub fn complete_authentication(
        &self,
        intent_id: &str,
        succeed: bool,
    ) -> Result<PaymentIntent, ProviderError> {
        self.lock().account.complete_authentication(intent_id, succeed)
    }

    /// The bank settles refund `refund_id` "some time later", as on Stripe's
    /// refund test cards: a pending refund (`pm_card_pendingRefund`)
    /// succeeds; a refund of `pm_card_refundFail` (which starts `succeeded`)
    /// fails. Emits `charge.refund.updated` when the status changes.
    pub fn settle_refund(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        self.lock().account.settle_refund(refund_id)
    }

    /// The inbound webhook request the provider would send for `event`, signed for this account.
    pub fn webhook_request(&self, event: &ProviderEvent, received_at: UnixTimestamp) -> WebhookRequest {
        let secret = self.lock().webhook_secret.clone();
        // Serializing our own plain data types cannot fail.
        let body = serde_json::to_vec(event).unwrap_or_default();
        WebhookRequest::new(body, received_at)
            .with_header("Content-Type", "application/json")
            .with_header(MOCK_SIGNATURE_HEADER, secret)
    }

    /// Runs one operation: counts it, applies an injected fault, honours the
    /// idempotency key (replay on the same parameters, conflict on others),
    /// and saves the result under the key. The key check, the change and the
    /// save happen under one lock, so concurrent duplicates execute once.
    async fn run(
        &self,
        operation: &'static str,
        idempotent: Option<(Call, &IdempotencyKey)>,
        execute: impl FnOnce(&mut Account) -> Result<Outcome, ProviderError>,
    ) -> Result<Outcome, ProviderError> {
        let fault = {
            let mut inner = self.lock();
            *inner.stats.calls.entry(operation).or_default() += 1;
            let position = inner
                .faults
                .iter()
                .position(|(only, _)| only.is_none_or(|only| only == operation));
            position
                .and_then(|index| inner.faults.remove(index))
                .map(|(_, fault)| fault)
        };
        if let Some(refusal) = fault.as_ref().and_then(Fault::refusal) {
            return Err(refusal);
        }
        if let Some(Fault::Slow(delay)) = &fault {
            tokio::time::sleep(*delay).await;
        }
        let hidden = fault.as_ref().and_then(Fault::hiding_error);
        let result = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            match idempotent {
                Some((call, key)) => match inner.idempotency.get(key) {
                    Some((saved_call, saved)) if *saved_call == call => {
                        inner.stats.replays += 1;
                        saved.clone()
                    }
                    Some(_) => Err(ProviderError::IdempotencyConflict {
                        message: format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                        ),
                    }),
                    None => {
                        inner.account.log.begin_call(Some(key));
                        let result = execute(&mut inner.account);
                        inner.account.log.end_call();
                        *inner.stats.executed.entry(operation).or_default() += 1;
                        // Stripe saves a 500 it answered under the key, and replays it.
                        let saved = match &fault {
                            Some(Fault::ServerErrorAfter) => Err(server_error()),
                            _ => result.clone(),
                        };
                        inner.idempotency.insert(key.clone(), (call, saved));
                        result
                    }
                },
                None => {
                    *inner.stats.executed.entry(operation).or_default() += 1;
                    execute(&mut inner.account)
                }
            }
        };
        match hidden {
            Some(error) => Err(error),
            None => result,
        }
    }
}

#[async_trait]
impl PaymentProvider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn create_intent(
        &self,
        request: CreateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let call = Call::CreateIntent(request.clone());
        as_intent(
            self.run("create_intent", Some((call, key)), |account| {
                account.create_intent(request).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, ProviderError> {
        as_intent(
            self.run("retrieve_intent", None, |account| {
                account.intent(intent_id).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn update_intent(
        &self,
        intent_id: &str,
        request: UpdateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let call = Call::UpdateIntent(intent_id.to_owned(), request.clone());
        as_intent(
            self.run("update_intent", Some((call, key)), |account| {
                account.update_intent(intent_id, request).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        request: ConfirmIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let call = Call::ConfirmIntent(intent_id.to_owned(), request.clone());
        as_intent(
            self.run("confirm_intent", Some((call, key)), |account| {
                account.confirm_intent(intent_id, request).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn capture_intent(
        &self,
        intent_id: &str,
        request: CaptureIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let call = Call::CaptureIntent(intent_id.to_owned(), request.clone());
        as_intent(
            self.run("capture_intent", Some((call, key)), |account| {
                account.capture_intent(intent_id, request).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        request: CancelIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let call = Call::CancelIntent(intent_id.to_owned(), request.clone());
        as_intent(
            self.run("cancel_intent", Some((call, key)), |account| {
                account.cancel_intent(intent_id, request).map(Outcome::Intent)
            })
            .await,
        )
    }

    async fn create_refund(
        &self,
        request: CreateRefund,
        key: &IdempotencyKey,
    ) -> Result<Refund, ProviderError> {
        let call = Call::CreateRefund(request.clone());
        as_refund(
            self.run("create_refund", Some((call, key)), |account| {
                account.create_refund(request).map(Outcome::Refund)
            })
            .await,
        )
    }

    async fn retrieve_refund(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        as_refund(
            self.run("retrieve_refund", None, |account| {
                account.refund(refund_id).map(Outcome::Refund)
            })
            .await,
        )
    }

    async fn create_customer(
        &self,
        request: CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<Customer, ProviderError> {
        let call = Call::CreateCustomer(request.clone());
        as_customer(
            self.run("create_customer", Some((call, key)), |account| {
                Ok(Outcome::Customer(account.create_customer(request)))
            })
            .await,
        )
    }

    async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let call = Call::Attach(customer_id.to_owned(), payment_method_id.to_owned());
        as_payment_method(
            self.run("attach_payment_method", Some((call, key)), |account| {
                account
                    .attach(customer_id, payment_method_id)
                    .map(Outcome::PaymentMethod)
            })
            .await,
        )
    }

    async fn list_payment_methods(
        &self,
        customer_id: &str,
    ) -> Result<Vec<SavedPaymentMethod>, ProviderError> {
        as_payment_methods(
            self.run("list_payment_methods", None, |account| {
                account.list_methods(customer_id).map(Outcome::PaymentMethods)
            })
            .await,
        )
    }

    async fn detach_payment_method(
        &self,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let call = Call::Detach(payment_method_id.to_owned());
        as_payment_method(
            self.run("detach_payment_method", Some((call, key)), |account| {
                account.detach(payment_method_id).map(Outcome::PaymentMethod)
            })
            .await,
        )
    }

    /// The mock signs by sending its webhook secret in [`MOCK_SIGNATURE_HEADER`];
    /// it is for tests and the sandbox only, not a signature scheme.
    fn verify_webhook(&self, request: &WebhookRequest) -> Result<VerifiedWebhook, WebhookError> {
        let signature = request
            .header(MOCK_SIGNATURE_HEADER)
            .ok_or(WebhookError::MissingHeader {
                header: MOCK_SIGNATURE_HEADER,
            })?;
        if signature != self.lock().webhook_secret {
            return Err(WebhookError::BadSignature);
        }
        let event: ProviderEvent =
            serde_json::from_slice(&request.body).map_err(|error| WebhookError::InvalidPayload {
                reason: error.to_string(),
            })?;
        let object_id = event
            .intent()
            .map(|intent| intent.id.clone())
            .or_else(|| event.refund().map(|refund| refund.id.clone()));
        Ok(VerifiedWebhook {
            event_id: event.id,
            event_type: event.event_type,
            created: Some(event.created),
            object_id,
            body: request.body.clone(),
        })
    }

    async fn interpret_webhook(&self, webhook: &VerifiedWebhook) -> Result<ProviderEvent, ProviderError> {
        serde_json::from_slice(&webhook.body).map_err(|error| {
            ProviderError::invalid(
                Some("invalid_event"),
                None,
                format!("unreadable mock event: {error}"),
            )
        })
    }
}

fn build_mock(config: &ProviderConfig) -> Result<Arc<dyn PaymentProvider>, ProviderError> {
    let mut mock = MockConfig {
        start_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64),
        retention: Retention::SANDBOX,
        ..MockConfig::default()
    };
    if let Some(seed) = config.get("seed") {
        mock.seed = seed
            .parse()
            .map_err(|_| ProviderError::invalid(None, Some("seed"), "seed must be an unsigned integer"))?;
    }
    if let Some(secret) = config.get("webhook_secret") {
        mock.webhook_secret = secret.to_owned();
    }
    Ok(Arc::new(MockProvider::with_config(mock)))
}

inventory::submit! {
    ProviderFactory {
        name: "mock",
        description: "In-memory provider that behaves like Stripe in test mode",
        build: build_mock,
    }
}

#[cfg(test)]
mod tests;
