//! The fault-injection world: one gateway on its own database with a
//! deterministic `MockProvider`, a client that retries as real clients do, a
//! courier that delivers the mock's webhooks duplicated and out of order,
//! restarts between steps, healing (webhooks processed, one reconciliation
//! pass, merchant deliveries done), and the checker that compares what the
//! gateway stored and sent with the provider's ledger.
//!
//! Every random choice comes from the scenario's seed ([`Rng`]), so a failing
//! scenario is re-run alone with `FAULT_SEED=<seed>` and prints its step trace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::mock::{Fault, Ledger, MockConfig, MovementKind};
use gateway_core::{IntentStatus, MockProvider, ProviderEvent, GATEWAY_PAYMENT_METADATA_KEY};
use gateway_server::{Config, ServerBuilder};
use serde_json::{json, Map, Value};

use super::merchant_endpoint::{fast, set_webhook, Receiver};
use super::{config_for, database_for, Reply, TestServer};

/// The metadata key every request of a scenario carries: the client's
/// `Idempotency-Key`, so the checker can group provider objects by the
/// request that made them.
pub const CLIENT_KEY: &str = "fault_client_key";

/// How many times a client sends one request at most (the first try and its retries).
const MAX_TRIES: usize = 4;

/// SplitMix64: a small seeded generator; the same seed gives the same scenario.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// How the mock's webhooks reach the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Webhooks {
    /// Never: the gateway knows only what the API calls answered (and
    /// what the final reconciliation pass asks).
    #[default]
    Never,
    /// Each once, in order, each processed before the next is sent.
    InOrder,
    /// Shuffled, some twice, some held back to later steps, old ones again.
    Chaos,
}

/// What a scenario's class throws at the gateway.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    /// Faults drawn for provider steps (none: the provider always answers).
    pub faults: Vec<Fault>,
    /// How often a step gets a fault, in percent.
    pub fault_percent: u64,
    /// How webhooks arrive.
    pub webhooks: Webhooks,
    /// How often the server restarts between two steps, in percent (half of
    /// them a crash: dropped without a graceful stop).
    pub restart_percent: u64,
    /// How often a retry or a replay re-serializes the body (other key order
    /// and whitespace: the same request), in percent; otherwise the same bytes.
    pub reserialize_percent: u64,
}

/// One request of the client: what it posts and which provider call may fail under it.
#[derive(Debug, Clone)]
pub struct Step {
    pub path: String,
    pub key: String,
    /// The request, sent as JSON text (canonical, or re-serialized on retries).
    pub body: Value,
    /// A genuinely different request under the same key (must be refused with 422).
    pub different: Value,
    /// The provider operation a fault is aimed at (`create_intent`, `create_refund`, …).
    pub operation: &'static str,
}

/// An invariant the checker found broken.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// What one scenario found: its violations and the trace to reproduce them.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub class: String,
    pub violations: Vec<Violation>,
    pub trace: Vec<String>,
    /// Injected faults the provider call actually hit (a fault a request never
    /// reached does not count), so a class can prove it tested something.
    pub faults_fired: usize,
}

impl Report {
    /// The seed, the command to re-run it alone, the violations and the steps.
    pub fn render(&self) -> String {
        let binary = match super::backend() {
            super::Backend::Sqlite => "sqlite",
            super::Backend::Postgres => "postgres",
        };
        let mut text = format!(
            "fault scenario {} seed {} broke {} invariant(s)\n  re-run alone: FAULT_SEED={} cargo test -p gateway-server --test {binary} faults -- --nocapture\n",
            self.class,
            self.seed,
            self.violations.len(),
            self.seed
        );
        for violation in &self.violations {
            let _ = writeln!(text, "  ✗ [{}] {}", violation.invariant, violation.detail);
        }
        text.push_str("  trace:\n");
        for (index, line) in self.trace.iter().enumerate() {
            let _ = writeln!(text, "    {:>2}. {line}", index + 1);
        }
        text
    }
}

/// One scenario's world.
pub struct World {
    server: Option<TestServer>,
    pub mock: MockProvider,
    receiver: Receiver,
    signing_secret: String,
    pub rng: Rng,
    chaos: Chaos,
    trace: Vec<String>,
    violations: Vec<Violation>,
    /// Mock events not delivered yet.
    pending_events: Vec<ProviderEvent>,
    /// Events delivered once, some delivered again later.
    delivered_events: Vec<ProviderEvent>,
    next_key: u32,
    faults_fired: usize,
}

impl TestServer {
    /// A fresh database and the sandbox merchant, with `mock` as the provider.
    pub async fn start_with_mock(mock: MockProvider, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (url, postgres) = database_for(&dir).await;
        let mut config = config_for(url);
        adjust(&mut config);
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

    /// One reconciliation pass now over every pending payment.
    pub async fn reconcile_now(&self) -> usize {
        self.server.as_ref().expect("running").reconcile_now().await
    }
}

/// Whether a client retries this answer (the outcome is not known yet).
fn retryable(reply: &Reply) -> bool {
    let status = reply.status.as_u16();
    let code = reply.body["error"]["code"].as_str();
    // 202: the provider's answer is not known yet; the API says to retry with the same key.
    status == 202
        || status >= 500
        || status == 429
        || (status == 409 && matches!(code, Some("idempotency_key_in_use" | "payment_outcome_unknown")))
}

/// A short form of an answer for the trace.
fn summary(reply: &Reply) -> String {
    let code = reply.body["error"]["code"].as_str();
    let status = reply.body["data"]["status"].as_str();
    if reply.body.is_null() {
        return format!("{} {}", reply.status.as_u16(), reply.text);
    }
    format!(
        "{}{}{}{}",
        reply.status.as_u16(),
        code.map(|c| format!(" {c}")).unwrap_or_default(),
        status.map(|s| format!(" status={s}")).unwrap_or_default(),
        if reply.replayed { " (replayed)" } else { "" }
    )
}

/// `body` as JSON text with its keys in another order and other whitespace:
/// the same request, serialized differently (as another client library would).
pub fn reserialize(body: &Value, rng: &mut Rng) -> String {
    fn write(value: &Value, rng: &mut Rng, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.reverse();
                rng.shuffle(&mut keys);
                out.push_str(if rng.chance(50) { "{ " } else { "{\n  " });
                for (index, key) in keys.iter().enumerate() {
                    if index > 0 {
                        out.push_str(if rng.chance(50) { " , " } else { ",\n  " });
                    }
                    out.push_str(&Value::String((*key).clone()).to_string());
                    out.push_str(" :  ");
                    write(&map[*key], rng, out);
                }
                out.push_str(" }");
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(body, rng, &mut out);
    let compact = body.to_string();
    if out == compact {
        // Always other bytes: the point is the same request serialized differently.
        out.push(' ');
    }
    out
}

impl World {
    /// A gateway on a fresh database with a mock account made from `seed`,
    /// merchant webhooks sent to `receiver`.
    pub async fn start(seed: u64, chaos: Chaos, receiver: Receiver) -> World {
        let mock = MockProvider::with_config(MockConfig::deterministic(seed));
        let server = TestServer::start_with_mock(mock.clone(), |config| {
            fast(config);
            // Healing is driven by the scenario (one pass at the end), not by the loop.
            config.reconcile.after = Duration::ZERO;
        })
        .await;
        let signing_secret = set_webhook(&server, &receiver.url).await;
        World {
            server: Some(server),
            mock,
            receiver,
            signing_secret,
            rng: Rng::new(seed),
            chaos,
            trace: Vec::new(),
            violations: Vec::new(),
            pending_events: Vec::new(),
            delivered_events: Vec::new(),
            next_key: 0,
            faults_fired: 0,
        }
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("server running")
    }

    /// A new client `Idempotency-Key`.
    pub fn new_key(&mut self, what: &str) -> String {
        self.next_key += 1;
        format!("{what}-{}", self.next_key)
    }

    pub fn note(&mut self, line: String) {
        self.trace.push(line);
    }

    fn violate(&mut self, invariant: &'static str, detail: String) {
        self.violations.push(Violation { invariant, detail });
    }

    /// Posts `text` for `step`. No answer at all (the connection broke, or
    /// the client's 30 s timeout ran out) is shown as a 504 with the reason,
    /// which the client retries like any answer that leaves the outcome open.
    async fn send(&self, step: &Step, text: &str) -> Reply {
        let server = self.server();
        let sent = server
            .try_send(
                "POST",
                &step.path,
                Some(&server.key),
                &[("Idempotency-Key", &step.key)],
                Some(text),
            )
            .await;
        sent.unwrap_or_else(|error| Reply {
            status: awc::http::StatusCode::GATEWAY_TIMEOUT,
            body: Value::Null,
            replayed: false,
            retry_after: None,
            request_id: None,
            content_type: None,
            text: format!("no answer: {error}"),
        })
    }

    /// The client sends `step`, perhaps under an injected provider fault,
    /// retries with the same key while the outcome is unknown (the same bytes
    /// or a re-serialized body), then perhaps replays it and tries a
    /// different body under the same key. Returns the last answer to the request.
    pub async fn request(&mut self, step: Step) -> Reply {
        let fault = if !self.chaos.faults.is_empty() && self.rng.chance(self.chaos.fault_percent) {
            let faults = self.chaos.faults.clone();
            Some(self.rng.pick(&faults).clone())
        } else {
            None
        };
        if let Some(fault) = &fault {
            self.mock.inject_fault_on(step.operation, fault.clone());
        }
        let canonical = step.body.to_string();
        let before = self.mock.ledger();
        let mut reply = self.send(&step, &canonical).await;
        let unused = self.mock.clear_faults();
        if fault.is_some() && unused == 0 {
            self.faults_fired += 1;
        }
        // The provider did something under a hidden answer (not, say, refuse the call).
        let acted_unseen = fault.as_ref().is_some_and(Fault::hides_a_carried_out_call)
            && unused == 0
            && self.mock.ledger() != before;
        self.note(format!(
            "POST {} key={} {}{} -> {}",
            step.path,
            step.key,
            canonical,
            match &fault {
                Some(fault) => format!(
                    " [{fault:?} on {}{}]",
                    step.operation,
                    if unused > 0 { ", not reached" } else { "" }
                ),
                None => String::new(),
            },
            summary(&reply)
        ));
        let mut tries = 1;
        while retryable(&reply) && tries < MAX_TRIES {
            self.between_steps().await;
            let (text, how) = self.retry_body(&step);
            reply = self.send(&step, &text).await;
            tries += 1;
            self.note(format!("  retry {how} -> {}", summary(&reply)));
        }
        let status = reply.status.as_u16();
        if acted_unseen && (400..500).contains(&status) && status != 402 {
            self.violate(
                "unknown_is_not_failed",
                format!(
                    "key {}: the provider carried the call out, the client was finally told {} {}",
                    step.key, reply.status, reply.text
                ),
            );
        }
        if !retryable(&reply) && self.rng.chance(30) {
            self.check_replay(&step, &reply).await;
        }
        if self.rng.chance(20) {
            self.check_different_body(&step).await;
        }
        reply
    }

    /// The body of a retry or replay: the same bytes, or re-serialized.
    fn retry_body(&mut self, step: &Step) -> (String, &'static str) {
        if self.rng.chance(self.chaos.reserialize_percent) {
            (reserialize(&step.body, &mut self.rng), "re-serialized")
        } else {
            (step.body.to_string(), "same bytes")
        }
    }

    /// A stored answer is replayed identically, for the same bytes and for
    /// the same request serialized differently.
    async fn check_replay(&mut self, step: &Step, first: &Reply) {
        let (text, how) = self.retry_body(step);
        let again = self.send(step, &text).await;
        self.note(format!("  replay {how} -> {}", summary(&again)));
        if again.status != first.status || again.body != first.body {
            self.violate(
                "replay_identical",
                format!(
                    "key {} replayed ({how}) as {} {} after {} {}",
                    step.key, again.status, again.text, first.status, first.text
                ),
            );
        }
    }

    /// The same key with a genuinely different request is refused with 422.
    async fn check_different_body(&mut self, step: &Step) {
        let text = step.different.to_string();
        let reply = self.send(step, &text).await;
        self.note(format!("  different body {text} -> {}", summary(&reply)));
        let code = reply.body["error"]["code"].as_str().unwrap_or_default();
        if reply.status.as_u16() != 422 || code != "idempotency_key_reused" {
            self.violate(
                "different_body_refused",
                format!(
                    "key {} with another body answered {} {}",
                    step.key, reply.status, reply.text
                ),
            );
        }
    }

    /// The customer finishes 3-D Secure at the provider.
    pub fn customer_authenticates(&mut self, intent: &str) {
        let done = self.mock.complete_authentication(intent, true).is_ok();
        self.note(format!("customer completes 3-D Secure for {intent}: {done}"));
    }

    /// Between two steps: some webhooks arrive, and perhaps the server restarts.
    pub async fn between_steps(&mut self) {
        self.deliver_webhooks(false).await;
        if self.rng.chance(self.chaos.restart_percent) {
            let server = self.server.take().expect("server running");
            let crash = self.rng.chance(50);
            self.server = Some(if crash {
                server.crash_and_restart().await
            } else {
                server.restart().await
            });
            self.note(format!(
                "server {} and restarted on the same database",
                if crash { "crashed" } else { "stopped" }
            ));
        }
    }

    /// Delivers the mock's events to `/v1/webhooks/mock` as the class says
    /// ([`Webhooks`]); under chaos some are held back unless `all`.
    pub async fn deliver_webhooks(&mut self, all: bool) {
        let events = self.mock.take_events();
        if self.chaos.webhooks == Webhooks::Never {
            return;
        }
        self.pending_events.extend(events);
        let mut batch = std::mem::take(&mut self.pending_events);
        let chaos = self.chaos.webhooks == Webhooks::Chaos;
        if chaos {
            self.rng.shuffle(&mut batch);
            if !all && !batch.is_empty() {
                let keep = self.rng.below(batch.len() as u64 + 1) as usize;
                self.pending_events = batch.split_off(batch.len() - keep);
            }
            if !self.delivered_events.is_empty() && self.rng.chance(30) {
                let old = self.rng.pick(&self.delivered_events).clone();
                batch.push(old);
            }
        }
        let mut sent = Vec::new();
        for event in batch {
            let times = if chaos && self.rng.chance(30) { 2 } else { 1 };
            let mut stored = false;
            for _ in 0..times {
                let status = self.post_webhook(&event).await;
                stored |= status == 200;
                sent.push(format!("{}({})", event.event_type, status));
            }
            if !stored {
                // The provider retries a webhook the gateway did not take.
                self.pending_events.push(event.clone());
            }
            if !chaos {
                self.wait_for_inbound().await;
            }
            self.delivered_events.push(event);
        }
        if !sent.is_empty() {
            self.note(format!("webhooks delivered: {}", sent.join(", ")));
        }
    }

    async fn post_webhook(&self, event: &ProviderEvent) -> u16 {
        let request = self.mock.webhook_request(event, 0);
        let signature = request
            .header(gateway_core::mock::MOCK_SIGNATURE_HEADER)
            .expect("signed")
            .to_owned();
        let body = String::from_utf8(request.body.clone()).expect("JSON");
        // 0 in the trace: no answer (the provider would retry it later).
        self.server()
            .try_send(
                "POST",
                "/v1/webhooks/mock",
                None,
                &[(gateway_core::mock::MOCK_SIGNATURE_HEADER, &signature)],
                Some(&body),
            )
            .await
            .map_or(0, |reply| reply.status.as_u16())
    }

    /// Heals the scenario as production would: every webhook delivered (still
    /// shuffled and duplicated under chaos) and processed, one reconciliation
    /// pass, and the merchant's deliveries finished.
    pub async fn heal(&mut self) {
        self.deliver_webhooks(true).await;
        self.wait_for_inbound().await;
        let checked = self.server().reconcile_now().await;
        self.note(format!(
            "healing pass (inbound sweep, resolution, reconciliation) took up {checked} item(s)"
        ));
        self.deliver_webhooks(true).await;
        self.wait_for_inbound().await;
        self.wait_for_deliveries().await;
    }

    /// Waits until every stored inbound event has been processed or tried
    /// once (an event for an intent the gateway has no payment for is kept
    /// and retried by the sweep for 24 h), at most 3 s.
    async fn wait_for_inbound(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let untried = self
                .count("SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL AND attempts = 0")
                .await;
            if untried == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until no merchant delivery is pending (at most 10 s).
    async fn wait_for_deliveries(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let pending = self
                .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                .await;
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The first column of the first row of `sql`, an integer.
    async fn count(&self, sql: &str) -> i64 {
        let rows = self.rows(sql).await;
        rows.first()
            .and_then(|row| row.first())
            .and_then(|cell| cell.as_deref())
            .and_then(|cell| cell.parse().ok())
            .unwrap_or(0)
    }

    /// Every row of `sql` on the server's database, each column read as text.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::{Connection, Row};
        let url = &self.server().config.database_url;
        macro_rules! read_all {
            ($connection:ty, $row:ty) => {{
                let mut connection = <$connection>::connect(url).await.expect("database opens");
                let rows: Vec<$row> = sqlx::query(sql)
                    .fetch_all(&mut connection)
                    .await
                    .unwrap_or_else(|error| panic!("{sql}: {error}"));
                rows.iter()
                    .map(|row| {
                        (0..row.columns().len())
                            .map(|index| {
                                row.try_get::<Option<String>, _>(index)
                                    .ok()
                                    .flatten()
                                    .or_else(|| {
                                        row.try_get::<Option<i64>, _>(index)
                                            .ok()
                                            .flatten()
                                            .map(|n| n.to_string())
                                    })
                            })
                            .collect()
                    })
                    .collect()
            }};
        }
        if url.starts_with("postgres") {
            read_all!(sqlx::PgConnection, sqlx::postgres::PgRow)
        } else {
            read_all!(sqlx::SqliteConnection, sqlx::sqlite::SqliteRow)
        }
    }

    /// Every payment of the sandbox merchant, through the API.
    async fn payments(&self) -> Vec<Value> {
        let mut payments = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/v1/payments?limit=100&cursor={cursor}"),
                None => "/v1/payments?limit=100".to_owned(),
            };
            let page = self.server().get(&path).await;
            let data = page.data();
            payments.extend(data["data"].as_array().cloned().unwrap_or_default());
            match data["next_cursor"].as_str() {
                Some(next) if data["has_more"] != false => cursor = Some(next.to_owned()),
                _ => return payments,
            }
        }
    }

    /// Checks every invariant against the provider's ledger, stops the server
    /// and returns what was found.
    pub async fn check(mut self, seed: u64, class: String) -> Report {
        let ledger = self.mock.ledger();
        let payments = self.payments().await;
        let refund_rows = self
            .rows("SELECT payment_id, provider_refund_id FROM refunds")
            .await;
        let customers = self
            .rows("SELECT email, provider_customer_id FROM customers")
            .await;
        let cards = self.server().get("/v1/payments/cards").await;
        let cards = cards.body["data"]["data"].as_array().cloned().unwrap_or_default();
        let card_methods = self
            .rows("SELECT provider_payment_method, active FROM saved_cards")
            .await;
        let events = self.merchant_events();
        let mut found = Vec::new();
        check_charges(&ledger, &mut found);
        check_rows(&ledger, &payments, &mut found);
        check_refunds(&ledger, &payments, &refund_rows, &mut found);
        check_events(&ledger, &payments, &events, &mut found);
        check_cards(&ledger, &customers, &card_methods, cards.len(), &mut found);
        self.violations.extend(found);
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        Report {
            seed,
            class,
            violations: self.violations,
            trace: self.trace,
            faults_fired: self.faults_fired,
        }
    }

    /// The merchant events received for this scenario's payments: payment id → (type → event ids).
    fn merchant_events(&self) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
        let mut events: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for hit in self.receiver.hits() {
            let body: Value = serde_json::from_str(&hit.2).unwrap_or(Value::Null);
            let payment = body["data"]["payment"]["id"].as_str().unwrap_or_default();
            // Other scenarios share the receiver: only deliveries signed with this merchant's secret are ours.
            if !signed_with(&self.signing_secret, &hit) {
                continue;
            }
            events
                .entry(payment.to_owned())
                .or_default()
                .entry(body["type"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .insert(body["id"].as_str().unwrap_or_default().to_owned());
        }
        events
    }
}

/// Whether a delivery's `Gateway-Signature` verifies with `secret`.
fn signed_with(secret: &str, hit: &(Instant, String, String)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    gateway_core::signature::verify_header(
        &hit.1,
        hit.2.as_bytes(),
        &[secret.as_bytes()],
        Duration::from_secs(300),
        now,
    )
    .is_ok()
}

/// Minor units from an API decimal string in a two-decimal currency.
pub fn minor(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or("0");
    let (units, cents) = text.split_once('.').unwrap_or((text, "0"));
    units.parse::<i64>().unwrap_or(0) * 100 + format!("{cents:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

/// At most one charge at the provider per client `Idempotency-Key`, per
/// write-ahead attempt (`gateway_payment_id` metadata), and per intent; at
/// most one refund per refund key.
fn check_charges(ledger: &Ledger, found: &mut Vec<Violation>) {
    let mut charges_by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut charges_by_attempt: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for intent in &ledger.intents {
        let charges = ledger.movements_of(&intent.id, MovementKind::Charge).count();
        if charges > 1 {
            found.push(Violation {
                invariant: "one_charge_per_key",
                detail: format!("intent {} was charged {charges} times", intent.id),
            });
        }
        if charges == 0 {
            continue;
        }
        if let Some(key) = intent.metadata.get(CLIENT_KEY) {
            charges_by_key
                .entry(key.clone())
                .or_default()
                .push(intent.id.clone());
        }
        if let Some(attempt) = intent.metadata.get(GATEWAY_PAYMENT_METADATA_KEY) {
            charges_by_attempt
                .entry(attempt.clone())
                .or_default()
                .push(intent.id.clone());
        }
    }
    for (key, intents) in charges_by_key.iter().filter(|(_, intents)| intents.len() > 1) {
        let amounts: Vec<i64> = intents
            .iter()
            .filter_map(|id| ledger.intents.iter().find(|intent| &intent.id == id))
            .map(|intent| intent.amount)
            .collect();
        found.push(Violation {
            invariant: "one_charge_per_key",
            detail: format!(
                "Idempotency-Key {key} charged {} intents {intents:?} (amounts {amounts:?})",
                intents.len()
            ),
        });
    }
    for (attempt, intents) in charges_by_attempt.iter().filter(|(_, intents)| intents.len() > 1) {
        found.push(Violation {
            invariant: "one_charge_per_attempt",
            detail: format!("write-ahead payment {attempt} charged intents {intents:?}"),
        });
    }
    let mut refunds_by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for refund in &ledger.refunds {
        if let Some(key) = refund.metadata.get(CLIENT_KEY) {
            refunds_by_key.entry(key).or_default().push(&refund.id);
        }
    }
    for (key, refunds) in refunds_by_key.iter().filter(|(_, refunds)| refunds.len() > 1) {
        found.push(Violation {
            invariant: "one_refund_per_key",
            detail: format!("Idempotency-Key {key} made refunds {refunds:?}"),
        });
    }
}

/// Every provider charge has exactly one payment row, no intent has two, and
/// each row has the provider's amount, received amount and status.
fn check_rows(ledger: &Ledger, payments: &[Value], found: &mut Vec<Violation>) {
    for intent in &ledger.intents {
        let rows: Vec<&Value> = payments
            .iter()
            .filter(|payment| payment["provider_ref"] == intent.id.as_str())
            .collect();
        let charged = ledger
            .movements_of(&intent.id, MovementKind::Charge)
            .next()
            .is_some();
        if rows.len() > 1 || (charged && rows.is_empty()) {
            found.push(Violation {
                invariant: "one_row_per_charge",
                detail: format!(
                    "intent {} ({}, {} minor units, key {:?}) has {} payment rows",
                    intent.id,
                    intent.status,
                    intent.amount,
                    intent.metadata.get(CLIENT_KEY),
                    rows.len()
                ),
            });
        }
        for row in rows {
            let stored = (
                minor(&row["amount"]),
                minor(&row["amount_received"]),
                row["intent_status"].as_str().unwrap_or_default(),
            );
            let truth = (intent.amount, intent.amount_received, intent.status.as_str());
            if stored != truth {
                found.push(Violation {
                    invariant: "row_matches_provider",
                    detail: format!(
                        "payment {} stores (amount, received, status) {stored:?}, the provider has {truth:?}",
                        row["id"]
                    ),
                });
            }
        }
    }
    for payment in payments {
        let known = ledger
            .intents
            .iter()
            .any(|intent| payment["provider_ref"] == intent.id.as_str());
        if !known {
            found.push(Violation {
                invariant: "one_row_per_charge",
                detail: format!(
                    "payment {} names intent {} the provider does not have",
                    payment["id"], payment["provider_ref"]
                ),
            });
        }
    }
}

/// Each payment's refunded amount is the sum of the provider's refunds, never
/// above what was captured, and each provider refund has exactly one refund row.
fn check_refunds(
    ledger: &Ledger,
    payments: &[Value],
    refund_rows: &[Vec<Option<String>>],
    found: &mut Vec<Violation>,
) {
    for payment in payments {
        let intent = payment["provider_ref"].as_str().unwrap_or_default();
        let provider_sum: i64 = ledger.refunds_of(intent).map(|refund| refund.amount).sum();
        let stored = minor(&payment["amount_refunded"]);
        let received = ledger
            .intents
            .iter()
            .find(|candidate| candidate.id == intent)
            .map_or(0, |intent| intent.amount_received);
        if stored != provider_sum {
            found.push(Violation {
                invariant: "refunds_match_provider",
                detail: format!(
                    "payment {} counts {stored} minor units refunded, the provider refunded {provider_sum}",
                    payment["id"]
                ),
            });
        }
        if stored > received || provider_sum > received {
            found.push(Violation {
                invariant: "refunds_within_captured",
                detail: format!(
                    "payment {}: refunded {stored} (provider {provider_sum}) of {received} captured",
                    payment["id"]
                ),
            });
        }
        let payment_id = payment["id"].as_str().unwrap_or_default();
        for refund in ledger
            .refunds
            .iter()
            .filter(|refund| refund.payment_intent == intent)
        {
            let rows = refund_rows
                .iter()
                .filter(|row| {
                    row[0].as_deref() == Some(payment_id) && row[1].as_deref() == Some(refund.id.as_str())
                })
                .count();
            if rows != 1 {
                found.push(Violation {
                    invariant: "one_row_per_refund",
                    detail: format!(
                        "provider refund {} ({} minor units) of payment {payment_id} has {rows} refund rows",
                        refund.id, refund.amount
                    ),
                });
            }
        }
    }
}

/// Every final state produced exactly one merchant event id: one
/// `payment.completed` / `payment.canceled` / `payment.failed` for a payment
/// that ended so, one refund event per provider refund.
fn check_events(
    ledger: &Ledger,
    payments: &[Value],
    events: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    found: &mut Vec<Violation>,
) {
    let none = BTreeMap::new();
    for payment in payments {
        let id = payment["id"].as_str().unwrap_or_default();
        let Some(intent) = ledger
            .intents
            .iter()
            .find(|intent| payment["provider_ref"] == intent.id.as_str())
        else {
            continue;
        };
        let got = events.get(id).unwrap_or(&none);
        let count = |kind: &str| got.get(kind).map_or(0, BTreeSet::len);
        let expected = match intent.status {
            IntentStatus::Succeeded => Some("payment.completed"),
            IntentStatus::Canceled => Some("payment.canceled"),
            IntentStatus::RequiresPaymentMethod if intent.last_payment_error.is_some() => {
                Some("payment.failed")
            }
            _ => None,
        };
        if let Some(kind) = expected {
            if count(kind) != 1 {
                found.push(Violation {
                    invariant: "one_event_per_final_state",
                    detail: format!(
                        "payment {id} ended {} but the merchant got {} {kind} event id(s); all events: {got:?}",
                        intent.status,
                        count(kind)
                    ),
                });
            }
        }
        let refunds = ledger.refunds_of(&intent.id).count();
        let refund_events = count("payment.refunded") + count("payment.partially_refunded");
        if refund_events != refunds {
            found.push(Violation {
                invariant: "one_event_per_final_state",
                detail: format!(
                    "payment {id} has {refunds} provider refund(s) but the merchant got {refund_events} refund event id(s); all events: {got:?}"
                ),
            });
        }
    }
}

/// Card saves: one provider customer per email, and every attached provider
/// payment method has exactly one active saved card (and no card is missing one).
fn check_cards(
    ledger: &Ledger,
    customers: &[Vec<Option<String>>],
    card_methods: &[Vec<Option<String>>],
    listed: usize,
    found: &mut Vec<Violation>,
) {
    let mut by_email: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for customer in &ledger.customers {
        by_email
            .entry(customer.email.as_deref().unwrap_or_default())
            .or_default()
            .push(&customer.id);
    }
    for (email, ids) in by_email.iter().filter(|(_, ids)| ids.len() > 1) {
        found.push(Violation {
            invariant: "one_customer_per_email",
            detail: format!(
                "the provider has customers {ids:?} for {email}; the gateway stores {customers:?}"
            ),
        });
    }
    let active: Vec<&str> = card_methods
        .iter()
        .filter(|row| row[1].as_deref() != Some("0") && row[1].as_deref() != Some("false"))
        .filter_map(|row| row[0].as_deref())
        .collect();
    for method in ledger.payment_methods.iter().filter(|method| !method.detached) {
        let rows = active.iter().filter(|id| **id == method.method.id).count();
        if rows != 1 {
            found.push(Violation {
                invariant: "one_card_per_attached_method",
                detail: format!(
                    "payment method {} attached to {:?} has {rows} saved card(s)",
                    method.method.id, method.method.customer
                ),
            });
        }
    }
    if listed != active.len() {
        found.push(Violation {
            invariant: "one_card_per_attached_method",
            detail: format!(
                "the API lists {listed} cards, the database has {} active",
                active.len()
            ),
        });
    }
}

/// A JSON object from pairs, for request bodies.
pub fn object(pairs: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert((*key).to_owned(), value.clone());
    }
    Value::Object(map)
}

/// `{"fault_client_key": key}`, the metadata of every request.
pub fn client_metadata(key: &str) -> Value {
    json!({ CLIENT_KEY: key })
}
