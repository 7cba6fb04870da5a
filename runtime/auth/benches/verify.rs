//! JWT verification with cached keys: verifications per second on one core
//! for RS256 (2048-bit), ES256 and EdDSA tokens, through the whole
//! [`Verifier`] path (size, header, provider, key, signature, claims,
//! identity), next to the signature check alone on the same key (ring, as
//! jsonwebtoken calls it), which bounds it.
//!
//! Run with `cargo bench -p capstan-auth`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use capstan_auth::{AuthConfig, Verifier, VerifierOptions};
use capstan_protocol::Clock;
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};

const PHASE: Duration = Duration::from_secs(3);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa() -> (EncodingKey, Value) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("key");
    let public = private.to_public_key();
    (
        EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("der").as_bytes()),
        json!({"kty": "RSA", "kid": "rsa", "n": b64(&public.n().to_bytes_be()),
               "e": b64(&public.e().to_bytes_be())}),
    )
}

fn ec() -> (EncodingKey, Value) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
    let point = pair.public_key().as_ref();
    (
        EncodingKey::from_ec_der(pkcs8.as_ref()),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
    )
}

fn ed() -> (EncodingKey, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    (
        EncodingKey::from_ed_der(pkcs8.as_ref()),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(pair.public_key().as_ref())}),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({"iss": "https://auth.example.com", "sub": "user_2abc|session_9xyz",
                        "aud": "app", "iat": now, "exp": now + 3600,
                        "name": "Ada Lovelace", "email": "ada@example.com"});
    println!("JWT verification with cached keys, one core (through the whole verifier)");
    for (name, algorithm, (key, jwk)) in [
        ("RS256", jsonwebtoken::Algorithm::RS256, rsa()),
        ("ES256", jsonwebtoken::Algorithm::ES256, ec()),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA, ed()),
    ] {
        let config: AuthConfig = serde_json::from_value(json!({"providers": [{
            "type": "customJwt", "issuer": "https://auth.example.com", "applicationID": "app",
            "algorithm": name, "jwks": {"keys": [jwk]},
        }]}))
        .expect("config");
        let verifier =
            Verifier::new(&config, VerifierOptions::default(), Clock::system()).expect("verifier");
        let header = Header {
            kid: jwk["kid"].as_str().map(str::to_owned),
            ..Header::new(algorithm)
        };
        let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
        for _ in 0..200 {
            verifier.verify(&token).await.expect("verify");
        }
        let mut count = 0u64;
        let started = Instant::now();
        while started.elapsed() < PHASE {
            for _ in 0..100 {
                verifier.verify(&token).await.expect("verify");
            }
            count += 100;
        }
        let rate = count as f64 / started.elapsed().as_secs_f64();
        // The signature check alone, on the same token and key: the floor.
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let decoding = match algorithm {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::DecodingKey::from_rsa_components(
                jwk["n"].as_str().expect("n"),
                jwk["e"].as_str().expect("e"),
            ),
            jsonwebtoken::Algorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_components(
                jwk["x"].as_str().expect("x"),
                jwk["y"].as_str().expect("y"),
            ),
            _ => jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().expect("x")),
        }
        .expect("key");
        let mut bare = 0u64;
        let started = Instant::now();
        while started.elapsed() < PHASE {
            for _ in 0..100 {
                assert!(
                    jsonwebtoken::crypto::verify(
                        signature,
                        signed.as_bytes(),
                        &decoding,
                        algorithm
                    )
                    .expect("verify")
                );
            }
            bare += 100;
        }
        let bare_rate = bare as f64 / started.elapsed().as_secs_f64();
        println!(
            "    {name}: {rate:>8.0} verifications/s ({:>5.1} µs each); the signature check alone: {bare_rate:>8.0}/s; verifier / bare: {:.2}",
            1e6 / rate,
            rate / bare_rate
        );
    }
}
