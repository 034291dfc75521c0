//! Merchants and API keys: authentication, scopes, revocation, isolation,
//! provider credentials and the webhook URL.

use awc::http::StatusCode;

use crate::common::{payment_body, TestServer, ALL_SCOPES};

#[actix_web::test]
async fn missing_invalid_and_bearer_keys() {
    let server = TestServer::start().await;
    let none = server.send("GET", "/v1/payments", None, &[], None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "missing_api_key");
    let wrong = server.get_as("gw_sk_not_a_key", "/v1/payments").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "invalid_api_key");
    let bearer = format!("Bearer {}", server.key);
    let ok = server
        .send("GET", "/v1/payments", None, &[("Authorization", &bearer)], None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let basic = server
        .send(
            "GET",
            "/v1/payments",
            None,
            &[("Authorization", "Basic abc")],
            None,
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    // A POST without a key stores nothing.
    let post = server
        .send(
            "POST",
            "/v1/payments",
            None,
            &[],
            Some(&payment_body("5", "pm_card_visa", "")),
        )
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.stats().calls("create_intent"), 0);
    server.stop().await;
}

#[actix_web::test]
async fn scopes_are_enforced_per_route_and_403_names_the_scope() {
    let server = TestServer::start().await;
    let (_, read_only) = server.merchant("payments:read").await;
    let reply = server
        .post_as(&read_only, "/v1/payments", &payment_body("5", "pm_card_visa", ""))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "insufficient_scope");
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("payments:write"));
    assert_eq!(
        server.get_as(&read_only, "/v1/payments").await.status,
        StatusCode::OK
    );
    let checks: &[(&str, &str, &str)] = &[
        ("GET", "/v1/merchant", "merchant:read"),
        ("PUT", "/v1/merchant/webhook", "merchant:write"),
        ("GET", "/v1/merchant/webhook", "webhooks:read"),
        ("PUT", "/v1/merchant/providers", "merchant:write"),
        ("GET", "/v1/merchant/api_keys", "merchant:read"),
        ("POST", "/v1/refunds", "payments:write"),
        ("POST", "/v1/payments/cards", "payments:write"),
    ];
    for (method, path, scope) in checks {
        let body = (*method != "GET").then_some("{}");
        let reply = server.send(method, path, Some(&read_only), &[], body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(reply.body["error"]["param"], *scope, "{method} {path}");
    }
    let (_, payments_only) = server.merchant("payments:read,payments:write").await;
    assert_eq!(
        server.get_as(&payments_only, "/v1/payments/cards").await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.get_as(&payments_only, "/v1/merchant").await.status,
        StatusCode::FORBIDDEN
    );
    server.stop().await;
}

#[actix_web::test]
async fn keys_are_created_listed_and_revoked() {
    let server = TestServer::start().await;
    let created = server
        .post("/v1/merchant/api_keys", r#"{"scopes": ["payments:read"]}"#)
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let key = created.data()["key"].as_str().unwrap().to_owned();
    let key_id = created.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.get_as(&key, "/v1/payments").await.status, StatusCode::OK);
    let list = server.get("/v1/merchant/api_keys").await;
    assert!(!list.text.contains(&key), "keys are never listed");
    assert_eq!(list.data()["data"].as_array().unwrap().len(), 2);
    let bad = server
        .post("/v1/merchant/api_keys", r#"{"scopes": ["payments:everything"]}"#)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A key cannot mint a key with more scopes than it has.
    let (_, limited) = server.merchant("merchant:write").await;
    let escalate = server
        .post_as(
            &limited,
            "/v1/merchant/api_keys",
            r#"{"scopes": ["payments:write"]}"#,
        )
        .await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN);
    let revoked = server.delete(&format!("/v1/merchant/api_keys/{key_id}")).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.data()["revoked_at"].is_string());
    let after = server.get_as(&key, "/v1/payments").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "invalid_api_key");
    let twice = server.delete(&format!("/v1/merchant/api_keys/{key_id}")).await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
    // The key hash is stored, never the key.
    let stored = server.database_bytes();
    assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
    server.stop().await;
}

#[actix_web::test]
async fn a_merchant_never_sees_another_merchants_objects() {
    let server = TestServer::start().await;
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let payment = server.pay(&payment_body("80.00", "pm_card_visa", "")).await;
    let id = payment["id"].as_str().unwrap();
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": 1.00}}"#),
        )
        .await;
    let refund_id = refund.data()["id"].as_str().unwrap();
    let card = server
        .post(
            "/v1/payments/cards",
            r#"{"payment_method_id": "pm_card_visa", "customer_email": "a@example.com"}"#,
        )
        .await;
    let card_id = card.data()["id"].as_str().unwrap();
    for path in [format!("/v1/payments/{id}"), format!("/v1/refunds/{refund_id}")] {
        let reply = server.get_as(&other, &path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    for action in ["capture", "cancel", "confirm"] {
        let reply = server
            .post_as(&other, &format!("/v1/payments/{id}/{action}"), "{}")
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{action}");
    }
    let steal = server
        .post_as(&other, "/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(steal.status, StatusCode::NOT_FOUND);
    let charge = server
        .post_as(
            &other,
            "/v1/payments",
            &format!(r#"{{"amount": 5, "currency": "USD", "saved_card_id": "{card_id}"}}"#),
        )
        .await;
    assert_eq!(charge.status, StatusCode::NOT_FOUND);
    let delete = server
        .send(
            "DELETE",
            &format!("/v1/payments/cards/{card_id}"),
            Some(&other),
            &[],
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    let listed = server.get_as(&other, "/v1/payments").await;
    assert!(listed.data()["data"].as_array().unwrap().is_empty());
    let cards = server.get_as(&other, "/v1/payments/cards").await;
    assert!(cards.data()["data"].as_array().unwrap().is_empty());
    let cursor = server.get_as(&other, &format!("/v1/payments?cursor={id}")).await;
    assert_eq!(cursor.status, StatusCode::BAD_REQUEST);
    // Nothing of the first merchant changed.
    assert_eq!(
        server.get(&format!("/v1/payments/{id}")).await.data()["amount_refunded"],
        "1.00"
    );
    server.stop().await;
}

#[actix_web::test]
async fn provider_credentials_are_encrypted_masked_and_never_returned() {
    let server = TestServer::start().await;
    let secret = "sk_test_51SuperSecretValue4242";
    let body = format!(r#"{{"provider": "mock", "mock": {{"webhook_secret": "{secret}", "seed": "7"}}}}"#);
    let reply = server.put("/v1/merchant/providers", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!reply.text.contains(secret), "{}", reply.text);
    let merchant = server.get("/v1/merchant").await;
    assert!(!merchant.text.contains(secret));
    let provider = &merchant.data()["providers"][0];
    assert_eq!(provider["provider"], "mock");
    assert_eq!(provider["credentials"]["webhook_secret"], "sk_test_****4242");
    assert!(!server
        .database_bytes()
        .windows(secret.len())
        .any(|w| w == secret.as_bytes()));
    // The merchant's own account now serves its payments (a separate mock account).
    let payment = server.pay(&payment_body("5", "pm_card_visa", "")).await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(
        server.stats().calls("create_intent"),
        0,
        "the gateway-wide mock was not used"
    );
    for (body, status) in [
        (
            r#"{"provider": "acme", "acme": {"k": "v"}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"provider": "mock"}"#, StatusCode::BAD_REQUEST),
        (r#"{"mock": {"seed": "1"}}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"provider": "mock", "mock": {"seed": "not-a-number"}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"provider": "mock", "mock": {"seed": 1}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"provider": "mock", "mock": {"seed": "1"}, "extra": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = server.put("/v1/merchant/providers", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
    }
    server.stop().await;
}

#[actix_web::test]
async fn webhook_url_is_validated() {
    let server = TestServer::start().await;
    let reply = server
        .put(
            "/v1/merchant/webhook",
            r#"{"webhook_url": "https://yourapp.com/webhooks/payments"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        server.get("/v1/merchant/webhook").await.data()["webhook_url"],
        "https://yourapp.com/webhooks/payments"
    );
    assert_eq!(
        server.get("/v1/merchant").await.data()["webhook_url"],
        "https://yourapp.com/webhooks/payments"
    );
    for bad in [
        // http:// is allowed in a sandbox, link-local addresses are not (tests/suite/egress.rs has the rest).
        r#"{"webhook_url": "http://169.254.169.254/hook"}"#,
        r#"{"webhook_url": ""}"#,
        r#"{"webhook_url": null}"#,
        r#"{"rotate_secret": true}"#,
        r#"{"webhook_url": "not a url"}"#,
        r#"{"webhook_url": "https://user:pass@yourapp.com/"}"#,
        r#"{"webhook_url": 5}"#,
        r#"{"url": "https://yourapp.com"}"#,
    ] {
        let reply = server.put("/v1/merchant/webhook", bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        server.get("/v1/merchant/webhook").await.data()["webhook_url"],
        "https://yourapp.com/webhooks/payments",
        "unchanged by refused requests"
    );
    server.stop().await;
}

#[actix_web::test]
async fn requests_past_the_rate_limit_get_429() {
    let server = TestServer::start_with(|config| {
        config.rate_limit_per_second = 5;
        config.rate_limit_burst = 5;
    })
    .await;
    let (_, other) = server.merchant(ALL_SCOPES).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(server.get("/v1/payments").await);
    }
    assert!(statuses[..5].iter().all(|reply| reply.status == StatusCode::OK));
    let limited = statuses.last().unwrap();
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    // Limits are per merchant: another merchant is not limited.
    assert_eq!(server.get_as(&other, "/v1/payments").await.status, StatusCode::OK);
    server.stop().await;
}
