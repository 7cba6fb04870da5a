use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use capstan_host::{Call, Environment, HostEngine, HostLimits, Module, Outcome};
use capstan_store::{Store, StoreConfig};

/// Builds a workspace package for `wasm32-wasip2` (once per test process)
/// and returns the component's bytes.
pub fn component(package: &str, file: &str) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().expect("not poisoned");
    if !built.iter().any(|p| p == package) {
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--target",
                "wasm32-wasip2",
                "-p",
                package,
            ])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building {package} for wasm32-wasip2 failed"
        );
        built.push(package.to_owned());
    }
    let path: PathBuf = root
        .join("target/wasm32-wasip2/debug")
        .join(format!("{file}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn limits() -> HostLimits {
    HostLimits {
        memory: 32 << 20,
        query_timeout: Duration::from_millis(300),
        mutation_timeout: Duration::from_millis(300),
        max_args: 1 << 20,
        max_result: 1 << 20,
        max_instances: 32,
        ..HostLimits::default()
    }
}

pub fn engine() -> HostEngine {
    HostEngine::new(limits()).expect("engine")
}

pub struct Fixture {
    pub module: Arc<Module>,
    pub store: Store,
}

pub fn guest() -> Fixture {
    let engine = engine();
    let (module, _) = Module::load(
        &engine,
        &component("capstan-test-guest", "test_guest"),
        None,
    )
    .expect("loads");
    let store = Store::open_in_memory(StoreConfig {
        gc_interval: None,
        ..StoreConfig::default()
    })
    .expect("store");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(store.apply_schema(module.schema().clone()))
        .expect("schema applies");
    Fixture {
        module: Arc::new(module),
        store,
    }
}

impl Fixture {
    /// Runs a query or mutation in a fresh transaction; commits mutations.
    pub fn run(&self, path: &str, args: serde_json::Value) -> Outcome {
        let mut outcome = self.module.run(Call {
            path: path.to_owned(),
            args: args.to_string(),
            transaction: Some(self.store.begin()),
            environment: Arc::new(Environment::from([(
                "GREETING".to_owned(),
                "hello".to_owned(),
            )])),
            nested: None,
        });
        if let Some(transaction) = outcome.transaction.take()
            && outcome.result.is_ok()
        {
            self.store
                .commit_blocking(transaction)
                .expect("commit")
                .expect("no conflict");
        }
        outcome
    }

    pub fn value(&self, path: &str, args: serde_json::Value) -> serde_json::Value {
        let outcome = self.run(path, args);
        let text = outcome
            .result
            .unwrap_or_else(|e| panic!("{path} failed: {e}"));
        serde_json::from_str(&text).expect("json")
    }
}
