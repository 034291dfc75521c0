//! The merchant-facing wire views of a payment: one shape for the API's
//! answers and the merchant webhooks' payloads.

use gateway_core::{CaptureMethod, IntentStatus, Metadata, NextAction};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::records::PaymentRow;
use crate::support::clock::rfc3339;

/// What the customer must do next.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NextActionView<'a> {
    /// `redirect_to_url` (3-D Secure) or `use_sdk`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Where to send the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_url: Option<&'a str>,
    /// Where the customer comes back.
    #[serde(skip_serializing_if = "Option::is_none")]
    return_url: Option<&'a str>,
}

/// Why the last attempt failed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LastErrorView<'a> {
    code: Option<&'a str>,
    decline_code: Option<&'a str>,
    message: &'a str,
}

/// A payment as merchants see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentView<'a> {
    id: &'a str,
    object: &'static str,
    merchant_id: &'a str,
    /// Exact decimal string in the currency's units.
    amount: String,
    amount_received: String,
    amount_capturable: String,
    amount_refunded: String,
    currency: &'static str,
    provider: &'a str,
    /// `pending`, `completed`, `failed`, `canceled`, `refunded` or `partially_refunded`.
    status: &'static str,
    /// The provider-side status (`requires_action`, `succeeded`, …).
    intent_status: &'static str,
    /// The provider's reference (`pi_…`); empty until the provider has created the intent.
    provider_ref: &'a str,
    /// True while the gateway has asked the provider and not stored its
    /// answer: the outcome of the last call (creating, confirming, capturing
    /// or canceling) is unknown until it is resolved, by a retry of the same
    /// request (same `Idempotency-Key`) or by reconciliation. Never retry it
    /// with a new key.
    awaiting_provider: bool,
    capture_method: &'static str,
    payment_method: Option<&'a str>,
    saved_card_id: Option<&'a str>,
    customer_email: Option<&'a str>,
    description: Option<&'a str>,
    metadata: &'a Metadata,
    order_id: Option<&'a str>,
    /// For the client-side flow, while the customer still has to act: only
    /// in the answers to create and confirm (which need `payments:write`),
    /// never in reads, lists or merchant webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    return_url: Option<&'a str>,
    next_action: Option<NextActionView<'a>>,
    last_error: Option<LastErrorView<'a>>,
    cancellation_reason: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    created_at: String,
    updated_at: String,
}

impl<'a> PaymentView<'a> {
    /// The payment with its `client_secret` while the customer still has to
    /// act: for the answers to create and confirm only.
    pub(crate) fn with_client_secret(row: &'a PaymentRow) -> Self {
        let mut view = PaymentView::new(row);
        view.client_secret = row
            .intent
            .client_secret
            .as_deref()
            .filter(|_| awaits_customer(row));
        view
    }

    /// Whether [`PaymentView::with_client_secret`] would show a secret.
    pub(crate) fn has_client_secret(row: &PaymentRow) -> bool {
        row.intent.client_secret.is_some() && awaits_customer(row)
    }

    /// The payment as every reader may see it: never its `client_secret`.
    pub(crate) fn new(row: &'a PaymentRow) -> Self {
        let intent = &row.intent;
        let money = |minor: i64| gateway_core::format_minor_units(minor, intent.currency);
        PaymentView {
            id: &row.id,
            object: "payment",
            merchant_id: &row.merchant_id,
            amount: money(intent.amount),
            amount_received: money(intent.amount_received),
            amount_capturable: money(intent.amount_capturable),
            amount_refunded: money(row.amount_refunded),
            currency: intent.currency.code(),
            provider: &row.provider,
            status: row.status().as_str(),
            intent_status: intent.status.as_str(),
            provider_ref: &intent.id,
            awaiting_provider: row.pending_step.is_some(),
            capture_method: match intent.capture_method {
                CaptureMethod::Automatic => "automatic",
                CaptureMethod::Manual => "manual",
            },
            payment_method: intent.payment_method.as_deref(),
            saved_card_id: row.saved_card_id.as_deref(),
            customer_email: row.customer_email.as_deref(),
            description: intent.description.as_deref(),
            metadata: &intent.metadata,
            order_id: intent.order_id(),
            client_secret: None,
            return_url: row.return_url.as_deref(),
            next_action: intent.next_action.as_ref().map(|action| match action {
                NextAction::RedirectToUrl { url, return_url } => NextActionView {
                    kind: "redirect_to_url",
                    redirect_url: Some(url),
                    return_url: return_url.as_deref(),
                },
                _ => NextActionView {
                    kind: "use_sdk",
                    redirect_url: None,
                    return_url: None,
                },
            }),
            last_error: intent.last_payment_error.as_ref().map(|error| LastErrorView {
                code: error.code.as_deref(),
                decline_code: error.decline_code.as_deref(),
                message: &error.message,
            }),
            cancellation_reason: intent.cancellation_reason.as_deref(),
            idempotency_key: row.idempotency_key.as_deref(),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// Whether the customer still has to act on the payment.
fn awaits_customer(row: &PaymentRow) -> bool {
    matches!(
        row.intent.status,
        IntentStatus::RequiresPaymentMethod
            | IntentStatus::RequiresConfirmation
            | IntentStatus::RequiresAction
    )
}
