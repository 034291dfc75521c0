//! Request examples and the links between operations: what a client (or a
//! contract tester such as schemathesis) sends first, and where the ids an
//! answer carries can be used next.

use serde_json::{json, Value};
use utoipa::openapi::content::Content;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Required};

use super::wire::{operations, JSON};

/// Request bodies the operation accepts, named, with a summary, per operation.
fn request_examples(method: &str, path: &str) -> Vec<(&'static str, &'static str, Value)> {
    match (method, path) {
        ("post", "/v1/payments") => vec![
            (
                "charge",
                "Charge a card at once",
                json!({"amount": "50.00", "currency": "USD", "payment_method": "pm_card_visa", "order_id": "order-123"}),
            ),
            (
                "authorize",
                "Authorize now, capture later",
                json!({"amount": "80.00", "currency": "EUR", "payment_method": "pm_card_mastercard",
                       "capture_method": "manual"}),
            ),
            (
                "declined",
                "A card the issuer declines (402; the failed payment is stored)",
                json!({"amount": "20.00", "currency": "USD", "payment_method": "pm_card_chargeDeclined"}),
            ),
        ],
        ("post", "/v1/payments/{id}/confirm") => {
            vec![(
                "confirm",
                "Confirm with a card",
                json!({"payment_method": "pm_card_visa"}),
            )]
        }
        ("post", "/v1/payments/{id}/capture") => vec![
            ("all", "Capture everything authorized", json!({})),
            (
                "part",
                "Capture part; the rest is released",
                json!({"amount": "30.00"}),
            ),
        ],
        ("post", "/v1/payments/{id}/cancel") => {
            vec![("cancel", "Cancel", json!({"reason": "requested_by_customer"}))]
        }
        ("post", "/v1/payments/cards") => vec![(
            "save",
            "Save a card for a customer",
            json!({"payment_method_id": "pm_card_visa", "customer_email": "jane@example.com",
                   "customer_name": "Jane Doe"}),
        )],
        ("post", "/v1/refunds") => vec![
            (
                "full",
                "Refund everything",
                json!({"payment_id": "01a233ba-4488-7435-89ca-a14c71ac7096"}),
            ),
            (
                "partial",
                "Refund part",
                json!({"payment_id": "01a233ba-4488-7435-89ca-a14c71ac7096", "amount": "25.00",
                       "reason": "requested_by_customer"}),
            ),
        ],
        // The mock provider: an example with a Stripe key would have a contract
        // test's payments sent to a Stripe it cannot reach.
        ("put", "/v1/merchant/providers") => vec![(
            "mock",
            "The mock provider, with its own test account for this merchant",
            json!({"provider": "mock", "mock": {"webhook_secret": "whsec_test_secret"}}),
        )],
        ("put", "/v1/merchant/webhook") => vec![(
            "url",
            "Send events to this URL",
            json!({"webhook_url": "https://merchant.example/hooks/gateway"}),
        )],
        ("post", "/v1/merchant/api_keys") => {
            vec![(
                "read_only",
                "A key that only reads payments",
                json!({"scopes": ["payments:read"]}),
            )]
        }
        _ => Vec::new(),
    }
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

/// Adds the request examples, and the JSON body of the inbound webhooks
/// (read as raw bytes, so no annotation names it).
pub(super) fn add(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            if method == "post" && path.starts_with("/v1/webhooks/") && operation.request_body.is_none() {
                operation.request_body = Some(webhook_body());
            }
            if path.ends_with("/events") {
                event_stream(operation);
            }
            let body = operation.request_body.as_mut();
            let Some(content) = body.and_then(|body| body.content.get_mut(JSON)) else {
                continue;
            };
            for (name, summary, value) in request_examples(method, path) {
                let example = ExampleBuilder::new().summary(summary).value(Some(value)).build();
                content.examples.insert(name.to_owned(), RefOr::T(example));
            }
        }
    }
}

/// The Server-Sent Events stream's media type on its 2xx answer.
fn event_stream(operation: &mut utoipa::openapi::path::Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
            if response.content.is_empty() {
                let text = |description: &'static str| {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(description))
                };
                let schema = ObjectBuilder::new()
                    .description(Some("One Server-Sent Event; the stream ends once the payment settles"))
                    .property("event", text("Always `payment`").enum_values(Some(["payment"])))
                    .required("event")
                    .property("id", text("Milliseconds since the epoch when the event was sent"))
                    .property(
                        "data",
                        text("The payment in the success envelope, as JSON text: `{\"success\": true, \"data\": {…}}`"),
                    )
                    .required("data");
                response
                    .content
                    .insert("text/event-stream".to_owned(), Content::new(Some(schema)));
            }
        }
    }
}

/// A provider's event, verified on the raw bytes with the provider's
/// signature header (`Stripe-Signature`).
fn webhook_body() -> RequestBody {
    let schema = ObjectBuilder::new()
        .description(Some("The provider's event, exactly as the provider sends it"))
        .build();
    let mut content = Content::new(Some(schema));
    let event = json!({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_1", "object": "payment_intent"}}});
    let example = ExampleBuilder::new()
        .summary("A Stripe event (it needs a valid Stripe-Signature)")
        .value(Some(event))
        .build();
    content.examples.insert("stripe".to_owned(), RefOr::T(example));
    RequestBodyBuilder::new()
        .description(Some(
            "The event, signed by the provider; refused (400) unless the signature verifies",
        ))
        .content(JSON, content)
        .required(Some(Required::True))
        .build()
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
        assert_eq!(
            create["examples"]["charge"]["value"]["payment_method"],
            "pm_card_visa"
        );
        let webhook = &doc["paths"]["/v1/webhooks/{provider}"]["post"]["requestBody"]["content"][JSON];
        assert!(webhook["examples"].get("stripe").is_some());
    }
}
