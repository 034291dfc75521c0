//! The use cases, above `store`: payments and their changes, the API's use
//! cases (`payments_api`, `refunds`, `cards`, `merchants`, `deliveries`),
//! idempotency, provider lookup, inbound provider webhooks, the outbound
//! merchant webhooks, reconciliation. Everything here runs without actix: the HTTP
//! layer and the background workers both call it with the shared state.

pub(crate) mod amounts;
pub(crate) mod api_keys;
pub(crate) mod cards;
pub(crate) mod core;
pub(crate) mod deliveries;
pub(crate) mod egress;
pub(crate) mod event_stream;
pub(crate) mod events;
pub(crate) mod idempotency;
pub(crate) mod inbound;
pub(crate) mod inbound_api;
pub(crate) mod invalidation;
pub(crate) mod leases;
pub(crate) mod lists;
pub(crate) mod live;
pub(crate) mod merchants;
pub(crate) mod outbound;
pub(crate) mod payments;
pub(crate) mod payments_api;
pub(crate) mod providers;
pub(crate) mod reconcile;
pub(crate) mod reconcile_refunds;
pub(crate) mod refunds;
pub(crate) mod resolve;
pub(crate) mod retention;
pub(crate) mod timeline;
pub(crate) mod webhook_endpoints;

use crate::domain::error::{ApiError, Status};
use crate::store::StoreError;

/// A storage failure as the API answers it: 503 for a busy database (retry),
/// else a logged 500 with no details.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Conflict(crate::store::TOO_MANY_ENDPOINTS) = error {
            // A create that raced another past the limit.
            return webhook_endpoints::too_many_endpoints();
        }
        tracing::error!(%error, "storage error");
        match error {
            StoreError::Busy => ApiError::new(
                Status::SERVICE_UNAVAILABLE,
                "storage_busy",
                "the database is busy; retry the request",
            ),
            _ => ApiError::internal(),
        }
    }
}
