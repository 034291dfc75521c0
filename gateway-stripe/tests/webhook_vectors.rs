//! Every `Stripe-Signature` vector computed by Stripe's own library, plus rotation and future timestamps.

mod common;

use std::time::Duration;

use gateway_core::{PaymentProvider, WebhookError, WebhookRequest};
use gateway_stripe::{generate_test_header, verify_signature, SignatureError, StripeConfig, StripeProvider};

fn verdict(result: &Result<i64, SignatureError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(SignatureError::Malformed(_)) => "malformed",
        Err(SignatureError::NoSignature) => "no_signature",
        Err(SignatureError::BadSignature) => "bad_signature",
        Err(SignatureError::OutsideTolerance { .. }) => "too_old",
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn agrees_with_every_vector() {
    let vectors = common::fixture_json("stripe-webhook-vectors.json");
    let vectors = vectors["vectors"].as_array().expect("a vectors array");
    assert!(vectors.len() >= 17, "only {} vectors", vectors.len());
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let result = verify_signature(
            vector["header"].as_str().unwrap(),
            vector["payload"].as_str().unwrap().as_bytes(),
            &[vector["secret"].as_str().unwrap()],
            Duration::from_secs(vector["tolerance_s"].as_u64().unwrap()),
            vector["now"].as_i64().unwrap(),
        );
        assert_eq!(
            verdict(&result),
            vector["expect"].as_str().unwrap(),
            "vector {name:?}: {result:?}"
        );
    }
}

#[test]
fn every_vector_through_the_provider() {
    let vectors = common::fixture_json("stripe-webhook-vectors.json");
    for vector in vectors["vectors"].as_array().unwrap() {
        let mut config =
            StripeConfig::new("sk_test_x").with_webhook_secrets(vector["secret"].as_str().unwrap());
        config.webhook_tolerance = Duration::from_secs(vector["tolerance_s"].as_u64().unwrap());
        let provider = StripeProvider::new(config).unwrap();
        let request = WebhookRequest::new(
            vector["payload"].as_str().unwrap().as_bytes().to_vec(),
            vector["now"].as_i64().unwrap(),
        )
        .with_header("stripe-signature", vector["header"].as_str().unwrap());
        let result = provider.verify_webhook(&request);
        let got = match &result {
            Ok(_) => "ok",
            Err(WebhookError::Malformed { .. }) => "malformed",
            Err(WebhookError::NoSignature) => "no_signature",
            Err(WebhookError::BadSignature) => "bad_signature",
            Err(WebhookError::OutsideTolerance { .. }) => "too_old",
            Err(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, vector["expect"].as_str().unwrap(), "{}", vector["name"]);
        if let Ok(verified) = result {
            let payload: serde_json::Value =
                serde_json::from_str(vector["payload"].as_str().unwrap()).unwrap();
            assert_eq!(verified.event_id, payload["id"].as_str().unwrap());
            assert_eq!(verified.event_type, payload["type"].as_str().unwrap());
            assert_eq!(verified.created, payload["created"].as_i64());
            assert_eq!(
                verified.object_id.as_deref(),
                payload["data"]["object"]["id"].as_str()
            );
            assert_eq!(verified.body, vector["payload"].as_str().unwrap().as_bytes());
        }
    }
}

#[test]
fn any_of_several_secrets_verifies_during_rotation() {
    let body = br#"{"id":"evt_rot","type":"payment_intent.created","created":100}"#;
    let old = "whsec_old_secret";
    let new = "whsec_new_secret";
    let tolerance = Duration::from_secs(300);
    let signed_old = generate_test_header(body, old, 100);
    let signed_new = generate_test_header(body, new, 100);
    assert_eq!(
        verify_signature(&signed_old, body, &[new, old], tolerance, 100),
        Ok(100)
    );
    assert_eq!(
        verify_signature(&signed_new, body, &[new, old], tolerance, 100),
        Ok(100)
    );
    assert_eq!(
        verify_signature(&signed_old, body, &[new], tolerance, 100),
        Err(SignatureError::BadSignature)
    );

    // Comma-separated secrets in the configuration.
    let provider = StripeProvider::new(
        StripeConfig::new("sk_test_x").with_webhook_secrets("whsec_new_secret, whsec_old_secret"),
    )
    .unwrap();
    for header in [&signed_old, &signed_new] {
        let request =
            WebhookRequest::new(body.to_vec(), 120).with_header("Stripe-Signature", header.as_str());
        assert_eq!(provider.verify_webhook(&request).unwrap().event_id, "evt_rot");
    }
}

#[test]
fn timestamps_beyond_the_tolerance_are_refused_both_ways() {
    let body = br#"{"id":"evt_t","type":"x"}"#;
    let secret = "whsec_t";
    let tolerance = Duration::from_secs(300);
    let now = 1_800_000_000;
    let future = generate_test_header(body, secret, now + 301);
    assert!(matches!(
        verify_signature(&future, body, &[secret], tolerance, now),
        Err(SignatureError::OutsideTolerance {
            tolerance_secs: 300,
            ..
        })
    ));
    let near_future = generate_test_header(body, secret, now + 300);
    assert_eq!(
        verify_signature(&near_future, body, &[secret], tolerance, now),
        Ok(now + 300)
    );
    let past = generate_test_header(body, secret, now - 301);
    assert!(verify_signature(&past, body, &[secret], tolerance, now).is_err());

    // Through the provider: measured from when the request was received.
    let provider = StripeProvider::new(StripeConfig::new("sk_test_x").with_webhook_secrets(secret)).unwrap();
    let request = WebhookRequest::new(body.to_vec(), now).with_header("Stripe-Signature", future.as_str());
    assert_eq!(
        provider.verify_webhook(&request).unwrap_err(),
        WebhookError::OutsideTolerance { tolerance_secs: 300 }
    );
}

#[test]
fn missing_header_no_secret_and_unreadable_events() {
    let body = br#"{"id":"evt_1","type":"payment_intent.created"}"#;
    let provider =
        StripeProvider::new(StripeConfig::new("sk_test_x").with_webhook_secrets("whsec_a")).unwrap();
    let request = WebhookRequest::new(body.to_vec(), 10);
    assert_eq!(
        provider.verify_webhook(&request).unwrap_err(),
        WebhookError::MissingHeader {
            header: "Stripe-Signature"
        }
    );

    let unconfigured = StripeProvider::new(StripeConfig::new("sk_test_x")).unwrap();
    let signed = WebhookRequest::new(body.to_vec(), 10)
        .with_header("Stripe-Signature", generate_test_header(body, "whsec_a", 10));
    assert_eq!(
        unconfigured.verify_webhook(&signed).unwrap_err(),
        WebhookError::NotConfigured
    );

    let not_json = b"not json";
    let request = WebhookRequest::new(not_json.to_vec(), 10)
        .with_header("Stripe-Signature", generate_test_header(not_json, "whsec_a", 10));
    assert!(matches!(
        provider.verify_webhook(&request),
        Err(WebhookError::InvalidPayload { .. })
    ));

    let no_id = br#"{"type":"payment_intent.created"}"#;
    let request = WebhookRequest::new(no_id.to_vec(), 10)
        .with_header("Stripe-Signature", generate_test_header(no_id, "whsec_a", 10));
    assert!(matches!(
        provider.verify_webhook(&request),
        Err(WebhookError::InvalidPayload { .. })
    ));
}
