//! [`CheckedProvider`]: the one layer every provider call of the gateway
//! goes through. It refuses, before any request leaves, what the provider's
//! [`Capabilities`] say it cannot do ([`ProviderError::Unsupported`]), and
//! reports every call's outcome to a [`ProviderObserver`] (the server's
//! metrics and logs).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::customer::{Customer, SavedPaymentMethod};
use crate::error::ProviderError;
use crate::intent::{CaptureMethod, PaymentIntent};
use crate::provider::{
    CancelIntent, Capabilities, CaptureIntent, ConfirmIntent, CreateCustomer, CreateIntent, CreateRefund,
    IdempotencyKey, PaymentProvider, UpdateIntent,
};
use crate::refund::Refund;
use crate::webhook::{ProviderEvent, VerifiedWebhook, WebhookError, WebhookRequest};

/// One call a [`CheckedProvider`] made or refused, as its observer is told of it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ObservedCall<'a> {
    /// The provider's name.
    pub provider: &'a str,
    /// The operation (`create_intent`, `confirm_intent`, …).
    pub operation: &'static str,
    /// How it ended.
    pub outcome: Result<(), &'a ProviderError>,
    /// How long the provider took to answer (about zero for a call refused
    /// before it was sent, e.g. [`ProviderError::Unsupported`]).
    pub elapsed: Duration,
}

/// Told the outcome of every call a [`CheckedProvider`] makes or refuses.
pub trait ProviderObserver: Send + Sync + 'static {
    /// `operation` (`create_intent`, …) on `provider` ended with `outcome`.
    fn observe(&self, provider: &str, operation: &'static str, outcome: Result<(), &ProviderError>);

    /// The call with its timing; by default [`ProviderObserver::observe`] of its outcome.
    fn observe_call(&self, call: &ObservedCall<'_>) {
        self.observe(call.provider, call.operation, call.outcome);
    }
}

/// A provider behind its capability checks, an optional time bound and an
/// optional observer.
pub struct CheckedProvider {
    inner: Arc<dyn PaymentProvider>,
    observer: Option<Arc<dyn ProviderObserver>>,
    time_bound: Option<Duration>,
}

impl CheckedProvider {
    /// `inner` behind its own [`PaymentProvider::capabilities`].
    pub fn new(inner: Arc<dyn PaymentProvider>) -> Self {
        CheckedProvider {
            inner,
            observer: None,
            time_bound: None,
        }
    }

    /// Bounds every call by `limit`: a call still unanswered then is
    /// abandoned as [`ProviderError::OutcomeUnknown`] (it may have reached
    /// the provider), never as a failure.
    pub fn time_bound(mut self, limit: Duration) -> Self {
        self.time_bound = Some(limit);
        self
    }

    /// Reports every call's outcome to `observer`.
    pub fn observed_by(mut self, observer: Arc<dyn ProviderObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        if let Some(observer) = &self.observer {
            observer.observe_call(&ObservedCall {
                provider: self.inner.name(),
                operation,
                outcome: result.as_ref().map(|_| ()),
                elapsed: started.elapsed(),
            });
        }
        result
    }

    /// `Unsupported` for `operation` unless `allowed`.
    fn require(&self, allowed: bool, operation: &'static str) -> Result<(), ProviderError> {
        if allowed {
            Ok(())
        } else {
            Err(ProviderError::Unsupported {
                provider: self.inner.name().to_owned(),
                operation,
            })
        }
    }

    /// Runs `call` if `check` passed, and reports the outcome (and how long
    /// the call took) either way.
    async fn run<T>(
        &self,
        operation: &'static str,
        check: Result<(), ProviderError>,
        call: impl Future<Output = Result<T, ProviderError>> + Send,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = match (check, self.time_bound) {
            (Err(refused), _) => Err(refused),
            (Ok(()), None) => call.await,
            (Ok(()), Some(limit)) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(ProviderError::OutcomeUnknown {
                    status: None,
                    message: format!(
                        "{operation} had no answer within {} ms; it may have reached the provider",
                        limit.as_millis()
                    ),
                    source: None,
                })
            }),
        };
        self.observe(operation, started, result)
    }

    /// Whether `amount` of the intent is less than `of(intent)`: asked of the
    /// provider only when it lacks the partial capability (then the answer decides).
    async fn is_partial(
        &self,
        intent_id: &str,
        amount: Option<i64>,
        of: fn(&PaymentIntent) -> i64,
    ) -> Result<bool, ProviderError> {
        match amount {
            None => Ok(false),
            Some(amount) => {
                let intent = self.inner.retrieve_intent(intent_id).await?;
                Ok(amount < of(&intent))
            }
        }
    }

    async fn check_capture(&self, intent_id: &str, request: &CaptureIntent) -> Result<(), ProviderError> {
        let caps = self.inner.capabilities();
        self.require(caps.manual_capture, "capture_intent")?;
        if !caps.partial_capture {
            let partial = self
                .is_partial(intent_id, request.amount_to_capture, |intent| {
                    intent.amount_capturable
                })
                .await?;
            self.require(!partial, "partial_capture")?;
        }
        Ok(())
    }

    async fn check_refund(&self, request: &CreateRefund) -> Result<(), ProviderError> {
        let caps = self.inner.capabilities();
        self.require(caps.refunds, "create_refund")?;
        if !caps.partial_refunds {
            let partial = self
                .is_partial(&request.payment_intent, request.amount, |intent| {
                    intent.amount_received
                })
                .await?;
            self.require(!partial, "partial_refund")?;
        }
        Ok(())
    }
}

/// The capability checks that need only the request.
fn check_create(caps: Capabilities, request: &CreateIntent) -> Option<&'static str> {
    if request.capture_method == CaptureMethod::Manual && !caps.manual_capture {
        return Some("manual_capture");
    }
    if (request.customer.is_some() || request.off_session) && !caps.saved_payment_methods {
        return Some("saved_payment_methods");
    }
    None
}

#[async_trait]
impl PaymentProvider for CheckedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create_intent(
        &self,
        request: CreateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let check = match check_create(self.inner.capabilities(), &request) {
            Some(capability) => self.require(false, capability),
            None => Ok(()),
        };
        self.run("create_intent", check, self.inner.create_intent(request, key))
            .await
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, ProviderError> {
        self.run("retrieve_intent", Ok(()), self.inner.retrieve_intent(intent_id))
            .await
    }

    async fn update_intent(
        &self,
        intent_id: &str,
        request: UpdateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let allowed = request.amount.is_none() || self.inner.capabilities().update_amount;
        self.run(
            "update_intent",
            self.require(allowed, "update_amount"),
            self.inner.update_intent(intent_id, request, key),
        )
        .await
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        request: ConfirmIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.run(
            "confirm_intent",
            Ok(()),
            self.inner.confirm_intent(intent_id, request, key),
        )
        .await
    }

    async fn capture_intent(
        &self,
        intent_id: &str,
        request: CaptureIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.run(
            "capture_intent",
            self.check_capture(intent_id, &request).await,
            self.inner.capture_intent(intent_id, request, key),
        )
        .await
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        request: CancelIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        self.run(
            "cancel_intent",
            Ok(()),
            self.inner.cancel_intent(intent_id, request, key),
        )
        .await
    }

    async fn create_refund(
        &self,
        request: CreateRefund,
        key: &IdempotencyKey,
    ) -> Result<Refund, ProviderError> {
        self.run(
            "create_refund",
            self.check_refund(&request).await,
            self.inner.create_refund(request, key),
        )
        .await
    }

    async fn retrieve_refund(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        self.run("retrieve_refund", Ok(()), self.inner.retrieve_refund(refund_id))
            .await
    }

    async fn create_customer(
        &self,
        request: CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<Customer, ProviderError> {
        self.run(
            "create_customer",
            self.require(self.inner.capabilities().saved_payment_methods, "create_customer"),
            self.inner.create_customer(request, key),
        )
        .await
    }

    async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let allowed = self.inner.capabilities().saved_payment_methods;
        self.run(
            "attach_payment_method",
            self.require(allowed, "attach_payment_method"),
            self.inner
                .attach_payment_method(customer_id, payment_method_id, key),
        )
        .await
    }

    async fn list_payment_methods(
        &self,
        customer_id: &str,
    ) -> Result<Vec<SavedPaymentMethod>, ProviderError> {
        let allowed = self.inner.capabilities().saved_payment_methods;
        self.run(
            "list_payment_methods",
            self.require(allowed, "list_payment_methods"),
            self.inner.list_payment_methods(customer_id),
        )
        .await
    }

    async fn detach_payment_method(
        &self,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let allowed = self.inner.capabilities().saved_payment_methods;
        self.run(
            "detach_payment_method",
            self.require(allowed, "detach_payment_method"),
            self.inner.detach_payment_method(payment_method_id, key),
        )
        .await
    }

    fn verify_webhook(&self, request: &WebhookRequest) -> Result<VerifiedWebhook, WebhookError> {
        if !self.inner.capabilities().webhooks {
            return Err(WebhookError::NotConfigured);
        }
        self.inner.verify_webhook(request)
    }

    async fn interpret_webhook(&self, webhook: &VerifiedWebhook) -> Result<ProviderEvent, ProviderError> {
        self.run("interpret_webhook", Ok(()), self.inner.interpret_webhook(webhook))
            .await
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::mock::{MockConfig, MockProvider};
    use crate::money::{Currency, Money};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, &'static str, bool)>>);

    impl ProviderObserver for Recorder {
        fn observe(&self, provider: &str, operation: &'static str, outcome: Result<(), &ProviderError>) {
            self.0
                .lock()
                .unwrap()
                .push((provider.to_owned(), operation, outcome.is_ok()));
        }
    }

    fn limited(caps: Capabilities) -> (MockProvider, CheckedProvider, Arc<Recorder>) {
        let mock = MockProvider::with_config(MockConfig {
            capabilities: caps,
            ..MockConfig::default()
        });
        let recorder = Arc::new(Recorder::default());
        let checked = CheckedProvider::new(Arc::new(mock.clone())).observed_by(recorder.clone());
        (mock, checked, recorder)
    }

    fn key(name: &str) -> IdempotencyKey {
        IdempotencyKey::new(name).unwrap()
    }

    fn paid_request(capture_method: CaptureMethod) -> CreateIntent {
        let mut request = CreateIntent::new(Money::from_minor(1000, Currency::USD).unwrap());
        request.payment_method = Some("pm_card_visa".into());
        request.confirm = true;
        request.capture_method = capture_method;
        request
    }

    fn unsupported(result: Result<impl std::fmt::Debug, ProviderError>) -> &'static str {
        match result {
            Err(ProviderError::Unsupported { operation, .. }) => operation,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_what_the_provider_cannot_do_before_calling_it() {
        let (mock, checked, recorder) = limited(Capabilities {
            manual_capture: false,
            refunds: false,
            saved_payment_methods: false,
            update_amount: false,
            ..Capabilities::FULL
        });
        let refused = checked
            .create_intent(paid_request(CaptureMethod::Manual), &key("k1"))
            .await;
        assert_eq!(unsupported(refused), "manual_capture");
        assert_eq!(
            mock.stats().calls("create_intent"),
            0,
            "nothing reached the provider"
        );

        let intent = checked
            .create_intent(paid_request(CaptureMethod::Automatic), &key("k2"))
            .await
            .unwrap();
        let refund = checked
            .create_refund(CreateRefund::full(&intent.id), &key("k3"))
            .await;
        assert_eq!(unsupported(refund), "create_refund");
        let customer = checked
            .create_customer(CreateCustomer::default(), &key("k4"))
            .await;
        assert_eq!(unsupported(customer), "create_customer");
        let update = UpdateIntent {
            amount: Some(Money::from_minor(5, Currency::USD).unwrap()),
            ..UpdateIntent::default()
        };
        assert_eq!(
            unsupported(checked.update_intent(&intent.id, update, &key("k5")).await),
            "update_amount"
        );
        assert_eq!(mock.stats().calls("create_intent"), 1);
        assert_eq!(mock.stats().calls("create_refund"), 0);

        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            5,
            "every call, refused or made, is observed: {seen:?}"
        );
        assert!(seen.iter().all(|(provider, _, _)| provider == "mock"));
        assert_eq!(seen.iter().filter(|(_, _, ok)| *ok).count(), 1);
    }

    #[tokio::test]
    async fn partial_operations_are_refused_only_when_they_are_partial() {
        let (mock, checked, _) = limited(Capabilities {
            partial_capture: false,
            partial_refunds: false,
            ..Capabilities::FULL
        });
        let held = checked
            .create_intent(paid_request(CaptureMethod::Manual), &key("a1"))
            .await
            .unwrap();
        let partial = CaptureIntent {
            amount_to_capture: Some(400),
        };
        assert_eq!(
            unsupported(checked.capture_intent(&held.id, partial, &key("a2")).await),
            "partial_capture"
        );
        assert_eq!(mock.stats().calls("capture_intent"), 0);
        let full = CaptureIntent {
            amount_to_capture: Some(1000),
        };
        let captured = checked.capture_intent(&held.id, full, &key("a3")).await.unwrap();
        assert_eq!(captured.amount_received, 1000);

        let mut half = CreateRefund::full(&captured.id);
        half.amount = Some(500);
        assert_eq!(
            unsupported(checked.create_refund(half, &key("a4")).await),
            "partial_refund"
        );
        let mut whole = CreateRefund::full(&captured.id);
        whole.amount = Some(1000);
        assert_eq!(
            checked.create_refund(whole, &key("a5")).await.unwrap().amount,
            1000
        );
    }

    #[tokio::test]
    async fn a_full_provider_passes_through() {
        let (mock, checked, _) = limited(Capabilities::FULL);
        let held = checked
            .create_intent(paid_request(CaptureMethod::Manual), &key("f1"))
            .await
            .unwrap();
        let partial = CaptureIntent {
            amount_to_capture: Some(400),
        };
        checked
            .capture_intent(&held.id, partial, &key("f2"))
            .await
            .unwrap();
        assert_eq!(
            mock.stats().calls("retrieve_intent"),
            0,
            "no look-up when the provider can do partial captures"
        );
        assert_eq!(checked.capabilities(), Capabilities::FULL);
        assert_eq!(checked.name(), "mock");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_the_time_bound_is_an_unknown_outcome_not_a_failure() {
        let mock = MockProvider::new();
        let recorder = Arc::new(Recorder::default());
        let checked = CheckedProvider::new(Arc::new(mock.clone()))
            .time_bound(Duration::from_secs(10))
            .observed_by(recorder.clone());
        mock.inject_fault(crate::mock::Fault::Slow(Duration::from_secs(11)));
        let slow = checked
            .create_intent(paid_request(CaptureMethod::Automatic), &key("t1"))
            .await;
        let error = slow.unwrap_err();
        assert_eq!(
            error.kind(),
            crate::error::ProviderErrorKind::OutcomeUnknown,
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("create_intent had no answer within 10000 ms"),
            "{error}"
        );
        assert_eq!(
            recorder.0.lock().unwrap().as_slice(),
            [("mock".to_owned(), "create_intent", false)]
        );
        // Within the bound, the call's own answer.
        mock.inject_fault(crate::mock::Fault::Slow(Duration::from_secs(9)));
        let created = checked
            .create_intent(paid_request(CaptureMethod::Automatic), &key("t2"))
            .await;
        assert!(created.is_ok(), "{created:?}");
    }
}
