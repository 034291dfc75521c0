//! [`Wire`]: makes the generated document describe what is sent. Every 2xx
//! JSON body is wrapped in the success envelope, and every status an
//! operation can answer is documented with the error envelope.
//!
//! The annotations on the handlers state what is particular to each route
//! (parameters, the request and 2xx body, statuses their own checks answer).
//! What follows from the shared machinery is added here, from the operation's
//! shape: authentication (401, 403, 429), a JSON body (400, 408, 413, 415), path ids
//! (404), query strings (400), `Idempotency-Key` on authenticated POSTs (400,
//! 422). What the shape does not show (storage, provider calls, a route's own
//! conflicts) comes from [`ANSWERS`], one row per operation; a test keeps that
//! table and the documented operations in step. Request examples and links
//! between operations come from `examples`.

use std::collections::{BTreeMap, BTreeSet};

use utoipa::openapi::content::Content;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{PathItem, Ref, RefOr, Required};
use utoipa::Modify;

use super::examples;
use crate::app::idempotency::HEADER as IDEMPOTENCY_HEADER;

/// What makes an operation answer a status its shape does not show.
#[derive(Clone, Copy)]
pub(super) enum Cause {
    /// It reads or writes the database: 500, and 503 while the database is busy.
    Store,
    /// It calls a payment provider, whose errors map to 400 (invalid request),
    /// 402 (declined), 404, 409 (unexpected state, or
    /// `provider_account_unavailable`: the account the payment or card was
    /// made on is gone), 422 (amount), 429, 502
    /// (unexpected answer) and 503 (unavailable); see `ApiError: From<ProviderError>`.
    Provider,
    /// A status of the route's own, with what it means there.
    Own(u16, &'static str),
    /// Its 2xx body is sent as it is, not in the success envelope.
    Bare,
}

use Cause::{Bare, Own, Provider, Store};

/// Every documented operation, with what its shape does not tell.
pub(super) const ANSWERS: &[(&str, &str, &[Cause])] = &[
    (
        "post",
        "/v1/payments",
        &[
            Store,
            Provider,
            Own(404, "No such saved card (`saved_card_id`)"),
            Own(409, "Another request with this Idempotency-Key is in progress (`idempotency_key_in_use`)"),
            Own(503, "The provider could not be reached before the intent was known: retry with the same Idempotency-Key (the error names the written-ahead `payment_id`)"),
        ],
    ),
    ("get", "/v1/payments", &[Store]),
    // A pending payment is refreshed from its provider (errors there are
    // logged; the stored state is shown), once the provider is looked up.
    (
        "get",
        "/v1/payments/{id}",
        &[
            Store,
            Own(400, "The payment's provider is no longer available"),
            Own(409, "The provider account the payment was made on is gone (`provider_account_unavailable`)"),
        ],
    ),
    (
        "post",
        "/v1/payments/{id}/confirm",
        &[Store, Provider, Own(409, "Not confirmable, or an earlier call's outcome is still unknown (`payment_outcome_unknown`)")],
    ),
    (
        "post",
        "/v1/payments/{id}/capture",
        &[Store, Provider, Own(409, "Not awaiting capture, or an earlier call's outcome is still unknown (`payment_outcome_unknown`)")],
    ),
    (
        "post",
        "/v1/payments/{id}/cancel",
        &[Store, Provider, Own(409, "Already captured or canceled, or an earlier call's outcome is still unknown (`payment_outcome_unknown`)")],
    ),
    ("get", "/v1/payments/{id}/wait", &[Store]),
    ("get", "/v1/payments/{id}/timeline", &[Store]),
    ("get", "/v1/payments/{id}/events", &[Store]),
    ("post", "/v1/payments/cards", &[Store, Provider]),
    ("get", "/v1/payments/cards", &[Store]),
    ("delete", "/v1/payments/cards/{id}", &[Store, Provider]),
    (
        "post",
        "/v1/refunds",
        &[Store, Provider, Own(404, "No such payment (`payment_id`)")],
    ),
    ("get", "/v1/refunds/{id}", &[Store]),
    (
        "get",
        "/v1/merchant",
        &[Store, Own(404, "The merchant no longer exists")],
    ),
    ("put", "/v1/merchant/providers", &[Store]),
    ("put", "/v1/merchant/webhook", &[Store]),
    ("get", "/v1/merchant/webhook", &[Store]),
    ("delete", "/v1/merchant/webhook", &[Store]),
    ("post", "/v1/merchant/api_keys", &[Store]),
    ("get", "/v1/merchant/api_keys", &[Store]),
    ("delete", "/v1/merchant/api_keys/{id}", &[Store]),
    (
        "post",
        "/v1/webhooks/{provider}",
        &[
            Store,
            Own(408, "The body did not arrive within the body deadline; the connection is closed"),
            Own(413, "The body exceeds the webhook size limit"),
            Own(415, "Not JSON"),
        ],
    ),
    (
        "post",
        "/v1/webhooks/{provider}/{merchant_id}",
        &[
            Store,
            Own(408, "The body did not arrive within the body deadline; the connection is closed"),
            Own(413, "The body exceeds the webhook size limit"),
            Own(415, "Not JSON"),
        ],
    ),
    ("get", "/v1/webhook-deliveries", &[Store]),
    ("get", "/v1/webhook-deliveries/{id}", &[Store]),
    (
        "post",
        "/v1/webhook-deliveries/{id}/retry",
        &[Store, Own(409, "The delivery is still pending, or its endpoint was deleted (`endpoint_deleted`)")],
    ),
    ("get", "/v1/events", &[Store]),
    ("get", "/v1/events/{id}", &[Store]),
    (
        "get",
        "/v1/events/stream",
        &[
            Store,
            Own(404, "No such webhook endpoint (`endpoint`), or no such event to resume after (`after`, `Last-Event-ID`)"),
        ],
    ),
    (
        "post",
        "/v1/events/{id}/resend",
        &[
            Store,
            Own(404, "No such event, or no such webhook endpoint (`endpoint_id`)"),
            Own(409, "No enabled endpoint receives this event type (`no_matching_endpoint`), or another request with this Idempotency-Key is in progress"),
        ],
    ),
    (
        "post",
        "/v1/webhook-endpoints",
        &[
            Store,
            Own(409, "The merchant has 16 endpoints already (`too_many_endpoints`), or another request with this Idempotency-Key is in progress"),
        ],
    ),
    ("get", "/v1/webhook-endpoints", &[Store]),
    ("get", "/v1/webhook-endpoints/{id}", &[Store]),
    ("patch", "/v1/webhook-endpoints/{id}", &[Store]),
    ("delete", "/v1/webhook-endpoints/{id}", &[Store]),
    (
        "post",
        "/v1/webhook-endpoints/{id}/rotate-secret",
        &[Store, Own(409, "Another request with this Idempotency-Key is in progress")],
    ),
    ("get", "/healthz", &[]),
    ("get", "/readyz", &[Own(503, "The database is not available")]),
    ("get", "/metrics", &[]),
    ("get", "/openapi.json", &[Bare]),
];

/// What a status means when the operation gives no reason of its own.
fn generic_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid request: a parameter, the JSON body or the Idempotency-Key is wrong",
        401 => "Missing, unknown or revoked API key",
        402 => "Declined by the provider; a declined payment is stored (see `payment_id`)",
        403 => "The API key lacks the scope this operation needs",
        404 => "No such object for this merchant",
        408 => "The request body did not arrive within the body deadline; the connection is closed",
        409 => "The object's state does not allow this, or the provider refused a concurrent change",
        413 => "The request body exceeds the size limit",
        415 => "The body must be sent with Content-Type: application/json",
        422 => "Well-formed but not possible: an amount over what remains, or an Idempotency-Key reused with another request",
        429 => "Too many requests for this merchant (all its keys together), too many invalid API keys from this address, too many open event streams and long polls (or too many to the provider); see Retry-After",
        500 => "Internal error; the details are logged, never sent",
        502 => "The provider answered unexpectedly",
        503 => "The database is busy or the provider is unavailable; retry",
        _ => "Error",
    }
}

/// Every status `operation` can answer besides its 2xx, with the reasons
/// particular to it (an empty reason: the generic one).
fn error_statuses(method: &str, path: &str, operation: &Operation) -> BTreeMap<u16, &'static str> {
    let mut statuses = BTreeMap::new();
    let mut add = |status: u16, why: &'static str| {
        let entry = statuses.entry(status).or_insert(why);
        if entry.is_empty() {
            *entry = why;
        }
    };
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if secured {
        // Authentication reads the key from the database (a cache aside).
        for status in [401, 403, 429, 500, 503] {
            add(status, "");
        }
    }
    if operation.request_body.is_some() {
        for status in [400, 408, 413, 415] {
            add(status, "");
        }
    }
    let params = operation.parameters.as_deref().unwrap_or_default();
    if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        add(404, "");
    }
    if params.iter().any(|p| p.parameter_in == ParameterIn::Query) {
        add(400, "");
    }
    if idempotent(method, operation) {
        add(400, "");
        add(422, "");
    }
    for cause in causes(method, path) {
        match *cause {
            Store => {
                add(500, "");
                add(503, "");
            }
            Provider => {
                for status in [400, 402, 404, 409, 422, 429, 502, 503] {
                    add(status, "");
                }
            }
            Own(status, why) => add(status, why),
            Bare => {}
        }
    }
    statuses
}

/// Authenticated POSTs take an `Idempotency-Key`.
fn idempotent(method: &str, operation: &Operation) -> bool {
    method == "post" && operation.security.as_ref().is_some_and(|s| !s.is_empty())
}

fn causes(method: &str, path: &str) -> &'static [Cause] {
    ANSWERS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map_or(&[], |(_, _, causes)| causes)
}

/// `{"success": true, "data": <data>}`.
fn success_envelope(data: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([true]))
                .description(Some("Always `true`.")),
        )
        .required("success")
        .property("data", data)
        .required("data")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .into()
}

fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorEnvelope")))
}

pub(super) const JSON: &str = "application/json";

/// Makes the document describe what is sent (see the module comment).
pub(super) struct Wire;

impl Modify for Wire {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                document_operation(method, path, operation);
            }
        }
        unique_operation_ids(openapi);
        examples::add(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else {
                continue;
            };
            // Every struct's fields are documented: a field the server sends
            // and the document omits is a mismatch, not an extension.
            if !object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            if name == "ErrorEnvelope" {
                if let Some(RefOr::T(Schema::Object(success))) = object.properties.get_mut("success") {
                    success.enum_values = Some(vec![false.into()]);
                }
            }
        }
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "Your API key; `Authorization: Bearer <key>` works too.",
            ))),
        );
    }
}

pub(super) fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
}

fn document_operation(method: &str, path: &str, operation: &mut Operation) {
    let replays = idempotent(method, operation);
    let enveloped = !causes(method, path).iter().any(|cause| matches!(cause, Bare));
    if replays {
        add_idempotency_key(operation);
    }
    let statuses = error_statuses(method, path, operation);
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if status.starts_with('2') {
            let json = response.content.get_mut(JSON).filter(|_| enveloped);
            if let Some(content) = json {
                if let Some(schema) = content.schema.take() {
                    content.schema = Some(success_envelope(schema));
                }
            }
            if replays {
                response.headers.insert(
                    "Idempotent-Replayed".to_owned(),
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["true"])),
                        )
                        .description(Some(
                            "Present on a stored response replayed for a repeated Idempotency-Key",
                        ))
                        .build(),
                );
            }
        } else if response.content.is_empty() {
            response.content.insert(JSON.to_owned(), error_content());
        }
    }
    for (status, why) in statuses {
        let description = if why.is_empty() {
            generic_description(status)
        } else {
            why
        };
        let entry = responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
        let RefOr::T(response) = entry else { continue };
        if response.content.is_empty() {
            response.content.insert(JSON.to_owned(), error_content());
        }
        if status == 429 {
            response.headers.insert(
                "Retry-After".to_owned(),
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying"))
                    .build(),
            );
        }
    }
}

/// Documents the `Idempotency-Key` header where the annotation does not.
fn add_idempotency_key(operation: &mut Operation) {
    let params = operation.parameters.get_or_insert_with(Vec::new);
    if params
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER))
    {
        return;
    }
    params.push(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes the request safe to retry: a repeat with the same key and body replays the stored response",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    );
}

/// Operation ids the annotations share (several handlers are named `get`,
/// `create`, `list`) get their tag in front, so every id is unique.
fn unique_operation_ids(openapi: &mut utoipa::openapi::OpenApi) {
    let mut seen = BTreeMap::<String, usize>::new();
    for item in openapi.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    let shared: BTreeSet<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect();
    for item in openapi.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            let Some(id) = &operation.operation_id else {
                continue;
            };
            if !shared.contains(id) {
                continue;
            }
            let tag = operation.tags.as_ref().and_then(|tags| tags.first());
            if let Some(tag) = tag {
                operation.operation_id = Some(format!("{tag}_{id}"));
            }
        }
    }
}
