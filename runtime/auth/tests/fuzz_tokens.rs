//! Fuzzing of the JWT parser and verifier: any text, and valid tokens
//! damaged byte by byte, is refused with an error (or, untouched, accepted),
//! never a panic. Cases: `CAPSTAN_FUZZ_CASES` (CI runs the default; a soak
//! raises it).

// Test setup: a failed unwrap is the test's failure.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use base64::Engine;
use capstan_auth::{AuthConfig, Verifier, VerifierOptions};
use capstan_protocol::Clock;
use jsonwebtoken::{EncodingKey, Header};
use proptest::prelude::*;
use ring::signature::{self, KeyPair};
use serde_json::json;

fn cases(default: u32) -> u32 {
    std::env::var("CAPSTAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ISSUER: &str = "https://issuer.example.com";

/// A verifier with one Ed25519 key, and a valid token it accepts.
fn fixture() -> &'static (Verifier, String, tokio::runtime::Runtime) {
    static FIXTURE: OnceLock<(Verifier, String, tokio::runtime::Runtime)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let config: AuthConfig = serde_json::from_value(json!({"providers": [{
            "type": "customJwt", "issuer": ISSUER, "applicationID": "app", "algorithm": "EdDSA",
            "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k"}]},
        }]}))
        .unwrap();
        let verifier = Verifier::new(&config, VerifierOptions::default(), Clock::system()).unwrap();
        let now = Clock::system().unix_seconds();
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("k".into());
        let token = jsonwebtoken::encode(
            &header,
            &json!({"iss": ISSUER, "sub": "u", "aud": "app", "iat": now, "exp": now + 3600}),
            &EncodingKey::from_ed_der(pkcs8.as_ref()),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(verifier.verify(&token))
            .expect("the valid token verifies");
        (verifier, token, runtime)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(3000)))]

    #[test]
    fn any_text_is_refused(text in "[A-Za-z0-9_.=+/-]{0,300}|.{0,100}") {
        let (verifier, _, runtime) = fixture();
        prop_assert!(runtime.block_on(verifier.verify(&text)).is_err());
    }

    #[test]
    fn damaged_tokens_are_refused(at in 0usize..1000, byte in any::<u8>(), cut in 0usize..1000) {
        let (verifier, token, runtime) = fixture();
        let mut damaged = token.clone().into_bytes();
        let at = at % damaged.len();
        let changed = damaged[at] != byte;
        damaged[at] = byte;
        damaged.truncate(cut.max(1));
        let Ok(text) = String::from_utf8(damaged) else { return Ok(()) };
        let verified = runtime.block_on(verifier.verify(&text));
        if text != *token {
            // Base64url has spare bits in its last character: a change
            // there can decode to the same bytes, and then verify.
            let same_bytes = !changed || decoded(&text) == decoded(token);
            prop_assert!(verified.is_err() || same_bytes, "{text} verified");
        }
    }
}

fn decoded(token: &str) -> Vec<Option<Vec<u8>>> {
    token
        .split('.')
        .map(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .collect()
}
