//! Request examples and the links between operations: what a client (or a
//! contract tester such as schemathesis) sends first, and where the ids an
//! answer carries can be used next.

use serde_json::{json, Value};

use super::wire::{operations, JSON};

/// A request body that the operation accepts, per operation.
fn request_example(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/v1/payments") => json!({
            "amount": "50.00",
            "currency": "USD",
            "payment_method": "pm_card_visa",
            "order_id": "order-123"
        }),
        ("post", "/v1/payments/{id}/confirm") => json!({"payment_method": "pm_card_visa"}),
        ("post", "/v1/payments/{id}/capture") => json!({"amount": "30.00"}),
        ("post", "/v1/payments/{id}/cancel") => json!({"reason": "requested_by_customer"}),
        ("post", "/v1/payments/cards") => json!({
            "payment_method_id": "pm_card_visa",
            "customer_email": "jane@example.com",
            "customer_name": "Jane Doe"
        }),
        ("post", "/v1/refunds") => {
            json!({"payment_id": "01a233ba-4488-7435-89ca-a14c71ac7096", "amount": "25.00"})
        }
        ("put", "/v1/merchant/providers") => json!({"provider": "mock", "mock": {}}),
        ("put", "/v1/merchant/webhook") => json!({"webhook_url": "https://merchant.example/hooks/gateway"}),
        ("post", "/v1/merchant/api_keys") => json!({"scopes": ["payments:read"]}),
        _ => return None,
    })
}

/// Where an id in a 2xx answer leads: (from method, from path, link name,
/// to method, to path, what the id fills: a path parameter or a body field).
const LINKS: &[(&str, &str, &str, &str, &str, Fill)] = &[
    (
        "post",
        "/v1/payments",
        "GetPayment",
        "get",
        "/v1/payments/{id}",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments",
        "ConfirmPayment",
        "post",
        "/v1/payments/{id}/confirm",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments",
        "CapturePayment",
        "post",
        "/v1/payments/{id}/capture",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments",
        "CancelPayment",
        "post",
        "/v1/payments/{id}/cancel",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments",
        "RefundPayment",
        "post",
        "/v1/refunds",
        Fill::Body("payment_id"),
    ),
    (
        "post",
        "/v1/payments/{id}/confirm",
        "GetPayment",
        "get",
        "/v1/payments/{id}",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments/{id}/capture",
        "GetPayment",
        "get",
        "/v1/payments/{id}",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments/{id}/capture",
        "RefundPayment",
        "post",
        "/v1/refunds",
        Fill::Body("payment_id"),
    ),
    (
        "post",
        "/v1/payments/{id}/cancel",
        "GetPayment",
        "get",
        "/v1/payments/{id}",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/refunds",
        "GetRefund",
        "get",
        "/v1/refunds/{id}",
        Fill::Path("id"),
    ),
    (
        "post",
        "/v1/payments/cards",
        "DeleteCard",
        "delete",
        "/v1/payments/cards/{id}",
        Fill::Path("id"),
    ),
];

/// What the linked id fills in the next request.
#[derive(Clone, Copy)]
enum Fill {
    Path(&'static str),
    Body(&'static str),
}

/// The id in every success envelope.
const DATA_ID: &str = "$response.body#/data/id";

/// Adds the request examples.
pub(super) fn add(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            let example = request_example(method, path);
            let body = operation.request_body.as_mut();
            if let (Some(example), Some(content)) = (example, body.and_then(|b| b.content.get_mut(JSON))) {
                content.example = Some(example);
            }
        }
    }
}

/// Adds the links to the finished document, as JSON: utoipa's `Link`
/// serializes its fields in snake case (`operation_id`), which OpenAPI
/// readers do not know.
pub(super) fn add_links(doc: &mut Value) {
    for &(method, path, name, to_method, to_path, fill) in LINKS {
        let Some(target) = doc["paths"][to_path][to_method]["operationId"].as_str() else {
            continue;
        };
        let mut link = json!({ "operationId": target });
        match fill {
            Fill::Path(param) => link["parameters"] = json!({ param: DATA_ID }),
            Fill::Body(field) => link["requestBody"] = json!({ field: DATA_ID }),
        }
        let Some(responses) = doc["paths"][path][method]["responses"].as_object_mut() else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            if status.starts_with('2') {
                response["links"][name] = link.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_joins_documented_operations() {
        let doc: Value = serde_json::from_str(super::super::document()).unwrap();
        let mut found = 0;
        for &(method, path, name, to_method, to_path, _) in LINKS {
            let link = &doc["paths"][path][method]["responses"]["200"]["links"][name];
            let target = doc["paths"][to_path][to_method]["operationId"].as_str();
            assert_eq!(link["operationId"].as_str(), target, "{method} {path} → {name}");
            assert!(target.is_some(), "{to_method} {to_path} is not documented");
            found += 1;
        }
        assert_eq!(found, LINKS.len());
        let create = &doc["paths"]["/v1/payments"]["post"]["requestBody"]["content"][JSON];
        assert_eq!(create["example"]["payment_method"], "pm_card_visa");
    }
}
