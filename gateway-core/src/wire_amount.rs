//! Wire amounts: how a provider writes an amount of money in its API, and
//! which amounts it refuses.
//!
//! [`Money`] counts ISO 4217 minor units. A provider's API does not always:
//! Stripe takes MGA in whole ariary (ISO gives it 2 decimals), ISK and UGX
//! with two decimals that are always `00` (ISO gives them none), the five
//! three-decimal currencies with a last digit of 0, and it refuses charges
//! under a per-currency minimum or over a maximum number of digits.
//! [`WireAmountRules`] holds one provider's rules and converts both ways;
//! [`WireAmountRules::STRIPE`] is Stripe's, applied by the Stripe provider
//! and by [`crate::MockProvider`] (Stripe's test mode in memory).
//!
//! A refusal is a [`ProviderError::InvalidRequest`] with Stripe's own codes
//! (`amount_too_small`, `amount_too_large`, `invalid_charge_amount`), raised
//! before anything is sent.
//!
//! ```
//! use gateway_core::{Currency, Money, WireAmountRules};
//!
//! let stripe = WireAmountRules::STRIPE;
//! let isk = Currency::from_code("ISK")?;
//! let mga = Currency::from_code("MGA")?;
//! assert_eq!(stripe.charge_to_wire(Money::parse("500", isk)?).unwrap(), 50_000);
//! assert_eq!(stripe.charge_to_wire(Money::parse("500.00", mga)?).unwrap(), 500);
//! assert_eq!(stripe.from_wire(500, mga), Some(50_000));
//! assert!(stripe.charge_to_wire(Money::parse("0.49", Currency::USD)?).is_err());
//! # Ok::<(), gateway_core::MoneyError>(())
//! ```

use crate::error::ProviderError;
use crate::money::{format_minor_units, Currency, Money};

/// Stripe's error code for a charge under the currency's minimum.
pub const AMOUNT_TOO_SMALL: &str = "amount_too_small";
/// Stripe's error code for an amount over the maximum.
pub const AMOUNT_TOO_LARGE: &str = "amount_too_large";
/// Stripe's error code for an amount the currency cannot carry on the wire.
pub const INVALID_CHARGE_AMOUNT: &str = "invalid_charge_amount";

/// One provider's amount rules, per currency, in static tables.
///
/// Currencies not listed take the defaults: `default_exponent` decimals on
/// the wire, any last digit, no minimum, at most `default_max_digits` digits.
#[derive(Debug, Clone, Copy)]
pub struct WireAmountRules {
    provider: &'static str,
    default_exponent: u8,
    exponents: &'static [(&'static str, u8)],
    steps: &'static [(&'static str, i64)],
    minimums: &'static [(&'static str, i64)],
    default_max_digits: u32,
    max_digits: &'static [(&'static str, u32)],
}

/// The rules of one currency at one provider, resolved from [`WireAmountRules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyRule {
    /// The currency.
    pub currency: Currency,
    /// Digits after the decimal point in the provider's wire amount (Stripe: MGA 0, ISK 2, KWD 3).
    pub wire_exponent: u8,
    /// Wire amounts must be a multiple of this (Stripe: 10 for three-decimal
    /// currencies, 100 for ISK and UGX, 1 otherwise).
    pub wire_step: i64,
    /// The smallest charge, in ISO minor units, when the provider publishes one.
    pub minimum_charge: Option<i64>,
    /// The largest wire amount.
    pub maximum_wire: i64,
}

impl WireAmountRules {
    /// Stripe's rules, as published at <https://docs.stripe.com/currencies>:
    ///
    /// - "Currencies are two-decimal currencies unless otherwise specified."
    /// - Zero-decimal: BIF, CLP, DJF, GNF, JPY, KMF, KRW, MGA, PYG, RWF, VND,
    ///   VUV, XAF, XOF, XPF. (UGX is on that list too, but its special case
    ///   below is the rule for amounts.)
    /// - Special cases: ISK and UGX are written as two-decimal values whose
    ///   decimals are always `00` (ISK 5 is `500`); HUF and TWD are
    ///   zero-decimal for payouts only and charge as two-decimal currencies.
    /// - Three-decimal: BHD, JOD, KWD, OMR, TND, with a last digit of 0.
    /// - Minimum charge amounts by currency (the table "Minimum charge amount
    ///   by currency"). Stripe applies the minimum of the account's
    ///   settlement currency after conversion; the charge currency's own
    ///   minimum is the bound that holds when the two are the same, and the
    ///   one checked here.
    /// - Maximum: 8 digits (`99999999`), 9 for INR, 10 for COP, 12 for IDR:
    ///   the limits that hold for every payment method (cards allow more).
    pub const STRIPE: WireAmountRules = WireAmountRules {
        provider: "Stripe",
        default_exponent: 2,
        exponents: &[
            ("BIF", 0),
            ("CLP", 0),
            ("DJF", 0),
            ("GNF", 0),
            ("JPY", 0),
            ("KMF", 0),
            ("KRW", 0),
            ("MGA", 0),
            ("PYG", 0),
            ("RWF", 0),
            ("VND", 0),
            ("VUV", 0),
            ("XAF", 0),
            ("XOF", 0),
            ("XPF", 0),
            ("ISK", 2),
            ("UGX", 2),
            ("BHD", 3),
            ("JOD", 3),
            ("KWD", 3),
            ("OMR", 3),
            ("TND", 3),
        ],
        steps: &[
            ("ISK", 100),
            ("UGX", 100),
            ("BHD", 10),
            ("JOD", 10),
            ("KWD", 10),
            ("OMR", 10),
            ("TND", 10),
        ],
        // ISO minor units of each currency.
        minimums: &[
            ("USD", 50),
            ("AED", 200),
            ("ARS", 50),
            ("AUD", 50),
            ("BRL", 50),
            ("CAD", 50),
            ("CHF", 50),
            ("COP", 50),
            ("CZK", 1500),
            ("DKK", 250),
            ("EUR", 50),
            ("GBP", 30),
            ("HKD", 400),
            ("HUF", 17500),
            ("IDR", 50),
            ("ILS", 50),
            ("INR", 50),
            ("JPY", 50),
            ("KRW", 50),
            ("MXN", 1000),
            ("MYR", 200),
            ("NOK", 300),
            ("NZD", 50),
            ("PHP", 50),
            ("PLN", 200),
            ("RON", 200),
            ("RUB", 50),
            ("SEK", 300),
            ("SGD", 50),
            ("THB", 1000),
            ("ZAR", 50),
        ],
        default_max_digits: 8,
        max_digits: &[("INR", 9), ("COP", 10), ("IDR", 12)],
    };

    /// The provider these rules are for, as named in messages.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The rules of `currency`.
    pub fn currency(&self, currency: Currency) -> CurrencyRule {
        let code = currency.code();
        let digits = lookup(self.max_digits, code).unwrap_or(self.default_max_digits);
        CurrencyRule {
            currency,
            wire_exponent: lookup(self.exponents, code).unwrap_or(self.default_exponent),
            wire_step: lookup(self.steps, code).unwrap_or(1),
            minimum_charge: lookup(self.minimums, code),
            maximum_wire: 10i64.pow(digits) - 1,
        }
    }

    /// The wire amount of a charge (a payment intent's amount): the currency's
    /// minimum, wire format and maximum all apply. Refusals name `param` `amount`.
    pub fn charge_to_wire(&self, amount: Money) -> Result<i64, ProviderError> {
        let rule = self.currency(amount.currency());
        if let Some(minimum) = rule
            .minimum_charge
            .filter(|minimum| amount.minor_units() < *minimum)
        {
            return Err(ProviderError::invalid(
                Some(AMOUNT_TOO_SMALL),
                Some("amount"),
                format!(
                    "{} charges at least {} {}; {amount} is less",
                    self.provider,
                    format_minor_units(minimum, amount.currency()),
                    amount.currency()
                ),
            ));
        }
        self.to_wire(amount.minor_units(), amount.currency(), "amount")
    }

    /// The wire amount of `minor` ISO minor units of `currency` (a capture
    /// or a refund: no minimum), refused with `param` when it is not
    /// positive, is not a whole number of wire units, breaks the wire step,
    /// or exceeds the maximum.
    pub fn to_wire(&self, minor: i64, currency: Currency, param: &str) -> Result<i64, ProviderError> {
        let rule = self.currency(currency);
        // The amount as shown in refusals: formatted only when one is made.
        let shown = || format_minor_units(minor, currency);
        let invalid = |why: String| {
            ProviderError::invalid(
                Some(INVALID_CHARGE_AMOUNT),
                Some(param),
                format!("{} cannot take {} {currency}: {why}", self.provider, shown()),
            )
        };
        if minor <= 0 {
            return Err(invalid("the amount must be greater than zero".to_owned()));
        }
        let iso = u32::from(currency.exponent());
        let wire_exponent = u32::from(rule.wire_exponent);
        let too_large = || {
            ProviderError::invalid(
                Some(AMOUNT_TOO_LARGE),
                Some(param),
                format!(
                    "{} takes at most {} {currency}; {} {currency} is more",
                    self.provider,
                    format_minor_units(rule.largest_minor(), currency),
                    shown(),
                ),
            )
        };
        let wire = if wire_exponent >= iso {
            minor
                .checked_mul(10i64.pow(wire_exponent - iso))
                .ok_or_else(too_large)?
        } else {
            let scale = 10i64.pow(iso - wire_exponent);
            if minor % scale != 0 {
                return Err(invalid(format!(
                    "{} writes {currency} with {} decimals",
                    self.provider, rule.wire_exponent
                )));
            }
            minor / scale
        };
        if wire % rule.wire_step != 0 {
            return Err(invalid(format!(
                "{} needs {currency} amounts in steps of {} {currency}",
                self.provider,
                rule.step_text()
            )));
        }
        if wire > rule.maximum_wire {
            return Err(too_large());
        }
        Ok(wire)
    }

    /// ISO minor units of a wire amount of `currency` the provider returned,
    /// or `None` when it is not a whole number of ISO minor units (or does
    /// not fit in 64 bits).
    pub fn from_wire(&self, wire: i64, currency: Currency) -> Option<i64> {
        self.currency(currency).from_wire(wire)
    }
}

/// The value listed for `code` in `table`.
fn lookup<T: Copy>(table: &[(&'static str, T)], code: &str) -> Option<T> {
    table
        .iter()
        .find(|(listed, _)| *listed == code)
        .map(|(_, value)| *value)
}

impl CurrencyRule {
    /// ISO minor units of `wire`, or `None` when they are not whole.
    pub fn from_wire(&self, wire: i64) -> Option<i64> {
        let iso = u32::from(self.currency.exponent());
        let wire_exponent = u32::from(self.wire_exponent);
        if iso >= wire_exponent {
            wire.checked_mul(10i64.pow(iso - wire_exponent))
        } else {
            let scale = 10i64.pow(wire_exponent - iso);
            (wire % scale == 0).then(|| wire / scale)
        }
    }

    /// The largest ISO amount whose wire amount is allowed, in minor units.
    fn largest_minor(&self) -> i64 {
        let iso = u32::from(self.currency.exponent());
        let wire_exponent = u32::from(self.wire_exponent);
        let largest_wire = self.maximum_wire - self.maximum_wire % self.wire_step;
        if iso >= wire_exponent {
            largest_wire.saturating_mul(10i64.pow(iso - wire_exponent))
        } else {
            largest_wire / 10i64.pow(wire_exponent - iso)
        }
    }

    /// The wire step as a decimal amount of the currency, e.g. `"0.010"` KWD or `"1"` ISK.
    fn step_text(&self) -> String {
        let minor = self.from_wire(self.wire_step).unwrap_or(self.wire_step);
        format_minor_units(minor, self.currency)
    }
}

#[cfg(test)]
mod tests;
