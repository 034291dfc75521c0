//! Stripe's official example objects, for unit tests.

use serde_json::Value;

/// `resources.<name>` of `../shared/fixtures/stripe-openapi/fixtures3.json`; panics loudly if missing.
pub(crate) fn resource(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/stripe-openapi/fixtures3.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("Stripe fixtures missing at {path}: {error}"));
    let fixtures: Value = serde_json::from_str(&text).expect("fixtures3.json is JSON");
    fixtures["resources"][name].clone()
}
