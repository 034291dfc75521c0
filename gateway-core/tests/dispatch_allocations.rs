//! Dispatch allocates nothing per handler beyond the handler's own future.
//!
//! `allocation-counter` replaces the global allocator in this test binary and
//! counts the allocations made on this thread; a current-thread runtime keeps
//! the whole dispatch on it.

use gateway_core::{
    ChangeSource, Currency, EventBus, EventKind, HandlerContext, HandlerError, HandlerOptions, IntentChange,
    IntentChangeContext, IntentStatus, IntentSucceeded, Money, PaymentIntent,
};

async fn noop(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

const NAMES: [&str; 100] = {
    // Distinct static names without allocating at run time.
    let mut names = [""; 100];
    let all = include_str!("handler_names.txt").as_bytes();
    let mut index = 0;
    let mut start = 0;
    let mut at = 0;
    while at < all.len() {
        if all[at] == b'\n' {
            let (_, rest) = all.split_at(start);
            let (line, _) = rest.split_at(at - start);
            names[index] = match std::str::from_utf8(line) {
                Ok(name) => name,
                Err(_) => panic!("handler_names.txt is ASCII"),
            };
            index += 1;
            start = at + 1;
        }
        at += 1;
    }
    names
};

fn change(event_id: &str) -> IntentChange {
    let amount = Money::from_minor(5000, Currency::USD).expect("positive");
    let intent = PaymentIntent {
        amount_received: 5000,
        ..PaymentIntent::new("pi_alloc", "mock", amount, IntentStatus::Succeeded)
    };
    let context = IntentChangeContext {
        event_id: event_id.to_owned(),
        source: ChangeSource::Api,
        local: true,
        received_at: 0,
        merchant: None,
    };
    IntentChange::new(
        EventKind::Succeeded,
        intent,
        Some(IntentStatus::Processing),
        context,
    )
}

/// Allocations made by publishing one change to `handlers` no-op handlers and awaiting them.
fn allocations_for(handlers: usize) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = NAMES[..handlers]
        .iter()
        .fold(EventBus::builder(), |builder, name| {
            builder.on::<IntentSucceeded, _>(name, HandlerOptions::DEFAULT, noop)
        })
        .build()
        .unwrap();
    // Warm up: the runtime's and the bus's first-use allocations are not dispatch.
    runtime.block_on(async { bus.publish(change("warm-up")).done().await });
    let mut outcomes = 0;
    let counted = allocation_counter::measure(|| {
        outcomes = runtime.block_on(async { bus.publish(change("measured")).done().await.len() });
    });
    assert_eq!(outcomes, handlers);
    counted.count_total
}

#[test]
fn each_handler_costs_exactly_one_allocation_its_future() {
    let one = allocations_for(1);
    let hundred = allocations_for(100);
    assert_eq!(
        hundred - one,
        99,
        "1 handler: {one} allocations, 100 handlers: {hundred}; expected one more per handler"
    );
}
