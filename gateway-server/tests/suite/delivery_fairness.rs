//! Hostile merchants: an endpoint that never answers does not hold up other
//! merchants' webhooks, one merchant never has more than its share in flight,
//! and old finished deliveries are pruned.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;

use super::webhooks::db_count;
use crate::common::merchant_endpoint::{fast, set_webhook, Receiver};
use crate::common::{payment_body, TestServer, ALL_SCOPES};

/// A TCP listener that accepts every connection and never answers; it
/// counts the connections open at once (and the most ever open).
struct BlackHole {
    url: String,
    most_open: Arc<AtomicUsize>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let open = Arc::new(AtomicUsize::new(0));
        let most_open = Arc::new(AtomicUsize::new(0));
        let (now_open, most) = (open.clone(), most_open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let open_now = now_open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(open_now, Ordering::SeqCst);
                let now_open = now_open.clone();
                // Reads (and ignores) the request until the client gives up.
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
                    now_open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        BlackHole { url, most_open }
    }
}

#[actix_web::test]
async fn a_black_hole_endpoint_does_not_hold_up_other_merchants() {
    let hole = BlackHole::start();
    let server = TestServer::start_with(|config| {
        fast(config);
        // Long enough that a whole batch of the black hole's deliveries
        // would stall the worker well past the bound below.
        config.webhook_delivery.timeout = std::time::Duration::from_secs(5);
        config.webhook_limits.concurrency = 8;
        config.webhook_limits.per_merchant = 2;
    })
    .await;
    // Merchant A (the sandbox merchant): its endpoint never answers, and it
    // has many more deliveries than the worker runs at once, all older.
    set_webhook(&server, &hole.url).await;
    for _ in 0..100 {
        server.pay(&payment_body("3.00", "pm_card_visa", "")).await;
    }
    // Merchant B: a working endpoint, and a few payments.
    let (_, b_key) = server.merchant(ALL_SCOPES).await;
    let receiver = Receiver::start(&[]).await;
    let reply = server
        .send(
            "PUT",
            "/v1/merchant/webhook",
            Some(&b_key),
            &[],
            Some(&format!(r#"{{"webhook_url": "{}"}}"#, receiver.url)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for _ in 0..3 {
        let reply = server
            .post_as(&b_key, "/v1/payments", &payment_body("4.00", "pm_card_visa", ""))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    // A liveness bound, not a performance measure: B's webhooks arrive
    // while A's deliveries hang.
    let hits = receiver.wait_for(3, Duration::from_secs(15)).await;
    assert_eq!(
        hits.len(),
        3,
        "merchant B's webhooks arrive despite A's black hole"
    );
    // A never had more than its share in flight (one more for a closed
    // connection the listener has not noticed yet).
    let most = hole.most_open.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} connections open at once to A");
    server.stop().await;
}

#[actix_web::test]
async fn finished_deliveries_older_than_the_retention_are_pruned() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    set_webhook(&server, &receiver.url).await;
    server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivered = || {
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'",
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while delivered() < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered(), 1);
    // Recent rows stay.
    assert_eq!(server.prune_now().await, gateway_server::Pruned::default());
    // Made old (as if delivered long ago), with a pending one beside it.
    db_count(
        &server,
        "UPDATE webhook_deliveries SET created_at = 1, delivered_at = 2 RETURNING seq",
    );
    server.pay(&payment_body("6.00", "pm_card_visa", "")).await;
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let pruned = server.prune_now().await;
    assert_eq!(pruned.deliveries, 1, "{pruned:?}");
    assert_eq!(
        db_count(
            &server,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE created_at = 1"
        ),
        0
    );
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_deliveries"), 1);
    let listed = server.get("/v1/webhook-deliveries").await;
    assert_eq!(listed.data()["data"].as_array().unwrap().len(), 1);
    server.stop().await;
}
