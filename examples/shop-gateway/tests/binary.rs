//! The built `shop-gateway` binary, run as processes: a payment taken over
//! HTTP reaches the order-fulfillment plugin's handlers inside the server,
//! which shows from outside (the payment's status, `/metrics`); and on two
//! instances sharing PostgreSQL, a `local_only` handler runs on the instance
//! that took the payment only, the others on both.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../../gateway-server/tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

/// The longest any wait of these tests lasts.
const PATIENCE: Duration = Duration::from_secs(60);

/// One `shop-gateway serve` process, killed when dropped.
struct Instance {
    child: Child,
    base: String,
    /// What it printed to stdout, line by line.
    stdout: Receiver<String>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Starts the binary on a free loopback port, in sandbox mode, with
    /// `env` added; waits until it accepts connections.
    fn start(database_url: &str, env: &[(&str, &str)]) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shop-gateway"));
        command
            .arg("serve")
            .env("GATEWAY_DATABASE_URL", database_url)
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY_MODE", "sandbox")
            .env("GATEWAY_LOG_LEVEL", "warn")
            .env("GATEWAY_WORKERS", "1")
            .env_remove("GATEWAY_CONFIG")
            .env_remove("GATEWAY_DEFAULT_PROVIDER")
            .env_remove("STRIPE_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("shop-gateway starts");
        let (lines, stdout) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut instance = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = instance.child.try_wait() {
                panic!("shop-gateway exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "shop-gateway did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        instance
    }

    /// The sandbox merchant's key, printed once on an empty database.
    fn sandbox_key(&self) -> String {
        let line = self
            .stdout
            .recv_timeout(PATIENCE)
            .expect("the sandbox key is printed");
        line.rsplit(' ')
            .next()
            .filter(|key| key.starts_with("gw_sk_"))
            .unwrap_or_else(|| panic!("not a key line: {line}"))
            .to_owned()
    }

    /// `method path` with the API key and a JSON body; the status and body.
    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = client
            .request(method, format!("{}{path}", self.base))
            .insert_header(("X-API-Key", key));
        let mut response = match body {
            Some(body) => request
                .insert_header(("Idempotency-Key", uuid::Uuid::now_v7().to_string()))
                .send_json(&body)
                .await
                .expect("request sent"),
            None => request.send().await.expect("request sent"),
        };
        let bytes = response.body().limit(1 << 20).await.expect("body read");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (response.status().as_u16(), json)
    }

    /// The Prometheus text of `/metrics`.
    async fn metrics(&self) -> String {
        let mut response = awc::Client::default()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answered");
        let bytes = response.body().limit(1 << 22).await.expect("metrics read");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until `/metrics` shows `line`; returns the whole text then.
    async fn metrics_with(&self, line: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.metrics().await;
            if text.lines().any(|shown| shown == line) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{} never showed {line}:\n{text}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes a manual-capture payment of `order_id`; its payment id.
    async fn pay(&self, key: &str, order_id: &str, waitlist: bool) -> String {
        let body = serde_json::json!({
            "amount": "25.00",
            "currency": "USD",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "order_id": order_id,
            "metadata": {"waitlist": waitlist.to_string()},
        });
        let (status, payment) = self.call("POST", "/v1/payments", key, Some(body)).await;
        assert_eq!(status, 200, "{payment}");
        assert_eq!(
            payment["data"]["status"], "pending",
            "authorized, not captured: {payment}"
        );
        payment["data"]["id"].as_str().expect("a payment id").to_owned()
    }

    /// Waits until payment `id` has `status`.
    async fn wait_for_status(&self, key: &str, id: &str, status: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (code, payment) = self.call("GET", &format!("/v1/payments/{id}"), key, None).await;
            assert_eq!(code, 200, "{payment}");
            if payment["data"]["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "payment {id} never {status}: {payment}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A counter line of `/metrics`.
fn runs(handler: &str, count: u64) -> String {
    format!("gateway_handler_runs_total{{handler=\"{handler}\",outcome=\"ok\"}} {count}")
}

/// Reconciliation every 200 ms of payments pending for a second: what tells
/// the gateway that the plugin captured a payment through the provider.
const RECONCILE_SOON: [(&str, &str); 2] = [
    ("GATEWAY_RECONCILE_AFTER", "1s"),
    ("GATEWAY_RECONCILE_INTERVAL", "200ms"),
];

#[actix_web::test]
async fn the_binary_serves_with_the_plugin_and_its_handler_captures_a_waitlist_order() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("shop.db").display());
    let shop = Instance::start(&database, &RECONCILE_SOON);
    let key = shop.sandbox_key();

    // An order of ordinary items stays authorized; one of waitlist items is captured by the plugin.
    let ordinary = shop.pay(&key, "order-ordinary", false).await;
    let waitlist = shop.pay(&key, "order-waitlist", true).await;
    shop.wait_for_status(&key, &waitlist, "completed").await;
    // The capture handler ran for both authorized payments, the one for paid orders once.
    shop.metrics_with(&runs("capture_waitlist_items", 2)).await;
    shop.metrics_with(&runs("mark_order_received", 1)).await;
    let (_, payment) = shop
        .call("GET", &format!("/v1/payments/{waitlist}"), &key, None)
        .await;
    assert_eq!(payment["data"]["amount"], "25.00", "{payment}");
    let (_, payment) = shop
        .call("GET", &format!("/v1/payments/{ordinary}"), &key, None)
        .await;
    assert_eq!(
        payment["data"]["status"], "pending",
        "not a waitlist order: {payment}"
    );
}

#[actix_web::test]
async fn on_two_instances_a_local_only_handler_runs_where_the_payment_was_taken() {
    let database = postgres::fresh_database().await;
    let master_key = "0123456789abcdef".repeat(4);
    let shared = [("GATEWAY_MASTER_KEY", master_key.as_str())];
    // A takes the payment and reconciles; B only hears of it over the cluster bus.
    let a = Instance::start(&database.url, &[shared[0], RECONCILE_SOON[0], RECONCILE_SOON[1]]);
    let key = a.sandbox_key();
    let b = Instance::start(&database.url, &[shared[0], ("GATEWAY_RECONCILE_AFTER", "0s")]);

    let payment = a.pay(&key, "order-cluster", true).await;
    a.wait_for_status(&key, &payment, "completed").await;
    // B counts a relayed change together with its handlers' runs: once the
    // success is counted there, every handler B ran for this payment is too.
    let on_b = b
        .metrics_with("gateway_bus_changes_total{kind=\"succeeded\",origin=\"cluster\"} 1")
        .await;
    a.metrics_with(&runs("capture_waitlist_items", 1)).await;
    let on_a = a.metrics_with(&runs("mark_order_received", 1)).await;

    let shows = |text: &str, line: &str| text.lines().any(|shown| shown == line);
    assert!(shows(&on_b, &runs("mark_order_received", 1)), "{on_b}");
    assert!(
        shows(
            &on_b,
            "gateway_bus_changes_total{kind=\"requires_capture\",origin=\"cluster\"} 1"
        ),
        "B heard of the authorization: {on_b}"
    );
    assert!(
        !on_b.contains("handler=\"capture_waitlist_items\""),
        "the local_only handler ran on B:\n{on_b}"
    );
    assert!(
        !on_a.contains("origin=\"cluster\""),
        "A took every change itself:\n{on_a}"
    );
    // B serves the same payment from the shared database.
    let (status, seen) = b
        .call("GET", &format!("/v1/payments/{payment}"), &key, None)
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["data"]["status"], "completed", "{seen}");
}
