//! The one wasmtime engine of a server: its configuration, the linker of
//! every host capability, and the epoch ticker that enforces deadlines.
//! Nothing else touches `wasmtime::Config`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::App;
use crate::error::{Error, Result};
use crate::limits::{EPOCH_TICK, HostLimits};
use crate::state::CallState;

/// Core instances per component instance: a Rust wasip2 component adds a few
/// adapter instances around the app's own.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;

/// Bytes of each memory slot kept mapped between calls.
const RESIDENT_MEMORY: usize = 4 << 20;
const RESIDENT_TABLE: usize = 64 << 10;

#[derive(Clone)]
pub struct HostEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<CallState>,
    limits: HostLimits,
    seed_key: SeedKey,
    ticker: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for HostEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEngine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

/// The secret a query's random numbers are derived from: with it, the
/// same query at the same snapshot for the same caller draws the same
/// numbers; without it, nobody can tell what they were. A server keeps one
/// per deployment in its data directory.
#[derive(Clone)]
pub struct SeedKey([u8; 32]);

impl SeedKey {
    pub fn new(bytes: [u8; 32]) -> SeedKey {
        SeedKey(bytes)
    }

    /// A key from the operating system's generator.
    pub fn random() -> Result<SeedKey> {
        let mut bytes = [0; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| Error::Engine("the operating system gave no random bytes".into()))?;
        Ok(SeedKey(bytes))
    }

    /// The seed of a query's random sources: HMAC-SHA256 of its inputs
    /// under this key, each input length-prefixed so that no two
    /// different lists of inputs read the same.
    pub(crate) fn seed(&self, inputs: &[&[u8]]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut context = ring::hmac::Context::with_key(&key);
        for input in inputs {
            context.update(&(input.len() as u64).to_le_bytes());
            context.update(input);
        }
        let mut seed = [0; 32];
        seed.copy_from_slice(context.sign().as_ref());
        seed
    }
}

impl std::fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedKey(…)")
    }
}

impl HostEngine {
    /// An engine whose queries draw from a key of its own (see [`SeedKey`]).
    pub fn new(limits: HostLimits) -> Result<Self> {
        HostEngine::with_seed_key(limits, SeedKey::random()?)
    }

    pub fn with_seed_key(limits: HostLimits, seed_key: SeedKey) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .max_memory_size(limits.memory)
            .max_core_instance_size(1 << 20)
            .max_component_instance_size(1 << 20)
            // A reused slot is reset by rewriting only the pages the last
            // call dirtied (PAGEMAP_SCAN, Linux 6.7+) instead of unmapping
            // them, so the next call does not fault them back in.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(RESIDENT_MEMORY)
            .table_keep_resident(RESIDENT_TABLE);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            // On, it makes every call several times slower; Capstan's calls
            // are synchronous.
            .concurrency_support(false)
            .max_wasm_stack(limits.max_stack)
            .wasm_component_model(true);
        // For profiling with `perf`: names the guest's compiled functions in
        // /tmp/perf-<pid>.map.
        if std::env::var("CAPSTAN_PERFMAP").is_ok_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| Error::Engine(e.to_string()))?;

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| Error::Engine(e.to_string()))?;
        App::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| Error::Engine(e.to_string()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("capstan-epoch".into())
                .spawn(move || {
                    // Ends when the engine is dropped (EngineInner::drop).
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::Engine(e.to_string()))?
        };
        Ok(HostEngine {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                limits,
                seed_key,
                ticker: Some(ticker),
                stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<CallState> {
        &self.inner.linker
    }

    pub fn limits(&self) -> &HostLimits {
        &self.inner.limits
    }

    pub(crate) fn seed_key(&self) -> &SeedKey {
        &self.inner.seed_key
    }
}
