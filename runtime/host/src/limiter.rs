//! The memory bound of one call.

use wasmtime::{ResourceLimiter, StoreLimits};

/// Memory growth past the limit fails with this error, which traps the
/// guest and tells the runner the call ran out of memory.
#[derive(Debug)]
pub struct MemoryLimitExceeded;

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Refuses growth past `max` bytes, and remembers that it did.
#[derive(Debug)]
pub struct MemoryLimiter {
    limits: StoreLimits,
    max: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub fn new(max: usize) -> Self {
        MemoryLimiter {
            limits: wasmtime::StoreLimitsBuilder::new().memory_size(max).build(),
            max,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max || maximum.is_some_and(|m| desired > m) {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}
