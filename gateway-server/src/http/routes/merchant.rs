//! `/v1/merchant`: the merchant's configuration (provider credentials,
//! webhook URL) and its API keys.

use std::collections::BTreeMap;

use crate::domain::error::Status;
use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::{build_provider, provider_factory};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_id, validate_url};
use crate::app::core::Core;
use crate::app::idempotency::Outcome;
use crate::app::providers::{credential_aad, provider_config};
use crate::domain::scopes::{Scope, Scopes};
use crate::http::auth::Auth;
use crate::http::body::{json_error, parse_json, read_body};
use crate::http::errors::{ok, success_bytes, ApiError};
use crate::http::idempotent;
use crate::store::{ApiKeyRow, Change, CredentialRow, MerchantRow};
use crate::support::clock::{now_ms, rfc3339};
use crate::support::crypto::mask;
use crate::support::ids::{hash_api_key, new_api_key, new_id};

/// A provider the merchant configured; secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderView {
    provider: String,
    /// Each setting masked, e.g. `sk_test_****4242`.
    #[schema(value_type = Object)]
    credentials: serde_json::Value,
    updated_at: String,
}

/// The merchant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MerchantView {
    id: String,
    object: &'static str,
    name: String,
    webhook_url: Option<String>,
    providers: Vec<ProviderView>,
    /// Providers usable without own credentials.
    available_providers: Vec<String>,
    created_at: String,
}

/// `PUT /v1/merchant/webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookRequest {
    /// Where payment events are sent; `https://` (or `http://localhost` in development).
    webhook_url: Option<String>,
    /// Replace the signing secret (the new one is in this response only).
    #[serde(default)]
    rotate_secret: bool,
}

/// The webhook configuration.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    webhook_url: Option<String>,
    /// The secret `Gateway-Signature` is computed with: shown once, when it
    /// is created (the first time a URL is set, or on `rotate_secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
    /// Whether a signing secret exists.
    signing_secret_set: bool,
}

/// `POST /v1/merchant/api_keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    /// Scopes for the new key; a subset of the calling key's.
    scopes: Vec<String>,
}

/// An API key (the key itself only once, on creation).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: String,
    object: &'static str,
    /// Shown once, when the key is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The key's first characters, to recognize it.
    prefix: String,
    scopes: Vec<&'static str>,
    created_at: String,
    revoked_at: Option<String>,
}

impl ApiKeyView {
    fn new(row: &ApiKeyRow, key: Option<String>) -> Self {
        ApiKeyView {
            id: row.id.clone(),
            object: "api_key",
            key,
            prefix: row.prefix.clone(),
            scopes: row.scopes.names(),
            created_at: rfc3339(row.created_at),
            revoked_at: row.revoked_at.map(rfc3339),
        }
    }
}

/// API keys.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyList {
    object: &'static str,
    data: Vec<ApiKeyView>,
}

async fn merchant_row(state: &Core, auth: &Auth) -> Result<MerchantRow, ApiError> {
    state
        .store
        .merchant(&auth.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant", &auth.merchant_id))
}

async fn merchant_view(state: &Core, auth: &Auth) -> Result<MerchantView, ApiError> {
    let merchant = merchant_row(state, auth).await?;
    let providers = state
        .store
        .credentials(&merchant.id)
        .await?
        .into_iter()
        .map(|row| ProviderView {
            credentials: serde_json::from_str(&row.masked).unwrap_or_default(),
            provider: row.provider,
            updated_at: rfc3339(row.updated_at),
        })
        .collect();
    Ok(MerchantView {
        id: merchant.id,
        object: "merchant",
        name: merchant.name,
        webhook_url: merchant.webhook_url,
        providers,
        available_providers: state.providers.global_names(),
        created_at: rfc3339(merchant.created_at),
    })
}

/// The merchant's configuration.
#[utoipa::path(get, path = "/v1/merchant", tag = "merchant",
    responses((status = 200, description = "The merchant", body = MerchantView)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn get(state: web::Data<Core>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantRead)?;
    Ok(ok(&merchant_view(&state, &auth).await?))
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
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let mut input: serde_json::Map<String, serde_json::Value> = parse_json(&req, &body)?;
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
    let config = provider_config(&settings);
    // Building checks the settings without contacting the provider.
    build_provider(&name, &config).map_err(|error| {
        let api = ApiError::from(error);
        ApiError::invalid_param(
            &name,
            format!("these settings do not build a {name} provider: {api}"),
        )
    })?;
    let plain = serde_json::to_vec(&settings).map_err(|_| ApiError::internal())?;
    let sealed = state
        .sealer
        .seal(&plain, credential_aad(&auth.merchant_id, &name).as_bytes());
    let masked: BTreeMap<&String, String> = settings.iter().map(|(key, value)| (key, mask(value))).collect();
    let row = CredentialRow {
        merchant_id: auth.merchant_id.to_string(),
        provider: name.clone(),
        sealed,
        masked: serde_json::to_string(&masked).map_err(|_| ApiError::internal())?,
        updated_at: now_ms(),
    };
    state.store.commit(vec![Change::UpsertCredential(row)]).await?;
    state.providers.invalidate(&auth.merchant_id, &name);
    tracing::info!(merchant = %auth.merchant_id, provider = %name, "provider credentials stored");
    Ok(ok(&merchant_view(&state, &auth).await?))
}

/// Set (or clear with `null`) the URL payment events are sent to.
#[utoipa::path(put, path = "/v1/merchant/webhook", tag = "merchant",
    request_body = WebhookRequest,
    responses((status = 200, description = "The webhook configuration", body = WebhookView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn put_webhook(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: WebhookRequest = parse_json(&req, &body)?;
    if let Some(url) = &input.webhook_url {
        validate_url("webhook_url", url)?;
    }
    let has_secret = state.store.signing_secret(&auth.merchant_id).await?.is_some();
    let mut changes = vec![Change::SetWebhookUrl {
        merchant_id: auth.merchant_id.to_string(),
        url: input.webhook_url.clone(),
    }];
    let new_secret = (input.rotate_secret || (!has_secret && input.webhook_url.is_some()))
        .then(crate::app::outbound::new_signing_secret);
    if let Some(secret) = &new_secret {
        changes.push(Change::SetSigningSecret {
            merchant_id: auth.merchant_id.to_string(),
            sealed: state.sealer.seal(
                secret.as_bytes(),
                crate::app::outbound::secret_aad(&auth.merchant_id).as_bytes(),
            ),
            at: now_ms(),
        });
    }
    state.store.commit(changes).await?;
    state.outbound.forget_url(&auth.merchant_id);
    if new_secret.is_some() {
        tracing::info!(merchant = %auth.merchant_id, "webhook signing secret created");
    }
    Ok(ok(&WebhookView {
        webhook_url: input.webhook_url,
        signing_secret_set: has_secret || new_secret.is_some(),
        signing_secret: new_secret,
    }))
}

/// The webhook configuration.
#[utoipa::path(get, path = "/v1/merchant/webhook", tag = "merchant",
    responses((status = 200, description = "The webhook configuration", body = WebhookView)),
    security(("api_key" = ["webhooks:read"])))]
pub(crate) async fn get_webhook(state: web::Data<Core>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::WebhooksRead)?;
    let merchant = merchant_row(&state, &auth).await?;
    Ok(ok(&WebhookView {
        webhook_url: merchant.webhook_url,
        signing_secret: None,
        signing_secret_set: state.store.signing_secret(&auth.merchant_id).await?.is_some(),
    }))
}

/// The row and the key for a new API key of `merchant_id`.
pub(crate) fn new_key_row(merchant_id: &str, scopes: Scopes) -> (ApiKeyRow, String) {
    let key = new_api_key();
    let row = ApiKeyRow {
        id: format!("key_{}", new_id().replace('-', "")),
        merchant_id: merchant_id.to_owned(),
        key_hash: hash_api_key(&key),
        prefix: key.chars().take(14).collect(),
        scopes,
        created_at: now_ms(),
        revoked_at: None,
    };
    (row, key)
}

/// Create an API key; the key is in this response only.
#[utoipa::path(post, path = "/v1/merchant/api_keys", tag = "merchant",
    request_body = CreateKeyRequest,
    responses((status = 200, description = "The key, shown once", body = ApiKeyView)),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn create_key(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: CreateKeyRequest = parse_json(&req, &body)?;
    let scopes = Scopes::from_names(input.scopes.iter().map(String::as_str))
        .map_err(|bad| ApiError::invalid_param("scopes", format!("unknown scope {bad:?}")))?;
    if scopes.is_empty() {
        return Err(ApiError::invalid_param(
            "scopes",
            "give the key at least one scope",
        ));
    }
    if !auth.scopes.covers(scopes) {
        return Err(ApiError::new(
            Status::FORBIDDEN,
            "insufficient_scope",
            "a key cannot grant scopes it does not have",
        )
        .with_param("scopes"));
    }
    let merchant_id = auth.merchant_id.clone();
    idempotent::run(&state, &auth, &req, &body, |_keys| async move {
        let (row, key) = new_key_row(&merchant_id, scopes);
        Ok(Outcome {
            status: Status::OK,
            body: success_bytes(&ApiKeyView::new(&row, Some(key))),
            changes: vec![Change::InsertApiKey(row)],
            updates: Vec::new(),
        })
    })
    .await
}

/// List API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/merchant/api_keys", tag = "merchant",
    responses((status = 200, description = "API keys", body = ApiKeyList)),
    security(("api_key" = ["merchant:read"])))]
pub(crate) async fn list_keys(state: web::Data<Core>, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantRead)?;
    let rows = state.store.api_keys(&auth.merchant_id).await?;
    Ok(ok(&ApiKeyList {
        object: "list",
        data: rows.iter().map(|row| ApiKeyView::new(row, None)).collect(),
    }))
}

/// Revoke an API key at once.
#[utoipa::path(delete, path = "/v1/merchant/api_keys/{id}", tag = "merchant",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyView),
              (status = 404, description = "No such key for this merchant")),
    security(("api_key" = ["merchant:write"])))]
pub(crate) async fn revoke_key(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::MerchantWrite)?;
    let id = check_id("api key", &id)?;
    let mut row = state
        .store
        .api_keys(&auth.merchant_id)
        .await?
        .into_iter()
        .find(|row| row.id == id && row.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("api key", id))?;
    let at = now_ms();
    state
        .store
        .commit(vec![Change::RevokeApiKey {
            merchant_id: auth.merchant_id.to_string(),
            id: row.id.clone(),
            at,
        }])
        .await?;
    state.keys.forget_key(&row.id);
    row.revoked_at = Some(at);
    Ok(ok(&ApiKeyView::new(&row, None)))
}
