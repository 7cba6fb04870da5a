//! The attributes accept well-formed functions and reject misuse with an
//! error that points at the offending tokens.

#[test]
fn attributes() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
