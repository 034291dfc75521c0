//! Payments through the HTTP server: create, read, list, confirm, capture,
//! cancel, 3-D Secure, declines, and bad input that stores nothing.

use awc::http::StatusCode;
use gateway_core::IntentStatus;

use crate::common::{payment_body, TestServer};

#[actix_web::test]
async fn create_and_read_a_payment() {
    let server = TestServer::start().await;
    let body = r#"{"amount": 50.00, "currency": "usd", "provider": "mock", "payment_method": "pm_card_visa",
        "return_url": "https://merchant.com/return", "metadata": {"cart": "c-9"}, "order_id": "order-123",
        "description": "Two mugs", "customer_email": "jane@example.com"}"#;
    let payment = server.pay(body).await;
    assert_eq!(payment["amount"], "50.00");
    assert_eq!(payment["currency"], "USD");
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["intent_status"], "succeeded");
    assert_eq!(payment["provider"], "mock");
    assert!(payment["provider_ref"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(payment["order_id"], "order-123");
    assert_eq!(payment["metadata"]["cart"], "c-9");
    assert_eq!(payment["customer_email"], "jane@example.com");
    assert!(
        payment.get("client_secret").is_none(),
        "no client secret once paid"
    );
    let id = payment["id"].as_str().unwrap();
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data(), &payment);
    assert!(read.request_id.unwrap().starts_with("req_"));
    // Amounts as strings, and currencies with other exponents, are exact.
    let jpy = server
        .pay(r#"{"amount": "1500", "currency": "JPY", "payment_method": "pm_card_visa"}"#)
        .await;
    assert_eq!(jpy["amount"], "1500");
    let kwd = server
        .pay(r#"{"amount": 1.230, "currency": "KWD", "payment_method": "pm_card_visa"}"#)
        .await;
    assert_eq!(kwd["amount"], "1.230");
    let cents = server.pay(&payment_body("0.50", "pm_card_visa", "")).await;
    assert_eq!(cents["amount"], "0.50");
    // What Stripe would refuse (a last digit other than 0, under the minimum) is a 400.
    for (body, code) in [
        (
            r#"{"amount": 1.234, "currency": "KWD", "payment_method": "pm_card_visa"}"#,
            "invalid_charge_amount",
        ),
        (
            r#"{"amount": 0.10, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            "amount_too_small",
        ),
    ] {
        let refused = server.post("/v1/payments", body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        assert_eq!(refused.code(), code);
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_decline_is_402_with_the_decline_code_and_the_failed_payment_is_stored() {
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/v1/payments",
            &payment_body("20.00", "pm_card_chargeDeclinedInsufficientFunds", ""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(reply.code(), "card_declined");
    assert_eq!(reply.body["error"]["decline_code"], "insufficient_funds");
    let id = reply.body["error"]["payment_id"].as_str().unwrap().to_owned();
    let payment = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(payment.data()["status"], "failed");
    assert_eq!(payment.data()["last_error"]["decline_code"], "insufficient_funds");
    for (method, code) in [
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc"),
        ("pm_card_declined", "card_declined"),
    ] {
        let reply = server
            .post("/v1/payments", &payment_body("5.00", method, ""))
            .await;
        assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{method}");
        assert_eq!(reply.code(), code);
    }
    server.stop().await;
}

#[actix_web::test]
async fn client_secret_flow_then_server_confirm() {
    let server = TestServer::start().await;
    let payment = server
        .pay(r#"{"amount": 12.00, "currency": "EUR", "confirm": false}"#)
        .await;
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["intent_status"], "requires_payment_method");
    let secret = payment["client_secret"].as_str().unwrap();
    assert!(secret.starts_with(payment["provider_ref"].as_str().unwrap()));
    let id = payment["id"].as_str().unwrap();
    // Confirming without a payment method is refused before the provider is called.
    let reply = server.post(&format!("/v1/payments/{id}/confirm"), "{}").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"]["param"], "payment_method");
    let reply = server
        .post(
            &format!("/v1/payments/{id}/confirm"),
            r#"{"payment_method": "pm_card_mastercard"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.data()["status"], "completed");
    assert!(reply.data().get("client_secret").is_none());
    // A completed payment cannot be confirmed or canceled again.
    let again = server
        .post(
            &format!("/v1/payments/{id}/confirm"),
            r#"{"payment_method": "pm_card_visa"}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let cancel = server.post(&format!("/v1/payments/{id}/cancel"), "").await;
    assert_eq!(cancel.status, StatusCode::CONFLICT);
    server.stop().await;
}

#[actix_web::test]
async fn three_d_secure_flow() {
    let server = TestServer::start().await;
    let payment = server
        .pay(&payment_body(
            "75.00",
            "pm_card_threeDSecure2Required",
            r#""return_url": "https://merchant.com/back""#,
        ))
        .await;
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["intent_status"], "requires_action");
    assert_eq!(payment["next_action"]["type"], "redirect_to_url");
    assert_eq!(payment["next_action"]["return_url"], "https://merchant.com/back");
    assert!(payment["next_action"]["redirect_url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert!(payment["client_secret"].is_string());
    let id = payment["id"].as_str().unwrap();
    // The customer authenticates at the provider; the next read shows it.
    let intent = server
        .mock
        .complete_authentication(payment["provider_ref"].as_str().unwrap(), true)
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["status"], "completed");
    assert!(read.data()["next_action"].is_null());
    // A failed authentication shows as failed.
    let payment = server
        .pay(&payment_body("5.00", "pm_card_threeDSecure2Required", ""))
        .await;
    server
        .mock
        .complete_authentication(payment["provider_ref"].as_str().unwrap(), false)
        .unwrap();
    let read = server
        .get(&format!("/v1/payments/{}", payment["id"].as_str().unwrap()))
        .await;
    assert_eq!(read.data()["status"], "failed");
    assert_eq!(
        read.data()["last_error"]["code"],
        "payment_intent_authentication_failure"
    );
    server.stop().await;
}

#[actix_web::test]
async fn partial_capture_then_partial_refunds_up_to_the_total() {
    let server = TestServer::start().await;
    let payment = server
        .pay(&payment_body(
            "100.00",
            "pm_card_visa",
            r#""capture_method": "manual""#,
        ))
        .await;
    assert_eq!(payment["intent_status"], "requires_capture");
    assert_eq!(payment["amount_capturable"], "100.00");
    let id = payment["id"].as_str().unwrap().to_owned();
    // Refunding before capture: nothing paid yet.
    let early = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": 1.00}}"#),
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text);
    // Capturing more than authorized.
    let over = server
        .post(&format!("/v1/payments/{id}/capture"), r#"{"amount": 100.01}"#)
        .await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    let captured = server
        .post(&format!("/v1/payments/{id}/capture"), r#"{"amount": "60.00"}"#)
        .await;
    assert_eq!(captured.status, StatusCode::OK, "{}", captured.text);
    assert_eq!(captured.data()["status"], "completed");
    assert_eq!(captured.data()["amount_received"], "60.00");
    let first = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": 25.00}}"#),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.data()["amount"], "25.00");
    assert_eq!(first.data()["status"], "completed");
    assert!(first.data()["provider_ref"].as_str().unwrap().starts_with("re_"));
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["status"], "partially_refunded");
    assert_eq!(read.data()["amount_refunded"], "25.00");
    // More than the 35.00 that remains.
    let over = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": 35.01}}"#),
        )
        .await;
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(over.code(), "amount_too_large");
    let second = server
        .post(
            "/v1/refunds",
            &format!(r#"{{"payment_id": "{id}", "amount": "10.00"}}"#),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    // No amount: the rest (25.00).
    let rest = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(rest.data()["amount"], "25.00");
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["status"], "refunded");
    assert_eq!(read.data()["amount_refunded"], "60.00");
    let none_left = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(none_left.status, StatusCode::UNPROCESSABLE_ENTITY);
    let refund_id = first.data()["id"].as_str().unwrap();
    let refund = server.get(&format!("/v1/refunds/{refund_id}")).await;
    assert_eq!(refund.data()["payment_id"], id.as_str());
    assert_eq!(server.get("/v1/refunds/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.stats().executed("create_refund"), 3);
    server.stop().await;
}

#[actix_web::test]
async fn cancel_an_authorization() {
    let server = TestServer::start().await;
    let payment = server
        .pay(&payment_body(
            "40.00",
            "pm_card_visa",
            r#""capture_method": "manual""#,
        ))
        .await;
    let id = payment["id"].as_str().unwrap();
    let bad = server
        .post(&format!("/v1/payments/{id}/cancel"), r#"{"reason": "bored"}"#)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let canceled = server
        .post(
            &format!("/v1/payments/{id}/cancel"),
            r#"{"reason": "requested_by_customer"}"#,
        )
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    assert_eq!(canceled.data()["status"], "canceled");
    assert_eq!(canceled.data()["cancellation_reason"], "requested_by_customer");
    let capture = server.post(&format!("/v1/payments/{id}/capture"), "").await;
    assert_eq!(capture.status, StatusCode::CONFLICT);
    let refund = server
        .post("/v1/refunds", &format!(r#"{{"payment_id": "{id}"}}"#))
        .await;
    assert_eq!(refund.status, StatusCode::CONFLICT);
    server.stop().await;
}

#[actix_web::test]
async fn list_filters_and_cursor_pagination() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for (amount, currency) in [
        ("10.00", "USD"),
        ("150.00", "USD"),
        ("99.99", "EUR"),
        ("250.00", "USD"),
        ("5.00", "EUR"),
    ] {
        let body =
            format!(r#"{{"amount": {amount}, "currency": "{currency}", "payment_method": "pm_card_visa"}}"#);
        ids.push(server.pay(&body).await["id"].as_str().unwrap().to_owned());
    }
    server
        .post(
            "/v1/payments",
            &payment_body("7.00", "pm_card_chargeDeclined", ""),
        )
        .await;
    let ids_of = |reply: &crate::common::Reply| -> Vec<String> {
        reply.data()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = server.get("/v1/payments?status=completed").await;
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(ids_of(&all), newest_first);
    let usd_big = server
        .get("/v1/payments?provider=mock&status=completed&min_amount=100&currency=USD")
        .await;
    assert_eq!(ids_of(&usd_big), vec![ids[3].clone(), ids[1].clone()]);
    let range = server.get("/v1/payments?min_amount=10&max_amount=99.99").await;
    assert_eq!(ids_of(&range), vec![ids[2].clone(), ids[0].clone()]);
    let failed = server.get("/v1/payments?status=failed").await;
    assert_eq!(ids_of(&failed).len(), 1);
    let future = server.get("/v1/payments?since=2999-01-01T00:00:00Z").await;
    assert!(ids_of(&future).is_empty());
    let past = server.get("/v1/payments?until=2000-01-01T00:00:00Z").await;
    assert!(ids_of(&past).is_empty());
    let recent = server
        .get("/v1/payments?since=2020-01-01T00:00:00Z&status=completed")
        .await;
    assert_eq!(ids_of(&recent).len(), 5);
    // Pages of two, stable order, no repeats.
    let mut seen = Vec::new();
    let mut path = "/v1/payments?status=completed&limit=2".to_owned();
    loop {
        let page = server.get(&path).await;
        seen.extend(ids_of(&page));
        if page.data()["has_more"] != true {
            assert!(page.data()["next_cursor"].is_null());
            break;
        }
        let cursor = page.data()["next_cursor"].as_str().unwrap();
        path = format!("/v1/payments?status=completed&limit=2&cursor={cursor}");
    }
    assert_eq!(seen, newest_first);
    for bad in [
        "/v1/payments?status=lost",
        "/v1/payments?currency=ZZZ",
        "/v1/payments?min_amount=-1",
        "/v1/payments?since=yesterday",
        "/v1/payments?limit=0",
        "/v1/payments?limit=1000",
        "/v1/payments?cursor=unknown",
        "/v1/payments?colour=red",
    ] {
        let reply = server.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.text);
        assert_eq!(reply.body["success"], false);
    }
    server.stop().await;
}

#[actix_web::test]
async fn bad_input_gets_the_right_status_and_stores_nothing() {
    let server = TestServer::start().await;
    let cases: &[(&str, StatusCode, &str)] = &[
        (
            "{\"amount\": 50.00, \"currency\": \"USD\",",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        ("not json", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            r#"{"amount": 50.00, "currency": "USD", "payment_method": "pm_card_visa", "colour": "red"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_unknown",
        ),
        (
            r#"{"currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_missing",
        ),
        (
            r#"{"amount": 50.00, "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_missing",
        ),
        (
            r#"{"amount": 50.001, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 1.5, "currency": "JPY", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 0, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": -5, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 1e3, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": "abc", "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": true, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 99999999999999999999999, "currency": "USD", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "ZZZ", "payment_method": "pm_card_visa"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_missing",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "provider": "acme"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "return_url": "javascript:alert(1)"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "customer_email": "nope"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "capture_method": "later"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "saved_card_id": "nope"}"#,
            StatusCode::NOT_FOUND,
            "resource_missing",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "saved_card_id": "x"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (
            r#"{"amount": 5, "currency": "USD", "payment_method": "pm_card_visa", "confirm": "yes"}"#,
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
        ),
        (r#"[1, 2]"#, StatusCode::BAD_REQUEST, "parameter_invalid"),
    ];
    for (body, status, code) in cases {
        let reply = server.post("/v1/payments", body).await;
        assert_eq!(reply.status, *status, "{body}: {}", reply.text);
        assert_eq!(reply.code(), *code, "{body}");
    }
    let position = server
        .post("/v1/payments", "{\"amount\": 5,\n  \"currency\": }")
        .await;
    assert!(
        position.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{}",
        position.text
    );
    let unknown = server
        .post(
            "/v1/payments",
            &payment_body("5", "pm_card_visa", r#""colour": 1"#),
        )
        .await;
    assert_eq!(unknown.body["error"]["param"], "colour");
    // Wrong content type, a body over the limit.
    let plain = server
        .send(
            "POST",
            "/v1/payments",
            Some(&server.key),
            &[("Content-Type", "text/plain")],
            Some(&payment_body("5", "pm_card_visa", "")),
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(plain.code(), "unsupported_media_type");
    let huge = payment_body(
        "5",
        "pm_card_visa",
        &format!(r#""description": "{}""#, "x".repeat(20_000)),
    );
    let too_big = server.post("/v1/payments", &huge).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.code(), "body_too_large");
    assert_eq!(server.payment_count().await, 0, "nothing stored");
    assert_eq!(
        server.stats().calls("create_intent"),
        0,
        "the provider was never called"
    );
    // Unknown payments, unknown routes, wrong methods: all in the envelope.
    assert_eq!(
        server.get("/v1/payments/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let long_id = "x".repeat(500);
    assert_eq!(
        server.get(&format!("/v1/payments/{long_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let route = server.get("/v2/whatever").await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.code(), "route_not_found");
    let method = server
        .send("PATCH", "/v1/payments", Some(&server.key), &[], None)
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.code(), "method_not_allowed");
    server.stop().await;
}

#[actix_web::test]
async fn provider_outages_are_503_and_rate_limits_429() {
    let server = TestServer::start().await;
    server.mock.inject_fault(gateway_core::mock::Fault::Unavailable);
    let reply = server
        .post("/v1/payments", &payment_body("5", "pm_card_visa", ""))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "provider_unavailable");
    server.mock.inject_fault(gateway_core::mock::Fault::RateLimited);
    let reply = server
        .post("/v1/payments", &payment_body("5", "pm_card_visa", ""))
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    // The first payment was written ahead and waits for a retry or resolution (the provider
    // may have created its intent, unconfirmed); the rate-limited one was not processed at all.
    let listed = server.get("/v1/payments").await;
    let rows = listed.data()["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{}", listed.text);
    assert!(rows
        .iter()
        .all(|row| row["awaiting_provider"] == true && row["provider_ref"] == ""));
    assert_eq!(server.stats().charges_made, 0);
    server.stop().await;
}

#[actix_web::test]
async fn every_405_names_the_methods_the_resource_allows() {
    let server = TestServer::start().await;
    let client = awc::Client::default();
    for (method, path, allow) in [
        ("PATCH", "/v1/payments", "POST, GET"),
        ("DELETE", "/v1/payments/pay_1", "GET"),
        ("GET", "/v1/payments/pay_1/capture", "POST"),
        ("POST", "/v1/payments/cards/card_1", "DELETE"),
        ("PATCH", "/v1/merchant/webhook", "PUT, GET, DELETE"),
        ("PUT", "/v1/merchant/api_keys", "POST, GET"),
        ("GET", "/v1/webhook-deliveries/evt_1/retry", "POST"),
        ("GET", "/v1/webhooks/mock", "POST"),
        ("POST", "/healthz", "GET"),
    ] {
        let mut response = client
            .request(
                awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(path),
            )
            .insert_header(("X-API-Key", server.key.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            response.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["success"], false, "{method} {path}");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method} {path}");
        assert_eq!(
            body["error"]["message"],
            format!("{method} is not allowed on {path}"),
            "{method} {path}"
        );
    }
    // A method the resource answers gets no Allow header.
    let mut ok = client
        .get(server.url("/v1/payments"))
        .insert_header(("X-API-Key", server.key.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers().get("allow").is_none());
    let _ = ok.body().await;
    server.stop().await;
}

#[actix_web::test]
async fn who_is_calling_is_checked_before_what_it_sends() {
    let server = TestServer::start().await;
    let garbage = [("Content-Type", "text/plain"), ("Idempotency-Key", "not a key")];
    let anonymous = server
        .send("POST", "/v1/payments", None, &garbage, Some("{"))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.text);
    assert_eq!(anonymous.code(), "missing_api_key");
    let (_, reader) = server.merchant("payments:read").await;
    let long_id = "x".repeat(500);
    let capture = format!("/v1/payments/{long_id}/capture");
    let refused = server
        .send("POST", &capture, Some(&reader), &garbage, Some("{"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.code(), "insufficient_scope");
    let (_, merchant_only) = server.merchant("merchant:read").await;
    let read = server
        .get_as(
            &merchant_only,
            &format!("/v1/payments/{long_id}/wait?timeout=999"),
        )
        .await;
    assert_eq!(read.status, StatusCode::FORBIDDEN, "{}", read.text);
    // With the scope: the body before the path, both before the key, the key
    // before the provider is called.
    let body_first = server.post(&capture, r#"{"amount": 5, "x": 1}"#).await;
    assert_eq!(body_first.status, StatusCode::BAD_REQUEST, "{}", body_first.text);
    assert_eq!(body_first.code(), "parameter_unknown");
    let path_next = server
        .send(
            "POST",
            &capture,
            Some(&server.key),
            &[("Idempotency-Key", "not a key")],
            Some("{}"),
        )
        .await;
    assert_eq!(path_next.status, StatusCode::NOT_FOUND, "{}", path_next.text);
    let bad_body = server
        .send("POST", "/v1/payments", Some(&server.key), &garbage, Some("{"))
        .await;
    assert_eq!(bad_body.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bad_key = server
        .send(
            "POST",
            "/v1/payments",
            Some(&server.key),
            &[("Idempotency-Key", "not a key")],
            Some(&payment_body("5", "pm_card_visa", "")),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.code(), "idempotency_key_invalid");
    assert_eq!(server.stats().calls("create_intent"), 0);
    server.stop().await;
}
