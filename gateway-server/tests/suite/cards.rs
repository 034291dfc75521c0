//! Saved cards: save, list, default, charge off-session, delete.

use awc::http::StatusCode;

use crate::common::TestServer;

#[actix_web::test]
async fn save_list_charge_off_session_and_delete() {
    let server = TestServer::start().await;
    let saved = server
        .post(
            "/v1/payments/cards",
            r#"{"payment_method_id": "pm_card_visa", "customer_email": "User@Example.com", "customer_name": "Jane Doe"}"#,
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    let card = saved.data().clone();
    assert_eq!(card["brand"], "visa");
    assert_eq!(card["last4"], "4242");
    assert_eq!(card["exp_month"], 12);
    assert!(card["exp_year"].as_i64().unwrap() >= 2030);
    assert_eq!(card["is_default"], true);
    assert_eq!(card["customer_email"], "user@example.com");
    let second = server
        .post(
            "/v1/payments/cards",
            r#"{"payment_method_id": "pm_card_mastercard", "customer_email": "user@example.com"}"#,
        )
        .await;
    assert_eq!(second.data()["is_default"], false);
    // One provider customer per email.
    assert_eq!(server.stats().executed("create_customer"), 1);
    let list = server.get("/v1/payments/cards").await;
    let cards = list.data()["data"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 2);
    let only = server
        .get("/v1/payments/cards?customer_email=nobody@example.com")
        .await;
    assert!(only.data()["data"].as_array().unwrap().is_empty());
    // Charge the saved card off-session.
    let card_id = card["id"].as_str().unwrap();
    let payment = server
        .pay(&format!(
            r#"{{"amount": 29.99, "currency": "USD", "saved_card_id": "{card_id}", "order_id": "sub-may"}}"#
        ))
        .await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["saved_card_id"], card_id);
    assert_eq!(payment["amount"], "29.99");
    // Delete: detached at the provider, gone from the list, no longer chargeable.
    let deleted = server.delete(&format!("/v1/payments/cards/{card_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(server.stats().executed("detach_payment_method"), 1);
    assert_eq!(
        server.get("/v1/payments/cards").await.data()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let again = server
        .post(
            "/v1/payments",
            &format!(r#"{{"amount": 1, "currency": "USD", "saved_card_id": "{card_id}"}}"#),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server
            .delete(&format!("/v1/payments/cards/{card_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_card_needing_authentication_declines_off_session() {
    let server = TestServer::start().await;
    let saved = server
        .post(
            "/v1/payments/cards",
            r#"{"payment_method_id": "pm_card_threeDSecure2Required", "customer_email": "a@example.com"}"#,
        )
        .await;
    let card_id = saved.data()["id"].as_str().unwrap();
    let reply = server
        .post(
            "/v1/payments",
            &format!(r#"{{"amount": 10, "currency": "USD", "saved_card_id": "{card_id}"}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{}", reply.text);
    assert_eq!(reply.code(), "authentication_required");
    server.stop().await;
}

#[actix_web::test]
async fn bad_card_requests() {
    let server = TestServer::start().await;
    for (body, status) in [
        (
            r#"{"payment_method_id": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"payment_method_id": "pm_card_visa", "customer_email": "nope"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"payment_method_id": "", "customer_email": "a@example.com"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"payment_method_id": "pm_unknown", "customer_email": "a@example.com"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"payment_method_id": "pm_card_visa", "customer_email": "a@example.com", "x": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = server.post("/v1/payments/cards", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
    }
    assert!(server.get("/v1/payments/cards").await.data()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    server.stop().await;
}
