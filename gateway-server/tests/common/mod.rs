//! Shared helpers: a real gateway server on 127.0.0.1 (port 0) with a
//! database of its own and a `MockProvider` the test keeps a handle to.
//!
//! Both integration binaries, `sqlite` and `postgres`, compile this module
//! once and run the same tests (`suite/`). Each names its backend in its
//! crate root (`crate::BACKEND`): a temporary SQLite file per server, or a
//! database per server on a throwaway PostgreSQL cluster ([`postgres`]).

#![allow(dead_code, unreachable_pub)]

pub mod faults;
pub mod merchant_endpoint;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use gateway_core::mock::MockStats;
use gateway_core::MockProvider;
use gateway_server::{Config, RunningServer, ServerBuilder};
use serde_json::Value;

/// Every scope.
pub const ALL_SCOPES: &str = "payments:read,payments:write,merchant:read,merchant:write,webhooks:read";

/// A response: status, headers we care about, parsed JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub replayed: bool,
    pub retry_after: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub text: String,
}

impl Reply {
    /// `data` of a success envelope.
    pub fn data(&self) -> &Value {
        assert_eq!(
            self.body["success"], true,
            "expected success, got {} {}",
            self.status, self.body
        );
        &self.body["data"]
    }

    /// `error.code` of a failure envelope.
    pub fn code(&self) -> &str {
        assert_eq!(
            self.body["success"], false,
            "expected failure, got {} {}",
            self.status, self.body
        );
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// A running gateway for one test.
pub struct TestServer {
    pub mock: MockProvider,
    /// The sandbox merchant's all-scopes key.
    pub key: String,
    pub config: Config,
    server: Option<RunningServer>,
    base: String,
    client: awc::Client,
    dir: Arc<tempfile::TempDir>,
    /// The PostgreSQL database, on that backend.
    pub postgres: Option<postgres::TestDatabase>,
}

/// Which database the servers of this test binary use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend this test binary chose (`BACKEND` in its `main.rs`).
pub fn backend() -> Backend {
    // No `BACKEND` in the crate root? A test file became a binary of its own
    // (`tests/x.rs` with `mod common;`): move it to `suite/` and list it in
    // `suite/mod.rs`, and both backends run it.
    crate::BACKEND
}

/// A new database for one test: a file in `dir`, or a PostgreSQL database.
async fn database_for(dir: &tempfile::TempDir) -> (String, Option<postgres::TestDatabase>) {
    match backend() {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("gateway.db").display()),
            None,
        ),
        Backend::Postgres => {
            let database = postgres::fresh_database().await;
            (database.url.clone(), Some(database))
        }
    }
}

fn config_for(database_url: String) -> Config {
    Config {
        listen: "127.0.0.1:0".to_owned(),
        database_url,
        master_key: Some("0123456789abcdef".repeat(4)),
        workers: 2,
        max_body_bytes: 16 * 1024,
        log_level: "warn".to_owned(),
        // Tests fire requests (and invalid keys) quickly from one address:
        // the limits are off unless a test turns them on (`suite/limits.rs`).
        rate_limit_per_second: 0,
        auth_failures_per_minute: 0,
        ..Config::default()
    }
}

impl TestServer {
    /// A fresh database, a fresh mock, the sandbox merchant.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Like [`TestServer::start`], with the configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (url, postgres) = database_for(&dir).await;
        let mut config = config_for(url);
        adjust(&mut config);
        let mock = MockProvider::new();
        let server = ServerBuilder::new(config.clone())
            .provider(Arc::new(mock.clone()))
            .start()
            .await
            .expect("server starts");
        let key = server
            .sandbox_key()
            .expect("sandbox key on an empty database")
            .to_owned();
        TestServer::wrap(server, mock, key, config, dir, postgres)
    }

    /// Another instance on this server's database (PostgreSQL), sharing its
    /// provider account; on PostgreSQL its bus is relayed to the others'.
    ///
    /// Several instances share a database only on PostgreSQL: tests that
    /// need this belong in `postgres/cluster.rs`, which only that binary runs.
    pub async fn another_instance(&self) -> TestServer {
        assert_eq!(
            backend(),
            Backend::Postgres,
            "several instances on one database run only on PostgreSQL: put this test in postgres/cluster.rs"
        );
        let server = ServerBuilder::new(self.config.clone())
            .provider(Arc::new(self.mock.clone()))
            .start()
            .await
            .expect("second instance starts");
        TestServer::wrap(
            server,
            self.mock.clone(),
            self.key.clone(),
            self.config.clone(),
            self.dir.clone(),
            self.postgres.clone(),
        )
    }

    fn wrap(
        server: RunningServer,
        mock: MockProvider,
        key: String,
        config: Config,
        dir: Arc<tempfile::TempDir>,
        postgres: Option<postgres::TestDatabase>,
    ) -> Self {
        let base = format!("http://{}", server.addr());
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        TestServer {
            mock,
            key,
            config,
            server: Some(server),
            base,
            client,
            dir,
            postgres,
        }
    }

    /// Stops the server and starts a new one on the same database file (and
    /// the same provider account, which lives outside the gateway).
    pub async fn restart(mut self) -> TestServer {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let server = ServerBuilder::new(self.config.clone())
            .provider(Arc::new(self.mock.clone()))
            .start()
            .await
            .expect("server restarts");
        assert!(
            server.sandbox_key().is_none(),
            "no second sandbox key on a used database"
        );
        TestServer::wrap(
            server,
            self.mock.clone(),
            self.key.clone(),
            self.config.clone(),
            self.dir.clone(),
            self.postgres.clone(),
        )
    }

    /// Stops the server and starts one on the same database with the
    /// configuration adjusted by `adjust` and `provider` as its only
    /// gateway-wide account instead of the mock (e.g. a production start:
    /// the mock is offered in sandbox mode only). The sandbox merchant's key
    /// still works.
    pub async fn restart_with(
        mut self,
        adjust: impl FnOnce(&mut Config),
        provider: Arc<dyn gateway_core::PaymentProvider>,
    ) -> Result<TestServer, gateway_server::StartError> {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let mut config = self.config.clone();
        adjust(&mut config);
        let server = ServerBuilder::new(config.clone())
            .provider(provider)
            .start()
            .await?;
        Ok(TestServer::wrap(
            server,
            self.mock.clone(),
            self.key.clone(),
            config,
            self.dir.clone(),
            self.postgres.clone(),
        ))
    }

    /// The server's event bus.
    pub fn bus(&self) -> &gateway_core::EventBus {
        self.server.as_ref().expect("running").bus()
    }

    /// Drops the server without a graceful stop, as a crash would (nothing
    /// in flight is finished), and starts a new one on the same database.
    pub async fn crash_and_restart(mut self) -> TestServer {
        drop(self.server.take());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let server = ServerBuilder::new(self.config.clone())
            .provider(Arc::new(self.mock.clone()))
            .start()
            .await
            .expect("server restarts");
        TestServer::wrap(
            server,
            self.mock.clone(),
            self.key.clone(),
            self.config.clone(),
            self.dir.clone(),
            self.postgres.clone(),
        )
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Another merchant with a key of `scopes`; returns (merchant id, key).
    pub async fn merchant(&self, scopes: &str) -> (String, String) {
        gateway_server::cli::create_merchant_with_key(&self.config, "other", scopes)
            .await
            .expect("merchant created")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs one retention pass now (`RunningServer::prune_now`).
    pub async fn prune_now(&self) -> gateway_server::Pruned {
        self.server
            .as_ref()
            .expect("a running server")
            .prune_now()
            .await
            .expect("a prune pass")
    }

    /// Runs the resolution of unknown outcomes now; how many payments it resolved.
    pub async fn resolve_unknown_outcomes(&self) -> usize {
        self.server
            .as_ref()
            .expect("a running server")
            .resolve_unknown_outcomes()
            .await
    }

    pub fn stats(&self) -> MockStats {
        self.mock.stats()
    }

    /// Sends a request; `body` is sent as JSON text when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        self.try_send(method, path, key, headers, body)
            .await
            .expect("request sent")
    }

    /// Like [`TestServer::send`]; `Err` when no answer came (the connection
    /// broke or the client timed out), as a client sees a crash or a stall.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = key {
            request = request.insert_header(("X-API-Key", key));
        }
        let has_content_type = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_content_type {
            request = request.insert_header(("Content-Type", "application/json"));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let mut response = match body {
            Some(body) => request.send_body(body.to_owned()).await,
            None => request.send().await,
        }
        .map_err(|error| error.to_string())?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let retry_after = header("retry-after");
        let request_id = header("request-id");
        let content_type = header("content-type");
        let bytes = response
            .body()
            .limit(8 << 20)
            .await
            .map_err(|error| error.to_string())?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Reply {
            status: response.status(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            replayed,
            retry_after,
            request_id,
            content_type,
            text,
        })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, Some(&self.key), &[], None).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Reply {
        self.send("GET", path, Some(key), &[], None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(&self.key), &[], Some(body)).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(key), &[], Some(body)).await
    }

    pub async fn post_idem(&self, path: &str, idempotency_key: &str, body: &str) -> Reply {
        self.send(
            "POST",
            path,
            Some(&self.key),
            &[("Idempotency-Key", idempotency_key)],
            Some(body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &str) -> Reply {
        self.send("PUT", path, Some(&self.key), &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, Some(&self.key), &[], None).await
    }

    /// Creates a payment and returns its data.
    pub async fn pay(&self, body: &str) -> Value {
        let reply = self.post("/v1/payments", body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.data().clone()
    }

    /// How many payments the sandbox merchant has.
    pub async fn payment_count(&self) -> usize {
        let reply = self.get("/v1/payments?limit=100").await;
        reply.data()["data"].as_array().map_or(0, Vec::len)
    }

    /// The database file's bytes (main file and WAL), to check what is stored at rest.
    pub fn database_bytes(&self) -> Vec<u8> {
        if let Some(database) = &self.postgres {
            return database.bytes();
        }
        let mut bytes = Vec::new();
        for name in ["gateway.db", "gateway.db-wal"] {
            if let Ok(mut data) = std::fs::read(self.dir.path().join(name)) {
                bytes.append(&mut data);
            }
        }
        bytes
    }
}

/// `{"amount": …, "currency": "USD", "payment_method": …}` with extra fields.
/// A `Stripe-Signature` header for `body`, signed with `secret` now (by
/// gateway-stripe's own test signer).
pub fn stripe_signature(body: &str, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs() as i64;
    gateway_stripe::generate_test_header(body.as_bytes(), secret, now)
}

pub fn payment_body(amount: &str, method: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(r#"{{"amount": {amount}, "currency": "USD", "payment_method": "{method}"{extra}}}"#)
}
