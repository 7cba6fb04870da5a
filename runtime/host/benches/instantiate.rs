//! Where the floor of a call is: wasmtime instantiation alone, with the
//! host's engine configuration (pooling allocator, epochs, no concurrency
//! support) and no Capstan code in the loop, for
//! - a minimal component (one core module, one memory, one lifted function);
//! - the `counter` example as the Rust SDK builds it (imports stubbed as traps,
//!   so neither WASI contexts nor host state are built).
//!
//! Each figure is the p50 of a 0.4 s phase; five interleaved rounds, the
//! lowest and the median p50 are printed, because this machine's neighbours
//! move single figures by up to 2x.
//!
//! Run with `cargo bench -p capstan-host --bench instantiate`.

use std::time::{Duration, Instant};

use capstan_host::{HostEngine, HostLimits};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

/// ```wat
/// (component
///   (core module $m
///     (memory (export "memory") 17)
///     (func (export "run") (result i32) i32.const 42))
///   (core instance $i (instantiate $m))
///   (func (export "run") (result u32) (canon lift (core func $i "run"))))
/// ```
const MINIMAL: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x01, 0x3d, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x05, 0x03, 0x01,
    0x00, 0x11, 0x07, 0x10, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x03, 0x72,
    0x75, 0x6e, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b, 0x00, 0x09, 0x04, 0x6e,
    0x61, 0x6d, 0x65, 0x00, 0x02, 0x01, 0x6d, 0x02, 0x04, 0x01, 0x00, 0x00, 0x00, 0x07, 0x05, 0x01,
    0x40, 0x00, 0x00, 0x79, 0x06, 0x09, 0x01, 0x00, 0x00, 0x01, 0x00, 0x03, 0x72, 0x75, 0x6e, 0x08,
    0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x09, 0x01, 0x00, 0x03, 0x72, 0x75, 0x6e, 0x01,
    0x00, 0x00, 0x00, 0x1f, 0x0e, 0x63, 0x6f, 0x6d, 0x70, 0x6f, 0x6e, 0x65, 0x6e, 0x74, 0x2d, 0x6e,
    0x61, 0x6d, 0x65, 0x01, 0x06, 0x00, 0x11, 0x01, 0x00, 0x01, 0x6d, 0x01, 0x06, 0x00, 0x12, 0x01,
    0x00, 0x01, 0x69,
];

const PHASE: Duration = Duration::from_millis(400);
const ROUNDS: usize = 5;

fn p50_micros(mut call: impl FnMut()) -> f64 {
    for _ in 0..300 {
        call();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < PHASE {
        let began = Instant::now();
        call();
        samples.push(began.elapsed());
    }
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

fn fresh_store(engine: &wasmtime::Engine) -> Store<()> {
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn main() -> anyhow::Result<()> {
    let host = HostEngine::new(HostLimits::default())?;
    let engine = host.engine();
    let counter = std::fs::read(capstan_test_support::component_path(
        "counter",
        "counter",
        capstan_test_support::Profile::Release,
    ))?;
    let mut cases: Vec<(&str, InstancePre<()>)> = Vec::new();
    for (name, bytes) in [
        ("minimal component", MINIMAL),
        ("counter example", &counter[..]),
    ] {
        let component = Component::new(engine, bytes)?;
        let mut linker: Linker<()> = Linker::new(engine);
        linker.define_unknown_imports_as_traps(&component)?;
        cases.push((name, linker.instantiate_pre(&component)?));
    }

    // Per case: instantiate + drop, instantiate alone (stores dropped in
    // batches outside the timed region), and for the minimal component a call.
    let mut figures = vec![[const { Vec::new() }; 3]; cases.len()];
    for _ in 0..ROUNDS {
        for (case, (_, pre)) in cases.iter().enumerate() {
            figures[case][0].push(p50_micros(|| {
                let mut store = fresh_store(engine);
                pre.instantiate(&mut store).expect("instantiate");
            }));
            let mut kept = Vec::with_capacity(200);
            figures[case][1].push(p50_micros(|| {
                let mut store = fresh_store(engine);
                pre.instantiate(&mut store).expect("instantiate");
                kept.push(store);
                if kept.len() == 200 {
                    kept.clear();
                }
            }));
            if case == 0 {
                figures[case][2].push(p50_micros(|| {
                    let mut store = fresh_store(engine);
                    let instance = pre.instantiate(&mut store).expect("instantiate");
                    let run = instance
                        .get_typed_func::<(), (u32,)>(&mut store, "run")
                        .expect("run");
                    assert_eq!(run.call(&mut store, ()).expect("call").0, 42);
                }));
            }
        }
    }
    println!(
        "wasmtime alone, host engine configuration (p50 µs: lowest / median of {ROUNDS} rounds)"
    );
    for ((name, _), rows) in cases.iter().zip(&mut figures) {
        for (label, row) in [
            "instantiate + drop",
            "instantiate alone",
            "instantiate + call + drop",
        ]
        .iter()
        .zip(rows.iter_mut())
        {
            if row.is_empty() {
                continue;
            }
            row.sort_by(f64::total_cmp);
            println!(
                "    {name:18} {label:26} {:>6.2} / {:>6.2}",
                row[0],
                row[ROUNDS / 2]
            );
        }
    }
    Ok(())
}
