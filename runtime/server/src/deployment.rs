//! A deployment: the app's components, linked and described, with their
//! merged schema, the app config, and how each function's recent runs
//! went. It is persisted in the data directory ([`crate::data_dir`]), so a
//! restart serves it again without a redeploy (and, thanks to the compiled
//! cache, without recompiling).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use capstan_auth::{AuthConfig, Verifier, VerifierOptions};
use capstan_host::{FunctionInfo, FunctionPath, HostEngine, Module, Origin};
use capstan_protocol::Clock;
use capstan_store::Schema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::pace::Pace;
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
    /// The HTTP actions' routes.
    pub http: crate::platform::http_actions::Routes,
    /// The cron jobs.
    pub crons: Vec<crate::platform::crons::CronSpec>,
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
        (auth_options, issuer): (&VerifierOptions, &capstan_auth::Issuer),
        clock: &Clock,
    ) -> Result<(Deployment, Vec<Origin>), Error> {
        if components.is_empty() {
            return Err(Error::new(
                ErrorCode::BadDeploy,
                "a deploy needs at least one component",
            ));
        }
        let bad = |e: String| Error::new(ErrorCode::BadDeploy, e);
        let mut verifier = Verifier::new(&config.auth, auth_options.clone(), clock.clone())
            .map_err(|e| bad(e.to_string()))?;
        if let Some(built_in) = &config.auth.built_in {
            built_in.validate().map_err(bad)?;
            // The server's own tokens, checked like any provider's.
            verifier = verifier.trusting(&capstan_auth::Issuer {
                audience: built_in.token.audience.clone(),
                ..issuer.clone()
            });
        }
        let verifier = Arc::new(verifier);
        let mut modules = Vec::new();
        let mut origins = Vec::new();
        let mut routes = BTreeMap::new();
        let mut schema = Schema::default();
        for (index, bytes) in components.iter().enumerate() {
            let (module, origin) = Module::load(engine, bytes, Some(cache_dir))
                .map_err(|e| Error::new(ErrorCode::BadDeploy, format!("component {index}: {e}")))?;
            for path in module.functions().keys() {
                if config.auth.built_in.is_some()
                    && crate::auth::function_kind(path.as_str()).is_some()
                {
                    return Err(bad(format!(
                        "function {path:?} is served by built-in auth; rename it or turn built-in auth off"
                    )));
                }
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
        if config.auth.built_in.is_some() {
            crate::auth::tables::merge_into(&mut schema).map_err(bad)?;
        }
        crate::platform::tables::merge_into(&mut schema);
        let http = crate::platform::http_actions::Routes::build(&modules).map_err(bad)?;
        let crons = crate::platform::crons::build(&modules, |path| {
            let module = &modules[*routes.get(path)?];
            module.function(path.as_str()).map(|info| info.kind)
        })
        .map_err(bad)?;
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
                http,
                crons,
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
