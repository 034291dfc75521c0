//! From async-stripe's typed objects (API responses, at the pinned version) to the gateway's types.

use gateway_core::{
    CaptureMethod, CardDetails, Currency, Customer, IntentStatus, Metadata, NextAction, PaymentErrorDetails,
    PaymentIntent, ProviderError, Refund, SavedPaymentMethod, UnixTimestamp, WireAmountRules,
};
use stripe::ApiErrors;
use stripe_core::{PaymentIntentCaptureMethod, PaymentIntentNextAction};

use crate::webhook::refund_status;

/// Stripe answered with success, and the answer cannot be read into the
/// gateway's types: whatever the call did is unknown, never "failed".
fn unexpected(what: &str, value: &str) -> ProviderError {
    ProviderError::outcome_unknown_with(format!("Stripe returned an unexpected {what}: {value:?}"))
}

/// ISO 4217 minor units of an amount Stripe returned in `currency`'s wire units.
fn iso_amount(wire: i64, currency: Currency, field: &str) -> Result<i64, ProviderError> {
    WireAmountRules::STRIPE
        .from_wire(wire, currency)
        .ok_or_else(|| unexpected(field, &format!("{wire} in {currency}'s wire units")))
}

fn currency(code: &stripe_types::Currency) -> Result<Currency, ProviderError> {
    let code = code.to_string();
    Currency::from_code(&code).map_err(|_| unexpected("currency", &code))
}

/// The lower-case code Stripe expects in requests.
pub(crate) fn stripe_currency(currency: Currency) -> stripe_types::Currency {
    // Parsing is infallible: unknown codes become `Currency::Unknown(code)`, sent as is.
    match currency.code().to_ascii_lowercase().parse() {
        Ok(code) => code,
        Err(never) => match never {},
    }
}

fn metadata<'a>(entries: impl IntoIterator<Item = (&'a String, &'a String)>) -> Metadata {
    entries
        .into_iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn now() -> UnixTimestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn error_details(error: &ApiErrors) -> PaymentErrorDetails {
    PaymentErrorDetails {
        code: error.code.as_ref().map(|code| code.as_str().to_owned()),
        decline_code: error.decline_code.clone(),
        message: error.message.clone().unwrap_or_default(),
    }
}

fn next_action(action: &PaymentIntentNextAction) -> NextAction {
    match action
        .redirect_to_url
        .as_ref()
        .and_then(|redirect| redirect.url.clone().map(|url| (url, redirect.return_url.clone())))
    {
        Some((url, return_url)) => NextAction::RedirectToUrl { url, return_url },
        None => NextAction::UseSdk,
    }
}

/// A payment intent as Stripe returned it.
pub(crate) fn intent_from_stripe(
    intent: &stripe_core::PaymentIntent,
    provider: &str,
) -> Result<PaymentIntent, ProviderError> {
    let status = IntentStatus::parse(intent.status.as_str())
        .ok_or_else(|| unexpected("payment intent status", intent.status.as_str()))?;
    let capture_method = match intent.capture_method {
        PaymentIntentCaptureMethod::Manual => CaptureMethod::Manual,
        _ => CaptureMethod::Automatic,
    };
    let currency = currency(&intent.currency)?;
    Ok(PaymentIntent {
        id: intent.id.as_str().to_owned(),
        provider: provider.to_owned(),
        amount: iso_amount(intent.amount, currency, "amount")?,
        amount_received: iso_amount(intent.amount_received, currency, "amount_received")?,
        amount_capturable: iso_amount(intent.amount_capturable, currency, "amount_capturable")?,
        currency,
        status,
        capture_method,
        customer: intent
            .customer
            .as_ref()
            .map(|customer| customer.id().as_str().to_owned()),
        payment_method: intent
            .payment_method
            .as_ref()
            .map(|method| method.id().as_str().to_owned()),
        client_secret: intent.client_secret.clone(),
        metadata: metadata(&intent.metadata),
        description: intent.description.clone(),
        next_action: intent.next_action.as_ref().map(next_action),
        last_payment_error: intent.last_payment_error.as_deref().map(error_details),
        cancellation_reason: intent
            .cancellation_reason
            .as_ref()
            .map(|reason| reason.as_str().to_owned()),
        created: intent.created,
        // Stripe keeps no update time; the response is the state as of now.
        updated: now().max(intent.created),
    })
}

/// A refund as Stripe returned it, or `None` for `payment_intent` when
/// Stripe did not name the intent (a refund of a bare charge).
pub(crate) fn refund_from_stripe(
    refund: &stripe_core::Refund,
    provider: &str,
    payment_intent: Option<String>,
) -> Result<Refund, ProviderError> {
    let status_name = refund.status.as_deref().unwrap_or("pending");
    let payment_intent = refund
        .payment_intent
        .as_ref()
        .map(|intent| intent.id().as_str().to_owned())
        .or(payment_intent)
        .or_else(|| {
            refund
                .charge
                .as_ref()
                .and_then(|charge| charge.as_object())
                .and_then(|charge| charge.payment_intent.as_ref())
                .map(|intent| intent.id().as_str().to_owned())
        })
        .ok_or_else(|| unexpected("refund without a payment intent", refund.id.as_str()))?;
    let currency = currency(&refund.currency)?;
    Ok(Refund {
        id: refund.id.as_str().to_owned(),
        provider: provider.to_owned(),
        payment_intent,
        amount: iso_amount(refund.amount, currency, "refund amount")?,
        currency,
        status: refund_status(status_name).ok_or_else(|| unexpected("refund status", status_name))?,
        reason: refund.reason.as_ref().map(|reason| reason.as_str().to_owned()),
        failure_reason: refund.failure_reason.clone(),
        metadata: refund.metadata.as_ref().map(metadata).unwrap_or_default(),
        created: refund.created,
    })
}

/// Whether a refund names its intent, directly or through an expanded charge.
pub(crate) fn refund_names_intent(refund: &stripe_core::Refund) -> bool {
    refund.payment_intent.is_some()
        || refund
            .charge
            .as_ref()
            .and_then(|charge| charge.as_object())
            .is_some_and(|charge| charge.payment_intent.is_some())
}

/// A customer as Stripe returned it.
pub(crate) fn customer_from_stripe(customer: &stripe_core::Customer, provider: &str) -> Customer {
    Customer {
        id: customer.id.as_str().to_owned(),
        provider: provider.to_owned(),
        email: customer.email.clone(),
        name: customer.name.clone(),
        metadata: customer.metadata.as_ref().map(metadata).unwrap_or_default(),
        created: customer.created,
    }
}

/// A payment method as Stripe returned it, with its card details when it is a card.
pub(crate) fn method_from_stripe(
    method: &stripe_payment::PaymentMethod,
    provider: &str,
) -> SavedPaymentMethod {
    SavedPaymentMethod {
        id: method.id.as_str().to_owned(),
        provider: provider.to_owned(),
        customer: method
            .customer
            .as_ref()
            .map(|customer| customer.id().as_str().to_owned()),
        card: method.card.as_ref().map(|card| CardDetails {
            brand: card.brand.clone(),
            last4: card.last4.clone(),
            exp_month: u8::try_from(card.exp_month).unwrap_or(0),
            exp_year: u16::try_from(card.exp_year).unwrap_or(0),
            funding: Some(card.funding.clone()).filter(|funding| !funding.is_empty()),
            country: card.country.clone(),
        }),
        created: method.created,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The fixture intent from Stripe's OpenAPI fixtures, read by async-stripe's own parser.
    pub(crate) fn sample_intent() -> stripe_core::PaymentIntent {
        let mut intent = crate::test_fixtures::resource("payment_intent");
        intent["id"] = "pi_sample".into();
        intent["last_payment_error"] = serde_json::Value::Null;
        intent["next_action"] = serde_json::Value::Null;
        miniserde::json::from_str(&intent.to_string()).expect("the fixture parses as a PaymentIntent")
    }

    #[test]
    fn the_fixture_intent_converts() {
        let intent = intent_from_stripe(&sample_intent(), "stripe").unwrap();
        assert_eq!(intent.id, "pi_sample");
        assert_eq!(intent.amount, 1099);
        assert_eq!(intent.currency, Currency::USD);
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(intent.capture_method, CaptureMethod::Automatic);
        assert!(intent.client_secret.is_some());
    }

    #[test]
    fn currencies_go_out_lower_case() {
        assert_eq!(stripe_currency(Currency::USD).to_string(), "usd");
        assert_eq!(stripe_currency(Currency::JPY).to_string(), "jpy");
    }
}
