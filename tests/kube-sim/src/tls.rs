//! TLS for the simulator: the test CA's server certificate, optional client certificates, and
//! the stream type connections run on.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// The test CA certificate (PEM).
pub const CA_CERT: &str = include_str!("../../../fixtures/kube-sim/tls/ca.crt");
/// The server certificate (PEM) for 127.0.0.1, ::1 and localhost.
pub const SERVER_CERT: &str = include_str!("../../../fixtures/kube-sim/tls/server.crt");
/// The server key (PKCS#8 PEM).
pub const SERVER_KEY: &str = include_str!("../../../fixtures/kube-sim/tls/server.key");
/// A client certificate (PEM) for the user `sim-admin`, signed by the test CA.
pub const CLIENT_CERT: &str = include_str!("../../../fixtures/kube-sim/tls/client.crt");
/// The client certificate's key (PKCS#8 PEM).
pub const CLIENT_KEY: &str = include_str!("../../../fixtures/kube-sim/tls/client.key");

/// Builds the server config; with `client_auth` a client certificate from the test CA is
/// verified when offered (a client without one may still use a bearer token).
pub fn server_config(client_auth: bool) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes())
        .map_err(|e| rustls::Error::General(format!("server key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        false => builder.with_no_client_auth(),
        true => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(CA_CERT.as_bytes()) {
                let cert =
                    cert.map_err(|e| rustls::Error::General(format!("CA certificate: {e}")))?;
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| rustls::Error::General(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    // HTTP/1.1 only: Go clients would pick HTTP/2 if it were offered.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection, plain or TLS.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// Runs the TLS handshake and returns the stream and the client certificate's CN, if any.
    pub fn accept_tls(
        config: Arc<ServerConfig>,
        mut tcp: TcpStream,
    ) -> io::Result<(Self, Option<String>)> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        let user = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|c| common_name(c));
        Ok((Stream::Tls(Box::new(StreamOwned::new(conn, tcp))), user))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The subject CN of a DER certificate: the last `2.5.4.3` attribute (the issuer's comes first).
fn common_name(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(CN_OID.len()).rposition(|w| w == CN_OID)? + CN_OID.len();
    let (_tag, len) = (*der.get(at)?, *der.get(at + 1)? as usize);
    let text = der.get(at + 2..at + 2 + len)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_client_certificate_cn() {
        let der = CertificateDer::from_pem_slice(CLIENT_CERT.as_bytes()).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("sim-admin"));
    }

    #[test]
    fn builds_server_configs_with_and_without_client_auth() {
        assert!(server_config(false).is_ok());
        assert!(server_config(true).is_ok());
    }
}
