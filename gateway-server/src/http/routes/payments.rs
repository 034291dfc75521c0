//! `/v1/payments`: create, read, list, confirm, capture, cancel.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::{
    CancelIntent, CaptureIntent, CaptureMethod, ConfirmIntent, CreateIntent, IntentStatus, Metadata,
    PaymentIntent, PaymentProvider, ProviderError, ORDER_ID_METADATA_KEY,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{check_id, parse_query, validate_email, validate_len, validate_metadata, validate_url};
use crate::app::core::Core;
use crate::app::idempotency::{Outcome, ProviderKeys};
use crate::app::payments::{apply_intent_change, commit_and_publish, new_payment, ChangeSource};
use crate::domain::error::Status;
use crate::domain::scopes::Scope;
pub(crate) use crate::domain::views::PaymentView;
use crate::http::auth::Auth;
use crate::http::body::{parse_amount, parse_currency, parse_json, read_body};
use crate::http::errors::{ok, success_bytes, ApiError};
use crate::http::idempotent;
use crate::store::{PaymentFilter, PaymentRow};
use crate::support::clock::{now_ms, parse_time};
use crate::support::ids::new_id;

/// `POST /v1/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePaymentRequest {
    /// Amount to charge (> 0), a JSON number `50.00` or string `"50.00"`, read exactly.
    #[schema(value_type = String, example = "50.00")]
    amount: Box<RawValue>,
    /// 3-letter ISO 4217 code.
    #[schema(example = "USD")]
    currency: String,
    /// Provider name (`stripe`, `mock`); the gateway's default when omitted.
    provider: Option<String>,
    /// The provider's payment method token (`pm_card_visa`).
    payment_method: Option<String>,
    /// Where the customer returns after 3-D Secure.
    return_url: Option<String>,
    /// Charge a saved card off-session instead of `payment_method`.
    saved_card_id: Option<String>,
    /// `automatic` (default) or `manual` (authorize now, capture later).
    #[schema(value_type = Option<String>, example = "automatic")]
    capture_method: Option<CaptureMethod>,
    /// `false` creates the payment for the client-side flow and returns the client secret.
    confirm: Option<bool>,
    /// Free-form key/value pairs (`order_id` links your order).
    metadata: Option<Metadata>,
    /// Your order id (stored as `metadata.order_id`).
    order_id: Option<String>,
    /// Shown in the provider's dashboard.
    description: Option<String>,
    /// Where the provider sends the receipt.
    customer_email: Option<String>,
}

/// `POST /v1/payments/{id}/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmPaymentRequest {
    /// The payment method to charge, if none is attached yet.
    payment_method: Option<String>,
    /// Where the customer returns after 3-D Secure.
    return_url: Option<String>,
}

/// `POST /v1/payments/{id}/capture`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapturePaymentRequest {
    /// Amount to capture; everything authorized when omitted. The rest is released.
    #[schema(value_type = Option<String>, example = "30.00")]
    amount: Option<Box<RawValue>>,
}

/// `POST /v1/payments/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelPaymentRequest {
    /// `duplicate`, `fraudulent`, `requested_by_customer` or `abandoned`.
    reason: Option<String>,
}

/// A page of payments.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentList<'a> {
    object: &'static str,
    data: Vec<PaymentView<'a>>,
    has_more: bool,
    /// Pass as `cursor` to get the next page.
    next_cursor: Option<String>,
}

/// Query of `GET /v1/payments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    currency: Option<String>,
    min_amount: Option<String>,
    max_amount: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    starting_after: Option<String>,
}

fn idempotency_key_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(crate::app::idempotency::HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|key| key.trim().to_owned())
}

/// The outcome of a provider call on an intent: the new intent, plus the
/// error when the provider declined and still returned the intent.
fn split_result(
    result: Result<PaymentIntent, ProviderError>,
) -> Result<(PaymentIntent, Option<ProviderError>), ApiError> {
    match result {
        Ok(intent) => Ok((intent, None)),
        Err(error) => match error.intent().cloned() {
            Some(intent) => Ok((intent, Some(error))),
            None => Err(error.into()),
        },
    }
}

fn payment_outcome(row: &PaymentRow, error: Option<ProviderError>) -> (Status, Vec<u8>) {
    match error {
        None => (Status::OK, success_bytes(&PaymentView::new(row))),
        Some(error) => {
            let api = ApiError::from(error).with_payment(row.id.clone());
            (api.status(), api.body_bytes())
        }
    }
}

/// Create a payment.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    request_body = CreatePaymentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 402, description = "Declined; the failed payment is stored"),
              (status = 400, description = "Invalid request")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn create(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: CreatePaymentRequest = parse_json(&req, &body)?;
    let currency = parse_currency(&input.currency)?;
    let amount = parse_amount(&input.amount, currency, "amount")?;
    let mut metadata = input.metadata.unwrap_or_default();
    if let Some(order_id) = input.order_id {
        validate_len("order_id", &order_id, 500)?;
        metadata.insert(ORDER_ID_METADATA_KEY.to_owned(), order_id);
    }
    validate_metadata(&metadata)?;
    if let Some(url) = &input.return_url {
        validate_url("return_url", url)?;
    }
    if let Some(email) = &input.customer_email {
        validate_email("customer_email", email)?;
    }
    if let Some(description) = &input.description {
        validate_len("description", description, 1000)?;
    }
    if let Some(method) = &input.payment_method {
        if method.is_empty() || method.len() > 255 {
            return Err(ApiError::invalid_param(
                "payment_method",
                "payment_method must be 1 to 255 characters",
            ));
        }
    }
    let confirm = input.confirm.unwrap_or(true);
    let card = match &input.saved_card_id {
        Some(card_id) => {
            if input.payment_method.is_some() {
                return Err(ApiError::invalid_param(
                    "saved_card_id",
                    "send either payment_method or saved_card_id, not both",
                ));
            }
            if !confirm {
                return Err(ApiError::invalid_param(
                    "confirm",
                    "a saved card is charged off-session: confirm must be true",
                ));
            }
            let card = state
                .store
                .card(&auth.merchant_id, check_id("saved card", card_id)?)
                .await?
                .filter(|card| card.active)
                .ok_or_else(|| ApiError::not_found("saved card", card_id).with_param("saved_card_id"))?;
            Some(card)
        }
        None => None,
    };
    if confirm && card.is_none() && input.payment_method.is_none() {
        return Err(ApiError::missing_param("payment_method"));
    }
    let provider_name = match (&input.provider, &card) {
        (Some(name), Some(card)) if *name != card.provider => {
            return Err(ApiError::invalid_param(
                "provider",
                format!("the saved card belongs to provider {:?}", card.provider),
            ))
        }
        (Some(name), _) => name.clone(),
        (None, Some(card)) => card.provider.clone(),
        (None, None) => state
            .providers
            .default_name()
            .ok_or_else(|| ApiError::missing_param("provider"))?
            .to_owned(),
    };
    let provider = state
        .providers
        .for_merchant(&*state.store, &state.sealer, &auth.merchant_id, &provider_name)
        .await?;
    let mut request = CreateIntent::new(amount);
    request.capture_method = input.capture_method.unwrap_or_default();
    request.confirm = confirm;
    request.return_url = input.return_url.clone();
    request.metadata = metadata;
    request.description = input.description;
    request.receipt_email = input.customer_email.clone();
    match &card {
        Some(card) => {
            request.customer = Some(card.provider_customer_id.clone());
            request.payment_method = Some(card.provider_payment_method.clone());
            request.off_session = true;
        }
        None => request.payment_method = input.payment_method,
    }
    let idempotency_key = idempotency_key_of(&req);
    let merchant_id = auth.merchant_id.to_string();
    idempotent::run(&state, &auth, &req, &body, |keys: ProviderKeys| async move {
        let key = keys.step("create_intent")?;
        let (intent, error) = split_result(provider.create_intent(request, &key).await)?;
        let now = now_ms();
        let row = PaymentRow {
            id: new_id(),
            merchant_id,
            provider: provider_name,
            intent,
            amount_refunded: 0,
            idempotency_key,
            saved_card_id: card.map(|card| card.id),
            customer_email: input.customer_email,
            return_url: input.return_url,
            created_at: now,
            updated_at: now,
        };
        let (status, body) = payment_outcome(&row, error);
        let (change, update) = new_payment(row, ChangeSource::Api);
        Ok(Outcome {
            status,
            body,
            changes: vec![change],
            updates: vec![update],
        })
    })
    .await
}

/// Retrieve a payment. A payment waiting on the customer (3-D Secure) or on
/// the provider is refreshed from the provider first.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 404, description = "No such payment for this merchant")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn get(
    state: web::Data<Core>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let id = check_id("payment", &id)?;
    let row = load(&state, &auth, id).await?;
    if !matches!(
        row.intent.status,
        IntentStatus::RequiresAction | IntentStatus::Processing
    ) {
        return Ok(ok(&PaymentView::new(&row)));
    }
    let _guard = state.payment_locks.lock(row.id.clone()).await;
    let mut row = load(&state, &auth, id).await?;
    let provider = state
        .providers
        .for_merchant(&*state.store, &state.sealer, &auth.merchant_id, &row.provider)
        .await?;
    match provider.retrieve_intent(&row.intent.id).await {
        Ok(intent) => {
            if let Some((change, update)) = apply_intent_change(&mut row, intent, ChangeSource::Reconcile) {
                commit_and_publish(&state, vec![change], &[update]).await?;
            }
        }
        Err(error) => {
            tracing::warn!(payment = %row.id, %error, "refreshing the intent failed; showing the stored state")
        }
    }
    Ok(ok(&PaymentView::new(&row)))
}

async fn load(state: &Core, auth: &Auth, id: &str) -> Result<PaymentRow, ApiError> {
    state
        .store
        .payment(&auth.merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment", id))
}

/// Parses a non-negative decimal into ten-thousandths of the major unit.
fn parse_e4(param: &str, text: &str) -> Result<i64, ApiError> {
    let invalid =
        || ApiError::invalid_param(param, format!("{param} must be a decimal such as 100 or 10.50"));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || fraction.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(invalid());
    }
    let mut value: i64 = 0;
    let padded = fraction.bytes().chain(std::iter::repeat(b'0')).take(4);
    for digit in whole.bytes().chain(padded) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(value)
}

/// List payments, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    params(("provider" = Option<String>, Query, description = "Provider name"),
           ("status" = Option<String>, Query, description = "pending, completed, failed, canceled, refunded, partially_refunded"),
           ("currency" = Option<String>, Query, description = "ISO code"),
           ("min_amount" = Option<String>, Query, description = "Decimal, inclusive"),
           ("max_amount" = Option<String>, Query, description = "Decimal, inclusive"),
           ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("until" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of payments", body = PaymentList)),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn list(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsRead)?;
    let query: ListQuery = parse_query(&req)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(
            [
                gateway_core::PaymentStatus::Pending,
                gateway_core::PaymentStatus::Completed,
                gateway_core::PaymentStatus::Failed,
                gateway_core::PaymentStatus::Canceled,
                gateway_core::PaymentStatus::Refunded,
                gateway_core::PaymentStatus::PartiallyRefunded,
            ]
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| ApiError::invalid_param("status", format!("unknown status {name:?}")))?,
        ),
    };
    let currency = query
        .currency
        .as_deref()
        .map(parse_currency)
        .transpose()?
        .map(|currency| currency.code().to_owned());
    let time = |param: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                parse_time(text).ok_or_else(|| {
                    ApiError::invalid_param(
                        param,
                        format!("{param} must be an RFC 3339 time such as 2025-06-01T00:00:00Z"),
                    )
                })
            })
            .transpose()
    };
    let cursor = query.cursor.or(query.starting_after);
    if let Some(cursor) = &cursor {
        if state
            .store
            .payment(
                &auth.merchant_id,
                check_id("payment", cursor)
                    .map_err(|_| ApiError::invalid_param("cursor", "unknown cursor"))?,
            )
            .await?
            .is_none()
        {
            return Err(ApiError::invalid_param("cursor", "unknown cursor"));
        }
    }
    let filter = PaymentFilter {
        provider: query.provider,
        status,
        currency,
        min_amount_e4: query
            .min_amount
            .as_deref()
            .map(|t| parse_e4("min_amount", t))
            .transpose()?,
        max_amount_e4: query
            .max_amount
            .as_deref()
            .map(|t| parse_e4("max_amount", t))
            .transpose()?,
        since_ms: time("since", &query.since)?,
        until_ms: time("until", &query.until)?,
        after_id: cursor,
        limit: limit + 1,
    };
    let mut rows = state.store.payments(&auth.merchant_id, &filter).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let list = PaymentList {
        object: "list",
        next_cursor: if has_more {
            rows.last().map(|row| row.id.clone())
        } else {
            None
        },
        data: rows.iter().map(PaymentView::new).collect(),
        has_more,
    };
    Ok(ok(&list))
}

/// Runs a provider operation on a stored payment under its lock, storing the
/// intent it returns through [`apply_intent_change`].
async fn change_payment<F, Fut>(
    state: &Core,
    auth: &Auth,
    req: &HttpRequest,
    body: &[u8],
    id: &str,
    check: impl FnOnce(&PaymentRow) -> Result<(), ApiError>,
    call: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Arc<dyn PaymentProvider>, PaymentRow, ProviderKeys) -> Fut,
    Fut: std::future::Future<Output = Result<PaymentIntent, ProviderError>>,
{
    let id = check_id("payment", id)?;
    idempotent::run(state, auth, req, body, |keys| async move {
        let _guard = state.payment_locks.lock(id.to_owned()).await;
        let mut row = load(state, auth, id).await?;
        check(&row)?;
        let provider = state
            .providers
            .for_merchant(&*state.store, &state.sealer, &auth.merchant_id, &row.provider)
            .await?;
        let (intent, error) = split_result(call(provider, row.clone(), keys).await)?;
        let mut changes = Vec::new();
        let mut updates = Vec::new();
        if let Some((change, update)) = apply_intent_change(&mut row, intent, ChangeSource::Api) {
            changes.push(change);
            updates.push(update);
        }
        let (status, body) = payment_outcome(&row, error);
        Ok(Outcome {
            status,
            body,
            changes,
            updates,
        })
    })
    .await
}

fn state_error(row: &PaymentRow, action: &str) -> ApiError {
    ApiError::conflict(
        "payment_unexpected_state",
        format!(
            "cannot {action} payment {} while it is {} ({})",
            row.id,
            row.status(),
            row.intent.status
        ),
    )
}

/// Confirm a payment created with `confirm: false` (or retry a failed one).
#[utoipa::path(post, path = "/v1/payments/{id}/confirm", tag = "payments",
    request_body = ConfirmPaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 402, description = "Declined"), (status = 409, description = "Not confirmable")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn confirm(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: ConfirmPaymentRequest = parse_json(&req, &body)?;
    if let Some(url) = &input.return_url {
        validate_url("return_url", url)?;
    }
    let check = |row: &PaymentRow| {
        if !matches!(
            row.intent.status,
            IntentStatus::RequiresPaymentMethod
                | IntentStatus::RequiresConfirmation
                | IntentStatus::RequiresAction
        ) {
            return Err(state_error(row, "confirm"));
        }
        if input.payment_method.is_none() && row.intent.payment_method.is_none() {
            return Err(ApiError::missing_param("payment_method"));
        }
        Ok(())
    };
    let request = ConfirmIntent {
        payment_method: input.payment_method.clone(),
        return_url: input.return_url.clone(),
        off_session: false,
    };
    change_payment(
        &state,
        &auth,
        &req,
        &body,
        &id,
        check,
        |provider, row, keys| async move {
            let key = keys
                .step("confirm")
                .map_err(|_| ProviderError::unavailable("key"))?;
            provider.confirm_intent(&row.intent.id, request, &key).await
        },
    )
    .await
}

/// Capture an authorized payment, in full or in part.
#[utoipa::path(post, path = "/v1/payments/{id}/capture", tag = "payments",
    request_body = CapturePaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 409, description = "Not awaiting capture"), (status = 422, description = "More than authorized")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn capture(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: CapturePaymentRequest = parse_json(&req, &body)?;
    let amount_cell = std::cell::Cell::new(None);
    let check = |row: &PaymentRow| {
        if row.intent.status != IntentStatus::RequiresCapture {
            return Err(state_error(row, "capture"));
        }
        if let Some(raw) = &input.amount {
            let money = parse_amount(raw, row.intent.currency, "amount")?;
            if money.minor_units() > row.intent.amount_capturable {
                return Err(ApiError::unprocessable(
                    "amount_too_large",
                    format!(
                        "cannot capture {} {}: only {} is authorized",
                        money.to_decimal_string(),
                        row.intent.currency,
                        gateway_core::format_minor_units(row.intent.amount_capturable, row.intent.currency)
                    ),
                )
                .with_param("amount"));
            }
            amount_cell.set(Some(money.minor_units()));
        }
        Ok(())
    };
    let amount_ref = &amount_cell;
    change_payment(
        &state,
        &auth,
        &req,
        &body,
        &id,
        check,
        |provider, row, keys| async move {
            let key = keys
                .step("capture")
                .map_err(|_| ProviderError::unavailable("key"))?;
            let request = CaptureIntent {
                amount_to_capture: amount_ref.get(),
            };
            provider.capture_intent(&row.intent.id, request, &key).await
        },
    )
    .await
}

/// Cancel a payment that is not captured.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    request_body = CancelPaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 409, description = "Already captured or canceled")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn cancel(
    state: web::Data<Core>,
    auth: Auth,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(Scope::PaymentsWrite)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let input: CancelPaymentRequest = parse_json(&req, &body)?;
    if let Some(reason) = &input.reason {
        if !matches!(
            reason.as_str(),
            "duplicate" | "fraudulent" | "requested_by_customer" | "abandoned"
        ) {
            return Err(ApiError::invalid_param(
                "reason",
                "reason must be duplicate, fraudulent, requested_by_customer or abandoned",
            ));
        }
    }
    let check = |row: &PaymentRow| {
        if row.intent.status.is_terminal() {
            return Err(state_error(row, "cancel"));
        }
        Ok(())
    };
    let request = CancelIntent { reason: input.reason };
    change_payment(
        &state,
        &auth,
        &req,
        &body,
        &id,
        check,
        |provider, row, keys| async move {
            let key = keys
                .step("cancel")
                .map_err(|_| ProviderError::unavailable("key"))?;
            provider.cancel_intent(&row.intent.id, request, &key).await
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_amounts_parse_exactly() {
        assert_eq!(parse_e4("m", "100").unwrap(), 1_000_000);
        assert_eq!(parse_e4("m", "10.5").unwrap(), 105_000);
        assert_eq!(parse_e4("m", "0.0001").unwrap(), 1);
        for bad in ["", "1.", ".5", "1.23456", "-1", "1e3", "abc"] {
            assert!(parse_e4("m", bad).is_err(), "{bad}");
        }
    }
}
