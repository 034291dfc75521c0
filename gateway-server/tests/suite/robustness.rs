//! Hostile input never breaks the server: every answer is an envelope and the
//! server keeps serving.

use crate::common::{payment_body, TestServer};

#[actix_web::test]
async fn hostile_bodies_get_envelopes_on_every_post_route() {
    let server = TestServer::start().await;
    let payment = server
        .pay(&payment_body(
            "5",
            "pm_card_visa",
            r#""capture_method": "manual""#,
        ))
        .await;
    let id = payment["id"].as_str().unwrap();
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(3000), "}".repeat(3000));
    let bodies = [
        "",
        " ",
        "null",
        "0",
        "\"string\"",
        "{}",
        "{\"amount\": null}",
        "{\"amount\": {}}",
        "{\"amount\": 1e999999, \"currency\": \"USD\"}",
        "{\"amount\": 123456789012345678901234567890.123, \"currency\": \"USD\"}",
        "{\"amount\": \"\u{0}\", \"currency\": \"\u{0}\"}",
        "{\"amount\": \"٣\", \"currency\": \"USD\", \"payment_method\": \"pm_card_visa\"}",
        "{\"payment_id\": \"\u{1F4B8}\"}",
        "{\"scopes\": [1, 2, 3]}",
        "{\"amount\": 1, \"amount\": 2}",
        "\u{feff}{}",
        &nested,
        &deep_object,
    ];
    let routes = [
        "/v1/payments".to_owned(),
        format!("/v1/payments/{id}/confirm"),
        format!("/v1/payments/{id}/capture"),
        format!("/v1/payments/{id}/cancel"),
        "/v1/payments/cards".to_owned(),
        "/v1/refunds".to_owned(),
        "/v1/merchant/api_keys".to_owned(),
    ];
    for route in &routes {
        for body in &bodies {
            let reply = server.post(route, body).await;
            assert!(
                reply.status.is_client_error() || reply.status.is_success(),
                "{route} {body:.40}: {} {}",
                reply.status,
                reply.text
            );
            assert!(
                reply.body["success"].is_boolean(),
                "{route} {body:.40}: {}",
                reply.text
            );
        }
        for (name, value) in [
            ("Content-Type", "application/json; charset=\"x"),
            ("Idempotency-Key", "é"),
        ] {
            let reply = server
                .send("POST", route, Some(&server.key), &[(name, value)], Some("{}"))
                .await;
            assert!(reply.body["success"] == false, "{route} {name}: {}", reply.text);
        }
    }
    for put in ["/v1/merchant/providers", "/v1/merchant/webhook"] {
        for body in &bodies {
            let reply = server.put(put, body).await;
            assert!(
                reply.body["success"].is_boolean(),
                "{put} {body:.40}: {}",
                reply.text
            );
        }
    }
    // Paths that do not decode still answer in the envelope.
    for path in [
        "/v1/payments/%FF%FE",
        "/v1/refunds/%C0",
        "/v1/payments/%00/capture",
    ] {
        let reply = server.send("GET", path, Some(&server.key), &[], None).await;
        assert!(
            reply.body["success"] == false,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        let reply = server
            .send("POST", path, Some(&server.key), &[], Some("{}"))
            .await;
        assert!(
            reply.body["success"] == false,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
    }
    // Still serving (an empty body is a valid full capture, so the payment is captured once).
    let read = server.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(read.data()["intent_status"], "succeeded");
    assert_eq!(server.stats().executed("capture_intent"), 1);
    assert_eq!(server.get("/healthz").await.data()["status"], "ok");
    server.stop().await;
}
