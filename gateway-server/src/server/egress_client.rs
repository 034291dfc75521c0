//! The merchant-webhook HTTP client (awc): its connector resolves each host
//! through [`resolve_permitted`] and connects only to the addresses the
//! egress policy allows, so the address checked is the address connected
//! to (a name that resolved to a public address when the URL was stored and
//! to a private one now is refused). TLS is rustls with the webpki roots
//! plus the operator's extra roots (`Config::webhook_ca_file`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::rustls_0_23::{reexports::ClientConfig, webpki_roots_cert_store};
use actix_tls::connect::tcp::{TcpConnector, TcpConnectorService};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use actix_web::dev::Service;
use awc::http::Uri;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::app::egress::{resolve_permitted, ClientFactory, DESTINATION_NOT_ALLOWED};
use crate::support::egress::EgressPolicy;

/// The error a refused destination fails its connection with; its text is
/// the fixed [`DESTINATION_NOT_ALLOWED`].
#[derive(Debug, thiserror::Error)]
#[error("{}", DESTINATION_NOT_ALLOWED)]
struct NotAllowed;

/// A TCP connector that connects only to addresses the policy allows.
#[derive(Clone)]
struct CheckedConnector {
    policy: Arc<EgressPolicy>,
    tcp: TcpConnectorService,
}

impl Service<ConnectInfo<Uri>> for CheckedConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::always_ready!();

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let policy = self.policy.clone();
        let tcp = self.tcp;
        Box::pin(async move {
            let addresses = resolve_permitted(&policy, request.hostname(), request.port())
                .await
                .map_err(|_| ConnectError::Resolver(Box::new(NotAllowed)))?;
            tcp.call(request.set_addrs(addresses)).await
        })
    }
}

/// Why the extra webhook CA file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("webhook CA file {path}: {message}")]
pub(crate) struct CaFileError {
    path: String,
    message: String,
}

/// The TLS client configuration: webpki roots, plus the certificates of
/// `ca_file` (PEM) when given.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, CaFileError> {
    let mut roots = webpki_roots_cert_store();
    if let Some(path) = ca_file {
        let error = |message: String| CaFileError {
            path: path.display().to_string(),
            message,
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(error("no PEM certificate in it".to_owned()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| error(e.to_string()))?;
        }
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The factory of merchant-webhook clients under `policy`, trusting `tls`.
pub(crate) fn webhook_client_factory(policy: Arc<EgressPolicy>, tls: Arc<ClientConfig>) -> ClientFactory {
    Arc::new(move |timeout: Duration| {
        let connector = awc::Connector::new()
            .connector(CheckedConnector {
                policy: policy.clone(),
                tcp: TcpConnector::default().service(),
            })
            .rustls_0_23(tls.clone())
            .timeout(timeout);
        awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .finish()
    })
}
