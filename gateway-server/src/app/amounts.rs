//! Amounts and currencies as requests send them, read exactly (never through `f64`).

use gateway_core::{Currency, Money, MoneyError};
use serde_json::value::RawValue;

use crate::domain::error::ApiError;

/// A decimal amount as the request sent it (`"50.00"`), not yet tied to a
/// currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal(pub(crate) String);

impl Decimal {
    /// The decimal of an amount sent as a JSON number (`50.00`) or string
    /// (`"50.00"`), its text kept exactly; 400 naming `param` for anything else.
    pub(crate) fn from_json(raw: &RawValue, param: &str) -> Result<Decimal, ApiError> {
        let text = raw.get().trim();
        if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map(Decimal)
                .map_err(|_| ApiError::invalid_param(param, format!("{param} must be a decimal string")))
        } else if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            Ok(Decimal(text.to_owned()))
        } else {
            Err(ApiError::invalid_param(
                param,
                format!("{param} must be a decimal number such as 50.00 or a string such as \"50.00\""),
            ))
        }
    }

    /// The amount exactly in `currency`; 400 naming `param` if it does not fit.
    pub(crate) fn in_currency(&self, currency: Currency, param: &str) -> Result<Money, ApiError> {
        Money::parse(&self.0, currency).map_err(|error| money_error(param, &error))
    }
}

/// A 400 for a refused amount or currency.
pub(crate) fn money_error(param: &str, error: &MoneyError) -> ApiError {
    ApiError::invalid_param(param, error.to_string())
}

/// An amount sent as JSON, read once its currency is known: in the use case,
/// for amounts in the currency of a stored payment (after the payment's
/// state is checked).
pub(crate) fn amount_in(raw: &RawValue, currency: Currency, param: &str) -> Result<Money, ApiError> {
    Decimal::from_json(raw, param)?.in_currency(currency, param)
}

/// Parses a currency code.
pub(crate) fn parse_currency(code: &str) -> Result<Currency, ApiError> {
    Currency::from_code(code).map_err(|error| money_error("currency", &error))
}
