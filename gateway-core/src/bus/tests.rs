use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::*;
use crate::events::{
    AnyIntentEvent, ChangeSource, IntentCanceled, IntentChangeContext, IntentCreated, IntentPaymentFailed,
    IntentRefunded, IntentRequiresAction, IntentRequiresCapture, IntentSucceeded,
};
use crate::handler::StaticProviders;
use crate::intent::{CaptureMethod, IntentStatus, PaymentIntent};
use crate::mock::MockProvider;
use crate::money::{Currency, Money};
use crate::provider::{
    CancelIntent, CaptureIntent, CreateIntent, CreateRefund, IdempotencyKey, PaymentProvider,
};
use crate::relay::MemoryRelay;
use crate::webhook::{EventObject, ProviderEvent};

/// What the test handlers saw: (handler, event id, intent status).
#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, String, IntentStatus)>>);

impl Recorder {
    fn note(ctx: &HandlerContext, handler: &'static str, change: &IntentChange) {
        let recorder = ctx
            .extension::<Recorder>()
            .expect("tests put a recorder in the context");
        recorder
            .0
            .lock()
            .unwrap()
            .push((handler, change.event_id().to_owned(), change.intent.status));
    }
}

fn seen(bus: &EventBus) -> Vec<(&'static str, String, IntentStatus)> {
    let ctx = &bus.inner.context;
    ctx.extension::<Recorder>().unwrap().0.lock().unwrap().clone()
}

fn ran(bus: &EventBus, handler: &str) -> usize {
    seen(bus).iter().filter(|(name, _, _)| *name == handler).count()
}

async fn on_created(event: IntentCreated, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_created", &event);
    Ok(())
}

async fn on_succeeded(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_succeeded", &event);
    Ok(())
}

async fn on_failed(event: IntentPaymentFailed, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_failed", &event);
    Ok(())
}

async fn on_action(event: IntentRequiresAction, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_action", &event);
    Ok(())
}

/// Captures every authorization through the provider in the context, as a shop does for waitlist items.
async fn capture_it(event: IntentRequiresCapture, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "capture_it", &event);
    let provider = ctx.provider_for(&event.intent, event.context.merchant.as_deref())?;
    let key =
        IdempotencyKey::new(format!("capture-{}", event.intent.id)).map_err(HandlerError::permanent_from)?;
    provider
        .capture_intent(&event.intent.id, CaptureIntent::default(), &key)
        .await?;
    Ok(())
}

async fn on_canceled(event: IntentCanceled, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_canceled", &event);
    Ok(())
}

async fn on_refunded(event: IntentRefunded, ctx: HandlerContext) -> Result<(), HandlerError> {
    assert!(event.refund.is_some());
    Recorder::note(&ctx, "on_refunded", &event);
    Ok(())
}

async fn on_any(event: AnyIntentEvent, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "on_any", &event);
    Ok(())
}

impl HandlerError {
    fn permanent_from(error: impl std::fmt::Display) -> HandlerError {
        HandlerError::permanent(error.to_string())
    }
}

fn shop_bus(mock: &MockProvider) -> EventBus {
    let options = HandlerOptions::DEFAULT;
    EventBus::builder()
        .on::<IntentSucceeded, _>("on_succeeded", options, on_succeeded)
        .on::<IntentCreated, _>("on_created", options, on_created)
        .on::<IntentPaymentFailed, _>("on_failed", options, on_failed)
        .on::<IntentRequiresAction, _>("on_action", options, on_action)
        .on::<IntentRequiresCapture, _>("capture_it", options, capture_it)
        .on::<IntentCanceled, _>("on_canceled", options, on_canceled)
        .on::<IntentRefunded, _>("on_refunded", options, on_refunded)
        .on::<AnyIntentEvent, _>("on_any", options, on_any)
        .context(
            HandlerContext::new()
                .with_providers(StaticProviders::new().with(Arc::new(mock.clone())))
                .with_extension(Recorder::default()),
        )
        .build()
        .unwrap()
}

/// Relays the mock's webhook events to the bus, as the server does.
struct Relay {
    mock: MockProvider,
    relay: MemoryRelay,
}

impl Relay {
    fn new(mock: &MockProvider, bus: &EventBus) -> Self {
        Relay {
            mock: mock.clone(),
            relay: MemoryRelay::new(Arc::new(mock.clone()), bus.clone()),
        }
    }

    async fn deliver(&mut self, event: &ProviderEvent) -> Option<Vec<HandlerOutcome>> {
        let publications = self.relay.relay(event).await.unwrap();
        if publications.is_empty() {
            return None;
        }
        let mut outcomes = Vec::new();
        for publication in publications {
            outcomes.extend(publication.done().await);
        }
        Some(outcomes)
    }

    /// Delivers every event the mock emitted, until it emits no more.
    async fn pump(&mut self) {
        loop {
            let events = self.mock.take_events();
            if events.is_empty() {
                return;
            }
            for event in &events {
                self.deliver(event).await;
            }
        }
    }
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).unwrap()
}

fn charge(payment_method: &str) -> CreateIntent {
    let mut request = CreateIntent::new(Money::parse("25.00", Currency::USD).unwrap());
    request.payment_method = Some(payment_method.into());
    request.confirm = true;
    request
}

#[tokio::test]
async fn a_successful_payment_runs_created_succeeded_and_any_once_each() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    let intent = mock
        .create_intent(charge("pm_card_visa"), &key("k"))
        .await
        .unwrap();
    let events = mock.events();
    relay.pump().await;

    let seen: Vec<_> = seen(&bus).into_iter().map(|(name, id, _)| (name, id)).collect();
    let (created, succeeded) = (&events[0], &events[1]);
    assert_eq!(
        created.intent().unwrap().status,
        IntentStatus::RequiresConfirmation
    );
    assert_eq!(succeeded.intent().unwrap(), &intent);
    // One event's handlers run concurrently in one task, polled in name order.
    assert_eq!(
        seen,
        [
            ("on_any", created.id.clone()),
            ("on_created", created.id.clone()),
            ("on_any", succeeded.id.clone()),
            ("on_succeeded", succeeded.id.clone()),
        ]
    );
    assert!(bus.outcomes().iter().all(HandlerOutcome::succeeded));
    assert_eq!(bus.outcomes().len(), 4);
}

#[tokio::test]
async fn a_decline_runs_the_failure_handler_with_the_decline_code() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    let error = mock
        .create_intent(charge("pm_card_chargeDeclinedInsufficientFunds"), &key("k"))
        .await
        .unwrap_err();
    relay.pump().await;
    assert_eq!((ran(&bus, "on_failed"), ran(&bus, "on_succeeded")), (1, 0));
    let outcome = bus
        .outcomes()
        .into_iter()
        .find(|o| o.handler == "on_failed")
        .unwrap();
    let last_error = outcome.change.intent.last_payment_error.clone().unwrap();
    assert_eq!(last_error.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(error.intent().unwrap().id, outcome.change.intent.id);
}

#[tokio::test]
async fn three_d_secure_runs_requires_action_then_succeeded() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    let intent = mock
        .create_intent(charge("pm_card_threeDSecure2Required"), &key("k"))
        .await
        .unwrap();
    relay.pump().await;
    assert_eq!((ran(&bus, "on_action"), ran(&bus, "on_succeeded")), (1, 0));
    mock.complete_authentication(&intent.id, true).unwrap();
    relay.pump().await;
    assert_eq!(
        (
            ran(&bus, "on_action"),
            ran(&bus, "on_succeeded"),
            ran(&bus, "on_any")
        ),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn a_requires_capture_handler_captures_through_the_context() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    let mut request = charge("pm_card_visa");
    request.capture_method = CaptureMethod::Manual;
    let intent = mock.create_intent(request, &key("k")).await.unwrap();
    assert_eq!(intent.status, IntentStatus::RequiresCapture);
    relay.pump().await;
    assert_eq!(ran(&bus, "capture_it"), 1);
    assert_eq!(
        ran(&bus, "on_succeeded"),
        1,
        "the capture's own event reached the bus"
    );
    assert_eq!(
        mock.retrieve_intent(&intent.id).await.unwrap().amount_received,
        2500
    );
    assert_eq!(mock.stats().executed("capture_intent"), 1);
}

#[tokio::test]
async fn cancel_and_refund_run_their_handlers() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    let held = mock
        .create_intent(
            CreateIntent::new(Money::parse("5.00", Currency::USD).unwrap()),
            &key("a"),
        )
        .await
        .unwrap();
    mock.cancel_intent(&held.id, CancelIntent::default(), &key("b"))
        .await
        .unwrap();
    let paid = mock
        .create_intent(charge("pm_card_visa"), &key("c"))
        .await
        .unwrap();
    mock.create_refund(CreateRefund::partial(&paid.id, 500), &key("d"))
        .await
        .unwrap();
    relay.pump().await;
    assert_eq!((ran(&bus, "on_canceled"), ran(&bus, "on_refunded")), (1, 1));
    let refunded = bus
        .outcomes()
        .into_iter()
        .find(|o| o.handler == "on_refunded")
        .unwrap();
    assert_eq!(refunded.change.refund.as_ref().unwrap().amount, 500);
}

#[tokio::test]
async fn duplicate_and_late_events_are_not_dispatched() {
    let mock = MockProvider::new();
    let bus = shop_bus(&mock);
    let mut relay = Relay::new(&mock, &bus);
    mock.create_intent(charge("pm_card_visa"), &key("k"))
        .await
        .unwrap();
    let events = mock.take_events();
    for _ in 0..5 {
        for event in &events {
            relay.deliver(event).await;
        }
    }
    assert_eq!((ran(&bus, "on_created"), ran(&bus, "on_succeeded")), (1, 1));

    // A late `processing` after `succeeded` never moves the intent back, nor reaches handlers.
    let mut late = events[1].clone();
    late.id = "evt_late".into();
    if let EventObject::Intent { intent } = &mut late.object {
        intent.status = IntentStatus::Processing;
    }
    assert!(relay.deliver(&late).await.is_none());
    assert_eq!(ran(&bus, "on_any"), 2);
}

fn change(event_id: &str, status: IntentStatus, local: bool) -> IntentChange {
    let amount = Money::from_minor(100, Currency::USD).unwrap();
    let intent = PaymentIntent {
        amount_received: 100,
        ..PaymentIntent::new("pi_test", "mock", amount, status)
    };
    let kind = EventKind::for_intent(Some(IntentStatus::RequiresConfirmation), &intent).unwrap();
    let context = IntentChangeContext {
        event_id: event_id.into(),
        source: ChangeSource::Webhook,
        local,
        received_at: 0,
        merchant: None,
    };
    IntentChange::new(kind, intent, Some(IntentStatus::RequiresConfirmation), context)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

async fn panics(_: IntentSucceeded, _: HandlerContext) -> Result<(), HandlerError> {
    panic!("handler bug");
}

async fn hangs(_: IntentSucceeded, _: HandlerContext) -> Result<(), HandlerError> {
    std::future::pending().await
}

async fn flaky(_: IntentSucceeded, _: HandlerContext) -> Result<(), HandlerError> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(HandlerError::new("try again"));
    }
    Ok(())
}

async fn refuses(_: IntentSucceeded, _: HandlerContext) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("bad order"))
}

#[tokio::test(start_paused = true)]
async fn panics_timeouts_and_failures_never_block_the_others() {
    let quick = HandlerOptions {
        retries: 2,
        timeout: Duration::from_secs(5),
        local_only: false,
    };
    let bus = EventBus::builder()
        .on::<IntentSucceeded, _>("panics", quick, panics)
        .on::<IntentSucceeded, _>("hangs", quick, hangs)
        .on::<IntentSucceeded, _>("flaky", quick, flaky)
        .on::<IntentSucceeded, _>("refuses", quick, refuses)
        .on::<IntentSucceeded, _>("on_succeeded", quick, on_succeeded)
        .context(HandlerContext::new().with_extension(Recorder::default()))
        .retry_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let publication = bus.publish(change("evt_1", IntentStatus::Succeeded, true));
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "publish does not wait for handlers"
    );
    let outcomes: HashMap<_, _> = publication
        .done()
        .await
        .into_iter()
        .map(|o| (o.handler, o))
        .collect();

    assert_eq!(outcomes["on_succeeded"].attempts, 1);
    assert!(outcomes["on_succeeded"].succeeded());
    assert_eq!(outcomes["flaky"].attempts, 3);
    assert!(outcomes["flaky"].succeeded());
    assert_eq!(
        outcomes["refuses"].attempts, 1,
        "a permanent error is not retried"
    );
    assert_eq!(outcomes["refuses"].error.as_deref(), Some("bad order"));
    assert_eq!(outcomes["panics"].attempts, 3);
    assert_eq!(outcomes["panics"].error.as_deref(), Some("panicked: handler bug"));
    assert_eq!(outcomes["hangs"].attempts, 3);
    assert_eq!(outcomes["hangs"].error.as_deref(), Some("timed out after 5s"));
    // Three 5 s attempts with 100 ms and 200 ms pauses between them.
    assert_eq!(started.elapsed(), Duration::from_millis(15_300));
    assert_eq!(ran(&bus, "on_succeeded"), 1);
    assert_eq!(bus.outcomes().len(), 5);
}

async fn everywhere(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "everywhere", &event);
    Ok(())
}

async fn here_only(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError> {
    Recorder::note(&ctx, "here_only", &event);
    Ok(())
}

#[tokio::test]
async fn local_only_handlers_skip_changes_from_other_instances() {
    let local_only = HandlerOptions {
        local_only: true,
        ..HandlerOptions::DEFAULT
    };
    let bus = EventBus::builder()
        .on::<IntentSucceeded, _>("everywhere", HandlerOptions::DEFAULT, everywhere)
        .on::<IntentSucceeded, _>("here_only", local_only, here_only)
        .context(HandlerContext::new().with_extension(Recorder::default()))
        .build()
        .unwrap();
    bus.publish(change("evt_remote", IntentStatus::Succeeded, false))
        .done()
        .await;
    assert_eq!((ran(&bus, "everywhere"), ran(&bus, "here_only")), (1, 0));
    bus.publish(change("evt_local", IntentStatus::Succeeded, true))
        .done()
        .await;
    assert_eq!((ran(&bus, "everywhere"), ran(&bus, "here_only")), (2, 1));
}

#[tokio::test]
async fn handlers_are_sorted_by_name() {
    let bus = EventBus::builder()
        .on::<IntentSucceeded, _>("b", HandlerOptions::DEFAULT, on_succeeded)
        .on::<IntentSucceeded, _>("a", HandlerOptions::DEFAULT, on_succeeded)
        .on::<AnyIntentEvent, _>("c", HandlerOptions::DEFAULT, on_any)
        .build()
        .unwrap();
    assert_eq!(bus.handler_names(), ["a", "b", "c"]);
}

#[tokio::test]
async fn watchers_see_changes_and_end_with_the_intent() {
    let bus = EventBus::builder().build().unwrap();
    let mut all = bus.watch_all();
    let mut one = bus.watch_payment("pi_test");
    let other = bus.watch_payment("pi_other");
    bus.publish(change("e1", IntentStatus::RequiresAction, true))
        .done()
        .await;
    bus.publish(change("e2", IntentStatus::Succeeded, true))
        .done()
        .await;
    assert_eq!(all.next().await.unwrap().event_id(), "e1");
    assert_eq!(all.next().await.unwrap().event_id(), "e2");
    assert_eq!(
        one.next().await.unwrap().intent.status,
        IntentStatus::RequiresAction
    );
    assert_eq!(one.next().await.unwrap().intent.status, IntentStatus::Succeeded);
    assert!(one.next().await.is_none(), "removed once terminal");
    assert_eq!(bus.watcher_count(), 2, "watch_all and pi_other remain");
    drop(other);
    drop(all);
    assert_eq!(bus.watcher_count(), 0);

    // A watcher that comes after the end still learns how it ended.
    let mut late = bus.watch_payment("pi_test");
    assert_eq!(late.next().await.unwrap().event_id(), "e2");
    assert!(late.next().await.is_none());
}

#[tokio::test]
async fn wait_for_payment_resolves_on_success() {
    let bus = EventBus::builder().build().unwrap();
    let waiter = tokio::spawn({
        let bus = bus.clone();
        async move { bus.wait_for_payment("pi_test", Duration::from_secs(30)).await }
    });
    tokio::task::yield_now().await;
    while bus.watcher_count() == 0 {
        tokio::task::yield_now().await;
    }
    bus.publish(change("e1", IntentStatus::Processing, true))
        .done()
        .await;
    bus.publish(change("e2", IntentStatus::Succeeded, true))
        .done()
        .await;
    let intent = waiter.await.unwrap().unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(bus.watcher_count(), 0);
}

#[tokio::test]
async fn wait_for_payment_errors_on_cancel() {
    let bus = EventBus::builder().build().unwrap();
    let wait = bus.wait_for_payment("pi_test", Duration::from_secs(30));
    let publish = async {
        bus.publish(change("e1", IntentStatus::Canceled, true))
            .done()
            .await;
    };
    let (result, ()) = tokio::join!(wait, publish);
    assert!(matches!(result, Err(WaitError::Canceled(intent)) if intent.status == IntentStatus::Canceled));
}

#[tokio::test(start_paused = true)]
async fn wait_for_payment_times_out_and_leaks_nothing() {
    let bus = EventBus::builder().build().unwrap();
    let result = bus.wait_for_payment("pi_never", Duration::from_secs(30)).await;
    assert_eq!(result, Err(WaitError::TimedOut));
    assert_eq!(bus.watcher_count(), 0);

    // A waiter dropped half-way unregisters too.
    let abandoned = tokio::spawn({
        let bus = bus.clone();
        async move { bus.wait_for_payment("pi_never", Duration::from_secs(3600)).await }
    });
    while bus.watcher_count() == 0 {
        tokio::task::yield_now().await;
    }
    abandoned.abort();
    let _ = abandoned.await;
    assert_eq!(bus.watcher_count(), 0);
}

#[tokio::test]
async fn idle_waits_for_every_dispatch() {
    let bus = shop_bus(&MockProvider::new());
    for index in 0..10 {
        drop(bus.publish(change(&format!("e{index}"), IntentStatus::Succeeded, true)));
    }
    bus.idle().await;
    assert_eq!(ran(&bus, "on_succeeded"), 10);
    assert!(bus
        .publish(change("e3", IntentStatus::Succeeded, true))
        .is_duplicate());
}

#[test]
fn a_plugin_whose_handlers_are_missing_fails_the_build() {
    static DROPPED: crate::handler::Plugin = crate::handler::Plugin {
        crate_name: "a-crate-the-linker-dropped",
    };
    let error = EventBus::builder().plugin(&DROPPED).build().unwrap_err();
    assert_eq!(
        error,
        BusError::PluginHasNoHandlers {
            crate_name: "a-crate-the-linker-dropped"
        }
    );
}

#[test]
fn two_handlers_with_one_name_fail_the_build() {
    async fn nothing(_: IntentSucceeded, _: HandlerContext) -> Result<(), HandlerError> {
        Ok(())
    }
    let error = EventBus::builder()
        .on("notify", HandlerOptions::DEFAULT, nothing)
        .on("notify", HandlerOptions::DEFAULT, nothing)
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BusError::DuplicateHandlerName { name: "notify", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("rename one"), "{error}");
}
