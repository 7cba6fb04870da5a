//! Password hashes: Argon2id (OWASP's recommended parameters) for every new
//! hash, and Convex Auth's Lucia scrypt hashes (`<saltHex>:<keyHex>`)
//! verified so users imported from Convex keep their passwords; a
//! successful check of an old-style hash says it should be re-hashed.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use unicode_normalization::UnicodeNormalization as _;

/// OWASP's Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 passes, one
/// lane.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;

/// The longest password hashed: longer ones are refused rather than
/// costing the server more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn argon2() -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
            .unwrap_or_default(),
    )
}

/// What checking a password found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Mismatch,
    Match,
    /// It matches a hash of an older kind: store a new hash.
    MatchRehash,
}

/// A new Argon2id hash of `password` in PHC form.
pub fn hash(password: &str) -> Result<String, String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("passwords are at most {MAX_PASSWORD_BYTES} bytes"));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Checks `password` against a stored hash of either kind, in time that
/// does not depend on where they differ.
pub fn verify(password: &str, stored: &str) -> Check {
    if password.len() > MAX_PASSWORD_BYTES {
        return Check::Mismatch;
    }
    if stored.starts_with("$argon2") {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Check::Mismatch;
        };
        return match argon2().verify_password(password.as_bytes(), &parsed) {
            Ok(()) if needs_rehash(&parsed) => Check::MatchRehash,
            Ok(()) => Check::Match,
            Err(_) => Check::Mismatch,
        };
    }
    match verify_lucia_scrypt(password, stored) {
        true => Check::MatchRehash,
        false => Check::Mismatch,
    }
}

/// A stored Argon2 hash made with weaker parameters than today's.
fn needs_rehash(parsed: &PasswordHash<'_>) -> bool {
    let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
    parsed.algorithm.as_str() != "argon2id"
        || param("m") < ARGON2_MEMORY_KIB
        || param("t") < ARGON2_PASSES
}

/// Work of the same size as checking a password, for an account that does
/// not exist: unknown accounts and wrong passwords take the same time.
pub fn verify_nothing(password: &str) {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("decoy password").unwrap_or_default());
    let _ = verify(password, decoy);
}

/// Lucia 3's `Scrypt`, as Convex Auth stores it: the salt is the 32 hex
/// characters themselves (their ASCII bytes), the password NFKC-normalised,
/// N = 16384, r = 16, p = 1, 64 bytes.
fn verify_lucia_scrypt(password: &str, stored: &str) -> bool {
    let Some((salt, key_hex)) = stored.split_once(':') else {
        return false;
    };
    if key_hex.contains(':') || key_hex.len() != 128 {
        return false;
    }
    let Ok(expected) = decode_hex(key_hex) else {
        return false;
    };
    let Ok(params) = scrypt::Params::new(14, 16, 1, 64) else {
        return false;
    };
    let normalized: String = password.nfkc().collect();
    let mut key = [0u8; 64];
    if scrypt::scrypt(normalized.as_bytes(), salt.as_bytes(), &params, &mut key).is_err() {
        return false;
    }
    capstan_protocol::constant_time_eq(&key, &expected)
}

/// A Lucia scrypt hash, as Convex Auth writes them (for tests and imports).
pub fn lucia_scrypt_hash(password: &str, salt_hex: &str) -> Result<String, String> {
    let params = scrypt::Params::new(14, 16, 1, 64).map_err(|e| e.to_string())?;
    let normalized: String = password.nfkc().collect();
    let mut key = [0u8; 64];
    scrypt::scrypt(
        normalized.as_bytes(),
        salt_hex.as_bytes(),
        &params,
        &mut key,
    )
    .map_err(|e| e.to_string())?;
    Ok(format!("{salt_hex}:{}", encode_hex(&key)))
}

fn decode_hex(text: &str) -> Result<Vec<u8>, ()> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify() {
        let stored = hash("correct horse").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert_eq!(verify("correct horse", &stored), Check::Match);
        assert_eq!(verify("correct horsf", &stored), Check::Mismatch);
    }

    #[test]
    fn convex_auth_scrypt_hashes_verify_and_ask_for_a_rehash() {
        // Node: crypto.scryptSync("hunter2 password", Buffer.from(salt), 64,
        // {N: 16384, r: 16, p: 1}).toString("hex")
        let stored = "8a6b3bba3b8f5cbd0e5c1b9e1f2a3c4d:5c0a882d42a29265ed18c25ab0c40633f8f05338dd17e5b2e5386315a941ee0a3fb1d394903095649e27a79a3831fc993d0d2d44b03b099986c5d1ec18de17ee";
        assert_eq!(
            lucia_scrypt_hash("hunter2 password", &stored[..32]).unwrap(),
            stored
        );
        let stored = stored.to_owned();
        assert_eq!(verify("hunter2 password", &stored), Check::MatchRehash);
        assert_eq!(verify("hunter2 passwore", &stored), Check::Mismatch);
        assert_eq!(verify("x", "not a hash"), Check::Mismatch);
        assert_eq!(verify("x", "a:b:c"), Check::Mismatch);
    }

    #[test]
    fn weaker_argon2_parameters_ask_for_a_rehash() {
        let weak = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let stored = weak.hash_password(b"pw123456", &salt).unwrap().to_string();
        assert_eq!(verify("pw123456", &stored), Check::MatchRehash);
    }
}
