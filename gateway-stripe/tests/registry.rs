//! The crate registers provider `stripe` with the core's registry, and builds from settings alone.

mod common;

use gateway_core::{build_provider, provider_factories, IdempotencyKey, ProviderConfig, ProviderError};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn stripe_is_registered() {
    assert_eq!(gateway_stripe::link(), "stripe");
    let names: Vec<_> = provider_factories().iter().map(|factory| factory.name).collect();
    assert!(names.contains(&"stripe"), "{names:?}");
    let missing = build_provider("stripe", &ProviderConfig::new())
        .err()
        .expect("a secret key is required");
    assert!(matches!(missing, ProviderError::InvalidRequest { param: Some(ref p), .. } if p == "secret_key"));
    let bad_base = ProviderConfig::new()
        .with("secret_key", "sk_test_x")
        .with("api_base", "127.0.0.1:1");
    assert!(build_provider("stripe", &bad_base).is_err());
}

#[tokio::test]
async fn configuration_alone_points_the_provider_at_a_stripe_double() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_cfg"))
        .and(header("authorization", "Bearer sk_test_from_config"))
        .respond_with(ResponseTemplate::new(200).set_body_json(common::intent(json!({"id": "pi_cfg"}))))
        .expect(1)
        .mount(&server)
        .await;
    let config = ProviderConfig::new()
        .with("secret_key", "sk_test_from_config")
        .with("webhook_secret", "whsec_a,whsec_b")
        .with("api_base", server.uri())
        .with("timeout_ms", "2000")
        .with("max_retries", "0");
    let stripe = build_provider("stripe", &config).unwrap();
    assert_eq!(stripe.name(), "stripe");
    assert!(stripe.capabilities().webhooks);
    assert_eq!(stripe.retrieve_intent("pi_cfg").await.unwrap().id, "pi_cfg");
    // Keys are checked by the core type before they reach the provider.
    assert!(IdempotencyKey::new("ok-key").is_ok());
}
