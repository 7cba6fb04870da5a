//! The deployment a server serves and the environment its functions see:
//! loaded from the data directory at start, replaced whole by a deploy or
//! a changed variable, persisted before either takes effect.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use capstan_auth::VerifierOptions;
use capstan_host::{Environment, HostEngine, Origin};
use capstan_protocol::http::{ComponentStats, DeploySummary};
use capstan_protocol::{Clock, ErrorCode};
use capstan_store::Store;
use tokio::sync::{Mutex, watch};

use crate::data_dir::{DataDir, replace};
use crate::deployment::{AppConfig, Deployment};
use crate::error::Error;
use crate::limits::ServerLimits;

/// The current deployment and environment, and how they change.
#[derive(Debug)]
pub struct Deployments {
    engine: HostEngine,
    auth_options: VerifierOptions,
    /// The server's own token issuer, trusted by deployments that turn
    /// built-in auth on.
    issuer: capstan_auth::Issuer,
    /// Judges the expiry of user tokens and of cached provider keys.
    clock: Clock,
    data_dir: DataDir,
    current: RwLock<Option<Arc<Deployment>>>,
    environment: RwLock<Arc<Environment>>,
    /// The longest variable name, the largest value.
    max_variable_name: usize,
    max_variable_value: usize,
    /// One deploy or variable change at a time.
    changing: Mutex<()>,
    compiled: AtomicUsize,
    loaded_from_cache: AtomicUsize,
    /// Bumped whenever what a query computes may change without a commit:
    /// a new deployment or a changed environment variable.
    generation: watch::Sender<u64>,
}

impl Deployments {
    /// Reads the environment and serves the persisted deployment, if any.
    pub async fn open(
        engine: HostEngine,
        auth_options: VerifierOptions,
        issuer: capstan_auth::Issuer,
        clock: Clock,
        data_dir: DataDir,
        limits: &ServerLimits,
    ) -> Result<Deployments, Error> {
        let env_file = data_dir.environment();
        let environment: Environment = match std::fs::read(&env_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::config(format!("{}: {e}", env_file.display())))?,
            Err(_) => Environment::new(),
        };
        let deployments = Deployments {
            engine,
            auth_options,
            issuer,
            clock,
            data_dir,
            current: RwLock::new(None),
            environment: RwLock::new(Arc::new(environment)),
            max_variable_name: limits.max_variable_name,
            max_variable_value: limits.max_variable_value,
            changing: Mutex::new(()),
            compiled: AtomicUsize::new(0),
            loaded_from_cache: AtomicUsize::new(0),
            generation: watch::Sender::new(0),
        };
        if let Some(persisted) = deployments.data_dir.deployment().load()? {
            let (deployment, origins) = deployments
                .build(persisted.components, persisted.config)
                .await?;
            deployments.count(&origins);
            tracing::info!(deployment = %deployment.id, "serving the persisted deployment");
            deployments.switch(deployment);
        }
        Ok(deployments)
    }

    pub fn current(&self) -> Option<Arc<Deployment>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn environment(&self) -> Arc<Environment> {
        self.environment
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Changes each time the deployment or its environment changes.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn component_stats(&self) -> ComponentStats {
        ComponentStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_cache: self.loaded_from_cache.load(Ordering::Relaxed),
        }
    }

    fn count(&self, origins: &[Origin]) {
        for origin in origins {
            match origin {
                Origin::Compiled => self.compiled.fetch_add(1, Ordering::Relaxed),
                Origin::Cached => self.loaded_from_cache.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    fn switch(&self, deployment: Deployment) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(deployment));
    }

    async fn build(
        &self,
        components: Vec<Vec<u8>>,
        config: AppConfig,
    ) -> Result<(Deployment, Vec<Origin>), Error> {
        let engine = self.engine.clone();
        let cache_dir = self.data_dir.compiled();
        let auth_options = self.auth_options.clone();
        let clock = self.clock.clone();
        let issuer = self.issuer.clone();
        let (mut deployment, origins) = tokio::task::spawn_blocking(move || {
            Deployment::build(
                &engine,
                &components,
                config,
                &cache_dir,
                (&auth_options, &issuer),
                &clock,
            )
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        // The same providers keep their cached keys across deploys.
        if let Some(current) = self.current()
            && current.config.auth == deployment.config.auth
        {
            deployment.verifier = current.verifier.clone();
        }
        Ok((deployment, origins))
    }

    /// Compiles and checks everything, applies the schema to `store`,
    /// persists, and then switches atomically. A deploy that fails at any
    /// step changes nothing.
    pub async fn deploy(
        &self,
        store: &Store,
        components: Vec<Vec<u8>>,
        config: AppConfig,
    ) -> Result<DeploySummary, Error> {
        let _one_at_a_time = self.changing.lock().await;
        let (deployment, origins) = self.build(components.clone(), config.clone()).await?;
        // One deploy at a time across nodes too, so that its schema and its
        // code become every node's together.
        let _cluster = self.across_nodes(None).await?;
        let files = self.data_dir.deployment();
        files.stage(&components, &config)?;
        let change = match store.apply_schema(deployment.schema.clone()).await {
            Ok(change) => change,
            Err(e) => {
                files.discard();
                return Err(Error::new(
                    ErrorCode::BadDeploy,
                    format!("the schema cannot be applied: {e}"),
                ));
            }
        };
        files.commit()?;
        self.count(&origins);
        let summary = DeploySummary {
            deployment: deployment.id.clone(),
            functions: deployment.functions().count(),
            compiled: origins.iter().filter(|o| **o == Origin::Compiled).count(),
            loaded_from_cache: origins.iter().filter(|o| **o == Origin::Cached).count(),
            tables_added: change.tables_added,
            indexes_added: change.indexes_added,
            indexes_removed: change.indexes_removed,
            warnings: deployment.config.auth.warnings(),
        };
        for warning in &summary.warnings {
            tracing::warn!(%warning, "deployed with a warning");
        }
        tracing::info!(deployment = %deployment.id, functions = summary.functions, "deployed");
        self.switch(deployment);
        self.generation.send_modify(|g| *g += 1);
        Ok(summary)
    }

    /// The lock across nodes, waited for off the runtime; with `refresh`,
    /// the entry it names brought up to date under it (see
    /// [`crate::shared_state::serialize`]).
    async fn across_nodes(
        &self,
        refresh: Option<&'static str>,
    ) -> Result<Option<capstan_store::postgres::Exclusive>, Error> {
        let root = self.data_dir.root().to_owned();
        tokio::task::spawn_blocking(move || match refresh {
            Some(name) => crate::shared_state::serialize(&root, name),
            None => crate::shared_state::exclusive(&root),
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }

    /// Serves the deployment in the data directory, which another node
    /// deployed (and whose schema it applied).
    pub async fn reload(&self) -> Result<(), Error> {
        let _one_at_a_time = self.changing.lock().await;
        let Some(persisted) = self.data_dir.deployment().load()? else {
            return Ok(());
        };
        let (deployment, origins) = self.build(persisted.components, persisted.config).await?;
        self.count(&origins);
        tracing::info!(deployment = %deployment.id, "serving the deployment another node deployed");
        self.switch(deployment);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Reads the environment again, after another node changed it.
    pub fn reload_environment(&self) -> Result<(), Error> {
        let path = self.data_dir.environment();
        let variables: Environment = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Environment::new(),
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        *self
            .environment
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(variables);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    pub fn environment_variables(&self) -> BTreeMap<String, String> {
        (*self.environment()).clone()
    }

    /// Sets (`Some`) or removes (`None`) a deployment environment variable,
    /// persisted before it takes effect.
    pub async fn set_environment_variable(
        &self,
        name: &str,
        value: Option<String>,
    ) -> Result<(), Error> {
        let valid = !name.is_empty()
            && name.len() <= self.max_variable_name
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "{name:?} is not a valid variable name: letters, digits and underscores, starting with a letter, at most {}",
                    self.max_variable_name
                ),
            ));
        }
        if value
            .as_ref()
            .is_some_and(|v| v.len() > self.max_variable_value)
        {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("values are at most {} KiB", self.max_variable_value >> 10),
            ));
        }
        let _one_at_a_time = self.changing.lock().await;
        let cluster = self
            .across_nodes(Some(crate::data_dir::ENVIRONMENT))
            .await?;
        if cluster.is_some() {
            self.reload_environment()?;
        }
        let mut variables = self.environment_variables();
        match value {
            Some(value) => variables.insert(name.to_owned(), value),
            None => variables.remove(name),
        };
        let bytes = serde_json::to_vec(&variables).map_err(|e| Error::internal(e.to_string()))?;
        replace(&self.data_dir.environment(), &bytes)?;
        *self
            .environment
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(variables);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }
}
