//! The `gateway` binary killed with SIGKILL under load and restarted on the
//! same SQLite file (issue 11, "Prove it": the process-level test).
//!
//! The mock provider lives inside the process and dies with it, so this test
//! checks what the gateway's own data can prove: no two payment rows for one
//! `Idempotency-Key`, a row for every 2xx answer a client received, and every
//! answered key replayed byte for byte after the restarts. Requests cut off
//! by the kill are retried with the same key and body after the restart, as
//! a client would. Such a retry resumes the written-ahead payment; when the
//! killed process's mock had already created its intent, the new process's
//! mock does not know it (a real provider outlives the gateway), and the
//! honest answer is `404 resource_missing` naming the payment: accepted for
//! cut-off requests only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};

/// Kill-and-restart rounds.
const ROUNDS: usize = 3;
/// Clients sending at once.
const CLIENTS: usize = 8;
/// Requests one client sends at most per round.
const MAX_REQUESTS_PER_CLIENT: usize = 150;

/// A running `gateway serve` process.
struct Gateway {
    child: Child,
    base: String,
}

impl Gateway {
    /// Starts `gateway serve` on `database` at a free port; returns it and
    /// the sandbox key it printed, if it printed one (an empty database).
    async fn start(database: &str) -> (Gateway, Option<String>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("serve")
            .env_remove("GATEWAY_CONFIG")
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY_DATABASE_URL", database)
            .env("GATEWAY_MASTER_KEY", "0123456789abcdef".repeat(4))
            .env("GATEWAY_LOG_LEVEL", "error")
            .env("GATEWAY_WORKERS", "2")
            // Load beyond the default per-merchant rate limit is the point here.
            .env("GATEWAY_RATE_LIMIT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gateway starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(key) = line.split("(shown once): ").nth(1) {
                    let _ = sender.send(key.trim().to_owned());
                }
            }
        });
        let gateway = Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/healthz", gateway.base)).send().await;
            if ready.is_ok_and(|reply| reply.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let key = receiver.recv_timeout(Duration::from_millis(500)).ok();
        (gateway, key)
    }

    /// SIGKILL: nothing in flight is finished, nothing is flushed.
    fn kill(&mut self) {
        // An error means it has exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    /// A failing test leaves no process behind.
    fn drop(&mut self) {
        self.kill();
    }
}

fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(15)).finish()
}

/// What a client got for one key: status and body, or nothing (cut off).
type Answer = Option<(u16, String)>;

/// POSTs a payment under `key`; `None` when the connection broke.
async fn pay(client: &awc::Client, base: &str, api_key: &str, key: &str, body: &str) -> Answer {
    let mut response = client
        .post(format!("{base}/v1/payments"))
        .insert_header(("X-API-Key", api_key))
        .insert_header(("Idempotency-Key", key))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_owned())
        .await
        .ok()?;
    let bytes = response.body().await.ok()?;
    Some((
        response.status().as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// The body sent under key number `index` (amounts differ per key).
fn body_for(index: usize) -> String {
    format!(
        r#"{{"amount": "{}.{:02}", "currency": "USD", "payment_method": "pm_card_visa"}}"#,
        1 + index % 500,
        index % 100
    )
}

/// One client: new keys one after another until the connection breaks or its budget is spent.
async fn load(
    base: String,
    api_key: String,
    client_index: usize,
    round: usize,
) -> Vec<(String, String, Answer)> {
    let client = client();
    let mut sent = Vec::new();
    for request in 0..MAX_REQUESTS_PER_CLIENT {
        let index = (round * CLIENTS + client_index) * MAX_REQUESTS_PER_CLIENT + request;
        let key = format!("crash-{index}");
        let body = body_for(index);
        let answer = pay(&client, &base, &api_key, &key, &body).await;
        let broken = answer.is_none();
        sent.push((key, body, answer));
        if broken {
            break;
        }
    }
    sent
}

#[actix_web::test]
async fn sigkill_under_load_keeps_one_row_per_key_and_replays_identical() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let (mut gateway, api_key) = Gateway::start(&database).await;
    let api_key = api_key.expect("the sandbox key is printed on an empty database");
    let mut answered: BTreeMap<String, (String, u16, String)> = BTreeMap::new();
    let mut cut_off = 0;
    for round in 0..ROUNDS {
        let clients = (0..CLIENTS).map(|client| load(gateway.base.clone(), api_key.clone(), client, round));
        let running = futures_util::future::join_all(clients);
        let kill_after = Duration::from_millis(300 + 200 * round as u64);
        let mut running = Box::pin(running);
        let results = tokio::select! {
            results = &mut running => results,
            () = tokio::time::sleep(kill_after) => {
                gateway.kill();
                running.await
            }
        };
        gateway.kill();
        let (restarted, again) = Gateway::start(&database).await;
        assert!(again.is_none(), "no second sandbox key on a used database");
        gateway = restarted;
        let client = client();
        for (key, body, answer) in results.into_iter().flatten() {
            let (answer, resumed) = match answer {
                Some(answer) => (answer, false),
                None => {
                    // Cut off by the kill: the client retries with the same key and body.
                    cut_off += 1;
                    let retried = pay(&client, &gateway.base, &api_key, &key, &body)
                        .await
                        .expect("the retry after the restart is answered");
                    (retried, true)
                }
            };
            let provider_lost_it = resumed && answer.0 == 404 && answer.1.contains("\"resource_missing\"");
            assert!(
                answer.0 == 200 || answer.0 == 402 || provider_lost_it,
                "key {key}: unexpected {} {}",
                answer.0,
                answer.1
            );
            answered.insert(key, (body, answer.0, answer.1));
        }
        // Every key answered so far replays its first answer, byte for byte.
        for (key, (body, status, text)) in &answered {
            let replay = pay(&client, &gateway.base, &api_key, key, body)
                .await
                .expect("replay answered");
            assert_eq!(
                (replay.0, &replay.1),
                (*status, text),
                "key {key}: the replay differs from the first answer"
            );
        }
    }
    gateway.kill();
    eprintln!(
        "{ROUNDS} SIGKILLs: {} keys answered, {cut_off} cut off and retried after the restart",
        answered.len()
    );
    assert!(
        cut_off > 0 && answered.len() > CLIENTS,
        "the kills cut requests off under load ({cut_off} cut off, {} answered)",
        answered.len()
    );

    let mut connection = sqlx::SqliteConnection::connect(&database)
        .await
        .expect("database opens");
    let duplicates: Vec<(String, i64)> = sqlx::query(
        "SELECT idempotency_key, COUNT(*) FROM payments WHERE idempotency_key IS NOT NULL \
         GROUP BY idempotency_key HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut connection)
    .await
    .expect("query")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    assert!(
        duplicates.is_empty(),
        "two payment rows for one key: {duplicates:?}"
    );
    let rows: BTreeMap<String, String> = sqlx::query("SELECT id, idempotency_key FROM payments")
        .fetch_all(&mut connection)
        .await
        .expect("query")
        .iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                row.get::<Option<String>, _>(1).unwrap_or_default(),
            )
        })
        .collect();
    for (key, (_, status, text)) in &answered {
        let reply: serde_json::Value = serde_json::from_str(text).expect("JSON answer");
        let id = if *status == 200 {
            reply["data"]["id"].as_str()
        } else {
            reply["error"]["payment_id"].as_str()
        };
        if let Some(id) = id {
            assert_eq!(
                rows.get(id).map(String::as_str),
                Some(key.as_str()),
                "key {key}: answered {status} with payment {id}, which has no row under that key"
            );
        } else {
            assert_ne!(*status, 200, "key {key}: a 2xx answer names no payment: {text}");
        }
    }
}
