//! Hostile merchants and a hostile internet: the outbound address policy
//! through the real server on 127.0.0.1. Webhook URLs on loopback, private,
//! link-local or oddly spelled addresses are refused in production; a
//! delivery connects only where the policy allows at the time it connects;
//! merchants give credentials only, never endpoint settings; HTTPS
//! delivery trusts the operator's extra CA. No test reaches the internet:
//! the only public address used (`93.184.215.14`) is stored, never sent to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A gateway-wide Stripe account that is never called (a closed local port).
fn idle_stripe() -> Arc<dyn gateway_core::PaymentProvider> {
    let mut settings = gateway_core::ProviderConfig::new();
    settings.set("secret_key", "sk_test_egress");
    settings.set("api_base", "http://127.0.0.1:9");
    settings.set("max_retries", "0");
    settings.set("timeout_ms", "200");
    gateway_core::build_provider("stripe", &settings).unwrap()
}

/// A production server (sandbox off, default egress policy) on a database
/// that has the sandbox merchant.
async fn production() -> TestServer {
    TestServer::start()
        .await
        .restart_with(
            |config| config.mode = gateway_server::Mode::Production,
            idle_stripe(),
        )
        .await
        .expect("a production server starts")
}

async fn put_webhook(server: &TestServer, url: &str) -> crate::common::Reply {
    server
        .put(
            "/v1/merchant/webhook",
            &serde_json::json!({ "webhook_url": url }).to_string(),
        )
        .await
}

/// The deliveries of `payment` once one has `attempts` attempts (or after 10 s).
async fn deliveries_of(server: &TestServer, payment: &Value, attempts: i64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = server
            .get(&format!(
                "/v1/webhook-deliveries?payment_id={}",
                payment["id"].as_str().unwrap()
            ))
            .await;
        let deliveries = list.data()["data"].as_array().cloned().unwrap_or_default();
        if deliveries
            .iter()
            .any(|d| d["attempts"].as_i64() >= Some(attempts))
            || Instant::now() > deadline
        {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn production_refuses_local_special_and_oddly_spelled_webhook_urls() {
    let server = production().await;
    for url in [
        "https://127.0.0.1/hooks",
        "https://127.0.0.1:6379/",
        "https://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254/",
        "https://10.0.0.1/hooks",
        "https://192.168.1.10/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://0x7f000001/",
        "https://017700000001/",
        "https://0177.0.0.1/",
        "https://127.1/",
        // A name that resolves to loopback (no test may reach the internet).
        "https://localhost/hooks",
        "https://localhost:8443/",
        // Plain http, even to a public address.
        "http://93.184.215.14/hooks",
        "https://user:pass@93.184.215.14/",
        "https://93.184.215.14\\@127.0.0.1/",
    ] {
        let reply = put_webhook(&server, url).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{url}: {}", reply.text);
        let error = &reply.body["error"];
        assert_eq!(error["code"], "parameter_invalid", "{url}");
        assert_eq!(error["param"], "webhook_url", "{url}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("allowed: an https:// URL"), "{url}: {message}");
    }
    let webhook = server.get("/v1/merchant/webhook").await;
    assert_eq!(webhook.data()["webhook_url"], Value::Null, "nothing was stored");

    // Missing or empty: 400, the URL is required (DELETE removes it).
    for body in [
        r#"{"webhook_url": ""}"#,
        r#"{"webhook_url": "  "}"#,
        r#"{}"#,
        r#"{"webhook_url": null}"#,
    ] {
        let reply = server.put("/v1/merchant/webhook", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text);
        assert_eq!(reply.body["error"]["code"], "parameter_missing");
        assert_eq!(reply.body["error"]["param"], "webhook_url");
    }

    // A public address literal is accepted (stored only: no payment, no delivery).
    let reply = put_webhook(&server, "https://93.184.215.14/hooks").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.data()["signing_secret"].is_string());
    let deleted = server.delete("/v1/merchant/webhook").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.data()["webhook_url"], Value::Null);
    // The URL is the first endpoint's: deleting it deletes the endpoint and its secret.
    assert_eq!(
        deleted.data()["signing_secret_set"],
        false,
        "the endpoint's secret went with it"
    );
    let endpoints = server.get("/v1/webhook-endpoints").await;
    assert_eq!(endpoints.data()["data"], serde_json::json!([]));
    let webhook = server.get("/v1/merchant/webhook").await;
    assert_eq!(webhook.data()["webhook_url"], Value::Null);
    let again = server.delete("/v1/merchant/webhook").await;
    assert_eq!(again.status, StatusCode::OK, "removing nothing is fine");
    server.stop().await;
}

#[actix_web::test]
async fn merchants_give_credentials_only() {
    let server = production().await;
    for (key, value) in [
        ("api_base", "http://127.0.0.1:6379"),
        ("api_base", "http://169.254.169.254/"),
        ("timeout_ms", "3600000"),
        ("max_retries", "10"),
        ("retry_backoff_ms", "1"),
        ("webhook_tolerance_secs", "999999"),
        ("anything_else", "x"),
    ] {
        let body = serde_json::json!({"provider": "stripe", "stripe": {
            "secret_key": "sk_test_merchant", key: value}});
        let reply = server.put("/v1/merchant/providers", &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key}: {}", reply.text);
        assert_eq!(reply.body["error"]["param"], key);
        assert!(
            !reply.text.contains(value),
            "the value is not echoed: {}",
            reply.text
        );
    }
    let reply = server
        .put(
            "/v1/merchant/providers",
            r#"{"provider": "stripe", "stripe": {"secret_key": "sk_test_merchant", "webhook_secret": "whsec_m"}}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    server.stop().await;
}

#[actix_web::test]
async fn a_production_start_refuses_an_operator_api_base_on_a_local_address() {
    let server = TestServer::start().await;
    let refused = server
        .restart_with(
            |config| {
                config.mode = gateway_server::Mode::Production;
                let stripe = config.providers.entry("stripe".to_owned()).or_default();
                stripe.insert("api_base".to_owned(), "https://169.254.169.254/".to_owned());
            },
            idle_stripe(),
        )
        .await;
    let error = refused.err().expect("the start is refused").to_string();
    assert!(
        error.contains("api_base") && error.contains("GATEWAY_EGRESS_ALLOW_NETS"),
        "{error}"
    );
}

#[actix_web::test]
async fn sandbox_delivers_to_loopback_and_a_stricter_policy_refuses_the_same_url_at_connect_time() {
    let receiver = Receiver::start(&[]).await;
    let mut server = TestServer::start_with(fast).await;
    assert!(receiver.url.starts_with("http://127.0.0.1:"));
    let secret = set_webhook(&server, &receiver.url).await;
    server.pay(&payment_body("10.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 1, "the sandbox delivers to http://127.0.0.1");
    verify(&secret, &hits[0]);

    // The URL stays stored; the policy that applies when connecting no
    // longer allows loopback (as if its name now resolved there).
    server.config.egress_allow_nets = Some(Vec::new());
    let server = server.restart().await;
    let payment = server.pay(&payment_body("11.00", "pm_card_visa", "")).await;
    let deliveries = deliveries_of(&server, &payment, 2).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let id = deliveries[0]["id"].as_str().unwrap();
    let one = server.get(&format!("/v1/webhook-deliveries/{id}")).await;
    let log = one.data()["attempt_log"].as_array().unwrap().clone();
    assert!(log.len() >= 2, "{log:?}");
    for attempt in &log {
        let error = attempt["error"].as_str().unwrap();
        assert_eq!(error, "destination not allowed");
        let lower = error.to_ascii_lowercase();
        assert!(
            !lower.contains("refused") && !lower.contains("timed out") && !lower.contains("127.0.0.1"),
            "{error}"
        );
        assert_eq!(attempt["http_status"], Value::Null);
    }
    assert_eq!(log[0]["error"], log[1]["error"], "a fixed text");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 1, "the receiver got nothing more");
    // The same stored URL is refused when set again under this policy.
    let reply = put_webhook(&server, &receiver.url).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    server.stop().await;
}

/// One request a [`TlsReceiver`] received: its `Gateway-Signature` and body.
type Hit = (Instant, String, String);

/// A local HTTPS merchant endpoint (tokio-rustls, the test CA's
/// `localhost` certificate) answering 200 and recording each request.
struct TlsReceiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    port: u16,
}

impl TlsReceiver {
    async fn start() -> TlsReceiver {
        let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/server.key")).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let recorded = hits.clone();
        actix_web::rt::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                actix_web::rt::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut data = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let (head, body_start) = loop {
                        let Ok(read) = tls.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        data.extend_from_slice(&buffer[..read]);
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&data[..end]).into_owned(), end + 4);
                        }
                    };
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|line| {
                                let (key, value) = line.split_once(':')?;
                                key.trim()
                                    .eq_ignore_ascii_case(name)
                                    .then(|| value.trim().to_owned())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    while data.len() < body_start + length {
                        let Ok(read) = tls.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        data.extend_from_slice(&buffer[..read]);
                    }
                    let body = String::from_utf8_lossy(&data[body_start..body_start + length]).into_owned();
                    recorded
                        .lock()
                        .unwrap()
                        .push((Instant::now(), header("gateway-signature"), body));
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsReceiver { hits, port }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        while self.hits().len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.hits()
    }
}

#[actix_web::test]
async fn https_delivery_trusts_the_operators_ca_and_only_it() {
    let receiver = TlsReceiver::start().await;
    let url = format!("https://localhost:{}/hooks", receiver.port);

    // Without the test CA: the certificate is not trusted, nothing arrives.
    let untrusting = TestServer::start_with(fast).await;
    set_webhook(&untrusting, &url).await;
    let payment = untrusting.pay(&payment_body("12.00", "pm_card_visa", "")).await;
    let deliveries = deliveries_of(&untrusting, &payment, 1).await;
    assert_eq!(deliveries.len(), 1);
    assert_ne!(deliveries[0]["status"], "delivered", "{deliveries:?}");
    assert!(deliveries[0]["last_error"].is_string(), "{deliveries:?}");
    assert!(receiver.hits().is_empty(), "no request got through TLS");
    untrusting.stop().await;

    // With it: the delivery arrives, signed.
    let server = TestServer::start_with(|config| {
        fast(config);
        config.webhook_ca_file = Some(format!("{FIXTURES}/ca.pem").into());
    })
    .await;
    let secret = set_webhook(&server, &url).await;
    let payment = server.pay(&payment_body("13.00", "pm_card_visa", "")).await;
    let hits = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 1);
    let body = verify(&secret, &hits[0]);
    assert_eq!(body["type"], "payment.completed");
    assert_eq!(body["data"]["payment"]["id"], payment["id"], "{body}");
    let deliveries = deliveries_of(&server, &payment, 1).await;
    assert_eq!(deliveries[0]["status"], "delivered", "{deliveries:?}");
    server.stop().await;
}
