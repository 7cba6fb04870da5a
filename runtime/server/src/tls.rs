//! TLS termination by the server itself (rustls): a certificate chain and
//! private key read from PEM files, and read again whenever either file
//! changes, so a renewed certificate (certbot, cert-manager) is served
//! without a restart. A file that fails to load keeps the last good pair
//! in use, and the operator is told in the log.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// `[tls]`: where the certificate chain and its key are.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server's certificate, then its intermediates.
    pub certificate: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The certificate in use, replaced when its files change.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the pair; the error names the file and the problem.
fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certificate = config.certificate.display();
    let chain = CertificateDer::pem_file_iter(&config.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls: cannot read the certificate {certificate}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("tls: {certificate} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&config.private_key).map_err(|e| {
        format!(
            "tls: cannot read the private key {}: {e}",
            config.private_key.display()
        )
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("tls: the private key is not usable: {e}"))?;
    let pair = CertifiedKey::new(chain, key);
    pair.keys_match()
        .map_err(|e| format!("tls: the private key does not match {certificate}: {e}"))?;
    Ok(pair)
}

fn modified(config: &TlsConfig) -> Option<(SystemTime, SystemTime)> {
    let time = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((time(&config.certificate)?, time(&config.private_key)?))
}

/// An acceptor serving the configured pair, and the task that reloads it
/// when its files change (it ends when `stop` is cancelled).
pub fn acceptor(
    config: &TlsConfig,
    stop: tokio_util::sync::CancellationToken,
) -> Result<TlsAcceptor, String> {
    let provider = provider();
    let first = load(config, &provider)?;
    let resolver = Arc::new(Reloading {
        current: RwLock::new(Arc::new(first)),
    });
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = config.clone();
    tokio::spawn(async move {
        let mut seen = modified(&config);
        loop {
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {}
                () = stop.cancelled() => return,
            }
            let now = modified(&config);
            if now == seen {
                continue;
            }
            match load(&config, &provider) {
                Ok(pair) => {
                    *resolver.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                    seen = now;
                    tracing::info!(certificate = %config.certificate.display(), "tls: certificate reloaded");
                }
                // Perhaps half-written: tried again at the next check.
                Err(reason) => tracing::warn!(%reason, "tls: keeping the certificate in use"),
            }
        }
    });
    Ok(TlsAcceptor::from(Arc::new(server)))
}
