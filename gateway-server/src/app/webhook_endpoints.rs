//! The merchant's webhook endpoints (`/v1/webhook-endpoints`): up to
//! [`MAX_ENDPOINTS`], each with its own URL (under the egress policy, as
//! `PUT /v1/merchant/webhook`), `enabled` flag, `enabled_events` filter,
//! description and signing secrets.
//!
//! A secret (`whsec_…`) is shown once, in the answer that creates it (the
//! endpoint's creation, or a rotation), never in a replay of that answer nor
//! anywhere else. It is sealed with the master key for the merchant and the
//! endpoint (`outbound::endpoint_secret_aad`); the secret an endpoint took
//! over from before endpoints (`merchant_signing_secrets`) stays sealed for
//! the merchant alone, as it was. A rotation keeps the old secrets valid for a
//! grace period, during which every delivery is signed with all of them, the
//! new one first. Every change is announced through `Core::changed` (the
//! endpoint caches of every instance).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::core::Core;
use crate::app::egress::check_url;
use crate::app::idempotency::{self, IdempotentRequest, Outcome, Reply};
use crate::app::invalidation::Invalidation;
use crate::app::lists::List;
use crate::app::merchants::webhook_url_refused;
use crate::app::outbound::{new_signing_secret, sealed_secret, ENDPOINT_DELETED, EVENT_TYPES};

/// The last error of a delivery given up because its endpoint was disabled.
pub(crate) const ENDPOINT_DISABLED: &str = "the webhook endpoint was disabled";
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::scopes::Caller;
use crate::store::{Change, EndpointRow, MAX_ENDPOINTS};
use crate::support::clock::{now_ms, rfc3339};
use crate::support::ids::new_id;

/// The grace period of a rotation when the request names none: 24 hours.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The longest grace period of a rotation: 7 days.
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest description.
pub(crate) const MAX_DESCRIPTION: usize = 500;

/// A webhook endpoint (its secret only once, when it is made).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointView {
    /// `we_…`.
    id: String,
    object: &'static str,
    url: String,
    /// A disabled endpoint gets no new deliveries.
    enabled: bool,
    /// The event types it receives; `["*"]` is every type.
    enabled_events: Vec<String>,
    description: Option<String>,
    /// The new signing secret: in the answer that creates the endpoint or
    /// rotates its secret only (never in a replay of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Until when the secrets replaced by the last rotation stay valid (rotation answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<String>,
    /// Consecutive failed delivery attempts.
    consecutive_failures: i64,
    /// Until when its deliveries are held back after repeated failures.
    backed_off_until: Option<String>,
    created_at: String,
    updated_at: String,
}

impl EndpointView {
    fn new(row: &EndpointRow, secret: Option<String>) -> Self {
        EndpointView {
            id: row.id.clone(),
            object: "webhook_endpoint",
            url: row.url.clone(),
            enabled: row.enabled,
            enabled_events: event_list(&row.enabled_events),
            description: row.description.clone(),
            secret,
            previous_secret_expires_at: None,
            consecutive_failures: row.failures,
            backed_off_until: (row.blocked_until > now_ms()).then(|| rfc3339(row.blocked_until)),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// The stored `enabled_events` as a list.
pub(crate) fn event_list(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// `names` as an `enabled_events` filter: known event types or `"*"`
/// (which alone means every type), at least one, each once; 400 naming
/// `enabled_events` otherwise.
pub(crate) fn enabled_events(names: Vec<String>) -> Result<Vec<String>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid_param(
            "enabled_events",
            "enabled_events needs at least one event type, or [\"*\"] for every type",
        ));
    }
    if let Some(unknown) = names
        .iter()
        .find(|name| *name != "*" && !EVENT_TYPES.contains(&name.as_str()))
    {
        return Err(ApiError::invalid_param(
            "enabled_events",
            format!(
                "unknown event type {unknown:?} in enabled_events; known: \"*\", {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    if names.iter().any(|name| name == "*") {
        return Ok(vec!["*".to_owned()]);
    }
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// A description of at most [`MAX_DESCRIPTION`] characters; 400 otherwise.
pub(crate) fn description(text: String) -> Result<String, ApiError> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_param(
            "description",
            format!("description is at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text)
}

/// A validated new endpoint.
#[derive(Debug)]
pub(crate) struct NewEndpoint {
    pub(crate) url: String,
    pub(crate) enabled: bool,
    /// Validated with [`enabled_events`].
    pub(crate) enabled_events: Vec<String>,
    pub(crate) description: Option<String>,
}

/// A validated change of an endpoint: what is absent stays as it is.
#[derive(Debug, Default)]
pub(crate) struct EndpointChange {
    pub(crate) url: Option<String>,
    pub(crate) enabled: Option<bool>,
    /// Validated with [`enabled_events`].
    pub(crate) enabled_events: Option<Vec<String>>,
    /// `Some(None)` removes the description.
    pub(crate) description: Option<Option<String>>,
}

/// The URL under the egress policy; 400 naming `param` otherwise.
pub(crate) async fn check_endpoint_url(core: &Core, url: &str, param: &str) -> Result<(), ApiError> {
    check_url(&core.egress.policy, url)
        .await
        .map_err(|refusal| webhook_url_refused(&core.egress.policy, &refusal, param))
}

/// A new endpoint row of `merchant_id`, made now.
pub(crate) fn new_row(merchant_id: &str, input: &NewEndpoint) -> Result<EndpointRow, ApiError> {
    let now = now_ms();
    Ok(EndpointRow {
        id: format!("we_{}", new_id().replace('-', "")),
        merchant_id: merchant_id.to_owned(),
        url: input.url.clone(),
        enabled: input.enabled,
        enabled_events: serde_json::to_string(&input.enabled_events).map_err(|_| ApiError::internal())?,
        description: input.description.clone(),
        failures: 0,
        blocked_until: 0,
        created_at: now,
        updated_at: now,
    })
}

/// The changes that create `row` with a new secret, and the secret.
pub(crate) fn creation(core: &Core, row: &EndpointRow) -> Result<(Vec<Change>, String), ApiError> {
    let secret = new_signing_secret()?;
    let sealed = sealed_secret(core, &row.merchant_id, &row.id, &secret, row.created_at)?;
    Ok((
        vec![
            Change::InsertEndpoint(Box::new(row.clone())),
            Change::AddEndpointSecret(Box::new(sealed)),
        ],
        secret,
    ))
}

/// 409 `too_many_endpoints` when the merchant has [`MAX_ENDPOINTS`] already
/// (the store checks again as it inserts: see [`too_many_endpoints`]).
async fn check_room(core: &Core, caller: &Caller) -> Result<(), ApiError> {
    let count = core.store.endpoints(&caller.merchant_id).await?.len();
    if i64::try_from(count).unwrap_or(i64::MAX) >= MAX_ENDPOINTS {
        return Err(too_many_endpoints());
    }
    Ok(())
}

/// 409 `too_many_endpoints`: the answer to a create past [`MAX_ENDPOINTS`],
/// whether seen before the commit or by the store's own count in it.
pub(crate) fn too_many_endpoints() -> ApiError {
    ApiError::conflict(
        "too_many_endpoints",
        format!("a merchant has at most {MAX_ENDPOINTS} webhook endpoints: delete one first"),
    )
}

/// Creates an endpoint, once per `Idempotency-Key`; its secret is in this
/// answer only (a replay leaves it out). 400 for a URL the egress policy
/// refuses (naming `url`), 409 `too_many_endpoints`.
pub(crate) async fn create(
    core: &Core,
    caller: &Caller,
    input: NewEndpoint,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let reply = idempotency::run(core, caller, post, |_keys| async {
        check_endpoint_url(core, &input.url, "url").await?;
        check_room(core, caller).await?;
        let row = new_row(&caller.merchant_id, &input)?;
        let (changes, secret) = creation(core, &row)?;
        Ok(Outcome {
            // The secret is never stored, not even for a replay.
            replay: Some(success_bytes(&EndpointView::new(&row, None))),
            status: Status::OK,
            body: success_bytes(&EndpointView::new(&row, Some(secret))),
            changes,
            updates: Vec::new(),
        })
    })
    .await?;
    if !reply.replayed {
        endpoints_changed(core, caller);
        tracing::info!(merchant = %caller.merchant_id, "webhook endpoint created");
    }
    Ok(reply)
}

/// Tells every instance the merchant's endpoints changed.
fn endpoints_changed(core: &Core, caller: &Caller) {
    core.changed(Invalidation::WebhookUrl {
        merchant_id: caller.merchant_id.to_string(),
    });
}

/// The merchant's endpoints, oldest first (never a secret).
pub(crate) async fn list(core: &Core, caller: &Caller) -> Result<List<EndpointView>, ApiError> {
    let rows = core.store.endpoints(&caller.merchant_id).await?;
    Ok(List::all(
        rows.iter().map(|row| EndpointView::new(row, None)).collect(),
    ))
}

async fn load(core: &Core, caller: &Caller, id: &str) -> Result<EndpointRow, ApiError> {
    core.store
        .endpoint(&caller.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint", id))
}

/// One of the merchant's endpoints (never its secret); 404 otherwise.
pub(crate) async fn get(core: &Core, caller: &Caller, id: &str) -> Result<EndpointView, ApiError> {
    Ok(EndpointView::new(&load(core, caller, id).await?, None))
}

/// Changes what `change` names (absent: unchanged); a changed endpoint's
/// backoff is reset, and disabling it gives up its pending deliveries (last
/// error: "the webhook endpoint was disabled"; resend their events to send
/// them again). 400 for a URL the egress policy refuses (naming `url`).
pub(crate) async fn update(
    core: &Core,
    caller: &Caller,
    id: &str,
    change: EndpointChange,
) -> Result<EndpointView, ApiError> {
    let mut row = load(core, caller, id).await?;
    let disabling = row.enabled && change.enabled == Some(false);
    if let Some(url) = change.url {
        check_endpoint_url(core, &url, "url").await?;
        row.url = url;
    }
    if let Some(enabled) = change.enabled {
        row.enabled = enabled;
    }
    if let Some(events) = change.enabled_events {
        row.enabled_events = serde_json::to_string(&events).map_err(|_| ApiError::internal())?;
    }
    if let Some(description) = change.description {
        row.description = description;
    }
    row.updated_at = now_ms();
    row.failures = 0;
    row.blocked_until = 0;
    let mut changes = vec![Change::UpdateEndpoint(Box::new(row.clone()))];
    if disabling {
        changes.push(Change::GiveUpEndpointDeliveries {
            merchant_id: row.merchant_id.clone(),
            id: row.id.clone(),
            reason: ENDPOINT_DISABLED.to_owned(),
        });
    }
    core.store.commit(changes).await?;
    endpoints_changed(core, caller);
    Ok(EndpointView::new(&row, None))
}

/// Deletes an endpoint and its secrets; its pending deliveries are given up
/// (last error: "the webhook endpoint was deleted"). Answers the endpoint as
/// it was; 404 if it is not the merchant's.
pub(crate) async fn delete(core: &Core, caller: &Caller, id: &str) -> Result<EndpointView, ApiError> {
    let row = load(core, caller, id).await?;
    core.store.commit(vec![deletion(&row)]).await?;
    endpoints_changed(core, caller);
    tracing::info!(merchant = %caller.merchant_id, endpoint = %row.id, "webhook endpoint deleted");
    Ok(EndpointView::new(&row, None))
}

/// The change that deletes `row`.
pub(crate) fn deletion(row: &EndpointRow) -> Change {
    Change::DeleteEndpoint {
        merchant_id: row.merchant_id.clone(),
        id: row.id.clone(),
        reason: ENDPOINT_DELETED.to_owned(),
    }
}

/// The changes that replace the endpoint's secret with a new one at `now`,
/// the old ones valid for `grace` more (zero: not at all), and the secret.
pub(crate) fn rotation(
    core: &Core,
    row: &EndpointRow,
    grace: Duration,
    now: i64,
) -> Result<(Vec<Change>, String), ApiError> {
    let secret = new_signing_secret()?;
    let sealed = sealed_secret(core, &row.merchant_id, &row.id, &secret, now)?;
    let until = now.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    Ok((
        vec![
            Change::ExpireEndpointSecrets {
                endpoint_id: row.id.clone(),
                until,
                now,
            },
            Change::AddEndpointSecret(Box::new(sealed)),
        ],
        secret,
    ))
}

/// Rotates an endpoint's secret, once per `Idempotency-Key`: the new secret
/// is in this answer only; the old ones stay valid (and every delivery is
/// signed with them too) for `grace` (at most [`MAX_GRACE`]; zero: they
/// stop now). 404 if the endpoint is not the merchant's.
pub(crate) async fn rotate_secret(
    core: &Core,
    caller: &Caller,
    id: &str,
    grace: Duration,
    post: IdempotentRequest<'_>,
) -> Result<Reply, ApiError> {
    let reply = idempotency::run(core, caller, post, |_keys| async move {
        let row = load(core, caller, id).await?;
        let now = now_ms();
        let (changes, secret) = rotation(core, &row, grace, now)?;
        let mut shown = EndpointView::new(&row, Some(secret));
        let expires = now.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        shown.previous_secret_expires_at = Some(rfc3339(expires));
        let mut replay = EndpointView::new(&row, None);
        replay.previous_secret_expires_at = Some(rfc3339(expires));
        Ok(Outcome {
            replay: Some(success_bytes(&replay)),
            status: Status::OK,
            body: success_bytes(&shown),
            changes,
            updates: Vec::new(),
        })
    })
    .await?;
    if !reply.replayed {
        tracing::info!(merchant = %caller.merchant_id, endpoint = %id, "webhook signing secret rotated");
    }
    Ok(reply)
}

/// The merchant's first (oldest) endpoint, the one `PUT /v1/merchant/webhook` sets.
pub(crate) async fn first(core: &Core, merchant_id: &str) -> Result<Option<EndpointRow>, ApiError> {
    Ok(core.store.endpoints(merchant_id).await?.into_iter().next())
}

/// Whether the endpoint has a signing secret valid now.
pub(crate) async fn has_secret(core: &Core, endpoint_id: &str) -> Result<bool, ApiError> {
    Ok(!core
        .store
        .endpoint_secrets(endpoint_id, now_ms())
        .await?
        .is_empty())
}
