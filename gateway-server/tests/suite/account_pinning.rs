//! Account pinning: a payment, a customer and a saved card stay on the
//! provider account that made them. After the merchant stores its own
//! credentials, older payments are still captured, refunded and canceled on
//! the gateway-wide account, and a card saved there is still charged there;
//! what is made afterwards goes to the merchant's own account.

use awc::http::StatusCode;
use gateway_core::mock::MovementKind;
use serde_json::Value;

use crate::common::{payment_body, TestServer};

/// Stores the sandbox merchant's own mock account: another account than
/// the gateway-wide mock (`server.mock`), which knows nothing of its objects.
async fn store_own_mock(server: &TestServer) {
    let reply = server
        .put(
            "/v1/merchant/providers",
            r#"{"provider": "mock", "mock": {"seed": "7"}}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
        .to_owned()
}

/// Whether the gateway-wide mock knows the intent `provider_ref`.
fn on_gateway_account(server: &TestServer, provider_ref: &str) -> bool {
    server
        .mock
        .ledger()
        .intents
        .iter()
        .any(|intent| intent.id == provider_ref)
}

#[actix_web::test]
async fn older_payments_stay_on_the_account_that_made_them() {
    let server = TestServer::start().await;
    let manual = r#""capture_method": "manual""#;
    let held = server.pay(&payment_body("50.00", "pm_card_visa", manual)).await;
    let paid = server.pay(&payment_body("20.00", "pm_card_visa", "")).await;
    let to_cancel = server.pay(&payment_body("10.00", "pm_card_visa", manual)).await;
    store_own_mock(&server).await;

    let captured = server
        .post(&format!("/v1/payments/{}/capture", text(&held, "id")), "")
        .await;
    assert_eq!(captured.status, StatusCode::OK, "{}", captured.text);
    assert_eq!(captured.data()["status"], "completed");
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{}", "amount": 5.00}}"#, text(&paid, "id")),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    let canceled = server
        .post(&format!("/v1/payments/{}/cancel", text(&to_cancel, "id")), "")
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    assert_eq!(canceled.data()["status"], "canceled");

    // All three went to the gateway-wide account, where the payments are.
    let ledger = server.mock.ledger();
    let held_ref = text(&held, "provider_ref");
    assert_eq!(ledger.movements_of(&held_ref, MovementKind::Capture).count(), 1);
    assert_eq!(ledger.refunds_of(&text(&paid, "provider_ref")).count(), 1);
    assert_eq!(server.stats().executed("cancel_intent"), 1);
    for payment in [&held, &paid, &to_cancel] {
        let id = text(payment, "id");
        let reply = server.get(&format!("/v1/payments/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    // A new payment, its capture and refund go to the merchant's own account.
    let calls = server.stats();
    let fresh = server.pay(&payment_body("30.00", "pm_card_visa", manual)).await;
    let fresh_id = text(&fresh, "id");
    let captured = server.post(&format!("/v1/payments/{fresh_id}/capture"), "").await;
    assert_eq!(captured.status, StatusCode::OK, "{}", captured.text);
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{fresh_id}", "amount": 1.00}}"#),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert!(!on_gateway_account(&server, &text(&fresh, "provider_ref")));
    let after = server.stats();
    for operation in [
        "create_intent",
        "confirm_intent",
        "capture_intent",
        "create_refund",
    ] {
        assert_eq!(
            after.calls(operation),
            calls.calls(operation),
            "{operation} reached the gateway-wide account"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_saved_card_keeps_the_account_it_was_saved_on() {
    let server = TestServer::start().await;
    let save = |method: &str| {
        format!(r#"{{"payment_method_id": "{method}", "customer_email": "jane@example.com"}}"#)
    };
    let old_card = server.post("/v1/payments/cards", &save("pm_card_visa")).await;
    assert_eq!(old_card.status, StatusCode::OK, "{}", old_card.text);
    let old_card = text(old_card.data(), "id");
    assert_eq!(server.mock.ledger().customers.len(), 1);
    store_own_mock(&server).await;

    // The old card is charged where it was saved.
    let charge = |card: &str| format!(r#"{{"amount": 12.00, "currency": "USD", "saved_card_id": "{card}"}}"#);
    let paid = server.pay(&charge(&old_card)).await;
    assert_eq!(paid["status"], "completed");
    let paid_ref = text(&paid, "provider_ref");
    assert!(on_gateway_account(&server, &paid_ref));
    assert_eq!(
        server
            .mock
            .ledger()
            .movements_of(&paid_ref, MovementKind::Charge)
            .count(),
        1
    );
    // Its refund too.
    let refund = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{}"}}"#, text(&paid, "id")),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.text);
    assert_eq!(server.mock.ledger().refunds_of(&paid_ref).count(), 1);

    // A card saved now, for the same email, is saved on the merchant's own
    // account with a customer there (the gateway-wide one is unknown to it).
    let new_card = server
        .post("/v1/payments/cards", &save("pm_card_mastercard"))
        .await;
    assert_eq!(new_card.status, StatusCode::OK, "{}", new_card.text);
    let new_card = text(new_card.data(), "id");
    assert_eq!(server.stats().calls("create_customer"), 1);
    assert_eq!(server.stats().calls("attach_payment_method"), 1);
    let paid_new = server.pay(&charge(&new_card)).await;
    assert_eq!(paid_new["status"], "completed");
    assert!(!on_gateway_account(&server, &text(&paid_new, "provider_ref")));
    // Another card saved now reuses the merchant's own customer.
    let third = server.post("/v1/payments/cards", &save("pm_card_visa")).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text);
    assert_eq!(server.stats().calls("create_customer"), 1);

    // Deleting detaches each card on its own account.
    let deleted = server.delete(&format!("/v1/payments/cards/{old_card}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(server.stats().executed("detach_payment_method"), 1);
    let deleted = server.delete(&format!("/v1/payments/cards/{new_card}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(server.stats().calls("detach_payment_method"), 1);
    server.stop().await;
}
