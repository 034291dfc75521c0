//! A shop's payment handlers, as a plugin crate any gateway binary can link.
//!
//! Run the demo with `cargo run -p example-order-fulfillment`.
//!
//! - a payment succeeded → the order is marked received;
//! - a payment is authorized (`requires_capture`) → the funds are captured
//!   at once for orders of waitlist items, through the provider in the context;
//! - a payment failed → the decline reason is recorded on the order.
//!
//! Link it into a binary with `EventBus::builder().plugin(&example_order_fulfillment::PLUGIN)`,
//! or into the whole gateway server with `gateway_server::cli::main_with(|server|
//! server.plugin(&PLUGIN).handler_context(|ctx| ctx.with_extension(OrderBook::default())))`
//! (`examples/shop-gateway`): naming the plugin keeps the linker from dropping
//! this crate and its handlers.
//!
//! An order the book has not seen (placed through the gateway's API, with
//! `order_id` in the payment) is recorded when its payment first changes,
//! as a waitlist order when the payment's metadata says `waitlist=true`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gateway::{
    payment_handler, BusError, CaptureIntent, EventBus, HandlerContext, HandlerError, IdempotencyKey,
    IntentPaymentFailed, IntentRequiresCapture, IntentSucceeded, PaymentIntent, PaymentProvider,
    StaticProviders,
};

gateway::declare_plugin!(PLUGIN);

/// A bus with this plugin linked in, an empty [`OrderBook`] and `provider`
/// in the handlers' context.
pub fn shop_bus(provider: Arc<dyn PaymentProvider>) -> Result<EventBus, BusError> {
    EventBus::builder()
        .plugin(&PLUGIN)
        .context(
            HandlerContext::new()
                .with_providers(StaticProviders::new().with(provider))
                .with_extension(OrderBook::default()),
        )
        .build()
}

/// The order book in a bus made by [`shop_bus`].
pub fn orders(bus: &EventBus) -> &OrderBook {
    bus.context()
        .extension::<OrderBook>()
        .expect("shop_bus puts an OrderBook in the context")
}

/// The payment metadata key that marks the order of a payment unknown to
/// the [`OrderBook`] as one of waitlist items (value `true`).
pub const WAITLIST_METADATA_KEY: &str = "waitlist";

/// Where an order stands, as the shop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderState {
    /// Placed; no payment yet.
    Placed,
    /// Paid: `amount` minor units received.
    Received {
        /// Minor units received.
        amount: i64,
    },
    /// The last payment attempt failed.
    PaymentDeclined {
        /// The issuer's decline code, or the provider's error code.
        reason: String,
    },
}

/// One order of the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Whether the order holds waitlist items, whose funds are captured as soon as they are authorized.
    pub waitlist: bool,
    /// Where it stands.
    pub state: OrderState,
}

/// The shop's orders, in memory. Handlers find it in the [`HandlerContext`].
#[derive(Debug, Default)]
pub struct OrderBook {
    orders: Mutex<HashMap<String, Order>>,
}

impl OrderBook {
    /// Records a new order.
    pub fn place(&self, order_id: &str, waitlist: bool) {
        let order = Order {
            waitlist,
            state: OrderState::Placed,
        };
        self.lock().insert(order_id.to_owned(), order);
    }

    /// The order, if it exists.
    pub fn get(&self, order_id: &str) -> Option<Order> {
        self.lock().get(order_id).cloned()
    }

    /// The order of `intent` (recorded from the payment if the book has not
    /// seen it), after `change`; `None` when the payment has no order id.
    fn update(&self, intent: &PaymentIntent, change: impl FnOnce(&mut Order)) -> Option<Order> {
        let order_id = intent.order_id()?;
        let mut orders = self.lock();
        let order = orders.entry(order_id.to_owned()).or_insert_with(|| Order {
            waitlist: intent
                .metadata
                .get(WAITLIST_METADATA_KEY)
                .is_some_and(|value| value == "true"),
            state: OrderState::Placed,
        });
        change(order);
        Some(order.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Order>> {
        self.orders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn order_book(ctx: &HandlerContext) -> Result<&OrderBook, HandlerError> {
    ctx.extension::<OrderBook>()
        .ok_or_else(|| HandlerError::permanent("the handler context has no OrderBook"))
}

/// Marks the order received once its payment succeeded.
#[payment_handler(retries = 5, timeout = "10s")]
pub async fn mark_order_received(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError> {
    let amount = event.intent.amount_received;
    // No order id: not a shop payment.
    order_book(&ctx)?.update(&event.intent, |order| {
        order.state = OrderState::Received { amount }
    });
    Ok(())
}

/// Captures authorized funds at once for waitlist orders. Only on the
/// instance that received the change, so a cluster captures once.
#[payment_handler(local_only, timeout = "30s")]
pub async fn capture_waitlist_items(
    event: IntentRequiresCapture,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    let waitlist = order_book(&ctx)?
        .update(&event.intent, |_| ())
        .is_some_and(|order| order.waitlist);
    if !waitlist {
        return Ok(());
    }
    let provider = ctx.provider_for(&event.intent, event.context.merchant.as_deref())?;
    // One key per intent: a retried handler never captures twice.
    let key = IdempotencyKey::new(format!("capture-waitlist:{}", event.intent.id))?;
    provider
        .capture_intent(&event.intent.id, CaptureIntent::default(), &key)
        .await?;
    Ok(())
}

/// Records why the payment failed, for the shop to tell the customer.
#[payment_handler]
pub async fn record_decline_reason(
    event: IntentPaymentFailed,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    let reason = event
        .intent
        .last_payment_error
        .as_ref()
        .and_then(|error| error.decline_code.clone().or_else(|| error.code.clone()))
        .unwrap_or_else(|| "unknown".to_owned());
    order_book(&ctx)?.update(&event.intent, |order| {
        order.state = OrderState::PaymentDeclined { reason }
    });
    Ok(())
}
