//! `env`: the deployment's environment variables.

use crate::bindings::capstan::runtime::env;
use crate::state::CallState;

impl env::Host for CallState {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.environment.get(&name).cloned())
    }
}
