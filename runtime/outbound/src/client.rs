//! [`Outbound`], the client an action's HTTP host call goes through.

use std::sync::Arc;

use reqwest::redirect;
use tracing::Instrument;

use crate::config::OutboundConfig;
use crate::error::{Error, Result};
use crate::guard::Guard;
use crate::host;
use crate::request::Request;
use crate::resolver::GuardedResolver;
use crate::response::Response;

/// An SSRF-guarded, bounded HTTP client. Cheap to clone: clones share the
/// connection pool and the configuration.
#[derive(Clone, Debug)]
pub struct Outbound {
    client: reqwest::Client,
    config: Arc<OutboundConfig>,
    guard: Arc<Guard>,
}

impl Outbound {
    /// Validates `config` (CIDRs, host patterns, timeouts, user agent) and
    /// builds the client.
    pub fn new(config: OutboundConfig) -> Result<Self> {
        config.validate()?;
        let guard = Arc::new(Guard::new(&config)?);
        let client = reqwest::Client::builder()
            // A proxy from the environment would connect on our behalf to
            // addresses the resolver never sees.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&guard))))
            .redirect(redirect_policy(Arc::clone(&guard), config.max_redirects))
            // The previous URL may carry a key in its query string; it is
            // not the next host's business.
            .referer(false)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.as_str())
            .build()
            .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            config: Arc::new(config),
            guard,
        })
    }

    /// The configuration this client enforces.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Sends `request`, following redirects, and reads the whole response.
    ///
    /// Every URL in the chain is checked (scheme, `allowed_hosts`, address),
    /// and the whole exchange, body included, is bounded by `timeout`.
    pub async fn send(&self, request: Request) -> Result<Response> {
        let request = request.into_reqwest(&self.config)?;
        self.guard.check_url(request.url())?;
        let span = tracing::debug_span!(
            "outbound",
            method = %request.method(),
            host = host::url_host_key(request.url()).as_deref(),
        );
        let limit = self.config.timeout;
        // reqwest's own timeout covers the body too, but only while the body
        // is polled; this one also bounds our reading loop as a whole.
        let result = tokio::time::timeout(limit, self.exchange(request))
            .instrument(span.clone())
            .await
            .unwrap_or(Err(Error::TimedOut { limit }));
        span.in_scope(|| match &result {
            Ok(response) => tracing::debug!(
                status = response.status,
                bytes = response.body.len(),
                "outbound request done"
            ),
            Err(err) => tracing::debug!(error = %err, "outbound request failed"),
        });
        result
    }

    async fn exchange(&self, request: reqwest::Request) -> Result<Response> {
        let classify =
            |err| Error::from_reqwest(err, self.config.timeout, self.config.connect_timeout);
        let response = self.client.execute(request).await.map_err(classify)?;
        Response::read(response, self.config.max_response_bytes, classify).await
    }
}

/// Follows at most `max` redirects, each one checked by the guard like the
/// first URL. The names a redirect points at are checked again by the
/// resolver when reqwest connects.
fn redirect_policy(guard: Arc<Guard>, max: usize) -> redirect::Policy {
    if max == 0 {
        return redirect::Policy::none();
    }
    redirect::Policy::custom(move |attempt| {
        // `previous` holds the first URL and every hop so far, so its length
        // is the number of redirects this one would make.
        if attempt.previous().len() > max {
            return attempt.error(Error::TooManyRedirects { limit: max });
        }
        match guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(err) => attempt.error(err),
        }
    })
}
