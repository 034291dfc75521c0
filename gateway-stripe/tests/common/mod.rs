//! Shared test helpers: Stripe's fixtures, a provider pointed at a local stub.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use gateway_core::IdempotencyKey;
use gateway_stripe::{StripeConfig, StripeProvider};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A timeout no test should reach.
pub const QUICK: Duration = Duration::from_secs(5);

/// `../shared/fixtures/<name>` from the workspace root.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(name)
}

/// A fixture file as JSON; panics loudly when it is missing.
pub fn fixture_json(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("fixture {} is missing: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fixture {} is not JSON: {error}", path.display()))
}

/// Stripe's official example object `resources.<name>` from fixtures3.json.
pub fn resource(name: &str) -> Value {
    let fixtures = fixture_json("stripe-openapi/fixtures3.json");
    let resource = fixtures["resources"][name].clone();
    assert!(resource.is_object(), "fixtures3.json has no resource {name}");
    resource
}

/// `base` with the fields of `changes` replaced (top level; `null` values set null).
pub fn with(mut base: Value, changes: Value) -> Value {
    let target = base.as_object_mut().expect("an object");
    for (key, value) in changes.as_object().expect("an object of changes") {
        target.insert(key.clone(), value.clone());
    }
    base
}

/// The fixture payment intent, cleaned of the example's error and next action, then changed.
pub fn intent(changes: Value) -> Value {
    let base = with(
        resource("payment_intent"),
        serde_json::json!({"last_payment_error": null, "next_action": null, "processing": null}),
    );
    with(base, changes)
}

/// A provider pointed at `server`, with quick retries and the given timeout.
pub fn provider(server: &MockServer, max_retries: u32, timeout: Duration) -> StripeProvider {
    let mut config = StripeConfig::new("sk_test_stub_key").with_api_base(server.uri());
    config.max_retries = max_retries;
    config.retry_backoff = Duration::from_millis(10);
    config.timeout = timeout;
    StripeProvider::new(config).expect("provider builds")
}

pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).unwrap()
}

/// The form parameters of a request body, decoded, in order.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).expect("form bodies are UTF-8");
    if text.is_empty() {
        return Vec::new();
    }
    text.split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Answers `verb route` with `status` and `body`, every time.
pub async fn stub(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

/// What the stub received, in order.
pub async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

/// A request header as text.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|value| value.to_str().ok())
}

/// A request's form parameters, sorted.
pub fn sorted_form(request: &Request) -> Vec<(String, String)> {
    let mut pairs = form(&request.body);
    pairs.sort();
    pairs
}

/// Expected form parameters, sorted.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = expected
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// Stripe's error envelope (fixtures3.json has no error objects): `{"error": {...}}`.
pub fn stripe_error(fields: Value) -> Value {
    json!({ "error": fields })
}
