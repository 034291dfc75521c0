//! `/v1/payments`: create, read, list, confirm, capture, cancel.

use actix_web::web;
use gateway_core::{CaptureMethod, Metadata, PaymentStatus, ORDER_ID_METADATA_KEY};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::app::amounts::parse_currency;
use crate::app::core::Core;
use crate::app::payments_api::{self, Cancel, Capture, Confirm, NewPayment};
use crate::app::timeline::{self as app_timeline, TimelineEntry};
pub(crate) use crate::domain::views::PaymentView;
use crate::http::auth::{Auth, PaymentsRead, PaymentsWrite};
use crate::http::body::parse_amount;
use crate::http::errors::ApiError;
use crate::http::extract::{ListQuery, Page, PaymentId, SavedCardId, Success, Validate};
use crate::http::idempotent::{Idempotent, Replied};
use crate::http::validate::{validate_email, validate_len, validate_metadata, validate_url};
use crate::store::PaymentFilter;
use crate::support::clock::parse_time;

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

impl Validate for CreatePaymentRequest {
    type Valid = NewPayment;

    fn validate(self) -> Result<NewPayment, ApiError> {
        let currency = parse_currency(&self.currency)?;
        let amount = parse_amount(&self.amount, currency, "amount")?;
        let mut metadata = self.metadata.unwrap_or_default();
        if let Some(order_id) = self.order_id {
            validate_len("order_id", &order_id, 500)?;
            metadata.insert(ORDER_ID_METADATA_KEY.to_owned(), order_id);
        }
        validate_metadata(&metadata)?;
        if let Some(url) = &self.return_url {
            validate_url("return_url", url)?;
        }
        if let Some(email) = &self.customer_email {
            validate_email("customer_email", email)?;
        }
        if let Some(description) = &self.description {
            validate_len("description", description, 1000)?;
        }
        if let Some(method) = &self.payment_method {
            if method.is_empty() || method.len() > 255 {
                return Err(ApiError::invalid_param(
                    "payment_method",
                    "payment_method must be 1 to 255 characters",
                ));
            }
        }
        let confirm = self.confirm.unwrap_or(true);
        let saved_card_id = match self.saved_card_id {
            Some(card_id) => {
                if self.payment_method.is_some() {
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
                Some(SavedCardId::parse(card_id)?.into_string())
            }
            None => None,
        };
        if confirm && saved_card_id.is_none() && self.payment_method.is_none() {
            return Err(ApiError::missing_param("payment_method"));
        }
        Ok(NewPayment {
            amount,
            provider: self.provider,
            payment_method: self.payment_method,
            return_url: self.return_url,
            saved_card_id,
            capture_method: self.capture_method.unwrap_or_default(),
            confirm,
            metadata,
            description: self.description,
            customer_email: self.customer_email,
        })
    }
}

impl Validate for ConfirmPaymentRequest {
    type Valid = Confirm;

    fn validate(self) -> Result<Confirm, ApiError> {
        if let Some(url) = &self.return_url {
            validate_url("return_url", url)?;
        }
        Ok(Confirm {
            payment_method: self.payment_method,
            return_url: self.return_url,
        })
    }
}

impl Validate for CapturePaymentRequest {
    type Valid = Capture;

    fn validate(self) -> Result<Capture, ApiError> {
        Ok(Capture { amount: self.amount })
    }
}

impl Validate for CancelPaymentRequest {
    type Valid = Cancel;

    fn validate(self) -> Result<Cancel, ApiError> {
        if let Some(reason) = &self.reason {
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
        Ok(Cancel { reason: self.reason })
    }
}

/// A page of payments (`app::lists::List` of [`PaymentView`]), as documented.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
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
pub(crate) struct PaymentQuery {
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

/// An RFC 3339 time parameter as Unix milliseconds.
pub(crate) fn time_param(param: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|text| {
        parse_time(text).ok_or_else(|| {
            ApiError::invalid_param(
                param,
                format!("{param} must be an RFC 3339 time such as 2025-06-01T00:00:00Z"),
            )
        })
    })
    .transpose()
}

impl ListQuery for PaymentQuery {
    const CURSOR_KIND: &'static str = "payment";
    /// The filters; `after_id` and `limit` come from the page.
    type Search = PaymentFilter;

    fn take_page(&mut self) -> (Option<u32>, Option<String>) {
        (
            self.limit.take(),
            self.cursor.take().or(self.starting_after.take()),
        )
    }

    fn search(self) -> Result<PaymentFilter, ApiError> {
        let status = match self.status.as_deref() {
            None => None,
            Some(name) => Some(
                PaymentStatus::parse(name)
                    .ok_or_else(|| ApiError::invalid_param("status", format!("unknown status {name:?}")))?,
            ),
        };
        let currency = self
            .currency
            .as_deref()
            .map(parse_currency)
            .transpose()?
            .map(|currency| currency.code().to_owned());
        let amount = |param: &str, text: Option<&str>| text.map(|t| parse_e4(param, t)).transpose();
        Ok(PaymentFilter {
            provider: self.provider,
            status,
            currency,
            min_amount_e4: amount("min_amount", self.min_amount.as_deref())?,
            max_amount_e4: amount("max_amount", self.max_amount.as_deref())?,
            since_ms: time_param("since", self.since.as_deref())?,
            until_ms: time_param("until", self.until.as_deref())?,
            after_id: None,
            limit: 0,
        })
    }
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

/// Create a payment.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    request_body = CreatePaymentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 202, description = "The provider's answer to a call that may move money was not received: the payment (`awaiting_provider: true`) is resolved by retrying this request with the same Idempotency-Key, or by reconciliation. Never retry with a new key.", body = PaymentView),
              (status = 402, description = "Declined; the failed payment is stored"),
              (status = 400, description = "Invalid request")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn create(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<CreatePaymentRequest>,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        payments_api::create(&core, &auth, value, post.request()).await?,
    ))
}

/// Retrieve a payment. A payment waiting on the customer (3-D Secure) or on
/// the provider is refreshed from the provider first.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 404, description = "No such payment for this merchant")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn get(
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    id: PaymentId,
) -> Result<Success, ApiError> {
    let row = payments_api::get(&core, &auth, &id).await?;
    Ok(Success::of(&PaymentView::new(&row)))
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
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    query: Page<PaymentQuery>,
) -> Result<Success, ApiError> {
    let page = payments_api::list(&core, &auth, query.search, query.page).await?;
    Ok(Success::of(&page.list(|row| &row.id, PaymentView::new)))
}

/// Confirm a payment created with `confirm: false` (or retry a failed one).
#[utoipa::path(post, path = "/v1/payments/{id}/confirm", tag = "payments",
    request_body = ConfirmPaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 202, description = "The provider's answer to a call that may move money was not received: the payment (`awaiting_provider: true`) is resolved by retrying this request with the same Idempotency-Key, or by reconciliation. Never retry with a new key.", body = PaymentView),
              (status = 402, description = "Declined"), (status = 409, description = "Not confirmable")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn confirm(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<ConfirmPaymentRequest>,
    id: PaymentId,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        payments_api::confirm(&core, &auth, &id, value, post.request()).await?,
    ))
}

/// Capture an authorized payment, in full or in part.
#[utoipa::path(post, path = "/v1/payments/{id}/capture", tag = "payments",
    request_body = CapturePaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 202, description = "The provider's answer to a call that may move money was not received: the payment (`awaiting_provider: true`) is resolved by retrying this request with the same Idempotency-Key, or by reconciliation. Never retry with a new key.", body = PaymentView),
              (status = 409, description = "Not awaiting capture"), (status = 422, description = "More than authorized")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn capture(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<CapturePaymentRequest>,
    id: PaymentId,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        payments_api::capture(&core, &auth, &id, value, post.request()).await?,
    ))
}

/// Cancel a payment that is not captured.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    request_body = CancelPaymentRequest,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment", body = PaymentView),
              (status = 202, description = "The provider's answer to a call that may move money was not received: the payment (`awaiting_provider: true`) is resolved by retrying this request with the same Idempotency-Key, or by reconciliation. Never retry with a new key.", body = PaymentView),
              (status = 409, description = "Already captured or canceled")),
    security(("api_key" = ["payments:write"])))]
pub(crate) async fn cancel(
    core: web::Data<Core>,
    auth: Auth<PaymentsWrite>,
    body: Idempotent<CancelPaymentRequest>,
    id: PaymentId,
) -> Result<Replied, ApiError> {
    let Idempotent { value, post } = body;
    Ok(Replied(
        payments_api::cancel(&core, &auth, &id, value, post.request()).await?,
    ))
}

/// A payment's timeline as documented: every entry at once, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct PaymentTimeline {
    /// Always `list`.
    object: &'static str,
    data: Vec<TimelineEntry>,
    /// Whether entries past the per-payment cap (200 besides status changes) were dropped.
    truncated: bool,
}

/// A payment's history, oldest first: the API requests about it (replayed
/// or not), its provider calls (latency, outcome), provider webhooks
/// (duplicates too), status changes (from → to, source), handler outcomes
/// and merchant webhook deliveries. Bounded: at most 200 entries besides
/// status changes are kept per payment (then `truncated` is true), and the
/// whole list is answered at once. It holds no secret and no body.
#[utoipa::path(get, path = "/v1/payments/{id}/timeline", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "The payment's timeline", body = PaymentTimeline),
              (status = 404, description = "No such payment for this merchant")),
    security(("api_key" = ["payments:read"])))]
pub(crate) async fn timeline(
    core: web::Data<Core>,
    auth: Auth<PaymentsRead>,
    id: PaymentId,
) -> Result<Success, ApiError> {
    Ok(Success::of(&app_timeline::timeline(&core, &auth, &id).await?))
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
