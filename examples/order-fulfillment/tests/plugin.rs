//! The plugin linked into a gateway: its handlers are all there, and do the shop's work.

use std::sync::Arc;

use example_order_fulfillment::{orders, shop_bus, OrderBook, OrderState, PLUGIN};
use gateway::{
    CaptureMethod, CreateIntent, Currency, EventBus, IdempotencyKey, IntentStatus, MemoryRelay, MockProvider,
    Money, PaymentProvider,
};

struct Shop {
    mock: MockProvider,
    bus: EventBus,
    relay: MemoryRelay,
}

impl Shop {
    fn new() -> Shop {
        let mock = MockProvider::new();
        let bus = shop_bus(Arc::new(mock.clone())).expect("the plugin is linked");
        let relay = MemoryRelay::new(Arc::new(mock.clone()), bus.clone());
        Shop { mock, bus, relay }
    }

    fn orders(&self) -> &OrderBook {
        orders(&self.bus)
    }

    async fn pay(&self, order_id: &str, card: &str, waitlist: bool) {
        self.orders().place(order_id, waitlist);
        let mut request = CreateIntent::new(Money::parse("30.00", Currency::USD).unwrap());
        request.payment_method = Some(card.into());
        request.confirm = true;
        if waitlist {
            request.capture_method = CaptureMethod::Manual;
        }
        request.metadata.insert("order_id".into(), order_id.into());
        let _ = self
            .mock
            .create_intent(request, &IdempotencyKey::new(order_id).unwrap())
            .await;
        loop {
            let events = self.mock.take_events();
            if events.is_empty() {
                break;
            }
            self.relay.relay_all(&events).await.unwrap();
        }
    }

    fn state(&self, order_id: &str) -> OrderState {
        self.orders().get(order_id).unwrap().state
    }
}

/// Fails if the linker dropped the plugin's handlers, or one is missing.
#[test]
fn every_handler_of_the_linked_plugin_is_registered() {
    let bus = EventBus::builder()
        .plugin(&PLUGIN)
        .build()
        .expect("the plugin registered handlers");
    let names = bus.handler_names();
    assert_eq!(
        names,
        [
            "capture_waitlist_items",
            "mark_order_received",
            "record_decline_reason"
        ],
        "handlers of {} missing: is the crate linked with `EventBus::builder().plugin(..)`?",
        PLUGIN.crate_name
    );
    let registered: Vec<_> = gateway::registered_handlers()
        .into_iter()
        .filter(|handler| handler.crate_name == PLUGIN.crate_name)
        .map(|handler| (handler.name, handler.options.local_only))
        .collect();
    assert_eq!(
        registered,
        [
            ("capture_waitlist_items", true),
            ("mark_order_received", false),
            ("record_decline_reason", false)
        ]
    );
}

#[tokio::test]
async fn a_paid_order_is_marked_received() {
    let shop = Shop::new();
    shop.pay("o-1", "pm_card_visa", false).await;
    assert_eq!(shop.state("o-1"), OrderState::Received { amount: 3000 });
}

#[tokio::test]
async fn a_declined_order_records_the_reason() {
    let shop = Shop::new();
    shop.pay("o-2", "pm_card_chargeDeclinedExpiredCard", false).await;
    assert_eq!(
        shop.state("o-2"),
        OrderState::PaymentDeclined {
            reason: "expired_card".into()
        }
    );
}

#[tokio::test]
async fn waitlist_orders_are_captured_at_once_and_others_wait() {
    let shop = Shop::new();
    shop.pay("o-3", "pm_card_visa", true).await;
    assert_eq!(shop.state("o-3"), OrderState::Received { amount: 3000 });
    assert_eq!(shop.mock.stats().executed("capture_intent"), 1);

    // A manual-capture order that is not a waitlist order stays authorized.
    shop.orders().place("o-4", false);
    let mut request = CreateIntent::new(Money::parse("10.00", Currency::USD).unwrap());
    request.payment_method = Some("pm_card_visa".into());
    request.confirm = true;
    request.capture_method = CaptureMethod::Manual;
    request.metadata.insert("order_id".into(), "o-4".into());
    let intent = shop
        .mock
        .create_intent(request, &IdempotencyKey::new("o-4").unwrap())
        .await
        .unwrap();
    shop.relay.relay_all(&shop.mock.take_events()).await.unwrap();
    assert_eq!(shop.state("o-4"), OrderState::Placed);
    assert_eq!(
        shop.mock.retrieve_intent(&intent.id).await.unwrap().status,
        IntentStatus::RequiresCapture
    );
    assert_eq!(shop.mock.stats().executed("capture_intent"), 1);
}

#[tokio::test]
async fn orders_placed_through_the_gateway_are_recorded_and_their_metadata_marks_waitlist_items() {
    let shop = Shop::new();
    let pay = |order_id: &'static str, metadata_waitlist: Option<&'static str>| {
        let mut request = CreateIntent::new(Money::parse("12.00", Currency::USD).unwrap());
        request.payment_method = Some("pm_card_visa".into());
        request.confirm = true;
        request.capture_method = CaptureMethod::Manual;
        request.metadata.insert("order_id".into(), order_id.into());
        if let Some(value) = metadata_waitlist {
            request.metadata.insert(
                example_order_fulfillment::WAITLIST_METADATA_KEY.into(),
                value.into(),
            );
        }
        let mock = shop.mock.clone();
        async move {
            mock.create_intent(request, &IdempotencyKey::new(order_id).unwrap())
                .await
                .unwrap()
        }
    };
    let waitlist = pay("o-5", Some("true")).await;
    let other = pay("o-6", Some("false")).await;
    loop {
        let events = shop.mock.take_events();
        if events.is_empty() {
            break;
        }
        shop.relay.relay_all(&events).await.unwrap();
    }
    assert_eq!(shop.state("o-5"), OrderState::Received { amount: 1200 });
    assert!(shop.orders().get("o-5").unwrap().waitlist);
    assert_eq!(
        shop.mock.retrieve_intent(&waitlist.id).await.unwrap().status,
        IntentStatus::Succeeded
    );
    assert_eq!(shop.state("o-6"), OrderState::Placed, "recorded, not captured");
    assert_eq!(
        shop.mock.retrieve_intent(&other.id).await.unwrap().status,
        IntentStatus::RequiresCapture
    );
}
