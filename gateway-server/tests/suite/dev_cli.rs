//! The developer commands (`gateway listen`, `gateway trigger`, `gateway
//! events resend`) as processes against the real server: every event
//! forwarded once, in order, signed with the endpoint's secret, across a
//! dropped connection; triggers produce the event they name.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

/// A `gateway` developer command running as a child process, killed when dropped.
struct Cli {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    receive
}

impl Cli {
    fn start(base: &str, key: &str, args: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(args)
            .env("GATEWAY_API_BASE", base)
            .env("GATEWAY_API_KEY", key)
            .env_remove("GATEWAY_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gateway runs");
        Cli {
            stdout: lines(child.stdout.take().unwrap()),
            stderr: lines(child.stderr.take().unwrap()),
            child,
        }
    }

    /// Waits (at most `within`) for a line on stderr containing `text`.
    async fn wait_stderr(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            while let Ok(line) = self.stderr.try_recv() {
                if line.contains(text) {
                    return line;
                }
                seen.push(line);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {text:?} on stderr within {within:?}; saw {seen:?}");
    }

    /// Waits (at most `within`) for the process to exit; its status, stdout and stderr.
    async fn finish(mut self, within: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the command did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The reader threads end with the process's pipes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let collect = |from: &mpsc::Receiver<String>| from.try_iter().collect::<Vec<_>>().join("\n");
        (status.success(), collect(&self.stdout), collect(&self.stderr))
    }
}

/// A TCP proxy in front of the gateway whose connections the test can cut.
struct Proxy {
    base: String,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tracked = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(relay);
            }
        });
        Proxy {
            base,
            connections,
            accepting,
        }
    }

    /// Drops every open connection, as a network failure would.
    fn cut(&self) {
        for relay in self.connections.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

/// The `id`s of the forwarded bodies, each signature checked with `secret`.
fn forwarded_ids(receiver: &Receiver, secret: &str) -> Vec<String> {
    receiver
        .hits()
        .iter()
        .map(|hit| verify(secret, hit)["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The merchant's event ids of `event_type`, oldest first.
async fn event_ids(server: &TestServer, event_type: &str) -> Vec<String> {
    let page = server
        .get(&format!("/v1/events?type={event_type}&limit=100"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let mut ids: Vec<String> = page.data()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    ids
}

async fn pay(server: &TestServer, method: &str) {
    let paid = server.pay(&payment_body("12.00", method, "")).await;
    assert!(paid["id"].is_string(), "{paid}");
}

#[actix_web::test]
async fn listen_forwards_every_event_once_in_order_across_a_dropped_connection() {
    let server = TestServer::start_with(fast).await;
    let direct = Receiver::start(&[]).await;
    let secret = set_webhook(&server, &direct.url).await;
    let local = Receiver::start(&[]).await;
    let upstream = server.url("").trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let listen = Cli::start(&proxy.base, &server.key, &["listen", "--forward-to", &local.url]);
    listen.wait_stderr("connected", Duration::from_secs(20)).await;

    for _ in 0..3 {
        pay(&server, "pm_card_visa").await;
    }
    assert_eq!(local.wait_for(3, Duration::from_secs(20)).await.len(), 3);

    // The connection drops; events happen while the listener is away.
    proxy.cut();
    for _ in 0..3 {
        pay(&server, "pm_card_visa").await;
    }
    listen
        .wait_stderr("resuming after", Duration::from_secs(30))
        .await;
    local.wait_for(6, Duration::from_secs(20)).await;
    // Nothing more arrives later (no duplicate after the reconnect).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let expected = event_ids(&server, "payment.completed").await;
    assert_eq!(expected.len(), 6);
    assert_eq!(
        forwarded_ids(&local, &secret),
        expected,
        "each event once, in order, signed with the endpoint's secret"
    );
    let printed: Vec<String> = listen.stdout.try_iter().collect();
    assert_eq!(printed.len(), 6, "one line per event: {printed:?}");
    assert!(
        printed
            .iter()
            .all(|line| line.contains("payment.completed") && line.contains("200")),
        "{printed:?}"
    );
}

#[actix_web::test]
async fn listen_forwards_only_the_types_asked_for() {
    let server = TestServer::start_with(fast).await;
    let direct = Receiver::start(&[]).await;
    let secret = set_webhook(&server, &direct.url).await;
    let local = Receiver::start(&[]).await;
    let listen = Cli::start(
        &server.url(""),
        &server.key,
        &["listen", "--forward-to", &local.url, "--events", "payment.failed"],
    );
    listen.wait_stderr("connected", Duration::from_secs(20)).await;
    pay(&server, "pm_card_visa").await;
    let declined = server
        .post(
            "/v1/payments",
            &payment_body("12.00", "pm_card_chargeDeclined", ""),
        )
        .await;
    assert_eq!(declined.status, 402, "{}", declined.text);
    // Both reach the endpoint itself; only the failure is forwarded.
    direct.wait_for(2, Duration::from_secs(20)).await;
    local.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        forwarded_ids(&local, &secret),
        event_ids(&server, "payment.failed").await
    );
}

#[actix_web::test]
async fn listen_refuses_a_bad_key_and_a_merchant_without_endpoints() {
    let server = TestServer::start().await;
    let listen = Cli::start(
        &server.url(""),
        "gw_sk_not_a_key",
        &["listen", "--forward-to", "http://127.0.0.1:9/hooks"],
    );
    let (ok, _, stderr) = listen.finish(Duration::from_secs(20)).await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
    let listen = Cli::start(
        &server.url(""),
        &server.key,
        &["listen", "--forward-to", "http://127.0.0.1:9/hooks"],
    );
    let (ok, _, stderr) = listen.finish(Duration::from_secs(20)).await;
    assert!(!ok && stderr.contains("no enabled webhook endpoint"), "{stderr}");
}

#[actix_web::test]
async fn trigger_produces_each_event_type_with_a_signed_delivery_and_resend_sends_it_again() {
    let server = TestServer::start_with(fast).await;
    let direct = Receiver::start(&[]).await;
    let secret = set_webhook(&server, &direct.url).await;
    let types = [
        "payment.completed",
        "payment.failed",
        "payment.pending",
        "payment.requires_capture",
        "payment.canceled",
        "payment.partially_refunded",
        "payment.refunded",
    ];
    let mut triggered = Vec::new();
    for event_type in types {
        let (ok, stdout, stderr) = Cli::start(&server.url(""), &server.key, &["trigger", event_type])
            .finish(Duration::from_secs(30))
            .await;
        assert!(ok, "trigger {event_type}: {stderr}");
        let id = stdout.trim().to_owned();
        assert!(id.starts_with("evt_"), "{event_type}: {stdout:?}");
        let event = server.get(&format!("/v1/events/{id}")).await;
        assert_eq!(event.status, 200, "{}", event.text);
        assert_eq!(event.data()["type"], event_type);
        triggered.push(id);
    }
    // Every triggered event reaches the endpoint, signed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let ids: Vec<String> = direct
            .hits()
            .iter()
            .map(|hit| verify(&secret, hit)["id"].as_str().unwrap().to_owned())
            .collect();
        if triggered.iter().all(|id| ids.contains(id)) || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for id in &triggered {
        assert!(delivered.contains(id), "{id} delivered: {delivered:?}");
    }

    let first = &triggered[0];
    let before = direct.hits().len();
    let (ok, stdout, stderr) = Cli::start(&server.url(""), &server.key, &["events", "resend", first])
        .finish(Duration::from_secs(30))
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one delivery queued: {stdout}");
    let hits = direct.wait_for(before + 1, Duration::from_secs(20)).await;
    let again = verify(&secret, hits.last().unwrap());
    assert_eq!(&again["id"], first.as_str());
    let original = hits
        .iter()
        .find(|hit| verify(&secret, hit)["id"] == first.as_str())
        .unwrap();
    assert_eq!(original.2, hits.last().unwrap().2, "the same payload");

    let (ok, _, stderr) = Cli::start(&server.url(""), &server.key, &["events", "resend", "evt_nope"])
        .finish(Duration::from_secs(30))
        .await;
    assert!(!ok && stderr.contains("404"), "{stderr}");
    let (ok, _, stderr) = Cli::start(&server.url(""), &server.key, &["trigger", "payment.exploded"])
        .finish(Duration::from_secs(30))
        .await;
    assert!(
        !ok && stderr.contains("payment.completed"),
        "lists the types: {stderr}"
    );
}

#[actix_web::test]
async fn the_event_stream_refuses_what_it_cannot_serve() {
    let server = TestServer::start().await;
    let refused = |path: &'static str| {
        let server = &server;
        async move {
            let reply = server.get(path).await;
            (reply.status.as_u16(), reply.code().to_owned(), reply.text.clone())
        }
    };
    let (status, _, text) = refused("/v1/events/stream?types=payment.exploded").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"param\":\"types\""), "{text}");
    let (status, code, text) = refused("/v1/events/stream?after=evt_gone").await;
    assert_eq!((status, code.as_str()), (404, "event_not_found"), "{text}");
    let (status, _, text) = refused("/v1/events/stream?endpoint=we_nope").await;
    assert_eq!(status, 404, "{text}");
    let (_, other_key) = server.merchant("payments:read").await;
    let reply = server.get_as(&other_key, "/v1/events/stream").await;
    assert_eq!(reply.status, 403, "webhooks:read is needed: {}", reply.text);
}
