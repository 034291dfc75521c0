//! The OpenAPI document, generated from the route annotations and types.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::http::routes::{cards, live, merchant, payments, refunds, webhooks};

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

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Your API key; `Authorization: Bearer <key>` works too.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gateway API",
        description = "Payments through pluggable providers. Every response is \
            {\"success\": true, \"data\": …} or {\"success\": false, \"error\": {\"code\", \"message\", \
            \"decline_code\"?, \"param\"?}}. Every POST accepts an Idempotency-Key header."
    ),
    paths(
        payments::create, payments::get, payments::list, payments::confirm, payments::capture,
        payments::cancel, cards::create, cards::list, cards::delete, refunds::create, refunds::get,
        merchant::get, merchant::put_providers, merchant::put_webhook, merchant::get_webhook,
        merchant::create_key, merchant::list_keys, merchant::revoke_key, live::wait, live::events,
        webhooks::receive_global, webhooks::receive_merchant, webhooks::list_deliveries,
        webhooks::get_delivery, webhooks::retry_delivery
    ),
    components(schemas(ErrorEnvelope, ApiErrorObject)),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "payments", description = "Create, confirm, capture, cancel and list payments"),
        (name = "cards", description = "Saved cards for off-session charges"),
        (name = "refunds", description = "Full and partial refunds"),
        (name = "merchant", description = "Merchant configuration and API keys"),
        (name = "webhooks", description = "Inbound provider webhooks and outbound merchant deliveries")
    )
)]
struct ApiDoc;

/// The document as JSON, built once.
pub(crate) fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
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
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
        assert!(doc["components"]["schemas"].get("PaymentView").is_some());
        assert!(doc["components"]["schemas"].get("ErrorEnvelope").is_some());
    }
}
