//! Money: a positive amount in integer minor units with an ISO 4217 currency.
//!
//! Amounts are never floats. Decimal strings such as `"50.00"` are parsed
//! exactly against the currency's exponent (USD 2, JPY 0, KWD 3), taken from
//! the complete ISO 4217 table of the `iso_currency` crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount or a currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The amount text was empty.
    #[error("amount is empty; send a decimal such as \"50.00\"")]
    Empty,
    /// The amount text is not a plain decimal (signs, exponents, spaces, `NaN` …).
    #[error("amount {input:?} is not a plain decimal; send digits with an optional '.' such as \"50.00\"")]
    InvalidFormat {
        /// The text as received.
        input: String,
    },
    /// More fractional digits than the currency has minor units.
    #[error("amount {input:?} has {found} decimal places but {currency} allows at most {allowed}")]
    TooManyDecimals {
        /// The text as received.
        input: String,
        /// The currency code.
        currency: Currency,
        /// The currency's exponent.
        allowed: u8,
        /// Fractional digits found.
        found: usize,
    },
    /// The amount was zero or negative.
    #[error("amount must be greater than zero")]
    NotPositive,
    /// The amount does not fit in 64-bit minor units.
    #[error("amount is too large")]
    Overflow,
    /// The code is not an ISO 4217 currency.
    #[error("unknown currency {code:?}; send an ISO 4217 code such as \"USD\"")]
    UnknownCurrency {
        /// The code as received.
        code: String,
    },
    /// The code is ISO 4217 but has no minor unit (gold, SDR, test codes).
    #[error("currency {code} cannot be used for payments")]
    NotPayable {
        /// The ISO code.
        code: &'static str,
    },
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// The first currency.
        left: Currency,
        /// The second currency.
        right: Currency,
    },
}

/// An ISO 4217 currency that can carry payments (it has a minor-unit exponent).
///
/// Parsed case-insensitively (`"usd"`, `"USD"`); shown and serialized as the
/// upper-case code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// United States dollar (exponent 2).
    pub const USD: Currency = Currency(iso_currency::Currency::USD);
    /// Euro (exponent 2).
    pub const EUR: Currency = Currency(iso_currency::Currency::EUR);
    /// Pound sterling (exponent 2).
    pub const GBP: Currency = Currency(iso_currency::Currency::GBP);
    /// Japanese yen (exponent 0).
    pub const JPY: Currency = Currency(iso_currency::Currency::JPY);
    /// Kuwaiti dinar (exponent 3).
    pub const KWD: Currency = Currency(iso_currency::Currency::KWD);

    /// Looks up an ISO 4217 code, in either case.
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency {
            code: code.to_owned(),
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(unknown());
        }
        let iso = iso_currency::Currency::from_code(&code.to_ascii_uppercase()).ok_or_else(unknown)?;
        if iso.exponent().is_none() {
            return Err(MoneyError::NotPayable { code: iso.code() });
        }
        Ok(Currency(iso))
    }

    /// The upper-case ISO code, e.g. `"USD"`.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point in the major unit (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u8 {
        // Every `Currency` is built through `from_code`, which refuses codes without one.
        self.0.exponent().map_or(0, |e| e as u8)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// A positive amount of money: integer minor units and a currency.
///
/// ```
/// use gateway_core::{Currency, Money};
///
/// let price = Money::parse("50.00", Currency::USD)?;
/// assert_eq!(price.minor_units(), 5000);
/// assert_eq!(price.to_string(), "50.00 USD");
/// assert!(Money::parse("1.5", Currency::JPY).is_err());
/// # Ok::<(), gateway_core::MoneyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
pub struct Money {
    minor: i64,
    currency: Currency,
}

#[derive(Serialize, Deserialize)]
struct MoneyRepr {
    amount: i64,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;

    fn try_from(repr: MoneyRepr) -> Result<Self, Self::Error> {
        Money::from_minor(repr.amount, repr.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(money: Money) -> Self {
        MoneyRepr {
            amount: money.minor,
            currency: money.currency,
        }
    }
}

impl Money {
    /// Money from minor units (cents for USD, yen for JPY); must be positive.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(Money { minor, currency })
    }

    /// Parses a plain decimal string exactly: `"50.00"` USD is 5000 minor units.
    ///
    /// Refused: signs, exponents, surrounding spaces, `NaN`, a bare `"."`,
    /// more fractional digits than the currency has, zero, and anything past
    /// `i64::MAX` minor units.
    pub fn parse(decimal: &str, currency: Currency) -> Result<Self, MoneyError> {
        if decimal.is_empty() {
            return Err(MoneyError::Empty);
        }
        let invalid = || MoneyError::InvalidFormat {
            input: decimal.to_owned(),
        };
        if decimal.starts_with('-') && is_plain_decimal(&decimal[1..]) {
            return Err(MoneyError::NotPositive);
        }
        if !is_plain_decimal(decimal) {
            return Err(invalid());
        }
        let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
        let exponent = currency.exponent();
        if fraction.len() > usize::from(exponent) {
            return Err(MoneyError::TooManyDecimals {
                input: decimal.to_owned(),
                currency,
                allowed: exponent,
                found: fraction.len(),
            });
        }
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .chain(std::iter::repeat_n(b'0', usize::from(exponent) - fraction.len()));
        let mut minor: i64 = 0;
        for digit in digits {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        Money::from_minor(minor, currency)
    }

    /// Parses a decimal string with a currency code, e.g. `("10.00", "usd")`.
    pub fn parse_with_code(decimal: &str, currency_code: &str) -> Result<Self, MoneyError> {
        Money::parse(decimal, Currency::from_code(currency_code)?)
    }

    /// The amount in minor units.
    pub fn minor_units(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount as an exact decimal string without currency: `"50.00"`, `"100"`, `"1.250"`.
    pub fn to_decimal_string(self) -> String {
        format_minor_units(self.minor, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Formats any minor-unit count (zero and negative included) as an exact decimal in `currency`.
pub fn format_minor_units(minor: i64, currency: Currency) -> String {
    let exponent = u32::from(currency.exponent());
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = exponent as usize
    )
}

/// Digits, optionally followed by `.` and at least one digit.
fn is_plain_decimal(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Result<i64, MoneyError> {
        Money::parse(text, Currency::USD).map(Money::minor_units)
    }

    #[test]
    fn parses_exact_decimals_per_currency_exponent() {
        assert_eq!(usd("50.00"), Ok(5000));
        assert_eq!(usd("50"), Ok(5000));
        assert_eq!(usd("50.5"), Ok(5050));
        assert_eq!(usd("0.01"), Ok(1));
        assert_eq!(usd("007.50"), Ok(750));
        assert_eq!(
            Money::parse("100", Currency::JPY).map(Money::minor_units),
            Ok(100)
        );
        assert_eq!(
            Money::parse("1.250", Currency::KWD).map(Money::minor_units),
            Ok(1250)
        );
    }

    #[test]
    fn refuses_too_many_decimals() {
        assert!(matches!(
            Money::parse("1.5", Currency::JPY),
            Err(MoneyError::TooManyDecimals {
                allowed: 0,
                found: 1,
                ..
            })
        ));
        assert!(matches!(
            usd("50.001"),
            Err(MoneyError::TooManyDecimals {
                allowed: 2,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            Money::parse("1.2345", Currency::KWD),
            Err(MoneyError::TooManyDecimals { allowed: 3, .. })
        ));
    }

    #[test]
    fn refuses_zero_and_negative() {
        assert_eq!(usd("0"), Err(MoneyError::NotPositive));
        assert_eq!(usd("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(usd("-1"), Err(MoneyError::NotPositive));
        assert_eq!(usd("-0.50"), Err(MoneyError::NotPositive));
        assert_eq!(Money::from_minor(0, Currency::USD), Err(MoneyError::NotPositive));
        assert_eq!(Money::from_minor(-5, Currency::USD), Err(MoneyError::NotPositive));
    }

    #[test]
    fn refuses_anything_but_plain_decimals() {
        for text in [
            "1e3", "  5", "5 ", "NaN", "inf", "+5", ".5", "5.", ".", "1,000", "1.2.3", "٣", "0x10", "--1",
        ] {
            assert!(
                matches!(usd(text), Err(MoneyError::InvalidFormat { .. })),
                "{text:?} gave {:?}",
                usd(text)
            );
        }
        assert_eq!(usd(""), Err(MoneyError::Empty));
    }

    #[test]
    fn refuses_amounts_past_i64() {
        assert_eq!(usd("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(usd("92233720368547758.08"), Err(MoneyError::Overflow));
        assert_eq!(usd("99999999999999999999999999"), Err(MoneyError::Overflow));
        assert_eq!(
            Money::parse("9223372036854775808", Currency::JPY),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn currency_codes_in_either_case_and_unknown_refused() {
        assert_eq!(Currency::from_code("usd"), Ok(Currency::USD));
        assert_eq!(Currency::from_code("Usd"), Ok(Currency::USD));
        assert_eq!(Currency::from_code("JPY").map(Currency::exponent), Ok(0));
        assert_eq!(Currency::from_code("kwd").map(Currency::exponent), Ok(3));
        assert_eq!(Currency::from_code("CLP").map(Currency::exponent), Ok(0));
        assert_eq!(Currency::from_code("BHD").map(Currency::exponent), Ok(3));
        for code in ["ZZZ", "US", "USDD", "", "U$D"] {
            assert!(
                matches!(Currency::from_code(code), Err(MoneyError::UnknownCurrency { .. })),
                "{code}"
            );
        }
        assert_eq!(
            Currency::from_code("XAU"),
            Err(MoneyError::NotPayable { code: "XAU" })
        );
        assert!(matches!(
            Money::parse_with_code("10.00", "ZZZ"),
            Err(MoneyError::UnknownCurrency { .. })
        ));
        assert_eq!(
            Money::parse_with_code("10.00", "eur").map(Money::minor_units),
            Ok(1000)
        );
    }

    #[test]
    fn formats_exactly() {
        let money = |minor, currency| Money::from_minor(minor, currency).unwrap();
        assert_eq!(money(5000, Currency::USD).to_decimal_string(), "50.00");
        assert_eq!(money(5, Currency::USD).to_decimal_string(), "0.05");
        assert_eq!(money(100, Currency::JPY).to_decimal_string(), "100");
        assert_eq!(money(1250, Currency::KWD).to_string(), "1.250 KWD");
        assert_eq!(format_minor_units(-5, Currency::USD), "-0.05");
        assert_eq!(format_minor_units(0, Currency::JPY), "0");
        assert_eq!(
            format_minor_units(i64::MIN, Currency::USD),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn parse_and_format_round_trip() {
        for (text, currency) in [
            ("50.00", Currency::USD),
            ("100", Currency::JPY),
            ("0.001", Currency::KWD),
        ] {
            assert_eq!(Money::parse(text, currency).unwrap().to_decimal_string(), text);
        }
    }

    #[test]
    fn serde_both_ways() {
        let money = Money::parse("50.00", Currency::USD).unwrap();
        let json = serde_json::to_string(&money).unwrap();
        assert_eq!(json, r#"{"amount":5000,"currency":"USD"}"#);
        assert_eq!(
            serde_json::from_str::<Money>(r#"{"amount":5000,"currency":"usd"}"#).unwrap(),
            money
        );
        assert!(serde_json::from_str::<Money>(r#"{"amount":0,"currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":5,"currency":"ZZZ"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":5.5,"currency":"USD"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Currency>(r#""jpy""#).unwrap(),
            Currency::JPY
        );
        assert_eq!(serde_json::to_string(&Currency::KWD).unwrap(), r#""KWD""#);
    }
}
