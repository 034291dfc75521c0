//! Modes (a production configuration never reaches the mock nor creates a
//! merchant) and secrets (never stored for replay; `client_secret` only in
//! the answers to create and confirm).

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use gateway_core::MockProvider;
use gateway_server::{Config, Mode, ServerBuilder, StartError};

use serde_json::json;

use super::stripe_webhooks::fixture_intent;
use super::webhooks::{db_count, db_count_at};
use crate::common::merchant_endpoint::{fast, set_webhook, verify, Receiver};
use crate::common::{payment_body, TestServer};

/// A production configuration on a fresh SQLite file in `dir`.
fn production(dir: &tempfile::TempDir) -> Config {
    Config {
        listen: "127.0.0.1:0".to_owned(),
        database_url: format!("sqlite://{}", dir.path().join("production.db").display()),
        master_key: Some("0123456789abcdef".repeat(4)),
        workers: 1,
        log_level: "warn".to_owned(),
        mode: Mode::Production,
        ..Config::default()
    }
}

async fn refused(builder: ServerBuilder) -> String {
    match builder.start().await {
        Ok(server) => {
            server.stop().await;
            panic!("a production configuration exposing the mock started")
        }
        Err(error) => {
            assert!(matches!(error, StartError::Providers(_)), "{error}");
            error.to_string()
        }
    }
}

#[actix_web::test]
async fn production_refuses_a_mock_registered_or_configured() {
    let dir = tempfile::tempdir().unwrap();
    let registered =
        refused(ServerBuilder::new(production(&dir)).provider(Arc::new(MockProvider::new()))).await;
    assert!(
        registered.contains("sandbox mode only") && registered.contains("GATEWAY_MODE=sandbox"),
        "{registered}"
    );
    let mut config = production(&dir);
    config
        .providers
        .entry("mock".to_owned())
        .or_default()
        .insert("seed".to_owned(), "7".to_owned());
    let configured = refused(ServerBuilder::new(config)).await;
    assert!(configured.contains("GATEWAY_MOCK_*"), "{configured}");
    // Nothing was stored by the refused starts.
    assert!(!dir.path().join("production.db").exists());
}

#[actix_web::test]
async fn production_on_an_empty_database_creates_no_merchant_and_prints_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = production(&dir);
    let stripe = config.providers.entry("stripe".to_owned()).or_default();
    stripe.insert("secret_key".to_owned(), "sk_test_production".to_owned());
    // Nothing listens there: no call of this test reaches it.
    stripe.insert("api_base".to_owned(), "http://127.0.0.1:9".to_owned());
    // The operator allows that local endpoint explicitly (production refuses it otherwise).
    config.egress_allow_http = Some(true);
    config.egress_allow_nets = Some(vec!["127.0.0.0/8".parse().unwrap()]);
    let server = ServerBuilder::new(config.clone())
        .start()
        .await
        .expect("production starts");
    assert!(server.sandbox_key().is_none(), "no sandbox key in production");
    let base = format!("http://{}", server.addr());
    let mut response = awc::Client::new()
        .post(format!("{base}/v1/webhooks/mock"))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let _ = response.body().await;
    server.stop().await;
    // A restart on the still empty database: still no merchant made for anyone.
    let server = ServerBuilder::new(config).start().await.expect("restarts");
    assert!(server.sandbox_key().is_none());
    server.stop().await;
}

#[actix_web::test]
async fn a_new_api_key_is_never_stored_for_replay() {
    let server = TestServer::start().await;
    let body = r#"{"scopes": ["payments:read"]}"#;
    let created = server.post_idem("/v1/merchant/api_keys", "key-once", body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert!(!created.replayed);
    let key = created.data()["key"]
        .as_str()
        .expect("the key, shown once")
        .to_owned();
    let replay = server.post_idem("/v1/merchant/api_keys", "key-once", body).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text);
    assert!(replay.replayed, "Idempotent-Replayed: true");
    assert!(replay.data().get("key").is_none(), "{}", replay.text);
    assert_eq!(replay.data()["id"], created.data()["id"]);
    assert_eq!(replay.data()["prefix"], created.data()["prefix"]);
    // Not in any row: the idempotency table holds the answer without it, the keys table a hash.
    let stored = server.database_bytes();
    let secret = &key["gw_sk_".len()..];
    assert!(
        !stored
            .windows(secret.len())
            .any(|window| window == secret.as_bytes()),
        "the plaintext key is stored"
    );
    // The key works: it was created once, and only the replay left it out.
    assert_eq!(server.get_as(&key, "/v1/payments").await.status, StatusCode::OK);
    server.stop().await;
}

#[actix_web::test]
async fn a_new_signing_secret_is_never_stored_in_plaintext() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start().await;
    let secret = set_webhook(&server, &receiver.url).await;
    let stored = server.database_bytes();
    assert!(!stored
        .windows(secret.len())
        .any(|window| window == secret.as_bytes()));
    server.stop().await;
}

#[actix_web::test]
async fn client_secret_only_in_create_and_confirm_answers() {
    let receiver = Receiver::start(&[]).await;
    let server = TestServer::start_with(fast).await;
    let signing = set_webhook(&server, &receiver.url).await;
    let body = r#"{"amount": 12.00, "currency": "EUR", "confirm": false}"#;
    let created = server.post_idem("/v1/payments", "pay-cs", body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let secret = created.data()["client_secret"]
        .as_str()
        .expect("client_secret in the create answer")
        .to_owned();
    let id = created.data()["id"].as_str().unwrap().to_owned();
    // Not stored for replay, filled in again from the payment.
    let replay = server.post_idem("/v1/payments", "pay-cs", body).await;
    assert!(replay.replayed);
    assert_eq!(replay.data()["client_secret"], secret.as_str(), "{}", replay.text);
    // Never in reads, lists, or for a payments:read key.
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.text.contains(&secret), "{}", read.text);
    let list = server.get("/v1/payments").await;
    assert!(!list.text.contains(&secret), "{}", list.text);
    let reader = server
        .post("/v1/merchant/api_keys", r#"{"scopes": ["payments:read"]}"#)
        .await;
    let reader = reader.data()["key"].as_str().unwrap().to_owned();
    let read = server.get_as(&reader, &format!("/v1/payments/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.text.contains(&secret), "{}", read.text);
    // Confirm shows it while the customer must act (3-D Secure), a webhook never.
    let confirmed = server
        .post(
            &format!("/v1/payments/{id}/confirm"),
            r#"{"payment_method": "pm_card_threeDSecure2Required", "return_url": "https://shop.example/back"}"#,
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    assert_eq!(
        confirmed.data()["client_secret"],
        secret.as_str(),
        "{}",
        confirmed.text
    );
    let pending = server
        .pay(&payment_body(
            "30.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    let other = pending["client_secret"]
        .as_str()
        .expect("shown on create")
        .to_owned();
    let hits = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert!(!hits.is_empty(), "merchant webhooks were sent");
    for hit in &hits {
        let payload = verify(&signing, hit);
        assert!(
            !hit.2.contains(&secret) && !hit.2.contains(&other),
            "a webhook carries a client_secret: {payload}"
        );
    }
    server.stop().await;
}

/// A Stripe event about a fixture intent, signed with `secret` now.
fn stripe_event(id: &str, secret: &str, livemode: bool) -> (String, String) {
    let event = json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": 1_700_000_000,
        "livemode": livemode, "type": "payment_intent.succeeded",
        "data": {"object": fixture_intent(json!({"id": "pi_not_ours", "status": "succeeded"}))}
    })
    .to_string();
    let header = crate::common::stripe_signature(&event, secret);
    (event, header)
}

async fn post_webhook(
    base: &str,
    path: &str,
    signature: (&str, &str),
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut response = awc::Client::new()
        .post(format!("{base}{path}"))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(signature)
        .send_body(body.to_owned())
        .await
        .unwrap();
    let bytes = response.body().await.unwrap();
    (
        response.status(),
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

#[actix_web::test]
async fn a_merchant_endpoint_never_verifies_with_the_gateway_wide_stripe_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = production(&dir);
    config.mode = Mode::Sandbox;
    config.default_provider = Some("stripe".to_owned());
    let stripe = config.providers.entry("stripe".to_owned()).or_default();
    stripe.insert("secret_key".to_owned(), "sk_test_gateway".to_owned());
    stripe.insert("webhook_secrets".to_owned(), "whsec_gateway_wide".to_owned());
    stripe.insert("api_base".to_owned(), "http://127.0.0.1:9".to_owned());
    // The operator allows that local endpoint explicitly (production refuses it otherwise).
    config.egress_allow_http = Some(true);
    config.egress_allow_nets = Some(vec!["127.0.0.0/8".parse().unwrap()]);
    let server = ServerBuilder::new(config.clone()).start().await.expect("starts");
    let key = server.sandbox_key().unwrap().to_owned();
    let base = format!("http://{}", server.addr());
    let mut me = awc::Client::new()
        .get(format!("{base}/v1/merchant"))
        .insert_header(("X-API-Key", key))
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = me.json().await.unwrap();
    let merchant = me["data"]["id"].as_str().unwrap().to_owned();
    let events = |url: &str| db_count_at(url, "SELECT COUNT(*) FROM webhook_events");
    // A live event to a test key (sk_test_…): refused, nothing stored.
    let (live, live_header) = stripe_event("evt_live", "whsec_gateway_wide", true);
    let (status, body) = post_webhook(
        &base,
        "/v1/webhooks/stripe",
        ("Stripe-Signature", &live_header),
        &live,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "webhook_livemode_mismatch", "{body}");
    let (event, header) = stripe_event("evt_gateway_signed", "whsec_gateway_wide", false);
    // The merchant stored no Stripe credentials: its endpoint has nothing to verify with.
    let (status, body) = post_webhook(
        &base,
        &format!("/v1/webhooks/stripe/{merchant}"),
        ("Stripe-Signature", &header),
        &event,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "webhook_endpoint_not_configured", "{body}");
    // An unknown merchant is answered the same (the path is no merchant directory).
    let (status, unknown) = post_webhook(
        &base,
        "/v1/webhooks/stripe/no-such-merchant",
        ("Stripe-Signature", &header),
        &event,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(unknown["error"]["code"], body["error"]["code"]);
    assert_eq!(events(&config.database_url), 0, "nothing stored");
    // The gateway-wide endpoint takes it, once.
    for _ in 0..2 {
        let (status, body) = post_webhook(
            &base,
            "/v1/webhooks/stripe",
            ("Stripe-Signature", &header),
            &event,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(events(&config.database_url), 1);
    server.stop().await;
}

#[actix_web::test]
async fn one_event_is_stored_once_whichever_endpoint_it_reaches() {
    let server = TestServer::start().await;
    let merchant = server.get("/v1/merchant").await.data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.pay(&payment_body("5.00", "pm_card_visa", "")).await;
    let event = server.mock.take_events().pop().unwrap();
    let request = server.mock.webhook_request(&event, 0);
    let body = String::from_utf8(request.body.clone()).unwrap();
    let signature = request.header("Mock-Signature").unwrap().to_owned();
    let own = format!("/v1/webhooks/mock/{merchant}");
    let send = |path: String| {
        let (signature, body) = (signature.clone(), body.clone());
        let server = &server;
        async move {
            server
                .send(
                    "POST",
                    &path,
                    None,
                    &[("Mock-Signature", &signature)],
                    Some(&body),
                )
                .await
        }
    };
    // No own mock account: the merchant's endpoint refuses the gateway account's event.
    let refused = send(own.clone()).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
    assert_eq!(refused.code(), "webhook_endpoint_not_configured");
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_events"), 0);
    assert_eq!(send("/v1/webhooks/mock".to_owned()).await.status, StatusCode::OK);
    // The merchant then stores an account that signs alike (the gateway's own
    // account, say): its endpoint verifies the event, and it is not stored again.
    let secret = signature.clone();
    let stored = server
        .put(
            "/v1/merchant/providers",
            &json!({"provider": "mock", "mock": {"webhook_secret": secret}}).to_string(),
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    let again = send(own).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(db_count(&server, "SELECT COUNT(*) FROM webhook_events"), 1);
    server.stop().await;
}
