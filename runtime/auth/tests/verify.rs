//! The verifier against keys made here and a JWKS/discovery server on
//! loopback: accepted tokens and their identities, a table of hostile
//! tokens, key rotation, the refetch rate limit and stale-if-error.

// Test setup: a failed unwrap is the test's failure.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use base64::Engine;
use capstan_auth::{AuthConfig, AuthError, Verifier, VerifierOptions};
use capstan_protocol::{Clock, ManualClock};
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key and its public JWK.
#[derive(Clone)]
struct Signer {
    algorithm: jsonwebtoken::Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    jwk: Value,
    /// RSA only: the public key as PEM, for the HS256 confusion attack.
    public_pem: Option<String>,
}

impl Signer {
    fn rsa(kid: Option<&str>) -> Signer {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePublicKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rand_core(), 2048).unwrap();
        let public = private.to_public_key();
        let mut jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        Signer {
            algorithm: jsonwebtoken::Algorithm::RS256,
            kid: kid.map(str::to_owned),
            encoding: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
            jwk,
            public_pem: Some(
                public
                    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .unwrap(),
            ),
        }
    }

    fn ec(kid: Option<&str>) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let point = pair.public_key().as_ref();
        let mut jwk = json!({
            "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        Signer {
            algorithm: jsonwebtoken::Algorithm::ES256,
            kid: kid.map(str::to_owned),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            public_pem: None,
        }
    }

    fn ed(kid: Option<&str>) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        Signer {
            algorithm: jsonwebtoken::Algorithm::EdDSA,
            kid: kid.map(str::to_owned),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk,
            public_pem: None,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn rand_core() -> impl rsa::rand_core::CryptoRngCore {
    rsa::rand_core::OsRng
}

/// A token issuer on loopback: discovery, JWKS, request counts, and a
/// switch that makes it fail.
#[derive(Clone)]
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    /// What discovery lists in `id_token_signing_alg_values_supported`.
    algorithms: Arc<Mutex<Vec<&'static str>>>,
    jwks_requests: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    /// Discovery names the keys inline, as a `data:` URL.
    inline_keys: Arc<AtomicBool>,
}

async fn issuer(cache_control: &'static str) -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let issuer = Issuer {
        url: url.clone(),
        keys: Arc::default(),
        algorithms: Arc::new(Mutex::new(vec!["RS256", "ES256", "EdDSA"])),
        jwks_requests: Arc::default(),
        down: Arc::default(),
        inline_keys: Arc::default(),
    };
    let discovery = {
        let issuer = issuer.clone();
        move || async move {
            if issuer.down.load(Ordering::SeqCst) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            let jwks_uri = if issuer.inline_keys.load(Ordering::SeqCst) {
                let keys = json!({"keys": *issuer.keys.lock().unwrap()});
                format!(
                    "data:application/json;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(keys.to_string())
                )
            } else {
                format!("{}/jwks", issuer.url)
            };
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
            Ok((
                headers,
                axum::Json(json!({
                    "issuer": issuer.url,
                    "jwks_uri": jwks_uri,
                    "id_token_signing_alg_values_supported": *issuer.algorithms.lock().unwrap(),
                })),
            ))
        }
    };
    let jwks = {
        let issuer = issuer.clone();
        move || async move {
            issuer.jwks_requests.fetch_add(1, Ordering::SeqCst);
            if issuer.down.load(Ordering::SeqCst) {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
            let keys = issuer.keys.lock().unwrap().clone();
            Ok((headers, axum::Json(json!({ "keys": keys }))))
        }
    };
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks));
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

fn claims(iss: &str, aud: &str) -> Value {
    let now = now();
    json!({"iss": iss, "sub": "user-1", "aud": aud, "iat": now, "exp": now + 600,
           "name": "Ada", "email": "ada@example.com", "email_verified": true})
}

fn verifier(config: Value, options: VerifierOptions) -> Verifier {
    verifier_with(config, options, Clock::system())
}

/// A verifier whose time is `clock`'s.
fn verifier_with(config: Value, options: VerifierOptions, clock: Clock) -> Verifier {
    let config: AuthConfig = serde_json::from_value(config).unwrap();
    Verifier::new(&config, options, clock).unwrap()
}

#[tokio::test]
async fn oidc_tokens_verify_through_discovery_with_every_algorithm() {
    let issuer = issuer("max-age=300").await;
    let signers = [
        Signer::rsa(Some("r1")),
        Signer::ec(Some("e1")),
        Signer::ed(Some("d1")),
    ];
    *issuer.keys.lock().unwrap() = signers.iter().map(|s| s.jwk.clone()).collect();
    let verifier = verifier(
        json!({"providers": [{"domain": issuer.url, "applicationID": "app"}]}),
        VerifierOptions::default(),
    );
    for signer in &signers {
        let identity = verifier
            .verify(&signer.sign(&claims(&issuer.url, "app")))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", signer.algorithm));
        assert_eq!(identity.token_identifier, format!("{}|user-1", issuer.url));
        let json: Value = serde_json::from_str(&identity.json).unwrap();
        assert_eq!(json["email"], "ada@example.com");
        assert_eq!(json["emailVerified"], true);
        assert_eq!(json["issuer"], issuer.url);
    }
    // One fetch served all three, and the cache keeps serving.
    assert_eq!(issuer.jwks_requests.load(Ordering::SeqCst), 1);
    // A token without `kid` is fine for OIDC when one key matches.
    let no_kid = Signer {
        kid: None,
        ..signers[1].clone()
    };
    verifier
        .verify(&no_kid.sign(&claims(&issuer.url, "app")))
        .await
        .unwrap();
}

#[tokio::test]
async fn custom_jwt_providers_with_keys_made_here() {
    let rsa = Signer::rsa(Some("rsa-1"));
    let ec = Signer::ec(Some("ec-1"));
    let issuer = issuer("max-age=300").await;
    *issuer.keys.lock().unwrap() = vec![ec.jwk.clone()];
    let verifier = verifier(
        json!({"providers": [
            {"type": "customJwt", "issuer": "https://rsa.example.com", "algorithm": "RS256",
             "jwks": {"keys": [rsa.jwk]}, "applicationID": "app"},
            {"type": "customJwt", "issuer": issuer.url, "algorithm": "ES256",
             "jwks": format!("{}/jwks", issuer.url)},
        ]}),
        VerifierOptions::default(),
    );
    let mut rs = claims("https://rsa.example.com", "app");
    rs["org"] = json!({"id": "o-1"});
    let identity = verifier.verify(&rsa.sign(&rs)).await.unwrap();
    let json: Value = serde_json::from_str(&identity.json).unwrap();
    assert_eq!(json["org.id"], "o-1");
    assert_eq!(json["name"], "Ada");
    assert_eq!(json["subject"], "user-1");
    // No applicationID: any audience.
    let identity = verifier
        .verify(&ec.sign(&claims(&issuer.url, "whatever")))
        .await
        .unwrap();
    assert_eq!(identity.issuer, issuer.url);
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_the_failed_check() {
    let issuer = issuer("max-age=300").await;
    let good = Signer::rsa(Some("k1"));
    let stranger = Signer::rsa(Some("k1"));
    *issuer.keys.lock().unwrap() = vec![good.jwk.clone()];
    let verifier = verifier(
        json!({"providers": [
            {"domain": issuer.url, "applicationID": "app"},
            {"type": "customJwt", "issuer": "https://custom.example.com", "algorithm": "RS256",
             "jwks": {"keys": [good.jwk]}},
        ]}),
        VerifierOptions::default(),
    );
    let base = claims(&issuer.url, "app");
    let signed = good.sign(&base);
    verifier.verify(&signed).await.unwrap();

    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        good.sign(&c)
    };
    let unsigned = |header: Value, claims: &Value| {
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    };
    let hs256_with_public_key = jsonwebtoken::encode(
        &Header {
            kid: Some("k1".into()),
            ..Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &base,
        &EncodingKey::from_secret(good.public_pem.as_ref().unwrap().as_bytes()),
    )
    .unwrap();
    let tampered = {
        let parts: Vec<&str> = signed.split('.').collect();
        let mut c = base.clone();
        c["sub"] = json!("admin");
        format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        )
    };
    let now = now();
    type Check = fn(&AuthError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        (
            "alg none",
            unsigned(json!({"alg": "none", "kid": "k1"}), &base),
            |e| matches!(e, AuthError::AlgorithmNotAllowed(a) if a == "none"),
        ),
        (
            "HS256 with the RSA public key",
            hs256_with_public_key,
            |e| matches!(e, AuthError::AlgorithmNotAllowed(a) if a == "HS256"),
        ),
        ("tampered payload", tampered, |e| {
            *e == AuthError::InvalidSignature
        }),
        ("signed by another key", stranger.sign(&base), |e| {
            *e == AuthError::InvalidSignature
        }),
        (
            "wrong iss",
            with(json!({"iss": "https://evil.example.com"})),
            |e| matches!(e, AuthError::NoAuthProvider { .. }),
        ),
        ("wrong aud", with(json!({"aud": "other-app"})), |e| {
            matches!(e, AuthError::NoAuthProvider { .. })
        }),
        (
            "expired",
            with(json!({"exp": now - 60, "iat": now - 120})),
            |e| matches!(e, AuthError::Expired { .. }),
        ),
        ("not yet valid", with(json!({"nbf": now + 600})), |e| {
            matches!(e, AuthError::NotYetValid { .. })
        }),
        (
            "custom JWT issued in the future",
            good.sign(&{
                let mut c = claims("https://custom.example.com", "app");
                c["iat"] = json!(now + 600);
                c
            }),
            |e| matches!(e, AuthError::IssuedInFuture { .. }),
        ),
        (
            "OIDC token for other audiences too",
            with(json!({"aud": ["app", "another-app"]})),
            |e| matches!(e, AuthError::InvalidClaim { claim: "aud", .. }),
        ),
        (
            "no exp",
            good.sign(&json!({"iss": issuer.url, "aud": "app", "sub": "u"})),
            |e| *e == AuthError::MissingClaim("exp"),
        ),
        (
            "no sub",
            good.sign(&json!({"iss": issuer.url, "aud": "app", "exp": now + 60})),
            |e| *e == AuthError::MissingClaim("sub"),
        ),
        (
            "unknown kid",
            Signer {
                kid: Some("k9".into()),
                ..good.clone()
            }
            .sign(&base),
            |e| matches!(e, AuthError::NoMatchingKey { kid: Some(k), .. } if k == "k9"),
        ),
        (
            "oversized",
            format!("{}.{}.sig", "a".repeat(9000), "b".repeat(9000)),
            |e| matches!(e, AuthError::TooLarge { .. }),
        ),
        ("garbage", "not a token at all".into(), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("garbage parts", "a.b.c".into(), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (
            "a provider not in the config",
            Signer::ec(Some("x")).sign(&claims("https://stranger.example.com", "app")),
            |e| matches!(e, AuthError::NoAuthProvider { .. }),
        ),
        (
            "custom JWT without kid",
            Signer {
                kid: None,
                ..good.clone()
            }
            .sign(&claims("https://custom.example.com", "app")),
            |e| *e == AuthError::MissingKid,
        ),
        (
            "custom JWT with another algorithm",
            Signer::ec(Some("k1")).sign(&claims("https://custom.example.com", "app")),
            |e| matches!(e, AuthError::AlgorithmMismatch { .. }),
        ),
    ];
    for (name, token, expected) in cases {
        let error = verifier.verify(&token).await.expect_err(name);
        assert!(expected(&error), "{name}: {error:?}");
        let message = error.to_string();
        assert!(
            !message.contains(&token),
            "{name}: the message echoes the token"
        );
        assert!(message.len() < 400, "{name}: {message}");
    }
    // The unknown kid and every other refusal cost at most one refetch.
    assert!(issuer.jwks_requests.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn unknown_kids_refetch_at_the_rate_limit_and_rotation_is_picked_up() {
    let issuer = issuer("max-age=3600").await;
    let old = Signer::rsa(Some("old"));
    let new = Signer::ec(Some("new"));
    *issuer.keys.lock().unwrap() = vec![old.jwk.clone()];
    let hand = ManualClock::new();
    let verifier = verifier_with(
        json!({"providers": [{"domain": issuer.url, "applicationID": "app"}]}),
        VerifierOptions {
            refetch_interval: Duration::from_millis(500),
            ..VerifierOptions::default()
        },
        hand.clock(),
    );
    let token = |s: &Signer| s.sign(&claims(&issuer.url, "app"));
    verifier.verify(&token(&old)).await.unwrap();
    assert_eq!(issuer.jwks_requests.load(Ordering::SeqCst), 1);

    // A flood of unknown kids right after a fetch asks the issuer nothing.
    let forged = Signer {
        kid: Some("nope".into()),
        ..old.clone()
    };
    for _ in 0..50 {
        verifier.verify(&token(&forged)).await.unwrap_err();
    }
    assert_eq!(issuer.jwks_requests.load(Ordering::SeqCst), 1);

    // The issuer rotates: after the interval the new kid triggers one refetch.
    *issuer.keys.lock().unwrap() = vec![new.jwk.clone()];
    hand.advance(Duration::from_millis(600));
    for _ in 0..20 {
        verifier.verify(&token(&new)).await.unwrap();
    }
    assert_eq!(issuer.jwks_requests.load(Ordering::SeqCst), 2);
    // The old key is gone from the issuer, so from the verifier too.
    let error = verifier.verify(&token(&old)).await.unwrap_err();
    assert!(
        matches!(error, AuthError::NoMatchingKey { .. }),
        "{error:?}"
    );

    // A flood of unknown kids over two seconds, one every 5 ms: one
    // request per interval (at 0.5, 1, 1.5 and 2 s).
    let before = issuer.jwks_requests.load(Ordering::SeqCst);
    for _ in 0..400 {
        hand.advance(Duration::from_millis(5));
        verifier.verify(&token(&forged)).await.unwrap_err();
    }
    let asked = issuer.jwks_requests.load(Ordering::SeqCst) - before;
    assert_eq!(asked, 4, "{asked} requests in 2 s");
}

#[tokio::test]
async fn known_keys_serve_while_the_issuer_is_down() {
    let up = issuer("max-age=1").await;
    let signer = Signer::rsa(Some("k"));
    *up.keys.lock().unwrap() = vec![signer.jwk.clone()];
    let hand = ManualClock::new();
    let cached = verifier_with(
        json!({"providers": [{"domain": up.url, "applicationID": "app"}]}),
        VerifierOptions {
            min_cache: Duration::from_millis(100),
            refetch_interval: Duration::from_millis(50),
            ..VerifierOptions::default()
        },
        hand.clock(),
    );
    let token = signer.sign(&claims(&up.url, "app"));
    cached.verify(&token).await.unwrap();
    up.down.store(true, Ordering::SeqCst);
    hand.advance(Duration::from_millis(1200));
    // Past max-age: the refresh fails, the known keys still serve.
    cached.verify(&token).await.unwrap();
    assert!(up.jwks_requests.load(Ordering::SeqCst) >= 1);

    // A provider never reached refuses with the reason.
    let dead = issuer("max-age=1").await;
    dead.down.store(true, Ordering::SeqCst);
    let unreachable = verifier(
        json!({"providers": [{"domain": dead.url, "applicationID": "app"}]}),
        VerifierOptions::default(),
    );
    let error = unreachable
        .verify(&signer.sign(&claims(&dead.url, "app")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::KeysUnavailable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("503"), "{error}");
}

#[tokio::test]
async fn an_issuer_narrows_the_algorithms_in_its_discovery_document() {
    let issuer = issuer("max-age=300").await;
    let rsa = Signer::rsa(Some("r"));
    let ec = Signer::ec(Some("e"));
    *issuer.keys.lock().unwrap() = vec![rsa.jwk.clone(), ec.jwk.clone()];
    *issuer.algorithms.lock().unwrap() = vec!["RS256"];
    let verifier = verifier(
        json!({"providers": [{"domain": issuer.url, "applicationID": "app"}]}),
        VerifierOptions::default(),
    );
    verifier
        .verify(&rsa.sign(&claims(&issuer.url, "app")))
        .await
        .unwrap();
    let error = verifier
        .verify(&ec.sign(&claims(&issuer.url, "app")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::NoMatchingKey { .. }),
        "{error:?}"
    );
}

/// Keys a discovery document names inline (a `data:` URL) last as long as
/// the document: a key the issuer drops stops verifying once the document
/// is fetched again.
#[tokio::test]
async fn inline_keys_from_discovery_are_refetched_with_the_document() {
    let issuer = issuer("max-age=60").await;
    issuer.inline_keys.store(true, Ordering::SeqCst);
    let revoked = Signer::rsa(Some("revoked"));
    let kept = Signer::ec(Some("kept"));
    *issuer.keys.lock().unwrap() = vec![revoked.jwk.clone(), kept.jwk.clone()];
    let hand = ManualClock::new();
    let verifier = verifier_with(
        json!({"providers": [{"domain": issuer.url, "applicationID": "app"}]}),
        VerifierOptions::default(),
        hand.clock(),
    );
    let token = |s: &Signer| s.sign(&claims(&issuer.url, "app"));
    verifier.verify(&token(&revoked)).await.unwrap();

    *issuer.keys.lock().unwrap() = vec![kept.jwk.clone()];
    // Past the document's max-age (and the refetch interval), within the
    // tokens' lifetime.
    hand.advance(Duration::from_secs(90));
    verifier.verify(&token(&kept)).await.unwrap();
    let error = verifier.verify(&token(&revoked)).await.unwrap_err();
    assert!(
        matches!(error, AuthError::NoMatchingKey { .. }),
        "{error:?}"
    );
}

/// Keys and issuers that cannot be trusted are refused at deploy: RSA
/// keys under 2048 bits, plain-http issuers and key URLs off loopback.
#[test]
fn weak_keys_and_plain_http_off_loopback_are_refused() {
    use rsa::traits::PublicKeyParts;
    let small = rsa::RsaPrivateKey::new(&mut rand_core(), 1024).unwrap();
    let public = small.to_public_key();
    let weak = json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "weak",
        "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
    }]});
    let refused = |config: Value| {
        let config: AuthConfig = serde_json::from_value(config).unwrap();
        match config.validate() {
            Err(AuthError::InvalidConfig(reason)) => reason,
            other => panic!("not refused: {other:?}"),
        }
    };
    let reason = refused(json!({"providers": [{"type": "customJwt",
        "issuer": "https://issuer.example.com", "applicationID": "app",
        "jwks": weak, "algorithm": "RS256"}]}));
    assert!(reason.contains("1024-bit"), "{reason}");
    let reason = refused(json!({"providers": [
        {"domain": "http://auth.example.com", "applicationID": "app"}]}));
    assert!(reason.contains("plain http"), "{reason}");
    let reason = refused(json!({"providers": [{"type": "customJwt",
        "issuer": "https://issuer.example.com", "applicationID": "app",
        "jwks": "http://issuer.example.com/jwks", "algorithm": "ES256"}]}));
    assert!(reason.contains("plain http"), "{reason}");
    // Loopback may be plain http, as in development.
    for issuer in [
        "http://127.0.0.1:8080",
        "http://localhost:3000",
        "http://[::1]:9000",
    ] {
        let config: AuthConfig = serde_json::from_value(
            json!({"providers": [{"domain": issuer, "applicationID": "app"}]}),
        )
        .unwrap();
        config.validate().unwrap();
    }
    // A custom JWT provider without an audience is allowed, and said.
    let config: AuthConfig = serde_json::from_value(json!({"providers": [{"type": "customJwt",
        "issuer": "https://issuer.example.com", "jwks": "https://issuer.example.com/jwks",
        "algorithm": "ES256"}]}))
    .unwrap();
    config.validate().unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("applicationID"), "{warnings:?}");
}
