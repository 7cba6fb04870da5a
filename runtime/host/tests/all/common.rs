use std::sync::Arc;
use std::time::Duration;

use capstan_host::{
    Access, Call, Environment, FunctionKind, HostEngine, HostLimits, Module, Outcome,
};
use capstan_store::{Store, StoreConfig};

pub use capstan_test_support::component;

pub fn limits() -> HostLimits {
    HostLimits {
        memory: 32 << 20,
        // Long enough for the largest calls on a loaded machine; the spin
        // test waits it out.
        query_timeout: Duration::from_millis(1000),
        mutation_timeout: Duration::from_millis(1000),
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
    guest_on(&engine())
}

pub fn guest_on(engine: &HostEngine) -> Fixture {
    let (module, _) =
        Module::load(engine, &component("capstan-test-guest", "test_guest"), None).expect("loads");
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
        let transaction = self.store.begin();
        let access = match self.module.function(path).map(|f| f.kind) {
            Some(FunctionKind::Mutation) => Access::Mutation(transaction),
            _ => Access::Query(transaction),
        };
        let mut outcome = self.module.run(Call {
            path: path.into(),
            args: args.to_string(),
            access,
            environment: Arc::new(Environment::from([(
                "GREETING".to_owned(),
                "hello".to_owned(),
            )])),
            identity: Default::default(),
            deadline: None,
            platform: None,
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
