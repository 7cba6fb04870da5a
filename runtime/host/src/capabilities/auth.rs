//! `auth`: who is calling, and the constant-time check of a presented
//! secret against an environment variable.

use capstan_protocol::Identity;

use super::{HostResult, error};
use crate::bindings::capstan::runtime::auth;
use crate::state::CallState;

impl auth::Host for CallState {
    fn identity(&mut self) -> wasmtime::Result<auth::Caller> {
        Ok(match &self.identity {
            Identity::Anonymous => auth::Caller::Anonymous,
            Identity::User(user) => auth::Caller::User(user.json.clone()),
            Identity::Admin {
                impersonating: Some(user),
            } => auth::Caller::User(user.json.clone()),
            Identity::Admin {
                impersonating: None,
            } => auth::Caller::Admin,
            Identity::Service { name } => auth::Caller::Service(name.clone()),
        })
    }

    fn check_secret(&mut self, name: String, presented: String) -> HostResult<bool> {
        match self.environment.get(&name) {
            // An empty secret would let an empty presented value through.
            Some(expected) if expected.is_empty() => Ok(Err(error(format!(
                "check_secret: the environment variable {name:?} is empty"
            )))),
            Some(expected) => Ok(Ok(capstan_protocol::constant_time_eq(
                expected.as_bytes(),
                presented.as_bytes(),
            ))),
            None => Ok(Err(error(format!(
                "check_secret: the environment variable {name:?} is not set"
            )))),
        }
    }
}
