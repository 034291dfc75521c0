//! `/v1/refunds`: refund a captured payment in full or in part, and read a refund.

use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::{format_minor_units, CreateRefund, IntentStatus, Metadata, RefundStatus};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{check_id, validate_metadata};
use crate::app::core::Core;
use crate::app::idempotency::Outcome;
use crate::app::payments::{apply_refund, ChangeSource};
use crate::domain::error::Status;
use crate::domain::scopes::Scope;
use crate::http::auth::Auth;
use crate::http::body::{parse_amount, parse_json, read_body};
use crate::http::errors::{ok, success_bytes, ApiError};
use crate::http::idempotent;
use crate::store::{Change, RefundRow};
use crate::support::clock::{now_ms, rfc3339};
use crate::support::ids::new_id;

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

/// A refund as merchants see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundView {
    id: String,
    object: &'static str,
    payment_id: String,
    /// `completed`, `pending`, `failed` or `canceled`.
    status: &'static str,
    /// The provider's reference (`re_…`).
    provider_ref: String,
    amount: String,
    currency: &'static str,
    reason: Option<String>,
    failure_reason: Option<String>,
    metadata: Metadata,
    created_at: String,
}

impl RefundView {
    fn new(row: &RefundRow) -> Self {
        let refund = &row.refund;
        RefundView {
            id: row.id.clone(),
            object: "refund",
            payment_id: row.payment_id.clone(),
            status: match refund.status {
                RefundStatus::Succeeded => "completed",
                RefundStatus::Pending | RefundStatus::RequiresAction => "pending",
                RefundStatus::Failed => "failed",
                RefundStatus::Canceled => "canceled",
            },
            provider_ref: refund.id.clone(),
            amount: format_minor_units(refund.amount, refund.currency),
            currency: refund.currency.code(),
            reason: refund.reason.clone(),
            failure_reason: refund.failure_reason.clone(),
            metadata: refund.metadata.clone(),
            created_at: rfc3339(row.created_at),
        }
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
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: CreateRefundRequest = parse_json(&req, &body)?;
    let payment_id = check_id("payment", &input.payment_id)?.to_owned();
    if let Some(reason) = &input.reason {
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
    let metadata = input.metadata.unwrap_or_default();
    validate_metadata(&metadata)?;
    let state = &state;
    let auth_ref = &auth;
    idempotent::run(state, &auth, &req, &body, |keys| async move {
        let _guard = state.payment_locks.lock(payment_id.clone()).await;
        let mut payment = state
            .store
            .payment(&auth_ref.merchant_id, &payment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("payment", &payment_id).with_param("payment_id"))?;
        if payment.intent.status != IntentStatus::Succeeded {
            return Err(ApiError::conflict(
                "payment_not_captured",
                format!(
                    "payment {payment_id} has no captured funds to refund (it is {})",
                    payment.status()
                ),
            ));
        }
        let currency = payment.intent.currency;
        let remaining = payment.intent.amount_received - payment.amount_refunded;
        let amount = match &input.amount {
            Some(raw) => parse_amount(raw, currency, "amount")?.minor_units(),
            None => remaining,
        };
        if remaining <= 0 || amount > remaining {
            return Err(ApiError::unprocessable(
                "amount_too_large",
                format!(
                    "cannot refund {} {currency}: {} remains refundable",
                    format_minor_units(amount, currency),
                    format_minor_units(remaining.max(0), currency)
                ),
            )
            .with_param("amount"));
        }
        let provider = state
            .providers
            .for_merchant(
                &*state.store,
                &state.sealer,
                &auth_ref.merchant_id,
                &payment.provider,
            )
            .await?;
        let request = CreateRefund {
            payment_intent: payment.intent.id.clone(),
            amount: Some(amount),
            reason: input.reason,
            metadata,
        };
        let refund = provider.create_refund(request, &keys.step("refund")?).await?;
        let row = RefundRow {
            id: new_id(),
            merchant_id: auth_ref.merchant_id.to_string(),
            payment_id: payment.id.clone(),
            created_at: now_ms(),
            refund,
        };
        let mut changes = vec![Change::InsertRefund(Box::new(row.clone()))];
        let mut updates = Vec::new();
        if row.refund.status.holds_funds() {
            let (change, mut update) = apply_refund(&mut payment, row.refund.amount, ChangeSource::Api);
            update.refund = Some(row.refund.clone());
            changes.push(change);
            updates.push(update);
        }
        Ok(Outcome {
            status: Status::OK,
            body: success_bytes(&RefundView::new(&row)),
            changes,
            updates,
        })
    })
    .await
}

/// Retrieve a refund.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "Refund id")),
    responses((status = 200, description = "The refund", body = RefundView),
              (status = 404, description = "No such refund for this merchant")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn get(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let id = check_id("refund", &id)?;
    let row = state
        .store
        .refund(&auth.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("refund", id))?;
    Ok(ok(&RefundView::new(&row)))
}
