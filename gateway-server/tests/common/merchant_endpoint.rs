//! A merchant's webhook endpoint for tests: a local HTTP server that records
//! every delivery and answers from a script, and the helpers to point a
//! merchant at it and check what it received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::StatusCode;
use gateway_server::{Config, DeliverySchedule};
use serde_json::Value;

use super::TestServer;

/// A local merchant endpoint: records every request, answers from a script.
#[derive(Clone, Default)]
pub struct Receiver {
    hits: Arc<Mutex<Vec<(Instant, String, String)>>>,
    script: Arc<Mutex<Vec<u16>>>,
    /// Where it listens.
    pub url: String,
}

impl Receiver {
    /// Answers `script` in order, then 200.
    pub async fn start(script: &[u16]) -> Receiver {
        let mut receiver = Receiver {
            script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
            ..Receiver::default()
        };
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let signature = req
                        .headers()
                        .get("Gateway-Signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    state.hits.lock().unwrap().push((
                        Instant::now(),
                        signature,
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                    let status = state.script.lock().unwrap().pop().unwrap_or(200);
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        receiver.url = format!("http://127.0.0.1:{}/hooks", server.addrs()[0].port());
        actix_web::rt::spawn(server.run());
        receiver
    }

    /// Every request so far: (when, `Gateway-Signature`, body).
    pub fn hits(&self) -> Vec<(Instant, String, String)> {
        self.hits.lock().unwrap().clone()
    }

    /// The requests once there are `count`, or after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<(Instant, String, String)> {
        let deadline = Instant::now() + within;
        while self.hits().len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.hits()
    }
}

/// Deliveries retried within milliseconds, so the tests need not wait.
pub fn fast(config: &mut Config) {
    config.webhook_delivery = DeliverySchedule {
        first_retry: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
        max_attempts: 8,
        timeout: Duration::from_secs(2),
    };
    config.webhook_sweep_interval = Duration::from_millis(200);
}

/// Sets the webhook URL; returns the signing secret (shown once).
pub async fn set_webhook(server: &TestServer, url: &str) -> String {
    let reply = server
        .put("/v1/merchant/webhook", &format!(r#"{{"webhook_url": "{url}"}}"#))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let secret = reply.data()["signing_secret"]
        .as_str()
        .expect("secret shown")
        .to_owned();
    let again = server
        .put("/v1/merchant/webhook", &format!(r#"{{"webhook_url": "{url}"}}"#))
        .await;
    assert!(again.data().get("signing_secret").is_none(), "shown once");
    secret
}

/// Checks `hit`'s signature with `secret`; returns its body.
pub fn verify(secret: &str, hit: &(Instant, String, String)) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    gateway_core::signature::verify_header(
        &hit.1,
        hit.2.as_bytes(),
        &[secret.as_bytes()],
        Duration::from_secs(300),
        now,
    )
    .expect("Gateway-Signature verifies");
    serde_json::from_str(&hit.2).unwrap()
}
