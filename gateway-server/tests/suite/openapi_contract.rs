//! The served `/openapi.json` against the server itself: what schemathesis
//! found (`scripts/schemathesis.sh`), kept as plain tests, and the failures
//! every operation shares answered as documented.

use awc::http::StatusCode;

use crate::common::{payment_body, TestServer};
use serde_json::Value;

/// The documented statuses of `method path`.
fn documented(doc: &Value, method: &str, path: &str) -> Vec<String> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
        .keys()
        .cloned()
        .collect()
}

/// Found by schemathesis: `GET /v1/payments?cursor=` answered 404
/// `resource_missing` (an empty cursor was checked as a path id).
#[actix_web::test]
async fn list_cursors_that_are_not_ids_are_bad_requests() {
    let server = TestServer::start().await;
    let long = "x".repeat(101);
    for path in [
        "/v1/payments?cursor=".to_owned(),
        format!("/v1/payments?cursor={long}"),
        "/v1/webhook-deliveries?cursor=".to_owned(),
        format!("/v1/webhook-deliveries?cursor={long}"),
    ] {
        let reply = server.get(&path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text);
        assert_eq!(reply.code(), "parameter_invalid", "{path}");
        assert_eq!(reply.body["error"]["param"], "cursor", "{path}");
    }
    server.stop().await;
}

/// Without a key, with a key lacking the scope, and with a body that is not
/// JSON, every operation answers a status its documentation lists, in the
/// error envelope; the 2xx it documents is the success envelope.
#[actix_web::test]
async fn shared_failures_are_documented_for_every_operation() {
    let server = TestServer::start().await;
    let doc = server.send("GET", "/openapi.json", None, &[], None).await.body;
    let (_, read_only) = server.merchant("payments:read").await;
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "missing-id")
            .replace("{provider}", "mock")
            .replace("{merchant_id}", "missing-merchant");
        for (method, operation) in item.as_object().unwrap() {
            let statuses = documented(&doc, method, path);
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                let anonymous = server
                    .send(&method.to_uppercase(), &concrete, None, &[], None)
                    .await;
                assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path}");
                assert!(
                    statuses.contains(&"401".to_owned()),
                    "{method} {path}: {statuses:?}"
                );
                assert_eq!(anonymous.body["success"], false);
                let scoped = server
                    .send(&method.to_uppercase(), &concrete, Some(&read_only), &[], None)
                    .await;
                let status = scoped.status.as_str().to_owned();
                assert!(
                    statuses.contains(&status),
                    "{method} {path} answered {status}: {statuses:?}"
                );
            }
            if operation.get("requestBody").is_some() {
                let key = secured.then_some(server.key.as_str());
                let headers = [("Content-Type", "text/plain")];
                let reply = server
                    .send(&method.to_uppercase(), &concrete, key, &headers, Some("amount=5"))
                    .await;
                let status = reply.status.as_str().to_owned();
                assert!(
                    statuses.contains(&status),
                    "{method} {path} answered {status}: {statuses:?}"
                );
                assert_eq!(reply.body["success"], false, "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 29, "only {checked} operations documented");
    let created = server
        .post("/v1/payments", &payment_body("5", "pm_card_visa", ""))
        .await;
    let schema =
        &doc["paths"]["/v1/payments"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(schema["required"], serde_json::json!(["success", "data"]));
    assert_eq!(created.body["success"], true);
    let declined = server
        .post("/v1/payments", &payment_body("5", "pm_card_chargeDeclined", ""))
        .await;
    assert!(documented(&doc, "post", "/v1/payments").contains(&declined.status.as_str().to_owned()));
    server.stop().await;
}
