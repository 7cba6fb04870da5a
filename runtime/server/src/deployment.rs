//! A deployment: the app's components, linked and described, with their
//! merged schema and the app config, persisted in the data directory so a
//! restart serves it again without a redeploy (and, thanks to the compiled
//! cache, without recompiling).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use capstan_auth::{AuthConfig, Verifier, VerifierOptions};
use capstan_host::{FunctionInfo, FunctionPath, HostEngine, Module, Origin};
use capstan_store::Schema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use capstan_protocol::ErrorCode;

/// The app's configuration, deployed with its components. Unknown fields are
/// errors, so a typo is caught at deploy time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppConfig {
    /// The token issuers the app trusts (Convex's `auth.config.ts`).
    #[serde(default)]
    pub auth: AuthConfig,
}

pub struct Deployment {
    /// SHA-256 digests of the components, joined: names this deployment.
    pub id: String,
    pub modules: Vec<Arc<Module>>,
    routes: BTreeMap<FunctionPath, usize>,
    /// How long each function's recent runs took.
    paces: HashMap<FunctionPath, Pace>,
    pub schema: Schema,
    pub config: AppConfig,
    /// Checks user tokens against `config.auth`.
    pub verifier: Arc<Verifier>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// Compiles, links and checks every component; refuses duplicate paths
    /// and schemas that disagree about a table.
    pub fn build(
        engine: &HostEngine,
        components: &[Vec<u8>],
        config: AppConfig,
        cache_dir: &Path,
        auth_options: &VerifierOptions,
    ) -> Result<(Deployment, Vec<Origin>), Error> {
        if components.is_empty() {
            return Err(Error::new(
                ErrorCode::BadDeploy,
                "a deploy needs at least one component",
            ));
        }
        let verifier = Arc::new(Verifier::new(&config.auth, auth_options.clone()).map_err(
            |e| {
                Error::new(
                    ErrorCode::BadDeploy,
                    format!("the auth config is invalid: {e}"),
                )
            },
        )?);
        let mut modules = Vec::new();
        let mut origins = Vec::new();
        let mut routes = BTreeMap::new();
        let mut schema = Schema::default();
        for (index, bytes) in components.iter().enumerate() {
            let (module, origin) = Module::load(engine, bytes, Some(cache_dir))
                .map_err(|e| Error::new(ErrorCode::BadDeploy, format!("component {index}: {e}")))?;
            for path in module.functions().keys() {
                if routes.insert(path.clone(), index).is_some() {
                    return Err(Error::new(
                        ErrorCode::BadDeploy,
                        format!("function {path:?} is defined by two components"),
                    ));
                }
            }
            for (table, definition) in &module.schema().tables {
                match schema.tables.get(table) {
                    Some(existing) if existing != definition => {
                        return Err(Error::new(
                            ErrorCode::BadDeploy,
                            format!("components disagree about the schema of table {table:?}"),
                        ));
                    }
                    _ => {
                        schema.tables.insert(table.clone(), definition.clone());
                    }
                }
            }
            modules.push(Arc::new(module));
            origins.push(origin);
        }
        schema
            .validate()
            .map_err(|e| Error::new(ErrorCode::BadDeploy, e.to_string()))?;
        let id = modules
            .iter()
            .map(|m| &m.digest()[..16])
            .collect::<Vec<_>>()
            .join("-");
        let paces = routes
            .keys()
            .map(|path| (path.clone(), Pace::default()))
            .collect();
        Ok((
            Deployment {
                id,
                modules,
                routes,
                paces,
                schema,
                config,
                verifier,
            },
            origins,
        ))
    }

    pub fn function(&self, path: &FunctionPath) -> Option<(&Arc<Module>, &FunctionInfo)> {
        let module = &self.modules[*self.routes.get(path)?];
        module.function(path.as_str()).map(|info| (module, info))
    }

    pub fn pace(&self, path: &FunctionPath) -> Option<&Pace> {
        self.paces.get(path)
    }

    pub fn functions(&self) -> impl Iterator<Item = &FunctionInfo> {
        self.modules.iter().flat_map(|m| m.functions().values())
    }
}

/// A function whose runs average less than this is quick.
const QUICK_RUN: Duration = Duration::from_millis(1);

/// How long a function's recent runs took. A query whose runs are quick on
/// average may run on the thread that asks for it, with no hand-off; any
/// other runs where a long run holds up no other task.
#[derive(Debug, Default)]
pub struct Pace {
    runs: AtomicU64,
    /// An exponentially weighted moving average of the run time, in
    /// microseconds (each run weighs 1/8), so one run slowed down by the
    /// machine does not change the verdict and a run of slow ones does.
    average: AtomicU64,
}

impl Pace {
    /// Whether the function has run, and quickly on average.
    pub fn quick(&self) -> bool {
        self.runs.load(Ordering::Relaxed) > 0
            && self.average.load(Ordering::Relaxed) < QUICK_RUN.as_micros() as u64
    }

    pub fn record(&self, took: Duration) {
        let took = took.as_micros().min(u64::MAX.into()) as u64;
        let first = self.runs.fetch_add(1, Ordering::Relaxed) == 0;
        // Concurrent runs may lose an update to each other; the average
        // stays an average of recent runs.
        let average = self.average.load(Ordering::Relaxed);
        let next = if first {
            took
        } else {
            average - average / 8 + took / 8
        };
        self.average.store(next, Ordering::Relaxed);
    }
}

/// A deployment as stored: what the deploy sent.
#[derive(Debug)]
pub struct Persisted {
    pub components: Vec<Vec<u8>>,
    pub config: AppConfig,
}

/// Where a deployment lives on disk.
#[derive(Debug)]
pub struct DeploymentFiles {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    components: usize,
    config: AppConfig,
}

impl DeploymentFiles {
    pub fn new(data_dir: &Path) -> Self {
        DeploymentFiles {
            dir: data_dir.join("deployment"),
        }
    }

    fn staging(&self) -> PathBuf {
        self.dir.with_extension("new")
    }

    fn previous(&self) -> PathBuf {
        self.dir.with_extension("old")
    }

    /// The persisted components and config, if a deploy ever succeeded.
    pub fn load(&self) -> Result<Option<Persisted>, Error> {
        // An interrupted switch leaves the previous deployment in `.old`.
        if !self.dir.exists() && self.previous().exists() {
            std::fs::rename(self.previous(), &self.dir).map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(self.staging());
        let manifest = match std::fs::read(self.dir.join("manifest.json")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&manifest)
            .map_err(|e| Error::config(format!("deployment manifest: {e}")))?;
        let components = (0..manifest.components)
            .map(|i| std::fs::read(self.dir.join(format!("component-{i}.wasm"))).map_err(io))
            .collect::<Result<_, _>>()?;
        Ok(Some(Persisted {
            components,
            config: manifest.config,
        }))
    }

    /// Writes a deployment beside the current one, synced.
    pub fn stage(&self, components: &[Vec<u8>], config: &AppConfig) -> Result<(), Error> {
        let staging = self.staging();
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io)?;
        for (i, bytes) in components.iter().enumerate() {
            write_synced(&staging.join(format!("component-{i}.wasm")), bytes)?;
        }
        let manifest = serde_json::to_vec(&Manifest {
            components: components.len(),
            config: config.clone(),
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        write_synced(&staging.join("manifest.json"), &manifest)
    }

    /// Makes the staged deployment the current one.
    pub fn commit(&self) -> Result<(), Error> {
        let _ = std::fs::remove_dir_all(self.previous());
        if self.dir.exists() {
            std::fs::rename(&self.dir, self.previous()).map_err(io)?;
        }
        std::fs::rename(self.staging(), &self.dir).map_err(io)?;
        if let Some(parent) = self.dir.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(self.previous());
        Ok(())
    }

    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(self.staging());
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal(format!("deployment files: {e}"))
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_quick_once_its_runs_average_under_the_limit() {
        let pace = Pace::default();
        // Nothing known yet.
        assert!(!pace.quick());
        pace.record(Duration::from_micros(200));
        assert!(pace.quick());
        // One run slowed down by the machine does not change the verdict.
        pace.record(Duration::from_millis(3));
        assert!(pace.quick());
        // A run of slow ones does, and quick runs bring it back.
        for _ in 0..8 {
            pace.record(Duration::from_millis(5));
        }
        assert!(!pace.quick());
        for _ in 0..40 {
            pace.record(Duration::from_micros(200));
        }
        assert!(pace.quick());
        // A function that hangs is not quick again for a long while.
        pace.record(Duration::from_secs(1));
        for _ in 0..20 {
            pace.record(Duration::from_micros(200));
        }
        assert!(!pace.quick());
    }
}
