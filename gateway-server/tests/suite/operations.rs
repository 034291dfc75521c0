//! Health, readiness, metrics, OpenAPI, request ids, and a restart on the same file.

use awc::http::StatusCode;

use crate::common::{payment_body, TestServer};

#[actix_web::test]
async fn health_readiness_metrics_and_openapi() {
    let server = TestServer::start().await;
    let health = server.send("GET", "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.data()["status"], "ok");
    let ready = server.send("GET", "/readyz", None, &[], None).await;
    assert_eq!(ready.status, StatusCode::OK);
    server.pay(&payment_body("5", "pm_card_visa", "")).await;
    server
        .post("/v1/payments", &payment_body("5", "pm_card_chargeDeclined", ""))
        .await;
    let metrics = server.send("GET", "/metrics", None, &[], None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.content_type.unwrap().starts_with("text/plain"));
    for expected in [
        r#"gateway_http_requests_total{route="/v1/payments",method="POST",status="200"} 1"#,
        r#"gateway_http_requests_total{route="/v1/payments",method="POST",status="402"} 1"#,
        r#"gateway_http_request_duration_seconds_count{route="/v1/payments"} 2"#,
        // Each payment is created unconfirmed, then confirmed; the decline comes from the confirm.
        r#"gateway_provider_calls_total{provider="mock",operation="create_intent",outcome="ok"} 2"#,
        r#"gateway_provider_calls_total{provider="mock",operation="confirm_intent",outcome="ok"} 1"#,
        r#"gateway_provider_errors_total{provider="mock",operation="confirm_intent"} 1"#,
    ] {
        assert!(
            metrics.text.contains(expected),
            "missing {expected}\n{}",
            metrics.text
        );
    }
    let openapi = server.send("GET", "/openapi.json", None, &[], None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["paths"]["/v1/payments/{id}/capture"]["post"].is_object());
    assert!(openapi.body["components"]["securitySchemes"]["api_key"].is_object());
    let a = server.get("/v1/payments").await.request_id.unwrap();
    let b = server.get("/v1/payments").await.request_id.unwrap();
    assert_ne!(a, b);
    server.stop().await;
}

#[actix_web::test]
async fn a_restart_on_the_same_file_keeps_everything() {
    let server = TestServer::start().await;
    let payment = server
        .post_idem(
            "/v1/payments",
            "before-restart",
            &payment_body("12.34", "pm_card_visa", ""),
        )
        .await;
    let id = payment.data()["id"].as_str().unwrap().to_owned();
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": 2.34}}"#),
        )
        .await;
    let refund_id = refund.data()["id"].as_str().unwrap().to_owned();
    let card = server
        .post(
            "/v1/payments/cards",
            r#"{"payment_method_id": "pm_card_visa", "customer_email": "keep@example.com"}"#,
        )
        .await;
    let card_id = card.data()["id"].as_str().unwrap().to_owned();
    server
        .put(
            "/v1/merchant/webhook",
            r#"{"webhook_url": "https://keep.example.com/hook"}"#,
        )
        .await;
    server
        .put(
            "/v1/merchant/providers",
            r#"{"provider": "mock", "credentials": {"seed": "9"}}"#,
        )
        .await;
    let (_, other_key) = server.merchant("payments:read").await;

    let server = server.restart().await;
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["status"], "partially_refunded");
    assert_eq!(read.data()["amount_refunded"], "2.34");
    assert_eq!(
        server.get(&format!("/v1/refunds/{refund_id}")).await.status,
        StatusCode::OK
    );
    let cards = server.get("/v1/payments/cards").await;
    assert_eq!(cards.data()["data"][0]["id"], card_id.as_str());
    let merchant = server.get("/v1/merchant").await;
    assert_eq!(merchant.data()["webhook_url"], "https://keep.example.com/hook");
    assert_eq!(merchant.data()["providers"][0]["provider"], "mock");
    assert_eq!(
        server.get_as(&other_key, "/v1/payments").await.status,
        StatusCode::OK
    );
    // Idempotency records survive too.
    let replay = server
        .post_idem(
            "/v1/payments",
            "before-restart",
            &payment_body("12.34", "pm_card_visa", ""),
        )
        .await;
    assert!(replay.replayed);
    assert_eq!(replay.data()["id"], id.as_str());
    server.stop().await;
}
