//! The hand-written Kubernetes client: credentials (settings or in-cluster), REST calls with
//! client-go's retry rules, a pod watch on its own thread, and exec over a WebSocket.
//!
//! Everything is blocking. A [`Client`] is cheap to clone and can be shared between threads.

mod channel;
mod create;
mod credentials;
mod error;
mod exec;
mod rest;
mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::KubernetesConfig;
use crate::secret::Secret;

pub use channel::{ExecProtocol, PROTOCOL_V4, PROTOCOL_V5};
pub use credentials::{SERVICE_ACCOUNT_DIR, TOKEN_REFRESH};
pub use error::{KubeError, Status, StatusCause};
pub use exec::{
    AbortHandle, ExecError, ExecIo, ExecOutcome, ExecRequest, IDLE_LIMIT, PING_INTERVAL,
};
pub use rest::{
    RetryPolicy, CONNECT_TIMEOUT, MAX_BACKOFF, MAX_RETRY_AFTER, MIN_BACKOFF, REQUEST_TIMEOUT,
    RETRY_TRIES,
};
pub use watch::{PodEvent, PodWatch, DEFAULT_POLL_INTERVAL, WATCH_SECONDS};

use create::{items, NewObject};
use credentials::{Auth, Endpoint, TokenFile};
use rest::{encode, Req, Transport};

/// A connection to one API server with one identity. Clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    transport: Transport,
    namespace: Option<String>,
}

impl Client {
    /// Builds a client from `[runners.kubernetes]`: `host` with `cert_file`/`key_file`,
    /// `ca_file` and/or `bearer_token`; without `host`, the in-cluster service account.
    pub fn from_config(cfg: &KubernetesConfig) -> Result<Client, KubeError> {
        match cfg.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) => Client::from_host(host, cfg),
            None => Client::in_cluster(),
        }
    }

    /// Builds a client from the pod's service account (`KUBERNETES_SERVICE_HOST` and `_PORT`,
    /// files under [`SERVICE_ACCOUNT_DIR`]).
    pub fn in_cluster() -> Result<Client, KubeError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        Client::in_cluster_from(&host, &port, Path::new(SERVICE_ACCOUNT_DIR))
    }

    /// Builds an in-cluster client from the given host and port values and a folder holding
    /// `token`, `ca.crt` and (optionally) `namespace`. The token is read again every minute.
    pub fn in_cluster_from(
        env_host: &str,
        env_port: &str,
        dir: &Path,
    ) -> Result<Client, KubeError> {
        let host = env_host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() || env_port.trim().is_empty() {
            return Err(KubeError::NoCluster);
        }
        let port = env_port
            .trim()
            .parse::<u16>()
            .map_err(|_| KubeError::InvalidHost {
                host: format!("{host}:{env_port}"),
                detail: "KUBERNETES_SERVICE_PORT is not a port number".into(),
            })?;
        let endpoint = Endpoint::new(host, port, "");
        endpoint.server_name()?;

        let tls = credentials::tls_config(Some(&dir.join("ca.crt")), None)?;
        let token = TokenFile::open(&dir.join("token"), TOKEN_REFRESH)?;
        let namespace = credentials::read_text(&dir.join("namespace"), "namespace")
            .ok()
            .filter(|n| !n.is_empty());
        log::debug!("using in-cluster credentials for {}", endpoint.base_url);
        let transport = Transport::new(endpoint, tls, Auth::File(Arc::new(token)));
        Ok(Client::wrap(Inner {
            transport,
            namespace,
        }))
    }

    fn from_host(host: &str, cfg: &KubernetesConfig) -> Result<Client, KubeError> {
        let endpoint = Endpoint::parse(host)?;
        endpoint.server_name()?;
        let client_cert = match (&cfg.cert_file, &cfg.key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            (Some(_), None) => return Err(missing("cert_file is set without key_file")),
            (None, Some(_)) => return Err(missing("key_file is set without cert_file")),
        };
        let tls = credentials::tls_config(cfg.ca_file.as_deref(), client_cert)?;
        let auth = match &cfg.bearer_token {
            Some(token) if !token.is_empty() => Auth::Static(token.clone()),
            _ => Auth::None,
        };
        let transport = Transport::new(endpoint, tls, auth);
        Ok(Client::wrap(Inner {
            transport,
            namespace: None,
        }))
    }

    fn wrap(inner: Inner) -> Client {
        Client {
            inner: Arc::new(inner),
        }
    }

    fn with_inner(&self, change: impl FnOnce(&mut Inner)) -> Client {
        let mut inner = (*self.inner).clone();
        change(&mut inner);
        Client::wrap(inner)
    }

    /// The same server and TLS settings, authenticated with `token` instead (a job's
    /// `KUBERNETES_BEARER_TOKEN`).
    pub fn with_bearer_token(&self, token: Secret) -> Client {
        self.with_inner(|inner| inner.transport.auth = Auth::Static(token))
    }

    /// The same client with other retry settings (default [`RetryPolicy::default`]).
    pub fn with_retry_policy(&self, policy: RetryPolicy) -> Client {
        self.with_inner(|inner| inner.transport.retry = policy)
    }

    /// The same client with other timeouts (defaults [`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]).
    pub fn with_timeouts(&self, connect: Duration, request: Duration) -> Client {
        self.with_inner(|inner| inner.transport.set_timeouts(connect, request))
    }

    /// The API server's base URL (`https://host:port`).
    pub fn base_url(&self) -> &str {
        &self.inner.transport.endpoint.base_url
    }

    /// The namespace of the in-cluster service account, when there is one.
    pub fn default_namespace(&self) -> Option<String> {
        self.inner.namespace.clone()
    }

    /// Creates a pod; after a timeout or a 5xx it looks for the pod before creating it again.
    pub fn create_pod(&self, ns: &str, pod: &Value) -> Result<Value, KubeError> {
        self.create("pods", "pod", ns, pod)
    }

    /// Reads a pod.
    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Value, KubeError> {
        let action = format!("get pod {name} in namespace {ns}");
        self.inner
            .transport
            .call(&get(pod_path(ns, name), vec![], action))
    }

    /// Lists the pods matching a label selector (`k=v,k2=v2`).
    pub fn list_pods(&self, ns: &str, label_selector: &str) -> Result<Vec<Value>, KubeError> {
        let path = format!("/api/v1/namespaces/{}/pods", encode(ns));
        let query = vec![("labelSelector", label_selector.to_string())];
        let action = format!("list pods with labels {label_selector} in namespace {ns}");
        let list = self.inner.transport.call(&get(path, query, action))?;
        Ok(items(list))
    }

    /// Deletes a pod in the background, with `grace_secs` when given; a missing pod is fine.
    pub fn delete_pod(
        &self,
        ns: &str,
        name: &str,
        grace_secs: Option<i64>,
    ) -> Result<(), KubeError> {
        let mut query = vec![("propagationPolicy", "Background".to_string())];
        if let Some(grace) = grace_secs {
            query.push(("gracePeriodSeconds", grace.to_string()));
        }
        self.delete(
            pod_path(ns, name),
            query,
            format!("delete pod {name} in namespace {ns}"),
        )
    }

    /// Creates a Secret (retried like [`Client::create_pod`]).
    pub fn create_secret(&self, ns: &str, secret: &Value) -> Result<Value, KubeError> {
        self.create("secrets", "secret", ns, secret)
    }

    /// Deletes a Secret; a missing one is fine.
    pub fn delete_secret(&self, ns: &str, name: &str) -> Result<(), KubeError> {
        let path = format!("/api/v1/namespaces/{}/secrets/{}", encode(ns), encode(name));
        self.delete(
            path,
            vec![],
            format!("delete secret {name} in namespace {ns}"),
        )
    }

    /// Makes the Secret `name` owned by `owner` (an ownerReference, e.g. to the job's pod), so
    /// the cluster deletes it with its owner even if the runner never gets to.
    pub fn set_secret_owner(&self, ns: &str, name: &str, owner: &Value) -> Result<(), KubeError> {
        let patch = serde_json::json!({ "metadata": { "ownerReferences": [owner] } });
        let req = Req {
            method: "PATCH",
            path: format!("/api/v1/namespaces/{}/secrets/{}", encode(ns), encode(name)),
            query: vec![],
            body: Some(&patch),
            action: format!("set the owner of secret {name} in namespace {ns}"),
        };
        self.inner.transport.call(&req).map(|_| ())
    }

    /// Lists the events about a pod.
    pub fn list_events(&self, ns: &str, pod_name: &str) -> Result<Vec<Value>, KubeError> {
        let path = format!("/api/v1/namespaces/{}/events", encode(ns));
        let selector = format!("involvedObject.kind=Pod,involvedObject.name={pod_name}");
        let action = format!("list events of pod {pod_name} in namespace {ns}");
        let list =
            self.inner
                .transport
                .call(&get(path, vec![("fieldSelector", selector)], action))?;
        Ok(items(list))
    }

    /// Starts following a pod on its own thread; the first event is its current state.
    pub fn watch_pod(&self, ns: &str, name: &str) -> Result<PodWatch, KubeError> {
        watch::start(self, ns, name)
    }

    /// Runs a command in a container and streams its output to the sinks; the command's exit
    /// code when the server reported it.
    pub fn exec(&self, req: &ExecRequest, io: ExecIo) -> Result<ExecOutcome, ExecError> {
        exec::run(&self.inner.transport, req, io)
    }

    fn create(
        &self,
        resource: &'static str,
        kind: &'static str,
        ns: &str,
        object: &Value,
    ) -> Result<Value, KubeError> {
        let new = NewObject::read(resource, kind, ns, object);
        let req = Req {
            method: "POST",
            path: format!("/api/v1/namespaces/{}/{resource}", encode(ns)),
            query: vec![],
            body: Some(object),
            action: format!("create {kind} {} in namespace {ns}", new.shown_name()),
        };
        let transport = &self.inner.transport;
        transport.create(&req, &|| new.find(transport))
    }

    fn delete(
        &self,
        path: String,
        query: Vec<(&'static str, String)>,
        action: String,
    ) -> Result<(), KubeError> {
        let req = Req {
            method: "DELETE",
            path,
            query,
            body: None,
            action,
        };
        match self.inner.transport.call(&req) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                log::debug!("{}: already gone", req.action);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

fn missing(detail: &str) -> KubeError {
    KubeError::Config {
        detail: detail.to_string(),
    }
}

fn get(path: String, query: Vec<(&'static str, String)>, action: String) -> Req<'static> {
    Req {
        method: "GET",
        path,
        query,
        body: None,
        action,
    }
}

fn pod_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{}/pods/{}", encode(ns), encode(name))
}
