//! Modes (a production configuration never reaches the mock nor creates a
//! merchant) and secrets (never stored for replay; `client_secret` only in
//! the answers to create and confirm).

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use gateway_core::MockProvider;
use gateway_server::{Config, Mode, ServerBuilder, StartError};

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
    let registered = refused(
        ServerBuilder::new(production(&dir)).provider(Arc::new(MockProvider::new())),
    )
    .await;
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
    let server = ServerBuilder::new(config.clone()).start().await.expect("production starts");
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
    let key = created.data()["key"].as_str().expect("the key, shown once").to_owned();
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
        !stored.windows(secret.len()).any(|window| window == secret.as_bytes()),
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
    assert!(!stored.windows(secret.len()).any(|window| window == secret.as_bytes()));
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
    assert_eq!(confirmed.data()["client_secret"], secret.as_str(), "{}", confirmed.text);
    let pending = server
        .pay(&payment_body(
            "30.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://shop.example/back""#,
        ))
        .await;
    let other = pending["client_secret"].as_str().expect("shown on create").to_owned();
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
