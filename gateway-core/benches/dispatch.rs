//! Publish → every handler done, for 1, 10 and 100 no-op handlers.
//!
//! Run with `cargo bench -p gateway-core --bench dispatch`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gateway_core::{
    ChangeSource, Currency, EventBus, EventKind, HandlerContext, HandlerError, HandlerOptions, IntentChange,
    IntentChangeContext, IntentStatus, IntentSucceeded, Money, PaymentIntent,
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
    let amount = Money::from_minor(5000, Currency::USD).expect("positive");
    let intent = PaymentIntent {
        amount_received: 5000,
        ..PaymentIntent::new("pi_bench", "mock", amount, IntentStatus::Succeeded)
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
