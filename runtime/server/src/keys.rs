//! The admin key: generated on first start, kept in the data directory
//! (readable by its owner only), compared in constant time.

use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ServerError;

const PREFIX: &str = "capstan_admin_";
const FILE: &str = "admin_key";

/// A secret key. Its `Debug` never prints it.
#[derive(Clone)]
pub struct AdminKey(String);

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(…)")
    }
}

impl AdminKey {
    /// The key in `data_dir`, created if there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<AdminKey, ServerError> {
        let path = data_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = text.trim().to_owned();
                if !key.starts_with(PREFIX) {
                    return Err(ServerError::Config(format!(
                        "{} does not hold an admin key",
                        path.display()
                    )));
                }
                Ok(AdminKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let key = format!(
                    "{PREFIX}{}",
                    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                write_private(&path, &key)?;
                Ok(AdminKey(key))
            }
            Err(e) => Err(ServerError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Reads the key without creating one (for `capstan keys`).
    pub fn read(data_dir: &Path) -> Option<AdminKey> {
        std::fs::read_to_string(data_dir.join(FILE))
            .ok()
            .map(|text| AdminKey(text.trim().to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this key, in time independent of where they
    /// differ and of the presented length (both are hashed first).
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(
            &Sha256::digest(self.0.as_bytes()),
            &Sha256::digest(presented.as_bytes()),
        )
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .map_err(|e| ServerError::Config(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ServerError::Config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_kept_private_and_compared_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let key = AdminKey::load_or_create(dir.path()).unwrap();
        let again = AdminKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.expose(), again.expose());
        assert!(key.matches(key.expose()));
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
