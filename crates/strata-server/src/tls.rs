//! TLS for client connections: a rustls server config (ring provider only)
//! from the PEM certificate chain and private key named in `[tls]`. pgwire does
//! the negotiation itself, both Postgres' SSLRequest and direct TLS
//! (`sslnegotiation=direct`, which needs the `postgresql` ALPN protocol).

use pgwire::tokio::TlsAcceptor;
use std::path::Path;
use std::sync::Arc;
use strata_common::config::TlsConfig;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The acceptor for `config`, or None when TLS is not configured. A cert
/// without a key (or the reverse), unreadable files, or `required` without a
/// certificate are startup errors: a server that silently ran without the TLS
/// its operator asked for would be worse than one that does not start.
pub fn acceptor(config: &TlsConfig) -> Result<Option<TlsAcceptor>, String> {
    let (cert, key) = match (&config.cert, &config.key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) if config.required => {
            return Err("tls.required is set but tls.cert and tls.key are not".into());
        }
        (None, None) => return Ok(None),
        _ => return Err("tls.cert and tls.key must be set together".into()),
    };
    let chain = load_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read TLS key {}: {e}", key.display()))?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate or key rejected: {e}"))?;
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(chain)
}
