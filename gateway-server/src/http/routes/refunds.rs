//! `/v1/refunds`: refund a captured payment in full or in part, and read a refund.

use actix_web::web;
use gateway_core::Metadata;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::core::Core;
pub(crate) use crate::app::refunds::RefundView;
use crate::app::refunds::{self, NewRefund};
use crate::http::auth::{Auth, PaymentsRead, PaymentsWrite};
use crate::http::errors::ApiError;
use crate::http::extract::{PaymentId, RefundId, Success, Validate};
use crate::http::idempotent::{Idempotent, Replied};
use crate::http::validate::validate_metadata;

/// `POST /v1/refunds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRefundRequest {
    /// The payment to refund.
    payment_id: String,
    /// Amount to refund; everything not yet refunded when omitted.
    #[schema(value_type = Option<String>, example = "25.00")]
    amount: Option<Box<RawValue>>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    reason: Option<String>,
    /// Free-form key/value pairs.
    metadata: Option<Metadata>,
}

impl Validate for CreateRefundRequest {
    type Valid = NewRefund;

    fn validate(self) -> Result<NewRefund, ApiError> {
        let payment_id = PaymentId::parse(self.payment_id)?.into_string();
        if let Some(reason) = &self.reason {
            if !matches!(
                reason.as_str(),
                "duplicate" | "fraudulent" | "requested_by_customer"
            ) {
                return Err(ApiError::invalid_param(
                    "reason",
                    "reason must be duplicate, fraudulent or requested_by_customer",
                ));
            }
        }
        let metadata = self.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        Ok(NewRefund {
            payment_id,
            amount: self.amount,
            reason: self.reason,
            metadata,
        })
    }
}

/// Refund a payment.
#[utoipa::path(post, path = "/v1/refunds", tag = "refunds",
    request_body = CreateRefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    responses((status = 200, description = "The refund", body = RefundView),
              (status = 409, description = "The payment has no captured funds"),
              (status = 422, description = "More than what remains")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn create(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<CreateRefundRequest>,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        refunds::create(&core, &auth, value, post.request()).await?,
    ))
}

/// Retrieve a refund.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    responses((status = 200, description = "The refund", body = RefundView),
              (status = 404, description = "No such refund for this merchant")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn get(
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    id: RefundId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&refunds::get(&core, &auth, &id).await?))
}
