//! `/v1/merchant`: the merchant's configuration (provider credentials,
//! webhook URL) and its API keys.

use std::collections::BTreeMap;

use actix_web::web;
use gateway_core::provider_factory;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::merchants::{self, ProviderSettings, WebhookSettings};
pub(crate) use crate::app::merchants::{ApiKeyView, MerchantView, WebhookView};
use crate::domain::error::Status;
use crate::domain::scopes::Scopes;
use crate::http::auth::{Auth, MerchantRead, MerchantWrite, WebhooksRead};
use crate::http::body::json_error;
use crate::http::errors::ApiError;
use crate::http::extract::{ApiKeyId, Json, Success, Validate};
use crate::http::idempotent::{Idempotent, Replied};

/// `PUT /v1/merchant/providers`: `{"provider": NAME, NAME: {settings}}`
/// (the settings object may also be named `credentials`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct ProvidersRequest(serde_json::Map<String, serde_json::Value>);

impl Validate for ProvidersRequest {
    type Valid = ProviderSettings;

    fn validate(self) -> Result<ProviderSettings, ApiError> {
        let ProvidersRequest(mut input) = self;
        let name = match input.remove("provider") {
            Some(serde_json::Value::String(name)) => name,
            Some(_) => return Err(ApiError::invalid_param("provider", "provider must be a string")),
            None => return Err(ApiError::missing_param("provider")),
        };
        if provider_factory(&name).is_none() {
            return Err(ApiError::invalid_param(
                "provider",
                format!("no provider named {name:?} is linked into this gateway"),
            ));
        }
        let settings = input
            .remove(&name)
            .or_else(|| input.remove("credentials"))
            .ok_or_else(|| ApiError::missing_param(&name))?;
        if let Some(extra) = input.keys().next() {
            return Err(ApiError::new(
                Status::BAD_REQUEST,
                "parameter_unknown",
                format!("unknown field `{extra}`"),
            )
            .with_param(extra.clone()));
        }
        let settings: BTreeMap<String, String> =
            serde_json::from_value(settings).map_err(|error| json_error(&error).with_param(name.clone()))?;
        if settings.is_empty() || settings.len() > 20 {
            return Err(ApiError::invalid_param(&name, "send 1 to 20 settings"));
        }
        for (key, value) in &settings {
            if key.is_empty() || key.len() > 64 || value.len() > 4096 {
                return Err(ApiError::invalid_param(
                    &name,
                    "setting names are 1 to 64 characters, values at most 4096",
                ));
            }
        }
        Ok(ProviderSettings {
            provider: name,
            settings,
        })
    }
}

/// `PUT /v1/merchant/webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookRequest {
    /// Where payment events are sent (required): `https://`, a host that
    /// resolves to public addresses only, no `user:password@` (`http://` and
    /// local addresses only where the operator allows them, as in a sandbox).
    /// `DELETE /v1/merchant/webhook` removes it.
    webhook_url: Option<String>,
    /// Replace the signing secret (the new one is in this response only).
    #[serde(default)]
    rotate_secret: bool,
}

impl Validate for WebhookRequest {
    type Valid = WebhookSettings;

    fn validate(self) -> Result<WebhookSettings, ApiError> {
        let url = self
            .webhook_url
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| ApiError::missing_param("webhook_url"))?;
        Ok(WebhookSettings {
            webhook_url: url,
            rotate_secret: self.rotate_secret,
        })
    }
}

/// `POST /v1/merchant/api_keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    /// Scopes for the new key; a subset of the calling key's.
    scopes: Vec<String>,
}

impl Validate for CreateKeyRequest {
    type Valid = Scopes;

    fn validate(self) -> Result<Scopes, ApiError> {
        let scopes = Scopes::from_names(self.scopes.iter().map(String::as_str))
            .map_err(|bad| ApiError::invalid_param("scopes", format!("unknown scope {bad:?}")))?;
        if scopes.is_empty() {
            return Err(ApiError::invalid_param(
                "scopes",
                "give the key at least one scope",
            ));
        }
        Ok(scopes)
    }
}

/// API keys (`app::lists::List` of [`ApiKeyView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ApiKeyList {
    object: &'static str,
    data: Vec<ApiKeyView>,
}

/// The merchant's configuration.
#[utoipa::path(get, path = "/v1/merchant", tag = "merchant",
    responses((status = 200, description = "The merchant", body = MerchantView)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn get(core: web::Data<Core>, auth: Auth<MerchantRead>) -> Result<Success, ApiError> {
    Ok(Success::of(&merchants::get(&core, &auth).await?))
}

/// Store provider credentials, encrypted at rest; they are never returned.
///
/// Body: `{"provider": "stripe", "stripe": {"secret_key": "sk_test_…", "webhook_secret": "whsec_…"}}`
/// (the settings object may also be named `credentials`).
#[utoipa::path(put, path = "/v1/merchant/providers", tag = "merchant",
    request_body(content = Object, description = "{\"provider\": NAME, NAME: {settings}}"),
    responses((status = 200, description = "The merchant, credentials masked", body = MerchantView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn put_providers(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    Json(settings): Json<ProvidersRequest>,
) -> Result<Success, ApiError> {
    Ok(Success::of(
        &merchants::put_provider(&core, &auth, settings).await?,
    ))
}

/// Set the URL payment events are sent to (checked against the outbound
/// address policy: https, public addresses only, unless the operator allows more).
#[utoipa::path(put, path = "/v1/merchant/webhook", tag = "merchant",
    request_body = WebhookRequest,
    responses((status = 200, description = "The webhook configuration", body = WebhookView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn put_webhook(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    Json(settings): Json<WebhookRequest>,
) -> Result<Success, ApiError> {
    Ok(Success::of(
        &merchants::put_webhook(&core, &auth, settings).await?,
    ))
}

/// Remove the webhook URL: no more events are sent.
#[utoipa::path(delete, path = "/v1/merchant/webhook", tag = "merchant",
    responses((status = 200, description = "The webhook configuration, without a URL", body = WebhookView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn delete_webhook(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
) -> Result<Success, ApiError> {
    Ok(Success::of(&merchants::delete_webhook(&core, &auth).await?))
}

/// The webhook configuration.
#[utoipa::path(get, path = "/v1/merchant/webhook", tag = "merchant",
    responses((status = 200, description = "The webhook configuration", body = WebhookView)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn get_webhook(
    core: web::Data<Core>,
    auth: Auth<WebhooksRead>,
) -> Result<Success, ApiError> {
    Ok(Success::of(&merchants::get_webhook(&core, &auth).await?))
}

/// Create an API key; the key is in this response only.
///
/// The key is never stored for replay: a replay of this request (the same
/// `Idempotency-Key`, `Idempotent-Replayed: true`) answers the same key
/// object without `key`.
#[utoipa::path(post, path = "/v1/merchant/api_keys", tag = "merchant",
    request_body = CreateKeyRequest,
    responses((status = 200, description = "The key, shown once (a replay leaves `key` out)", body = ApiKeyView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn create_key(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    body: Idempotent<CreateKeyRequest>,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        merchants::create_key(&core, &auth, value, post.request()).await?,
    ))
}

/// List API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/merchant/api_keys", tag = "merchant",
    responses((status = 200, description = "API keys", body = ApiKeyList)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn list_keys(core: web::Data<Core>, auth: Auth<MerchantRead>) -> Result<Success, ApiError> {
    Ok(Success::of(&merchants::list_keys(&core, &auth).await?))
}

/// Revoke an API key at once.
#[utoipa::path(delete, path = "/v1/merchant/api_keys/{id}", tag = "merchant",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyView),
              (status = 404, description = "No such key for this merchant")),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn revoke_key(
    core: web::Data<Core>,
    auth: Auth<MerchantWrite>,
    id: ApiKeyId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&merchants::revoke_key(&core, &auth, &id).await?))
}
