//! Receiving a provider's webhook: the endpoint's provider account found,
//! the signature verified, the event stored (once per event id) and
//! processed in the background.

use std::sync::Arc;

use gateway_core::{WebhookError, WebhookRequest};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::domain::error::{ApiError, Status};
use crate::store::{Change, EventKey, WebhookEventRow};
use crate::support::clock::now_ms;

/// What an accepted webhook is answered with.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Received {
    received: bool,
    event_id: String,
}

/// A webhook as it arrived: the endpoint it was sent to, its headers and body.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// The provider named by the path.
    pub(crate) provider: String,
    /// The merchant whose own account sends it; the gateway-wide account's when `None`.
    pub(crate) merchant: Option<String>,
    /// Every header whose value is text.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Counts a refused webhook and says why in the envelope (never a secret).
fn refused(state: &Core, provider: &str, merchant: Option<&str>, error: &WebhookError) -> ApiError {
    state.metrics.observe_webhook("inbound", "refused");
    // The error names what is wrong, never a secret or a signature value.
    tracing::warn!(provider, merchant = merchant.unwrap_or(""), %error, "refused an inbound webhook");
    let code = match error {
        WebhookError::NotConfigured => "webhook_not_configured",
        WebhookError::InvalidPayload { .. } => "webhook_payload_invalid",
        WebhookError::LivemodeMismatch { .. } => "webhook_livemode_mismatch",
        _ => "webhook_signature_invalid",
    };
    ApiError::new(Status::BAD_REQUEST, code, format!("webhook refused: {error}"))
}

/// Verifies and stores an inbound webhook, then processes it in the
/// background; a duplicate (same provider, account and event id) is
/// answered the same and stored once.
pub(crate) async fn receive(core: Arc<Core>, arrival: Arrival) -> Result<Received, ApiError> {
    let Arrival {
        provider: provider_name,
        merchant,
        headers,
        body,
    } = arrival;
    if provider_name.len() > 32 || merchant.as_ref().is_some_and(|m| m.len() > 100) {
        return Err(ApiError::not_found("webhook endpoint", &provider_name));
    }
    // Each endpoint verifies with its own account's secrets only: the
    // gateway-wide endpoint with the gateway's, a merchant's endpoint with
    // the credentials that merchant stored (never the gateway's, so one
    // signed event is accepted by one endpoint, under one key).
    let provider = match &merchant {
        None => core.providers.global(&provider_name),
        Some(merchant_id) => match core.store.merchant(merchant_id).await? {
            None => None,
            Some(_) => core
                .providers
                .own(&*core.store, &core.sealer, merchant_id, &provider_name)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(merchant = %merchant_id, provider = %provider_name, %error,
                        "a merchant's provider account could not be built for its webhook");
                    None
                }),
        },
    };
    let Some(provider) = provider else {
        core.metrics.observe_webhook("inbound", "refused");
        return Err(match &merchant {
            None => ApiError::not_found("webhook endpoint for provider", &provider_name),
            // The same answer whether the merchant exists or not: the path is no merchant directory.
            Some(merchant_id) => ApiError::new(
                Status::NOT_FOUND,
                "webhook_endpoint_not_configured",
                format!(
                    "no {provider_name} account of merchant {merchant_id} is configured here: this endpoint \
                     takes the webhooks of a merchant's own account (PUT /v1/merchant/providers); the \
                     gateway-wide account's go to /v1/webhooks/{provider_name}"
                ),
            ),
        });
    };
    let mut request = WebhookRequest::new(body, (core.clock)());
    for (name, value) in &headers {
        request = request.with_header(name, value);
    }
    let verified = provider
        .verify_webhook(&request)
        .map_err(|error| refused(&core, &provider_name, merchant.as_deref(), &error))?;
    if verified.event_id.is_empty() || verified.event_id.len() > 255 || verified.event_type.len() > 255 {
        return Err(refused(
            &core,
            &provider_name,
            merchant.as_deref(),
            &WebhookError::InvalidPayload {
                reason: "event id or type missing or too long".to_owned(),
            },
        ));
    }
    let key = EventKey {
        provider: provider.name().to_owned(),
        account: merchant.unwrap_or_default(),
        event_id: verified.event_id.clone(),
    };
    if !key.account.is_empty() {
        // Already stored through the gateway-wide endpoint (a merchant that
        // stored the gateway's own account): it is the same event, applied once.
        let gateway_key = EventKey {
            account: String::new(),
            ..key.clone()
        };
        if core.store.webhook_event(&gateway_key).await?.is_some() {
            core.metrics.observe_webhook("inbound", "duplicate");
            return Ok(Received {
                received: true,
                event_id: key.event_id,
            });
        }
    }
    let row = WebhookEventRow {
        key: key.clone(),
        event_type: verified.event_type,
        body: verified.body,
        received_at: now_ms(),
        processed_at: None,
        attempts: 0,
        last_error: None,
        next_attempt_at: 0,
    };
    core.store
        .commit(vec![Change::InsertWebhookEvent(Box::new(row.clone()))])
        .await?;
    core.metrics.observe_webhook("inbound", "stored");
    // Durable now: answer, and process in the background (the sweep takes over after a crash).
    let background = core.clone();
    tokio::spawn(async move {
        crate::app::inbound::process_stored(&background, row).await;
    });
    Ok(Received {
        received: true,
        event_id: key.event_id,
    })
}
