//! The issuer's signing keys in the data directory (`auth_keys.json`,
//! 0600): made on first start, rotated by `capstan keys auth rotate`,
//! imported from Convex Auth's `JWT_PRIVATE_KEY` by `capstan keys auth
//! import`.

use std::path::{Path, PathBuf};

use capstan_auth::{Algorithm, KeyRing, SigningKey};

use crate::data_dir;
use crate::error::Error;

/// How long after a rotation the old key stays published: longer than
/// any token it signed can live.
pub const RETIRED_KEY_LIFETIME: u64 = 86_400 + 300;

pub fn path(root: &Path) -> PathBuf {
    root.join(data_dir::AUTH_KEYS)
}

/// Makes `json` (an `auth_keys.json` given by the operator, as from a
/// Kubernetes Secret) the keys in `root`.
pub fn install(root: &Path, json: &str) -> Result<(), Error> {
    let ring: KeyRing = serde_json::from_str(json)
        .map_err(|e| Error::config(format!("CAPSTAN_AUTH_KEYS is not a key ring: {e}")))?;
    if ring.current().is_none() {
        return Err(Error::config(
            "CAPSTAN_AUTH_KEYS holds no current signing key",
        ));
    }
    let path = path(root);
    let current: Option<KeyRing> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if current.as_ref().map(encode).transpose()? != Some(encode(&ring)?) {
        save(root, &ring)?;
    }
    Ok(())
}

/// The keys in `root`, made with `algorithm` if there are none yet.
pub fn load_or_create(root: &Path, algorithm: Algorithm, now: u64) -> Result<KeyRing, Error> {
    let path = path(root);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let ring: KeyRing = serde_json::from_slice(&bytes)
                .map_err(|e| Error::config(format!("{} is damaged: {e}", path.display())))?;
            if ring.current().is_none() {
                return Err(Error::config(format!(
                    "{} holds no current signing key",
                    path.display()
                )));
            }
            Ok(ring)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(algorithm, now).map_err(Error::config)?;
            let ring = KeyRing { keys: vec![key] };
            data_dir::write_private(&path, &encode(&ring)?)?;
            Ok(ring)
        }
        Err(e) => Err(Error::config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn encode(ring: &KeyRing) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(ring).map_err(|e| Error::internal(e.to_string()))
}

/// Saves `ring` in place of the keys in `root`.
pub fn save(root: &Path, ring: &KeyRing) -> Result<(), Error> {
    data_dir::replace(&path(root), &encode(ring)?)
}

/// A new current key; the old one is published until its tokens expire.
pub fn rotate(root: &Path, algorithm: Algorithm, now: u64) -> Result<KeyRing, Error> {
    let mut ring = load_or_create(root, algorithm, now)?;
    let key = SigningKey::generate(algorithm, now).map_err(Error::config)?;
    ring.rotate(key, now, RETIRED_KEY_LIFETIME);
    save(root, &ring)?;
    Ok(ring)
}

/// Makes Convex Auth's key (`JWT_PRIVATE_KEY`) the current one, so tokens
/// and the JWKS match what the app had.
pub fn import_convex(root: &Path, private_key: &str, now: u64) -> Result<KeyRing, Error> {
    let key = SigningKey::from_convex_private_key(private_key, now)
        .map_err(|e| Error::config(e.to_string()))?;
    let mut ring = load_or_create(root, Algorithm::Rs256, now)?;
    ring.keys.retain(|k| k.kid != key.kid);
    ring.rotate(key, now, RETIRED_KEY_LIFETIME);
    save(root, &ring)?;
    Ok(ring)
}
