//! Publish → every handler done, for 1, 10 and 100 no-op handlers.
//!
//! Run with `cargo bench -p gateway-core --bench dispatch`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gateway_core::{
    CaptureMethod, ChangeSource, Currency, EventBus, EventKind, HandlerContext, HandlerError, HandlerOptions,
    IntentChange, IntentChangeContext, IntentStatus, IntentSucceeded, PaymentIntent,
};

async fn noop(event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    black_box(&event.intent.id);
    Ok(())
}

fn bus_with(handlers: usize) -> EventBus {
    (0..handlers)
        .fold(EventBus::builder(), |builder, index| {
            let name: &'static str = Box::leak(format!("noop_{index:03}").into_boxed_str());
            builder.on::<IntentSucceeded, _>(name, HandlerOptions::DEFAULT, noop)
        })
        .build()
        .expect("no plugins")
}

fn change(event_id: String) -> IntentChange {
    let intent = PaymentIntent {
        id: "pi_bench".into(),
        provider: "mock".into(),
        amount: 5000,
        amount_received: 5000,
        amount_capturable: 0,
        currency: Currency::USD,
        status: IntentStatus::Succeeded,
        capture_method: CaptureMethod::Automatic,
        customer: None,
        payment_method: None,
        client_secret: None,
        metadata: Default::default(),
        description: None,
        next_action: None,
        last_payment_error: None,
        cancellation_reason: None,
        created: 0,
        updated: 0,
    };
    let context = IntentChangeContext {
        event_id,
        source: ChangeSource::Webhook,
        local: true,
        received_at: 0,
        merchant: None,
    };
    IntentChange::new(
        EventKind::Succeeded,
        intent,
        Some(IntentStatus::RequiresConfirmation),
        context,
    )
}

fn dispatch(c: &mut Criterion) {
    let runtimes = [
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi_thread_2",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ];
    for (runtime_name, runtime) in &runtimes {
        let mut group = c.benchmark_group(format!("publish_to_all_done/{runtime_name}"));
        for handlers in [1usize, 10, 100] {
            let bus = runtime.block_on(async { bus_with(handlers) });
            let mut next_id = 0u64;
            group.bench_with_input(BenchmarkId::from_parameter(handlers), &handlers, |b, _| {
                b.to_async(runtime).iter(|| {
                    next_id += 1;
                    let publication = bus.publish(change(format!("evt_{next_id}")));
                    async move { black_box(publication.done().await.len()) }
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
