//! `livemode` against the key's mode: a `sk_test_`/`rk_test_` key is test
//! mode, `sk_live_`/`rk_live_` live. An event or a returned PaymentIntent of
//! the other mode is refused: a webhook with `LivemodeMismatch`, an API
//! answer as "outcome unknown" (never a failure: the call ran). The objects
//! are Stripe's fixtures and signed vectors, with only `livemode` changed.

mod common;

use std::time::Duration;

use common::{intent, key, stub, QUICK};
use gateway_core::{
    CreateIntent, Currency, Money, PaymentProvider, ProviderErrorKind, WebhookError, WebhookRequest,
};
use gateway_stripe::{generate_test_header, StripeConfig, StripeProvider};
use serde_json::{json, Value};
use wiremock::MockServer;

fn provider_with_key(server: &MockServer, secret_key: &str) -> StripeProvider {
    let mut config = StripeConfig::new(secret_key).with_api_base(server.uri());
    config.max_retries = 0;
    config.timeout = QUICK;
    StripeProvider::new(config).expect("provider builds")
}

fn create() -> CreateIntent {
    CreateIntent::new(Money::parse("50.00", Currency::USD).unwrap())
}

#[tokio::test]
async fn an_intent_of_the_other_mode_is_outcome_unknown_never_failed() {
    let server = MockServer::start().await;
    // The fixture is a test-mode intent (livemode false).
    let test_intent = intent(json!({"id": "pi_mode", "amount": 5000, "currency": "usd"}));
    assert_eq!(test_intent["livemode"], false, "the fixture is test mode");
    stub(&server, "POST", "/v1/payment_intents", 200, test_intent.clone()).await;
    stub(&server, "GET", "/v1/payment_intents/pi_mode", 200, test_intent).await;
    // A test key takes it.
    let test = provider_with_key(&server, "sk_test_mode_key");
    assert_eq!(
        test.create_intent(create(), &key("k1")).await.unwrap().id,
        "pi_mode"
    );
    // A live key (or a restricted live key) does not: the key is not what we think.
    for live_key in ["sk_live_mode_key", "rk_live_mode_key"] {
        let live = provider_with_key(&server, live_key);
        let error = live.create_intent(create(), &key("k2")).await.unwrap_err();
        assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error}");
        assert!(error.outcome_unknown(), "never reported as failed: {error}");
        assert!(error.to_string().contains("livemode_mismatch"), "{error}");
        assert!(!error.to_string().contains(live_key), "no key in errors: {error}");
        let error = live.retrieve_intent("pi_mode").await.unwrap_err();
        assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error}");
    }
}

#[tokio::test]
async fn a_live_intent_to_a_test_key_is_refused() {
    let server = MockServer::start().await;
    let live_intent = intent(json!({"id": "pi_live", "amount": 5000, "currency": "usd", "livemode": true}));
    stub(&server, "GET", "/v1/payment_intents/pi_live", 200, live_intent).await;
    for test_key in ["sk_test_mode_key", "rk_test_mode_key"] {
        let error = provider_with_key(&server, test_key)
            .retrieve_intent("pi_live")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ProviderErrorKind::OutcomeUnknown, "{error}");
        assert!(error.to_string().contains("livemode_mismatch"), "{error}");
    }
}

/// The first signed vector expected to verify.
fn signed_vector() -> Value {
    let vectors = common::fixture_json("stripe-webhook-vectors.json");
    vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vector| vector["expect"] == "ok")
        .expect("a good vector")
        .clone()
}

fn verifier(secret_key: &str, vector: &Value) -> StripeProvider {
    let mut config = StripeConfig::new(secret_key).with_webhook_secrets(vector["secret"].as_str().unwrap());
    config.webhook_tolerance = Duration::from_secs(vector["tolerance_s"].as_u64().unwrap());
    StripeProvider::new(config).unwrap()
}

#[test]
fn an_event_of_the_other_mode_is_refused_though_its_signature_is_good() {
    let vector = signed_vector();
    let payload = vector["payload"].as_str().unwrap();
    let event: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(event["livemode"], false, "the vector is a test-mode event");
    let request = WebhookRequest::new(payload.as_bytes().to_vec(), vector["now"].as_i64().unwrap())
        .with_header("stripe-signature", vector["header"].as_str().unwrap());
    assert!(verifier("sk_test_x", &vector).verify_webhook(&request).is_ok());
    let refused = verifier("sk_live_x", &vector)
        .verify_webhook(&request)
        .unwrap_err();
    assert_eq!(
        refused,
        WebhookError::LivemodeMismatch {
            event: false,
            account: true
        }
    );
    // The same event made live (only `livemode` changed), signed again: a test key refuses it.
    let mut live = event.clone();
    live["livemode"] = Value::Bool(true);
    live["data"]["object"]["livemode"] = Value::Bool(true);
    let body = serde_json::to_vec(&live).unwrap();
    let now = vector["now"].as_i64().unwrap();
    let secret = vector["secret"].as_str().unwrap();
    let header = generate_test_header(&body, secret, now);
    let request = WebhookRequest::new(body.clone(), now).with_header("stripe-signature", &header);
    assert_eq!(
        verifier("sk_test_x", &vector)
            .verify_webhook(&request)
            .unwrap_err(),
        WebhookError::LivemodeMismatch {
            event: true,
            account: false
        }
    );
    assert!(verifier("sk_live_x", &vector).verify_webhook(&request).is_ok());
    // Only the object made live: refused as well.
    let mut object_only = event;
    object_only["data"]["object"]["livemode"] = Value::Bool(true);
    let body = serde_json::to_vec(&object_only).unwrap();
    let header = generate_test_header(&body, secret, now);
    let request = WebhookRequest::new(body, now).with_header("stripe-signature", &header);
    assert!(matches!(
        verifier("sk_test_x", &vector).verify_webhook(&request),
        Err(WebhookError::LivemodeMismatch { .. })
    ));
}
