//! Stripe's published currency lists (https://docs.stripe.com/currencies),
//! copied here as the specification, walked entry by entry.

use super::*;

const STRIPE: WireAmountRules = WireAmountRules::STRIPE;

/// "Zero-decimal currencies", as Stripe lists them.
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF",
    "XPF",
];

/// "Three-decimal currencies", as Stripe lists them.
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// "Minimum charge amount by currency", as Stripe lists them.
const MINIMUMS: &[&str] = &[
    "0.50 USD",
    "2.00 AED",
    "0.50 ARS",
    "0.50 AUD",
    "0.50 BRL",
    "0.50 CAD",
    "0.50 CHF",
    "0.50 COP",
    "15.00 CZK",
    "2.50 DKK",
    "0.50 EUR",
    "0.30 GBP",
    "4.00 HKD",
    "175.00 HUF",
    "0.50 IDR",
    "0.50 ILS",
    "0.50 INR",
    "50 JPY",
    "50 KRW",
    "10 MXN",
    "2.00 MYR",
    "3.00 NOK",
    "0.50 NZD",
    "0.50 PHP",
    "2.00 PLN",
    "2.00 RON",
    "0.50 RUB",
    "3.00 SEK",
    "0.50 SGD",
    "10 THB",
    "0.50 ZAR",
];

fn currency(code: &str) -> Currency {
    Currency::from_code(code).unwrap_or_else(|error| panic!("{code}: {error}"))
}

fn money(decimal: &str, code: &str) -> Money {
    Money::parse(decimal, currency(code)).unwrap_or_else(|error| panic!("{decimal} {code}: {error}"))
}

fn refusal(result: Result<i64, ProviderError>) -> (String, String) {
    match result {
        Err(ProviderError::InvalidRequest {
            code: Some(code),
            param: Some(param),
            ..
        }) => (code, param),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn every_zero_decimal_currency_goes_out_in_whole_units() {
    for &code in ZERO_DECIMAL {
        // UGX is listed here and overridden by its special case (below).
        if code == "UGX" {
            continue;
        }
        let five_hundred = money("500", code);
        assert_eq!(STRIPE.charge_to_wire(five_hundred).ok(), Some(500), "{code}");
        assert_eq!(
            STRIPE.from_wire(500, currency(code)),
            Some(five_hundred.minor_units()),
            "{code}"
        );
        assert_eq!(STRIPE.currency(currency(code)).wire_exponent, 0, "{code}");
    }
}

#[test]
fn mga_is_zero_decimal_although_iso_gives_it_two() {
    let mga = currency("MGA");
    assert_eq!(mga.exponent(), 2, "ISO 4217");
    assert_eq!(STRIPE.charge_to_wire(money("500.00", "MGA")).ok(), Some(500));
    assert_eq!(STRIPE.from_wire(500, mga), Some(50_000));
    let (code, param) = refusal(STRIPE.charge_to_wire(money("500.50", "MGA")));
    assert_eq!((code.as_str(), param.as_str()), (INVALID_CHARGE_AMOUNT, "amount"));
    assert_eq!(STRIPE.to_wire(50_050, mga, "amount").ok(), None);
    assert_eq!(STRIPE.to_wire(100, mga, "amount").ok(), Some(1));
}

#[test]
fn isk_and_ugx_go_out_with_two_decimals_of_00() {
    for code in ["ISK", "UGX"] {
        let iso = currency(code);
        assert_eq!(iso.exponent(), 0, "{code}: ISO 4217");
        // "to charge 5 ISK, provide an amount value of 500".
        assert_eq!(STRIPE.charge_to_wire(money("5", code)).ok(), Some(500), "{code}");
        assert_eq!(
            STRIPE.charge_to_wire(money("500", code)).ok(),
            Some(50_000),
            "{code}"
        );
        assert_eq!(STRIPE.from_wire(50_000, iso), Some(500), "{code}");
        // "You can't charge fractions": a wire amount not ending in 00 is not an ISO amount.
        assert_eq!(STRIPE.from_wire(50_050, iso), None, "{code}");
        assert_eq!(STRIPE.currency(iso).wire_step, 100, "{code}");
    }
}

#[test]
fn huf_and_twd_charge_as_two_decimal_currencies() {
    // Their special cases are about payouts; "you can charge two-decimal amounts".
    assert_eq!(STRIPE.charge_to_wire(money("175.45", "HUF")).ok(), Some(17_545));
    assert_eq!(STRIPE.charge_to_wire(money("800.45", "TWD")).ok(), Some(80_045));
    assert_eq!(STRIPE.from_wire(80_045, currency("TWD")), Some(80_045));
}

#[test]
fn every_three_decimal_currency_needs_a_last_digit_of_0() {
    for &code in THREE_DECIMAL {
        let iso = currency(code);
        assert_eq!(iso.exponent(), 3, "{code}");
        // "5.124 KWD must be rounded to 5120 or 5130".
        assert_eq!(
            STRIPE.charge_to_wire(money("5.120", code)).ok(),
            Some(5120),
            "{code}"
        );
        assert_eq!(
            STRIPE.charge_to_wire(money("5.130", code)).ok(),
            Some(5130),
            "{code}"
        );
        let (error, param) = refusal(STRIPE.charge_to_wire(money("5.124", code)));
        assert_eq!(
            (error.as_str(), param.as_str()),
            (INVALID_CHARGE_AMOUNT, "amount"),
            "{code}"
        );
        let (_, param) = refusal(STRIPE.to_wire(5124, iso, "amount_to_capture"));
        assert_eq!(param, "amount_to_capture", "refunds and captures too: {code}");
        assert_eq!(STRIPE.from_wire(5120, iso), Some(5120), "{code}");
    }
}

#[test]
fn other_currencies_are_two_decimal() {
    for code in ["USD", "EUR", "GBP", "INR", "IDR", "COP", "AED", "BRL"] {
        assert_eq!(
            STRIPE.charge_to_wire(money("10.99", code)).ok(),
            Some(1099),
            "{code}"
        );
        assert_eq!(STRIPE.currency(currency(code)).wire_exponent, 2, "{code}");
    }
    // ISO gives IQD three decimals; Stripe lists it nowhere, so it is two-decimal on the wire.
    assert_eq!(STRIPE.charge_to_wire(money("1.230", "IQD")).ok(), Some(123));
    assert!(STRIPE.charge_to_wire(money("1.234", "IQD")).is_err());
}

#[test]
fn every_published_minimum_is_the_smallest_charge_accepted() {
    for entry in MINIMUMS {
        let (decimal, code) = entry.split_once(' ').unwrap();
        let minimum = money(decimal, code);
        assert!(STRIPE.charge_to_wire(minimum).is_ok(), "{entry}");
        let just_under = Money::from_minor(minimum.minor_units() - 1, minimum.currency()).unwrap();
        let (error, param) = refusal(STRIPE.charge_to_wire(just_under));
        assert_eq!(
            (error.as_str(), param.as_str()),
            (AMOUNT_TOO_SMALL, "amount"),
            "{entry}"
        );
        assert_eq!(
            STRIPE.currency(minimum.currency()).minimum_charge,
            Some(minimum.minor_units()),
            "{entry}"
        );
    }
    // The table lists nothing else: other currencies have no minimum of their own.
    let listed: Vec<_> = MINIMUMS.iter().map(|entry| &entry[entry.len() - 3..]).collect();
    for code in ["ISK", "MGA", "KWD", "VND", "TWD"] {
        assert!(!listed.contains(&code));
        assert_eq!(STRIPE.currency(currency(code)).minimum_charge, None, "{code}");
    }
}

#[test]
fn a_minimum_binds_charges_but_not_captures_or_refunds() {
    assert_eq!(STRIPE.to_wire(1, Currency::USD, "amount").ok(), Some(1));
    assert!(STRIPE
        .charge_to_wire(Money::from_minor(1, Currency::USD).unwrap())
        .is_err());
}

#[test]
fn the_maximum_is_8_digits_and_more_for_inr_cop_and_idr() {
    for (largest, code) in [
        ("999999.99", "USD"),
        ("99999999", "JPY"),
        ("9999999.99", "INR"),
        ("99999999.99", "COP"),
        ("9999999999.99", "IDR"),
        ("999999", "ISK"),
        ("99999999.00", "MGA"),
        ("99999.990", "KWD"),
    ] {
        let largest = money(largest, code);
        assert!(STRIPE.charge_to_wire(largest).is_ok(), "{largest}");
        let step = STRIPE
            .from_wire(STRIPE.currency(largest.currency()).wire_step, largest.currency())
            .unwrap();
        let more = Money::from_minor(largest.minor_units() + step, largest.currency()).unwrap();
        let (error, param) = refusal(STRIPE.charge_to_wire(more));
        assert_eq!(
            (error.as_str(), param.as_str()),
            (AMOUNT_TOO_LARGE, "amount"),
            "{more}"
        );
    }
    let (error, _) = refusal(STRIPE.to_wire(i64::MAX, currency("ISK"), "amount"));
    assert_eq!(error, AMOUNT_TOO_LARGE, "overflow is too large, not a panic");
}

#[test]
fn amounts_that_are_not_positive_are_refused() {
    for minor in [0, -1, i64::MIN] {
        let (error, param) = refusal(STRIPE.to_wire(minor, Currency::USD, "amount"));
        assert_eq!(
            (error.as_str(), param.as_str()),
            (INVALID_CHARGE_AMOUNT, "amount")
        );
    }
}

#[test]
fn messages_say_what_stripe_takes() {
    let error = STRIPE
        .charge_to_wire(Money::parse("0.49", Currency::USD).unwrap())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: Stripe charges at least 0.50 USD; 0.49 USD is less"
    );
    let error = STRIPE
        .charge_to_wire(Money::parse("1.234", Currency::KWD).unwrap())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: Stripe cannot take 1.234 KWD: Stripe needs KWD amounts in steps of 0.010 KWD"
    );
    let error = STRIPE
        .charge_to_wire(Money::parse("1000000", Currency::USD).unwrap())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: Stripe takes at most 999999.99 USD; 1000000.00 USD is more"
    );
}

/// The mock is Stripe's test mode in memory: it refuses what Stripe refuses.
#[cfg(feature = "mock")]
#[tokio::test]
async fn the_mock_applies_stripe_s_rules_where_amounts_enter() {
    use crate::provider::UpdateIntent;
    use crate::provider::{CaptureIntent, CreateIntent, CreateRefund, IdempotencyKey, PaymentProvider};
    use crate::CaptureMethod;

    let mock = crate::MockProvider::new();
    let key = |text: &str| IdempotencyKey::new(text).unwrap();
    let paid = |amount: Money, capture_method: CaptureMethod| {
        let mut request = CreateIntent::new(amount);
        request.payment_method = Some("pm_card_visa".to_owned());
        request.confirm = true;
        request.capture_method = capture_method;
        request
    };
    let code = |error: ProviderError| error.provider_code().map(str::to_owned);

    let small = mock
        .create_intent(paid(money("0.49", "USD"), CaptureMethod::Automatic), &key("k1"))
        .await
        .unwrap_err();
    assert_eq!(code(small).as_deref(), Some(AMOUNT_TOO_SMALL));
    let odd = mock
        .create_intent(paid(money("1.234", "KWD"), CaptureMethod::Automatic), &key("k2"))
        .await
        .unwrap_err();
    assert_eq!(code(odd).as_deref(), Some(INVALID_CHARGE_AMOUNT));
    let fraction = mock
        .create_intent(paid(money("500.50", "MGA"), CaptureMethod::Automatic), &key("k3"))
        .await
        .unwrap_err();
    assert_eq!(code(fraction).as_deref(), Some(INVALID_CHARGE_AMOUNT));
    assert_eq!(mock.stats().calls("create_intent"), 3);

    let open = mock
        .create_intent(CreateIntent::new(money("5.000", "KWD")), &key("k4"))
        .await
        .unwrap();
    let update = UpdateIntent {
        amount: Some(money("1.001", "KWD")),
        ..UpdateIntent::default()
    };
    let error = mock
        .update_intent(&open.id, update, &key("k5"))
        .await
        .unwrap_err();
    assert_eq!(code(error).as_deref(), Some(INVALID_CHARGE_AMOUNT));

    let held = mock
        .create_intent(paid(money("5.000", "KWD"), CaptureMethod::Manual), &key("k6"))
        .await
        .unwrap();
    let capture = CaptureIntent {
        amount_to_capture: Some(4_995),
    };
    let error = mock
        .capture_intent(&held.id, capture, &key("k7"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { ref param, .. } if param.as_deref() == Some("amount_to_capture"))
    );
    let captured = mock
        .capture_intent(
            &held.id,
            CaptureIntent {
                amount_to_capture: Some(4_990),
            },
            &key("k8"),
        )
        .await
        .unwrap();
    assert_eq!(captured.amount_received, 4_990);
    let error = mock
        .create_refund(CreateRefund::partial(&held.id, 5), &key("k9"))
        .await
        .unwrap_err();
    assert_eq!(code(error).as_deref(), Some(INVALID_CHARGE_AMOUNT));
    let refund = mock
        .create_refund(CreateRefund::partial(&held.id, 10), &key("k10"))
        .await
        .unwrap();
    assert_eq!(refund.amount, 10, "a refund has no minimum");
}
