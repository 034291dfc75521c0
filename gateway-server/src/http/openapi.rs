//! The OpenAPI document, generated from the route annotations and types, then
//! made to match the wire by [`wire::Wire`] (see there).

mod examples;
mod wire;

use std::sync::OnceLock;

use utoipa::{OpenApi, ToSchema};

use crate::http::routes::{
    cards, event_stream, events, live, merchant, ops, payments, refunds, webhook_endpoints, webhooks,
};
use wire::Wire;

/// The error object of every failure.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ApiErrorObject {
    /// Machine-readable: `parameter_invalid`, `card_declined`, `insufficient_scope`, …
    code: String,
    /// What went wrong, for people.
    message: String,
    /// The issuer's reason on a decline (`insufficient_funds`, …).
    decline_code: Option<String>,
    /// The request parameter or header at fault.
    param: Option<String>,
    /// The payment a decline concerns (it is stored as failed).
    payment_id: Option<String>,
}

/// `{"success": false, "error": {…}}`: the body of every 4xx and 5xx.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorEnvelope {
    /// Always `false`.
    success: bool,
    error: ApiErrorObject,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gateway API",
        description = "Payments through pluggable providers. Every response is \
            {\"success\": true, \"data\": …} or {\"success\": false, \"error\": {\"code\", \"message\", \
            \"decline_code\"?, \"param\"?}}. Every authenticated POST accepts an Idempotency-Key header."
    ),
    paths(
        payments::create, payments::get, payments::list, payments::confirm, payments::capture,
        payments::cancel, cards::create, cards::list, cards::delete, refunds::create, refunds::get,
        merchant::get, merchant::put_providers, merchant::put_webhook, merchant::get_webhook,
        merchant::delete_webhook,
        merchant::create_key, merchant::list_keys, merchant::revoke_key, live::wait, live::events,
        webhooks::receive_global, webhooks::receive_merchant, webhooks::list_deliveries,
        webhooks::get_delivery, webhooks::retry_delivery, ops::healthz, ops::readyz, ops::metrics,
        ops::openapi,
        payments::timeline,
        events::list, events::get, events::resend, event_stream::stream,
        webhook_endpoints::create, webhook_endpoints::list, webhook_endpoints::get, webhook_endpoints::update,
        webhook_endpoints::delete, webhook_endpoints::rotate_secret
    ),
    components(schemas(ErrorEnvelope, ApiErrorObject)),
    modifiers(&Wire),
    tags(
        (name = "payments", description = "Create, confirm, capture, cancel and list payments"),
        (name = "cards", description = "Saved cards for off-session charges"),
        (name = "refunds", description = "Full and partial refunds"),
        (name = "merchant", description = "Merchant configuration and API keys"),
        (name = "webhooks", description = "Inbound provider webhooks and outbound merchant deliveries"),
        (name = "operations", description = "Liveness, readiness, metrics and this document"),
        (name = "events", description = "Every merchant-visible event, its deliveries, and sending one again"),
        (name = "webhook endpoints", description = "Where events are delivered: URLs, filters, signing secrets")
    )
)]
struct ApiDoc;

/// The document as JSON, built once.
pub(crate) fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        examples::add_links(&mut doc);
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::wire::{ANSWERS, JSON};

    fn doc() -> Value {
        serde_json::from_str(super::document()).unwrap()
    }

    fn each_operation(doc: &Value) -> Vec<(String, String, Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                all.push((method.clone(), path.clone(), operation.clone()));
            }
        }
        all
    }

    #[test]
    fn document_lists_every_route() {
        let doc = doc();
        for path in [
            "/v1/payments",
            "/v1/payments/{id}",
            "/v1/payments/{id}/capture",
            "/v1/payments/cards",
            "/v1/refunds",
            "/v1/merchant/providers",
            "/v1/webhooks/{provider}",
            "/v1/webhook-deliveries",
            "/v1/payments/{id}/wait",
            "/healthz",
            "/readyz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
        assert!(doc["components"]["schemas"].get("PaymentView").is_some());
        assert!(doc["components"]["schemas"].get("ErrorEnvelope").is_some());
    }

    #[test]
    fn the_table_names_exactly_the_documented_operations() {
        let documented: BTreeSet<(String, String)> = each_operation(&doc())
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let table: BTreeSet<(String, String)> = ANSWERS
            .iter()
            .map(|(method, path, _)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(documented, table);
        assert_eq!(table.len(), ANSWERS.len(), "an operation is listed twice");
    }

    #[test]
    fn success_bodies_are_enveloped_and_failures_use_the_error_envelope() {
        for (method, path, operation) in each_operation(&doc()) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(schema) = response["content"].get(JSON).map(|c| &c["schema"]) else {
                    assert!(
                        status.starts_with('2'),
                        "{method} {path} {status} has no JSON body"
                    );
                    continue;
                };
                if path == "/openapi.json" {
                    continue;
                }
                if status.starts_with('2') {
                    assert_eq!(schema["properties"]["success"]["enum"], serde_json::json!([true]));
                    assert_eq!(schema["required"], serde_json::json!(["success", "data"]));
                    assert!(schema["properties"].get("data").is_some(), "{method} {path}");
                } else {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn shared_failures_are_documented_where_they_can_happen() {
        for (method, path, operation) in each_operation(&doc()) {
            let has = |status: &str| operation["responses"].get(status).is_some();
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let params = operation["parameters"].as_array().cloned().unwrap_or_default();
            let path_ids = params.iter().any(|p| p["in"] == "path");
            if secured {
                for status in ["401", "403", "429", "500", "503"] {
                    assert!(has(status), "{method} {path} lacks {status}");
                }
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "408", "413", "415"] {
                    assert!(has(status), "{method} {path} lacks {status}");
                }
            }
            if path_ids {
                assert!(has("404"), "{method} {path} lacks 404");
            }
            if method == "post" && secured {
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key"),
                    "{method} {path} does not document Idempotency-Key"
                );
                assert!(has("422"), "{method} {path} lacks 422");
            }
        }
        let doc = doc();
        let create = &doc["paths"]["/v1/payments"]["post"]["responses"];
        for status in ["402", "409", "502"] {
            assert!(create.get(status).is_some(), "POST /v1/payments lacks {status}");
        }
        assert!(create["429"]["headers"].get("Retry-After").is_some());
        assert!(doc["paths"]["/healthz"]["get"]["responses"].get("500").is_none());
    }

    #[test]
    fn operation_ids_are_unique() {
        let ids: Vec<String> = each_operation(&doc())
            .into_iter()
            .map(|(_, _, operation)| operation["operationId"].as_str().unwrap().to_owned())
            .collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }
}
