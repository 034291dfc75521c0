//! Run with `cargo run -p example-order-fulfillment`.
//!
//! A gateway binary that links the order-fulfillment plugin, takes three
//! payments with the mock provider and prints what the handlers did.

use std::sync::Arc;

use example_order_fulfillment::{orders as bus_orders, shop_bus};
use gateway::{
    CaptureMethod, CreateIntent, Currency, IdempotencyKey, MemoryRelay, MockProvider, Money, PaymentProvider,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockProvider::new();
    let bus = shop_bus(Arc::new(mock.clone()))?;
    println!("handlers: {}", bus.handler_names().join(", "));
    let relay = MemoryRelay::new(Arc::new(mock.clone()), bus.clone());

    let orders = [
        ("order-1", "pm_card_visa", false),
        ("order-2", "pm_card_chargeDeclinedInsufficientFunds", false),
        ("order-3", "pm_card_mastercard", true),
    ];
    for (order_id, card, waitlist) in orders {
        bus_orders(&bus).place(order_id, waitlist);
        let mut request = CreateIntent::new(Money::parse("42.00", Currency::EUR)?);
        request.payment_method = Some(card.to_owned());
        request.confirm = true;
        request.capture_method = if waitlist {
            CaptureMethod::Manual
        } else {
            CaptureMethod::Automatic
        };
        request
            .metadata
            .insert("order_id".to_owned(), order_id.to_owned());
        let result = mock.create_intent(request, &IdempotencyKey::new(order_id)?).await;
        println!(
            "{order_id}: {}",
            result.map_or_else(|e| e.to_string(), |i| i.status.to_string())
        );
    }
    // Deliver the provider's events (and those the handlers cause) until none are left.
    loop {
        let events = mock.take_events();
        if events.is_empty() {
            break;
        }
        relay.relay_all(&events).await?;
    }
    for (order_id, _, _) in orders {
        println!(
            "{order_id}: {:?}",
            bus_orders(&bus).get(order_id).map(|order| order.state)
        );
    }
    Ok(())
}
