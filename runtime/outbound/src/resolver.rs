//! The DNS resolver reqwest uses, which drops every address the guard does
//! not permit.
//!
//! Filtering here rather than before the request is what makes DNS
//! rebinding useless: reqwest connects to exactly the addresses returned
//! from this resolver, so there is no second lookup an attacker's name
//! server could answer differently.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::Error;
use crate::guard::Guard;

#[derive(Debug)]
pub(crate) struct GuardedResolver {
    guard: Arc<Guard>,
}

impl GuardedResolver {
    pub(crate) fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) back in.
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Error::Connect(format!("could not resolve host `{host}`: {e}")))?;
            let mut refused = None;
            let permitted: Vec<SocketAddr> = resolved
                .filter(|addr| match guard.check_address(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(err) => {
                        refused.get_or_insert(err);
                        false
                    }
                })
                .collect();
            if permitted.is_empty() {
                // The refusal is boxed into reqwest's error and found again
                // by `Outbound::send`, so the action sees `PrivateAddress`
                // rather than a generic connection failure.
                let err = refused.unwrap_or_else(|| {
                    Error::Connect(format!("host `{host}` resolved to no addresses"))
                });
                // `err.into()`, not `Box::new(err).into()`: the latter boxes a
                // `Box<Error>`, which no longer downcasts to `Error`.
                return Err(err.into());
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}
