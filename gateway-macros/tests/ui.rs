//! Compile-time behaviour of `#[payment_handler]`: what compiles, and the
//! error each misuse gives (committed `.stderr` beside each case).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
