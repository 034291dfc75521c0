//! `/v1/webhook-endpoints`: the merchant's webhook endpoints, their filters
//! and signing secrets (shown once, on creation and rotation).

use std::time::Duration;

use actix_web::web;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::app::core::Core;
pub(crate) use crate::app::webhook_endpoints::EndpointView;
use crate::app::webhook_endpoints::{
    self, description, enabled_events, EndpointChange, NewEndpoint, DEFAULT_GRACE, MAX_GRACE,
};
use crate::http::auth::{Auth, MerchantRead, MerchantWrite};
use crate::http::errors::ApiError;
use crate::http::extract::{Json, Success, Validate, WebhookEndpointId};
use crate::http::idempotent::{Idempotent, Replied};

/// The endpoints (`app::lists::List` of [`EndpointView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct EndpointList {
    object: &'static str,
    data: Vec<EndpointView>,
}

/// A URL that is given and not blank; 400 naming `url` otherwise.
fn url_given(url: Option<String>) -> Result<String, ApiError> {
    url.filter(|url| !url.trim().is_empty())
        .ok_or_else(|| ApiError::missing_param("url"))
}

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEndpointRequest {
    /// Where events are sent (required), under the outbound address policy
    /// as `PUT /v1/merchant/webhook`'s URL.
    url: Option<String>,
    /// The event types it receives (default `["*"]`, every type).
    enabled_events: Option<Vec<String>>,
    /// Default true.
    enabled: Option<bool>,
    description: Option<String>,
}

impl Validate for CreateEndpointRequest {
    type Valid = NewEndpoint;

    fn validate(self) -> Result<NewEndpoint, ApiError> {
        Ok(NewEndpoint {
            url: url_given(self.url)?,
            enabled: self.enabled.unwrap_or(true),
            enabled_events: enabled_events(self.enabled_events.unwrap_or_else(|| vec!["*".to_owned()]))?,
            description: self.description.map(description).transpose()?,
        })
    }
}

/// A field that may be absent (outer `None`), null (`Some(None)`) or a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /v1/webhook-endpoints/{id}`: JSON merge semantics, an absent
/// field is unchanged (`description: null` removes the description).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateEndpointRequest {
    url: Option<String>,
    enabled: Option<bool>,
    enabled_events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

impl Validate for UpdateEndpointRequest {
    type Valid = EndpointChange;

    fn validate(self) -> Result<EndpointChange, ApiError> {
        Ok(EndpointChange {
            url: self.url.map(|url| url_given(Some(url))).transpose()?,
            enabled: self.enabled,
            enabled_events: self.enabled_events.map(enabled_events).transpose()?,
            description: self
                .description
                .map(|text| text.map(description).transpose())
                .transpose()?,
        })
    }
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret` (the body is optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecretRequest {
    /// How long the old secret stays valid, in seconds: 0 to 604800 (7
    /// days), default 86400 (24 h); 0 ends it now.
    grace_period_secs: Option<u64>,
}

impl Validate for RotateSecretRequest {
    type Valid = Duration;

    fn validate(self) -> Result<Duration, ApiError> {
        let grace = self.grace_period_secs.map_or(DEFAULT_GRACE, Duration::from_secs);
        if grace > MAX_GRACE {
            return Err(ApiError::invalid_param(
                "grace_period_secs",
                format!("grace_period_secs is at most {} (7 days)", MAX_GRACE.as_secs()),
            ));
        }
        Ok(grace)
    }
}

/// Add a webhook endpoint (at most 16); its signing secret is in this
/// response only (a replay of it leaves `secret` out).
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhook endpoints",
    request_body = CreateEndpointRequest,
    responses((status = 200, description = "The endpoint, with its secret shown once", body = EndpointView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn create(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    body: Idempotent<CreateEndpointRequest>,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        webhook_endpoints::create(&core, &auth, value, post.request()).await?,
    ))
}

/// List the webhook endpoints, oldest first (never a secret).
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhook endpoints",
    responses((status = 200, description = "The endpoints", body = EndpointList)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn list(core: web::Data<Core>, auth: Auth<MerchantRead>) -> Result<Success, ApiError> {
    Ok(Success::of(&webhook_endpoints::list(&core, &auth).await?))
}

/// One webhook endpoint (never its secret).
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = String, Path, description = "Endpoint id (we_…)")),
    responses((status = 200, description = "The endpoint", body = EndpointView)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn get(
    core: web::Data<Core>,
    auth: Auth<MerchantRead>,
    id: WebhookEndpointId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&webhook_endpoints::get(&core, &auth, &id).await?))
}

/// Change a webhook endpoint's URL, `enabled`, `enabled_events` or
/// description (absent fields unchanged).
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = String, Path, description = "Endpoint id (we_…)")),
    request_body = UpdateEndpointRequest,
    responses((status = 200, description = "The endpoint as changed", body = EndpointView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn update(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    Json(change): Json<UpdateEndpointRequest>,
    id: WebhookEndpointId,
) -> Result<Success, ApiError> {
    Ok(Success::of(
        &webhook_endpoints::update(&core, &auth, &id, change).await?,
    ))
}

/// Delete a webhook endpoint; its pending deliveries are given up.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = String, Path, description = "Endpoint id (we_…)")),
    responses((status = 200, description = "The deleted endpoint", body = EndpointView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn delete(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    id: WebhookEndpointId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&webhook_endpoints::delete(&core, &auth, &id).await?))
}

/// Replace the endpoint's signing secret; the new one is in this response
/// only. The old one stays valid for the grace period, during which every
/// delivery is signed with both (`Gateway-Signature: t=…,v1=<new>,v1=<old>`).
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhook endpoints",
    params(("id" = String, Path, description = "Endpoint id (we_…)")),
    request_body(content = RotateSecretRequest, description = "Optional: {\"grace_period_secs\": N}"),
    responses((status = 200, description = "The endpoint, with its new secret shown once", body = EndpointView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn rotate_secret(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    body: Idempotent<RotateSecretRequest>,
    id: WebhookEndpointId,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        webhook_endpoints::rotate_secret(&core, &auth, &id, value, post.request()).await?,
    ))
}
