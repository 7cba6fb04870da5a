//! Capstan as its own token issuer: the signing keys (generated, rotated,
//! imported from Convex Auth), the JWKS they publish, and the access tokens
//! they sign.
//!
//! Keys live in a [`KeyRing`], which the server keeps in the data directory
//! (0600) and shares through [`IssuerKeys`] with both the [`Issuer`] that
//! signs and the [`crate::Verifier`] that checks, so a token Capstan issues
//! is verified by the same path as any provider's.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::Algorithm;
use crate::keys::KeySet;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Claims a token's issuer sets; custom claims may not use them.
pub const RESERVED_CLAIMS: [&str; 7] = ["sub", "iss", "aud", "iat", "exp", "nbf", "jti"];

/// One signing key as kept on disk.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningKey {
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The private key, PKCS#8 DER in base64.
    private_key: String,
    /// The public half as a JWK (with `kid`, `alg` and `use`).
    pub public: Value,
    /// When it was made (seconds since the Unix epoch).
    pub created_at: u64,
    /// When a newer key replaced it: it signs nothing since, and is
    /// published until every token it signed has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Every signing key of a deployment, newest last.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRing {
    pub keys: Vec<SigningKey>,
}

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

fn key_error(what: impl std::fmt::Display) -> KeyError {
    KeyError(what.to_string())
}

impl SigningKey {
    /// A new key for `algorithm`, made from the operating system's random
    /// source.
    pub fn generate(algorithm: Algorithm, now: u64) -> Result<SigningKey, KeyError> {
        let der = match algorithm {
            Algorithm::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|e| key_error(format!("cannot make an RSA key: {e}")))?;
                key.to_pkcs8_der()
                    .map_err(|e| key_error(format!("cannot encode the RSA key: {e}")))?
                    .as_bytes()
                    .to_vec()
            }
            Algorithm::Es256 => {
                let rng = ring::rand::SystemRandom::new();
                ring::signature::EcdsaKeyPair::generate_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &rng,
                )
                .map_err(|_| key_error("cannot make a P-256 key"))?
                .as_ref()
                .to_vec()
            }
            Algorithm::EdDsa => {
                let rng = ring::rand::SystemRandom::new();
                ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| key_error("cannot make an Ed25519 key"))?
                    .as_ref()
                    .to_vec()
            }
        };
        SigningKey::from_pkcs8(algorithm, &der, now)
    }

    /// A key from its PKCS#8 DER form.
    pub fn from_pkcs8(algorithm: Algorithm, der: &[u8], now: u64) -> Result<SigningKey, KeyError> {
        let mut public = public_jwk(algorithm, der)?;
        let kid = thumbprint(&public);
        if let Value::Object(jwk) = &mut public {
            jwk.insert("kid".into(), json!(kid));
            jwk.insert("alg".into(), json!(algorithm.name()));
            jwk.insert("use".into(), json!("sig"));
        }
        Ok(SigningKey {
            kid,
            alg: algorithm.name().to_owned(),
            private_key: base64::engine::general_purpose::STANDARD.encode(der),
            public,
            created_at: now,
            retired_at: None,
        })
    }

    /// Convex Auth's `JWT_PRIVATE_KEY`: an RSA PKCS#8 PEM whose newlines
    /// may have been replaced by spaces.
    pub fn from_convex_private_key(text: &str, now: u64) -> Result<SigningKey, KeyError> {
        let body: String = text
            .replace("-----BEGIN PRIVATE KEY-----", "")
            .replace("-----END PRIVATE KEY-----", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if body.is_empty() || text.contains("RSA PRIVATE KEY") {
            return Err(key_error(
                "JWT_PRIVATE_KEY must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)",
            ));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| {
                key_error("JWT_PRIVATE_KEY is not valid base64 between its armor lines")
            })?;
        SigningKey::from_pkcs8(Algorithm::Rs256, &der, now)
    }

    pub fn algorithm(&self) -> Result<Algorithm, KeyError> {
        Algorithm::parse(&self.alg)
            .ok_or_else(|| key_error(format!("unknown algorithm {:?}", self.alg)))
    }

    fn encoding_key(&self) -> Result<jsonwebtoken::EncodingKey, KeyError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(&self.private_key)
            .map_err(|_| key_error(format!("signing key {} is damaged", self.kid)))?;
        Ok(match self.algorithm()? {
            Algorithm::Rs256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey as _;
                use rsa::pkcs8::DecodePrivateKey as _;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
                    .map_err(|e| key_error(format!("signing key {}: {e}", self.kid)))?;
                let pkcs1 = key
                    .to_pkcs1_der()
                    .map_err(|e| key_error(format!("signing key {}: {e}", self.kid)))?;
                jsonwebtoken::EncodingKey::from_rsa_der(pkcs1.as_bytes())
            }
            Algorithm::Es256 => jsonwebtoken::EncodingKey::from_ec_der(&der),
            Algorithm::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(&der),
        })
    }
}

/// The public half of a PKCS#8 key as a JWK (without `kid`).
fn public_jwk(algorithm: Algorithm, der: &[u8]) -> Result<Value, KeyError> {
    match algorithm {
        Algorithm::Rs256 => {
            use rsa::pkcs8::DecodePrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
                .map_err(|e| key_error(format!("not an RSA PKCS#8 key: {e}")))?;
            if key.n().bits() < 2048 {
                return Err(key_error("RSA signing keys must have at least 2048 bits"));
            }
            Ok(json!({
                "kty": "RSA",
                "n": B64.encode(key.n().to_bytes_be()),
                "e": B64.encode(key.e().to_bytes_be()),
            }))
        }
        Algorithm::Es256 => {
            use ring::signature::KeyPair as _;
            let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|_| key_error("not a P-256 PKCS#8 key"))?;
            let point = pair.public_key().as_ref();
            Ok(json!({
                "kty": "EC",
                "crv": "P-256",
                "x": B64.encode(&point[1..33]),
                "y": B64.encode(&point[33..65]),
            }))
        }
        Algorithm::EdDsa => {
            use ring::signature::KeyPair as _;
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| key_error("not an Ed25519 PKCS#8 key"))?;
            Ok(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": B64.encode(pair.public_key().as_ref()),
            }))
        }
    }
}

/// RFC 7638's JWK thumbprint: a `kid` that names the key itself.
fn thumbprint(jwk: &Value) -> String {
    use sha2::Digest as _;
    let member = |name: &str| jwk.get(name).cloned().unwrap_or(Value::Null);
    // serde_json writes object members in sorted order.
    let canonical = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => json!({"e": member("e"), "kty": "RSA", "n": member("n")}),
        Some("EC") => {
            json!({"crv": member("crv"), "kty": "EC", "x": member("x"), "y": member("y")})
        }
        _ => json!({"crv": member("crv"), "kty": member("kty"), "x": member("x")}),
    };
    B64.encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

impl KeyRing {
    /// The key new tokens are signed with: the newest one not retired.
    pub fn current(&self) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|k| k.retired_at.is_none())
    }

    /// Makes a new key the current one; the old current key is retired.
    /// Keys retired more than `keep_for` seconds ago (every token they
    /// signed has expired) are dropped.
    pub fn rotate(&mut self, key: SigningKey, now: u64, keep_for: u64) {
        for old in &mut self.keys {
            old.retired_at.get_or_insert(now);
        }
        self.keys.retain(|k| {
            k.retired_at
                .is_none_or(|at| at.saturating_add(keep_for) > now)
        });
        self.keys.push(key);
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>() })
    }
}

/// A deployment's keys, shared by the issuer and the verifier; a rotation
/// is seen by both at once.
#[derive(Clone, Debug)]
pub struct IssuerKeys {
    inner: Arc<RwLock<Published>>,
}

#[derive(Debug)]
struct Published {
    ring: KeyRing,
    public: Arc<KeySet>,
}

impl IssuerKeys {
    pub fn new(ring: KeyRing) -> Result<IssuerKeys, KeyError> {
        let public = Arc::new(Self::public(&ring)?);
        Ok(IssuerKeys {
            inner: Arc::new(RwLock::new(Published { ring, public })),
        })
    }

    fn public(ring: &KeyRing) -> Result<KeySet, KeyError> {
        KeySet::parse(&ring.jwks(), &Algorithm::ALL).map_err(key_error)
    }

    /// Replaces the keys (after a rotation or an import).
    pub fn replace(&self, ring: KeyRing) -> Result<(), KeyError> {
        let public = Arc::new(Self::public(&ring)?);
        let mut published = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *published = Published { ring, public };
        Ok(())
    }

    pub fn ring(&self) -> KeyRing {
        self.read().ring.clone()
    }

    pub fn jwks(&self) -> Value {
        self.read().ring.jwks()
    }

    pub(crate) fn key_set(&self) -> Arc<KeySet> {
        self.read().public.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Signs access tokens: `iss` the server's public URL, `aud` the
/// configured audience, `sub` what the caller says, custom claims merged.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub url: String,
    pub audience: String,
    pub keys: IssuerKeys,
}

impl Issuer {
    /// A token for `subject`, valid `lifetime` seconds from `now`.
    pub fn sign(
        &self,
        subject: &str,
        custom: Map<String, Value>,
        now: u64,
        lifetime: u64,
    ) -> Result<String, KeyError> {
        let (kid, algorithm, key) = {
            let published = self.keys.read();
            let current = published
                .ring
                .current()
                .ok_or_else(|| key_error("the issuer has no signing key"))?;
            (
                current.kid.clone(),
                current.algorithm()?,
                current.encoding_key()?,
            )
        };
        let mut claims = Map::new();
        for (name, value) in custom {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                return Err(key_error(format!(
                    "Reserved claim \"{name}\" in custom claims"
                )));
            }
            claims.insert(name, value);
        }
        claims.insert("sub".into(), json!(subject));
        claims.insert("iat".into(), json!(now));
        claims.insert("iss".into(), json!(self.url));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("exp".into(), json!(now + lifetime));
        let mut header = jsonwebtoken::Header::new(algorithm.jsonwebtoken());
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| key_error(format!("cannot sign a token: {e}")))
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.url),
            "authorization_endpoint": format!("{}/oauth/authorize", self.url),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_its_jwks_parses() {
        for algorithm in Algorithm::ALL {
            let key = SigningKey::generate(algorithm, 1).unwrap();
            let ring = KeyRing { keys: vec![key] };
            let keys = IssuerKeys::new(ring).unwrap();
            assert_eq!(keys.key_set().keys.len(), 1, "{algorithm}");
            let issuer = Issuer {
                url: "http://127.0.0.1:1".into(),
                audience: "convex".into(),
                keys,
            };
            let token = issuer.sign("u|s", Map::new(), 100, 3600).unwrap();
            assert_eq!(token.split('.').count(), 3);
        }
    }

    #[test]
    fn reserved_claims_are_refused() {
        let keys = IssuerKeys::new(KeyRing {
            keys: vec![SigningKey::generate(Algorithm::EdDsa, 1).unwrap()],
        })
        .unwrap();
        let issuer = Issuer {
            url: "http://127.0.0.1:1".into(),
            audience: "convex".into(),
            keys,
        };
        let mut custom = Map::new();
        custom.insert("exp".into(), json!(1));
        let error = issuer.sign("u|s", custom, 1, 1).unwrap_err();
        assert!(
            error.to_string().contains("Reserved claim \"exp\""),
            "{error}"
        );
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_tokens_expire() {
        let mut ring = KeyRing {
            keys: vec![SigningKey::generate(Algorithm::EdDsa, 0).unwrap()],
        };
        let first = ring.keys[0].kid.clone();
        ring.rotate(
            SigningKey::generate(Algorithm::EdDsa, 100).unwrap(),
            100,
            3600,
        );
        assert_eq!(ring.keys.len(), 2);
        assert_ne!(ring.current().unwrap().kid, first);
        ring.rotate(
            SigningKey::generate(Algorithm::EdDsa, 5000).unwrap(),
            5000,
            3600,
        );
        assert_eq!(
            ring.keys.len(),
            2,
            "the first key's tokens have all expired"
        );
        assert!(ring.keys.iter().all(|k| k.kid != first));
    }
}
