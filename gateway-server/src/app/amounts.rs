//! Amounts and currencies as requests send them, read exactly (never through `f64`).

use gateway_core::{Currency, Money, MoneyError};

use crate::domain::error::ApiError;

/// A decimal amount as the request sent it (`"50.00"`), not yet tied to a
/// currency: the use case parses it in the payment's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal(pub(crate) String);

impl Decimal {
    /// The amount exactly in `currency`; 400 naming `param` if it does not fit.
    pub(crate) fn in_currency(&self, currency: Currency, param: &str) -> Result<Money, ApiError> {
        Money::parse(&self.0, currency).map_err(|error| money_error(param, &error))
    }
}

/// A 400 for a refused amount or currency.
pub(crate) fn money_error(param: &str, error: &MoneyError) -> ApiError {
    ApiError::invalid_param(param, error.to_string())
}

/// Parses a currency code.
pub(crate) fn parse_currency(code: &str) -> Result<Currency, ApiError> {
    Currency::from_code(code).map_err(|error| money_error("currency", &error))
}
