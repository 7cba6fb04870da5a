//! The admin key: generated on first start, kept in the data directory
//! (readable by its owner only), compared in constant time. Service keys:
//! created and revoked through the admin API, kept only as SHA-256 digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use capstan_protocol::http::ServiceKeyInfo;
use capstan_protocol::{Clock, ErrorCode, constant_time_eq};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::data_dir::{replace, write_private};
use crate::error::Error;

const PREFIX: &str = "capstan_admin_";
const FILE: &str = crate::data_dir::ADMIN_KEY;

/// The admin key, shared by every holder: rotating it changes it for all.
/// Its `Debug` never prints it.
#[derive(Clone)]
pub struct AdminKey {
    key: Arc<RwLock<String>>,
    /// Where it is kept; `None` for a key read to be shown.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(…)")
    }
}

impl AdminKey {
    fn new(key: String, path: Option<PathBuf>) -> AdminKey {
        AdminKey {
            key: Arc::new(RwLock::new(key)),
            path,
        }
    }

    /// The key in `data_dir`, created if there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<AdminKey, Error> {
        let path = data_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = text.trim().to_owned();
                if !key.starts_with(PREFIX) {
                    return Err(Error::config(format!(
                        "{} does not hold an admin key",
                        path.display()
                    )));
                }
                Ok(AdminKey::new(key, Some(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_key(PREFIX);
                write_private(&path, key.as_bytes())?;
                Ok(AdminKey::new(key, Some(path)))
            }
            Err(e) => Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Makes `key` (given by the operator, as from a Kubernetes Secret) the
    /// key in `data_dir`, then loads it.
    pub fn install(data_dir: &Path, key: &str) -> Result<AdminKey, Error> {
        let key = key.trim();
        let hex = key.strip_prefix(PREFIX).unwrap_or_default();
        if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::config(format!(
                "CAPSTAN_ADMIN_KEY must be {PREFIX} followed by at least 32 hex digits"
            )));
        }
        let path = data_dir.join(FILE);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref().map(str::trim) != Some(key) {
            replace(&path, key.as_bytes())?;
        }
        AdminKey::load_or_create(data_dir)
    }

    /// Reads the key without creating one (for `capstan keys`).
    pub fn read(data_dir: &Path) -> Option<AdminKey> {
        std::fs::read_to_string(data_dir.join(FILE))
            .ok()
            .map(|text| AdminKey::new(text.trim().to_owned(), None))
    }

    /// Replaces the key in `data_dir` by a new one, for a server that is
    /// not running (`capstan keys rotate --data-dir`); a running server's
    /// is rotated through its admin API.
    pub fn rotate_in(data_dir: &Path) -> Result<String, Error> {
        let key = random_key(PREFIX);
        replace(&data_dir.join(FILE), key.as_bytes())?;
        Ok(key)
    }

    /// Makes a new key, kept (synced) before it replaces the old one,
    /// which stops working at once; the new key is answered.
    pub fn rotate(&self) -> Result<String, Error> {
        let path = self
            .path
            .as_ref()
            .ok_or_else(|| Error::internal("this admin key has no file"))?;
        let mut current = self.key.write().unwrap_or_else(|e| e.into_inner());
        let key = random_key(PREFIX);
        replace(path, key.as_bytes())?;
        *current = key.clone();
        Ok(key)
    }

    /// Reads the key again from its file, after another node rotated it.
    pub fn reload(&self) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?;
        let key = text.trim().to_owned();
        if !key.starts_with(PREFIX) {
            return Err(Error::internal(format!(
                "{} does not hold an admin key",
                path.display()
            )));
        }
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// Whether `presented` has the admin key's form (then it is never
    /// tried as a user token).
    pub fn looks_like(presented: &str) -> bool {
        presented.starts_with(PREFIX)
    }

    pub fn expose(&self) -> String {
        self.key.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `presented` is this key, in time independent of where they
    /// differ and of the presented length (both are hashed first).
    pub fn matches(&self, presented: &str) -> bool {
        let key = self.key.read().unwrap_or_else(|e| e.into_inner());
        constant_time_eq(
            &Sha256::digest(key.as_bytes()),
            &Sha256::digest(presented.as_bytes()),
        )
    }
}

const SERVICE_PREFIX: &str = "capstan_service_";
const SERVICE_FILE: &str = crate::data_dir::SERVICE_KEYS;

/// A service key as kept: its name, when it was made, and the SHA-256 of
/// the key. The key itself is shown once, when created.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceKeyRecord {
    name: String,
    /// Milliseconds since the Unix epoch.
    created_at: u64,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    digest: String,
    /// Milliseconds since the Unix epoch after which the key fails.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expires_at: Option<u64>,
}

/// The named keys that let servers call functions (public and internal)
/// as a `Service { name }` identity.
#[derive(Clone, Debug)]
pub struct ServiceKeys {
    path: PathBuf,
    keys: Arc<RwLock<BTreeMap<String, ServiceKeyRecord>>>,
    /// When a key was made.
    clock: Clock,
}

impl ServiceKeys {
    /// On a node that shares its state: the lock across nodes, with this
    /// node's list brought up to date under it.
    fn latest(&self) -> Result<Option<capstan_store::postgres::Exclusive>, Error> {
        let root = self.path.parent().unwrap_or(Path::new("."));
        let guard = crate::shared_state::serialize(root, SERVICE_FILE)?;
        if guard.is_some() {
            self.reload()?;
        }
        Ok(guard)
    }

    /// Reads the list again from its file, after another node changed it.
    pub fn reload(&self) -> Result<(), Error> {
        let root = self.path.parent().unwrap_or(Path::new("."));
        let fresh = ServiceKeys::load(root, self.clock.clone())?;
        let keys = fresh.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    pub fn load(data_dir: &Path, clock: Clock) -> Result<ServiceKeys, Error> {
        let path = data_dir.join(SERVICE_FILE);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<ServiceKeyRecord> = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::config(format!("{} is not a service key list: {e}", path.display()))
                })?;
                list.into_iter().map(|k| (k.name.clone(), k)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(Error::config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(ServiceKeys {
            path,
            keys: Arc::new(RwLock::new(keys)),
            clock,
        })
    }

    /// Service key names are 1 to 64 letters, digits, `-` or `_`, so they
    /// are safe in a URL path.
    pub fn check_name(name: &str) -> Result<(), Error> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "{name:?} is not a service key name: use 1 to 64 letters, digits, '-' or '_'"
                ),
            ))
        }
    }

    /// Makes a key named `name`, failing after `expires_in` if given, and
    /// returns it; the name must be new.
    pub fn create(
        &self,
        name: &str,
        expires_in: Option<std::time::Duration>,
    ) -> Result<String, Error> {
        ServiceKeys::check_name(name)?;
        let _cluster = self.latest()?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.contains_key(name) {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("a service key named {name:?} exists; revoke it first"),
            ));
        }
        let key = random_key(SERVICE_PREFIX);
        let created_at = u64::try_from(self.clock.since_epoch().as_millis()).unwrap_or(u64::MAX);
        let mut next = keys.clone();
        next.insert(
            name.to_owned(),
            ServiceKeyRecord {
                name: name.to_owned(),
                created_at,
                digest: hex(&Sha256::digest(key.as_bytes())),
                expires_at: expires_in.map(|after| {
                    created_at.saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
                }),
            },
        );
        self.persist(&next)?;
        *keys = next;
        Ok(key)
    }

    /// Removes the key named `name`; calls with it fail from now on.
    pub fn revoke(&self, name: &str) -> Result<(), Error> {
        let _cluster = self.latest()?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if !keys.contains_key(name) {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("no service key named {name:?}"),
            ));
        }
        let mut next = keys.clone();
        next.remove(name);
        self.persist(&next)?;
        *keys = next;
        Ok(())
    }

    /// Names and creation times, never digests.
    pub fn list(&self) -> Vec<ServiceKeyInfo> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|k| ServiceKeyInfo {
                name: k.name.clone(),
                created_at: k.created_at,
                expires_at: k.expires_at,
            })
            .collect()
    }

    /// Whether `presented` looks like a service key (then it is never
    /// tried as anything else).
    pub fn is_service_key(presented: &str) -> bool {
        presented.starts_with(SERVICE_PREFIX)
    }

    /// The name of the key `presented` is. Every key's digest is compared,
    /// each in constant time.
    pub fn name_of(&self, presented: &str) -> Option<String> {
        let digest = hex(&Sha256::digest(presented.as_bytes()));
        let now = u64::try_from(self.clock.since_epoch().as_millis()).unwrap_or(u64::MAX);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for key in keys.values() {
            if constant_time_eq(key.digest.as_bytes(), digest.as_bytes())
                && key.expires_at.is_none_or(|at| now < at)
            {
                found = Some(key.name.clone());
            }
        }
        found
    }

    fn persist(&self, keys: &BTreeMap<String, ServiceKeyRecord>) -> Result<(), Error> {
        let list: Vec<&ServiceKeyRecord> = keys.values().collect();
        let text = serde_json::to_vec_pretty(&list).map_err(|e| Error::internal(e.to_string()))?;
        replace(&self.path, &text)
    }
}

/// `prefix` and 32 random bytes in hex.
fn random_key(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_are_kept_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServiceKeys::load(dir.path(), Clock::system()).unwrap();
        let key = keys.create("billing", None).unwrap();
        assert!(ServiceKeys::is_service_key(&key));
        assert_eq!(keys.name_of(&key).as_deref(), Some("billing"));
        assert_eq!(keys.name_of(&key[..key.len() - 1]), None);
        assert_eq!(keys.name_of(""), None);
        assert!(keys.create("billing", None).is_err());
        assert!(keys.create("bad name", None).is_err());
        let stored = std::fs::read_to_string(dir.path().join(SERVICE_FILE)).unwrap();
        assert!(
            !stored.contains(&key[SERVICE_PREFIX.len()..]),
            "the key is stored in clear"
        );
        // A restart reads them back; revoked keys stop working.
        let again = ServiceKeys::load(dir.path(), Clock::system()).unwrap();
        assert_eq!(again.name_of(&key).as_deref(), Some("billing"));
        again.revoke("billing").unwrap();
        assert_eq!(again.name_of(&key), None);
        assert!(
            ServiceKeys::load(dir.path(), Clock::system())
                .unwrap()
                .list()
                .is_empty()
        );
        assert!(again.revoke("billing").is_err());
    }

    #[test]
    fn a_service_key_with_an_expiry_fails_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let hand = capstan_protocol::ManualClock::new();
        let keys = ServiceKeys::load(dir.path(), hand.clock()).unwrap();
        let key = keys
            .create("nightly", Some(std::time::Duration::from_secs(60)))
            .unwrap();
        assert_eq!(keys.name_of(&key).as_deref(), Some("nightly"));
        hand.advance(std::time::Duration::from_secs(61));
        assert_eq!(keys.name_of(&key), None);
        assert!(keys.list()[0].expires_at.is_some());
    }

    #[test]
    fn a_rotated_admin_key_replaces_the_old_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let key = AdminKey::load_or_create(dir.path()).unwrap();
        let holder = key.clone();
        let old = key.expose();
        let new = key.rotate().unwrap();
        assert!(!holder.matches(&old));
        assert!(holder.matches(&new));
        assert_eq!(AdminKey::load_or_create(dir.path()).unwrap().expose(), new);
    }

    #[test]
    fn keys_are_created_once_kept_private_and_compared_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let key = AdminKey::load_or_create(dir.path()).unwrap();
        let again = AdminKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.expose(), again.expose());
        assert!(key.matches(&key.expose()));
        assert!(!key.matches(""));
        assert!(!key.matches(&key.expose()[..10]));
        assert!(!key.matches(&format!("{}x", key.expose())));
        assert_eq!(format!("{key:?}"), "AdminKey(…)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
