//! Where the API server is and how to prove who we are: the server address, the TLS settings
//! (CA, client certificate) and the bearer token, from the runner's settings or from the pod's
//! service account (in-cluster).
//!
//! In-cluster layout: `staging/src/k8s.io/client-go/rest/config.go` (`InClusterConfig`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::error::KubeError;
use crate::secret::Secret;

/// The service account folder mounted in every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long an in-cluster token is used before the file is read again (client-go: one minute).
pub const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// CA bundles of the usual distributions, tried in order when no `ca_file` is given.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The API server's address: `https://host:port` plus an optional path prefix.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `https://` + authority + prefix, without a final `/`.
    pub base_url: String,
    /// `host:port`, an IPv6 host in brackets.
    pub authority: String,
    /// The host without brackets, for TCP and the certificate check.
    pub host: String,
    pub port: u16,
    /// Path prefix (e.g. a proxy's `/k8s/clusters/c-1`), empty or starting with `/`.
    pub prefix: String,
}

impl Endpoint {
    /// Reads `https://host[:port][/prefix]`; a bare `host[:port]` means https. Plain http is
    /// refused: the token would travel in clear text.
    pub fn parse(url: &str) -> Result<Endpoint, KubeError> {
        let invalid = |detail: &str| KubeError::InvalidHost {
            host: url.to_string(),
            detail: detail.into(),
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {
                return Err(invalid("plain http is not supported, use https"))
            }
            Some(_) => return Err(invalid("the scheme must be https")),
            None => url,
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid("user information in the address is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| invalid("bad host or port"))?;
        Ok(Endpoint::new(&host, port, prefix))
    }

    /// The endpoint for a host (IPv6 without brackets) and a port.
    pub fn new(host: &str, port: u16, prefix: &str) -> Endpoint {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Endpoint {
            base_url: format!("https://{authority}{prefix}"),
            authority,
            host: host.to_string(),
            port,
            prefix: prefix.to_string(),
        }
    }

    /// The name the server's certificate must carry (a DNS name or an IP address).
    pub fn server_name(&self) -> Result<ServerName<'static>, KubeError> {
        ServerName::try_from(self.host.clone()).map_err(|_| KubeError::InvalidHost {
            host: self.host.clone(),
            detail: "not a valid DNS name or IP address".into(),
        })
    }
}

/// Splits `host[:port]` or `[v6][:port]`; the port defaults to 443.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return None,
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 443,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Builds the TLS settings: trust `ca_file` (else the system bundle) and present the client
/// certificate when one is given. The server is always verified, IP addresses included.
pub(crate) fn tls_config(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, KubeError> {
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeError::Config {
            detail: format!("tls protocol versions: {e}"),
        })?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain = read_certificates(cert, "client certificate")?;
            let key_der = read_private_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|source| KubeError::ClientCertificate {
                    path: cert.to_path_buf(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots_from(path: &Path) -> Result<RootCertStore, KubeError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path, "CA certificate")? {
        roots.add(cert).map_err(|e| KubeError::ParsePem {
            path: path.to_path_buf(),
            detail: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, KubeError> {
    let path = SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file());
    let Some(path) = path else {
        return Err(KubeError::Config {
            detail: "no ca_file given and no system CA bundle found".into(),
        });
    };
    let mut roots = RootCertStore::empty();
    let (added, ignored) =
        roots.add_parsable_certificates(read_certificates(path, "system CA bundle")?);
    log::debug!(
        "trusting {added} system CA certificates from {} ({ignored} ignored)",
        path.display()
    );
    Ok(roots)
}

/// Every certificate of a PEM file; an error when there is none.
fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, KubeError> {
    let bytes = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(KubeError::ParsePem {
            path: path.to_path_buf(),
            detail: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, KubeError> {
    let bytes = read_file(path, "client key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => KubeError::ParsePem {
            path: path.to_path_buf(),
            detail: "no private key section found".into(),
        },
        other => pem_error(path, other),
    })
}

fn pem_error(path: &Path, e: pem::Error) -> KubeError {
    KubeError::ParsePem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, KubeError> {
    fs::read(path).map_err(|source| KubeError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a small text file (token, namespace) trimmed of surrounding whitespace.
pub(crate) fn read_text(path: &Path, what: &'static str) -> Result<String, KubeError> {
    let bytes = read_file(path, what)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// Client certificate only (or nothing).
    None,
    /// A fixed bearer token (settings, or a job's own token).
    Static(Secret),
    /// The service account's token file, read again as it rotates.
    File(Arc<TokenFile>),
}

impl Auth {
    /// The token to send now, if any.
    pub fn token(&self) -> Option<Secret> {
        match self {
            Auth::None => None,
            Auth::Static(token) => Some(token.clone()),
            Auth::File(file) => Some(file.current()),
        }
    }

    /// Reads the token file again after a 401; true when a retry may help.
    pub fn reload_after_unauthorized(&self) -> bool {
        match self {
            Auth::File(file) => file.reload(),
            _ => false,
        }
    }
}

/// A token file with its last good content. The file is read again when the token is older than
/// the refresh interval, and on demand after a 401; a failed read keeps the last good token.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    refresh: Duration,
    state: Mutex<TokenState>,
}

#[derive(Debug)]
struct TokenState {
    token: Secret,
    read_at: Instant,
}

impl TokenFile {
    /// Reads the token a first time; this read must succeed.
    pub fn open(path: &Path, refresh: Duration) -> Result<TokenFile, KubeError> {
        let token = read_text(path, "token")?;
        if token.is_empty() {
            return Err(KubeError::Config {
                detail: format!("token file {} is empty", path.display()),
            });
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            refresh,
            state: Mutex::new(TokenState {
                token: Secret::new(token),
                read_at: Instant::now(),
            }),
        })
    }

    /// The token, read again first when it is older than the refresh interval.
    pub fn current(&self) -> Secret {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.read_at.elapsed() >= self.refresh {
            self.refresh_into(&mut state);
        }
        state.token.clone()
    }

    /// Reads the file now; true when it gave a different token than the one in use.
    pub fn reload(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = state.token.clone();
        self.refresh_into(&mut state);
        state.token != before
    }

    fn refresh_into(&self, state: &mut TokenState) {
        state.read_at = Instant::now();
        match read_text(&self.path, "token") {
            Ok(token) if !token.is_empty() => state.token = Secret::new(token),
            Ok(_) => log::warn!(
                "token file {} is empty, keeping the last token",
                self.path.display()
            ),
            Err(e) => log::warn!("{e}, keeping the last token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("alloy-kube-cred-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir is writable");
        dir
    }

    #[test]
    fn parses_hosts_with_and_without_scheme_port_and_brackets() {
        let e = Endpoint::parse("https://[::1]:6443/").expect("valid");
        assert_eq!(
            (e.host.as_str(), e.port, e.base_url.as_str()),
            ("::1", 6443, "https://[::1]:6443")
        );
        let e = Endpoint::parse("10.0.0.1").expect("valid");
        assert_eq!(e.base_url, "https://10.0.0.1:443");
        let e = Endpoint::parse("HTTPS://api.example:8443/k8s/clusters/c-1").expect("valid");
        assert_eq!(e.authority, "api.example:8443");
        assert_eq!(e.prefix, "/k8s/clusters/c-1");
        assert_eq!(Endpoint::new("fd00::1", 443, "").authority, "[fd00::1]:443");
    }

    #[test]
    fn refuses_plain_http_and_bad_ports() {
        let err = Endpoint::parse("http://127.0.0.1:8080").expect_err("http refused");
        assert_eq!(
            err.to_string(),
            "invalid kubernetes host \"http://127.0.0.1:8080\": plain http is not supported, use https"
        );
        assert!(Endpoint::parse("https://host:99999").is_err());
        assert!(Endpoint::parse("https://::1:443").is_err());
        assert!(Endpoint::parse("https://[::1]x").is_err());
    }

    #[test]
    fn token_file_keeps_the_last_good_token_when_the_file_disappears() {
        let dir = temp_dir("keep");
        let path = dir.join("token");
        fs::write(&path, "t1\n").expect("write token");
        let file = TokenFile::open(&path, Duration::ZERO).expect("token readable");
        assert_eq!(file.current().expose(), "t1");

        fs::write(&path, "t2").expect("write token");
        assert_eq!(file.current().expose(), "t2");

        fs::remove_file(&path).expect("remove token");
        assert_eq!(file.current().expose(), "t2");
        assert!(!file.reload());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn token_file_is_not_read_again_before_the_refresh_interval() {
        let dir = temp_dir("fresh");
        let path = dir.join("token");
        fs::write(&path, "t1").expect("write token");
        let file = TokenFile::open(&path, Duration::from_secs(3600)).expect("token readable");
        fs::write(&path, "t2").expect("write token");
        assert_eq!(file.current().expose(), "t1");
        assert!(file.reload(), "a forced reload sees the new token");
        assert_eq!(file.current().expose(), "t2");
        fs::remove_dir_all(&dir).ok();
    }
}
