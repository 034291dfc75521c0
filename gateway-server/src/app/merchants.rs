//! The merchant's configuration (provider credentials, webhook URL: the
//! shorthand for its first webhook endpoint) and its API keys.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::egress::Refusal;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::invalidation::Invalidation;
use crate::app::lists::List;
use crate::app::providers::{credential_aad, is_credential, ProviderLookupError};
use crate::app::webhook_endpoints::{self, check_endpoint_url, NewEndpoint};
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::{Caller, Scopes};
use crate::store::{ApiKeyRow, Change, CredentialRow, MerchantRow};
use crate::support::clock::{now_ms, rfc3339};
use crate::support::crypto::mask;
use crate::support::egress::EgressPolicy;
use crate::support::ids::{hash_api_key, new_api_key, new_id, RandomUnavailable};

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

/// The webhook configuration.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    webhook_url: Option<String>,
    /// The secret `Gateway-Signature` is computed with: shown once, when it
    /// is created (the first time a URL is set, or on `rotate_secret`,
    /// which replaces the old one at once; `POST
    /// /v1/webhook-endpoints/{id}/rotate-secret` keeps it for a grace period).
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
    /// Whether a signing secret exists.
    signing_secret_set: bool,
}

/// An API key (the key itself only once, on creation).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: String,
    object: &'static str,
    /// Shown once, in the answer that creates the key; a replay of that
    /// request (same `Idempotency-Key`) leaves it out.
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

/// Settings for one provider, validated in shape (names and sizes), not yet
/// built.
#[derive(Debug)]
pub(crate) struct ProviderSettings {
    pub(crate) provider: String,
    pub(crate) settings: BTreeMap<String, String>,
}

/// A validated webhook configuration (`DELETE /v1/merchant/webhook` removes the URL).
#[derive(Debug)]
pub(crate) struct WebhookSettings {
    /// Where events are sent; checked against the egress policy by [`put_webhook`].
    pub(crate) webhook_url: String,
    pub(crate) rotate_secret: bool,
}

async fn merchant_row(core: &Core, caller: &Caller) -> Result<MerchantRow, ApiError> {
    core.store
        .merchant(&caller.merchant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("merchant", &caller.merchant_id))
}

/// The caller's merchant with its providers, credentials masked.
pub(crate) async fn get(core: &Core, caller: &Caller) -> Result<MerchantView, ApiError> {
    let merchant = merchant_row(core, caller).await?;
    let providers = core
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
    // The first endpoint's URL (`PUT /v1/merchant/webhook`'s).
    let webhook_url = webhook_endpoints::first(core, &merchant.id)
        .await?
        .map(|row| row.url);
    Ok(MerchantView {
        id: merchant.id,
        object: "merchant",
        name: merchant.name,
        webhook_url,
        providers,
        available_providers: core.providers.global_names(),
        created_at: rfc3339(merchant.created_at),
    })
}

/// Stores a provider's credentials, sealed; 400 if they do not build the
/// provider (checked without contacting it).
pub(crate) async fn put_provider(
    core: &Core,
    caller: &Caller,
    input: ProviderSettings,
) -> Result<MerchantView, ApiError> {
    let ProviderSettings {
        provider: name,
        settings,
    } = input;
    if let Some(key) = settings.keys().find(|key| !is_credential(&name, key)) {
        return Err(ApiError::invalid_param(
            key,
            format!(
                "{key} is not a credential: a merchant gives its {name} account's credentials only \
                 (such as secret_key and webhook_secret); endpoint settings (api_base, time bounds, \
                 retries, tolerances) are the gateway operator's"
            ),
        ));
    }
    let config = core.providers.merchant_config(&name, &settings);
    core.providers
        .build(&name, &config)
        .map_err(|error| match error {
            ProviderLookupError::Build(error) => {
                let api = ApiError::from(error);
                ApiError::invalid_param(
                    &name,
                    format!("these settings do not build a {name} provider: {api}"),
                )
            }
            other => other.into(),
        })?;
    let plain = serde_json::to_vec(&settings).map_err(|_| ApiError::internal())?;
    let sealed = core
        .sealer
        .seal(&plain, credential_aad(&caller.merchant_id, &name).as_bytes())?;
    let masked: BTreeMap<&String, String> = settings.iter().map(|(key, value)| (key, mask(value))).collect();
    let row = CredentialRow {
        merchant_id: caller.merchant_id.to_string(),
        provider: name.clone(),
        sealed,
        masked: serde_json::to_string(&masked).map_err(|_| ApiError::internal())?,
        updated_at: now_ms(),
    };
    core.store.commit(vec![Change::UpsertCredential(row)]).await?;
    core.changed(Invalidation::Credentials {
        merchant_id: caller.merchant_id.to_string(),
        provider: name.clone(),
    });
    tracing::info!(merchant = %caller.merchant_id, provider = %name, "provider credentials stored");
    get(core, caller).await
}

/// Sets the webhook URL, the shorthand for the merchant's first (oldest)
/// endpoint: creates it (every event type, with a signing secret shown in
/// this answer only), or sets its URL and enables it (a new secret on
/// request, replacing the old one at once). The URL must pass the egress
/// policy (https, a host that resolves to allowed addresses only, no
/// credentials; 400 naming `webhook_url` otherwise).
pub(crate) async fn put_webhook(
    core: &Core,
    caller: &Caller,
    input: WebhookSettings,
) -> Result<WebhookView, ApiError> {
    check_endpoint_url(core, &input.webhook_url, "webhook_url").await?;
    let now = now_ms();
    let (changes, new_secret) = match webhook_endpoints::first(core, &caller.merchant_id).await? {
        None => {
            let row = webhook_endpoints::new_row(
                &caller.merchant_id,
                &NewEndpoint {
                    url: input.webhook_url.clone(),
                    enabled: true,
                    enabled_events: vec!["*".to_owned()],
                    description: None,
                },
            )?;
            let (changes, secret) = webhook_endpoints::creation(core, &row)?;
            (changes, Some(secret))
        }
        Some(mut row) => {
            // A changed endpoint starts afresh: its old failures do not back it off.
            row.url = input.webhook_url.clone();
            row.enabled = true;
            row.updated_at = now;
            let mut changes = vec![Change::UpdateEndpoint(Box::new(row.clone()))];
            let mut new_secret = None;
            if input.rotate_secret || !webhook_endpoints::has_secret(core, &row.id).await? {
                let (rotation, secret) = webhook_endpoints::rotation(core, &row, Duration::ZERO, now)?;
                changes.extend(rotation);
                new_secret = Some(secret);
            }
            (changes, new_secret)
        }
    };
    core.store.commit(changes).await?;
    core.changed(Invalidation::WebhookUrl {
        merchant_id: caller.merchant_id.to_string(),
    });
    if new_secret.is_some() {
        tracing::info!(merchant = %caller.merchant_id, "webhook signing secret created");
    }
    Ok(WebhookView {
        webhook_url: Some(input.webhook_url),
        signing_secret_set: true,
        signing_secret: new_secret,
    })
}

/// The 400 for a webhook URL the policy refuses, naming `param`: what is
/// wrong and what is allowed.
pub(crate) fn webhook_url_refused(policy: &EgressPolicy, refusal: &Refusal, param: &str) -> ApiError {
    let scheme = if policy.allow_http {
        "an http(s)://"
    } else {
        "an https://"
    };
    ApiError::invalid_param(
        param,
        format!(
            "{param} {refusal}; allowed: {scheme} URL without user:password@, whose host is a DNS \
             name or a dotted-quad/[IPv6] address resolving to public addresses only"
        ),
    )
}

/// Removes the webhook URL: deletes the merchant's first endpoint (with its
/// secret; its pending deliveries are given up). Answers the configuration
/// now, the next endpoint's if there is one.
pub(crate) async fn delete_webhook(core: &Core, caller: &Caller) -> Result<WebhookView, ApiError> {
    if let Some(row) = webhook_endpoints::first(core, &caller.merchant_id).await? {
        core.store.commit(vec![webhook_endpoints::deletion(&row)]).await?;
        core.changed(Invalidation::WebhookUrl {
            merchant_id: caller.merchant_id.to_string(),
        });
    }
    get_webhook(core, caller).await
}

/// The webhook configuration: the first endpoint's URL (never the secret).
pub(crate) async fn get_webhook(core: &Core, caller: &Caller) -> Result<WebhookView, ApiError> {
    merchant_row(core, caller).await?;
    let first = webhook_endpoints::first(core, &caller.merchant_id).await?;
    let signing_secret_set = match &first {
        Some(row) => webhook_endpoints::has_secret(core, &row.id).await?,
        None => false,
    };
    Ok(WebhookView {
        webhook_url: first.map(|row| row.url),
        signing_secret: None,
        signing_secret_set,
    })
}

/// The row and the key for a new API key of `merchant_id`.
pub(crate) fn new_key_row(
    merchant_id: &str,
    scopes: Scopes,
) -> Result<(ApiKeyRow, String), RandomUnavailable> {
    let key = new_api_key()?;
    let row = ApiKeyRow {
        id: format!("key_{}", new_id().replace('-', "")),
        merchant_id: merchant_id.to_owned(),
        key_hash: hash_api_key(&key),
        prefix: key.chars().take(14).collect(),
        scopes,
        created_at: now_ms(),
        revoked_at: None,
    };
    Ok((row, key))
}

/// Creates an API key with `scopes` (non-empty), once per `Idempotency-Key`;
/// 403 for scopes the calling key lacks.
pub(crate) async fn create_key(
    core: &Core,
    caller: &Caller,
    scopes: Scopes,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    if !caller.scopes.covers(scopes) {
        return Err(ApiError::new(
            Status::FORBIDDEN,
            "insufficient_scope",
            "a key cannot grant scopes it does not have",
        )
        .with_param("scopes"));
    }
    idempotency::run(core, caller, post, |_keys| async move {
        let (row, key) = new_key_row(&caller.merchant_id, scopes)?;
        Ok(Outcome {
            // A replay shows the key object without the key: it is never stored, not even for 24 h.
            replay: Some(success_bytes(&ApiKeyView::new(&row, None))),
            status: Status::OK,
            body: success_bytes(&ApiKeyView::new(&row, Some(key))),
            changes: vec![Change::InsertApiKey(row)],
            updates: Vec::new(),
        })
    })
    .await
}

/// The merchant's API keys (never the keys themselves).
pub(crate) async fn list_keys(core: &Core, caller: &Caller) -> Result<List<ApiKeyView>, ApiError> {
    let rows = core.store.api_keys(&caller.merchant_id).await?;
    Ok(List::all(
        rows.iter().map(|row| ApiKeyView::new(row, None)).collect(),
    ))
}

/// Revokes an API key at once; 404 unless it is a live key of the merchant.
pub(crate) async fn revoke_key(core: &Core, caller: &Caller, id: &str) -> Result<ApiKeyView, ApiError> {
    let mut row = core
        .store
        .api_keys(&caller.merchant_id)
        .await?
        .into_iter()
        .find(|row| row.id == id && row.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("api key", id))?;
    let at = now_ms();
    core.store
        .commit(vec![Change::RevokeApiKey {
            merchant_id: caller.merchant_id.to_string(),
            id: row.id.clone(),
            at,
        }])
        .await?;
    core.changed(Invalidation::ApiKey {
        key_id: row.id.clone(),
    });
    row.revoked_at = Some(at);
    Ok(ApiKeyView::new(&row, None))
}
