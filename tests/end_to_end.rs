//! End to end across crates: a payment through the gateway server's API with
//! `MockProvider` → the provider's webhook → the example plugin's handlers →
//! a signed outbound webhook, verified by a local receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use example_order_fulfillment::{orders, OrderBook, OrderState};
use gateway::MockProvider;
use gateway_server::{Config, DeliverySchedule, ServerBuilder};
use serde_json::Value;

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A merchant endpoint on 127.0.0.1 that keeps what it receives.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let server = HttpServer::new(move || {
        let store = store.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let store = store.clone();
            async move {
                let signature = req
                    .headers()
                    .get("Gateway-Signature")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.lock().unwrap().push((signature, body.to_vec()));
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://127.0.0.1:{}/webhooks/payments", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    (url, received)
}

async fn call(client: &awc::Client, method: &str, url: String, key: &str, body: Option<String>) -> Value {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let request = client
        .request(method, url)
        .insert_header(("X-API-Key", key))
        .insert_header(("Content-Type", "application/json"));
    let mut response = match body {
        Some(body) => request.send_body(body).await,
        None => request.send().await,
    }
    .unwrap();
    let bytes = response.body().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[actix_web::test]
async fn payment_to_plugin_handlers_to_a_signed_merchant_webhook() {
    let (hook_url, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".to_owned(),
        database_url: format!("sqlite://{}", dir.path().join("gateway.db").display()),
        master_key: Some("0123456789abcdef".repeat(4)),
        workers: 2,
        log_level: "warn".to_owned(),
        webhook_delivery: DeliverySchedule {
            first_retry: Duration::from_millis(100),
            ..DeliverySchedule::default()
        },
        ..Config::default()
    };
    let mock = MockProvider::new();
    let server = ServerBuilder::new(config)
        .provider(Arc::new(mock.clone()))
        .plugin(&example_order_fulfillment::PLUGIN)
        .handler_context(|context| context.with_extension(OrderBook::default()))
        .start()
        .await
        .unwrap();
    let key = server.sandbox_key().unwrap().to_owned();
    let base = format!("http://{}", server.addr());
    let client = awc::Client::default();
    orders(server.bus()).place("ord_e2e", false);

    let webhook = call(
        &client,
        "PUT",
        format!("{base}/v1/merchant/webhook"),
        &key,
        Some(format!(r#"{{"webhook_url": "{hook_url}"}}"#)),
    )
    .await;
    let secret = webhook["data"]["signing_secret"].as_str().unwrap().to_owned();

    // The customer must pass 3-D Secure: the payment stays pending.
    let payment = call(
        &client,
        "POST",
        format!("{base}/v1/payments"),
        &key,
        Some(
            r#"{"amount": "42.50", "currency": "USD", "payment_method": "pm_card_threeDSecure2Required",
                "return_url": "https://shop.example/back", "order_id": "ord_e2e"}"#
                .to_owned(),
        ),
    )
    .await;
    assert_eq!(payment["data"]["status"], "pending", "{payment}");
    let payment_id = payment["data"]["id"].as_str().unwrap().to_owned();
    let intent_id = payment["data"]["provider_ref"].as_str().unwrap().to_owned();
    assert_eq!(
        orders(server.bus()).get("ord_e2e").unwrap().state,
        OrderState::Placed
    );

    // The customer authenticates; the provider sends its webhooks, each five times.
    mock.take_events();
    mock.complete_authentication(&intent_id, true).unwrap();
    let events = mock.take_events();
    let succeeded_event = events
        .iter()
        .find(|event| event.event_type == "payment_intent.succeeded")
        .unwrap()
        .id
        .clone();
    for event in events.iter().flat_map(|event| std::iter::repeat_n(event, 5)) {
        let request = mock.webhook_request(event, 0);
        let response = client
            .post(format!("{base}/v1/webhooks/mock"))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Mock-Signature", request.header("Mock-Signature").unwrap()))
            .send_body(request.body.clone())
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    // The plugin's handler marked the order received.
    let mut state = OrderState::Placed;
    for _ in 0..200 {
        state = orders(server.bus()).get("ord_e2e").unwrap().state;
        if state != OrderState::Placed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, OrderState::Received { amount: 4250 });
    server.bus().idle().await;
    let runs: Vec<_> = server
        .bus()
        .outcomes()
        .into_iter()
        .filter(|outcome| outcome.handler == "mark_order_received")
        .collect();
    assert_eq!(runs.len(), 1, "the handler ran once for five deliveries");
    assert_eq!(runs[0].event_id(), succeeded_event);
    assert!(runs[0].error.is_none(), "{:?}", runs[0].error);

    // The merchant's endpoint got payment.pending then payment.completed, signed.
    let mut hooks = Vec::new();
    for _ in 0..250 {
        hooks = received.lock().unwrap().clone();
        if hooks.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let types: Vec<String> = hooks
        .iter()
        .map(|(signature, body)| {
            gateway::signature::verify_header(
                signature,
                body,
                &[secret.as_bytes()],
                Duration::from_secs(300),
                now,
            )
            .expect("Gateway-Signature verifies with the merchant's secret");
            let event: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(event["data"]["payment"]["id"], payment_id.as_str());
            event["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(types, ["payment.pending", "payment.completed"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 2, "one delivery per change");
    let (signature, body) = &hooks[1];
    let tampered = [body.as_slice(), b" "].concat();
    assert!(gateway::signature::verify_header(
        signature,
        &tampered,
        &[secret.as_bytes()],
        Duration::from_secs(300),
        now
    )
    .is_err());
    server.stop().await;
}
