//! Request routing: authentication, authorisation, injected faults, then the handler.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;

use crate::auth::{Auth, Identity};
use crate::exec::ExecPlan;
use crate::faults::{Failure, Faults};
use crate::http::{Request, Response};
use crate::kubelet::Kubelet;
use crate::record::Recorder;
use crate::status::ApiError;
use crate::store::Store;
use crate::watch::WatchPlan;
use crate::{admin, discovery, objects, pods};

/// Resources the simulator serves, all namespaced in the core group.
pub const RESOURCES: [&str; 4] = ["pods", "secrets", "configmaps", "events"];

/// Everything a request handler reaches.
pub struct Ctx {
    /// The objects.
    pub store: Arc<Store>,
    /// The fault switchboard.
    pub faults: Faults,
    /// The request log.
    pub recorder: Recorder,
    /// Tokens and permissions.
    pub auth: Auth,
    /// The simulated kubelet.
    pub node: Arc<Kubelet>,
    /// The node's labels, matched against a pod's nodeSelector.
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// Whether exec offers only the v4 protocol (no v5), as an older server does.
    pub v4_only_exec: bool,
    /// Idle time between watch bookmarks.
    pub bookmark_interval: std::time::Duration,
    /// Set when the simulator stops; long requests end.
    pub stopping: AtomicBool,
}

/// What the connection does next.
pub enum Action {
    /// Write this response.
    Respond(Response),
    /// Stream a watch.
    Watch(WatchPlan),
    /// Upgrade to an exec WebSocket.
    Exec(ExecPlan),
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Api,
    Apis,
    ApiV1,
    OpenApiIndex,
    OpenApiV1,
    Namespace(String),
    Collection {
        resource: String,
        namespace: Option<String>,
    },
    Object {
        resource: String,
        namespace: String,
        name: String,
    },
    Exec {
        namespace: String,
        name: String,
    },
    Log {
        namespace: String,
        name: String,
    },
    Admin,
    Unknown,
}

fn route_of(path: &str) -> Route {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let owned = |s: &str| s.to_string();
    let known = |r: &str| RESOURCES.contains(&r);
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["api", "v1"] => Route::ApiV1,
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", "api", "v1"] => Route::OpenApiV1,
        ["__sim", ..] => Route::Admin,
        ["api", "v1", "namespaces", ns] => Route::Namespace(owned(ns)),
        ["api", "v1", r] if known(r) => Route::Collection {
            resource: owned(r),
            namespace: None,
        },
        ["api", "v1", "namespaces", ns, r] if known(r) => Route::Collection {
            resource: owned(r),
            namespace: Some(owned(ns)),
        },
        ["api", "v1", "namespaces", ns, r, name] if known(r) => Route::Object {
            resource: owned(r),
            namespace: owned(ns),
            name: owned(name),
        },
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => Route::Exec {
            namespace: owned(ns),
            name: owned(name),
        },
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => Route::Log {
            namespace: owned(ns),
            name: owned(name),
        },
        _ => Route::Unknown,
    }
}

/// Routes one request; `cert_user` is the verified client certificate's CN, if any.
pub fn handle(ctx: &Ctx, request: &Request, cert_user: Option<&str>) -> Action {
    let route = route_of(&request.path);
    if route == Route::Admin {
        return Action::Respond(admin::handle(ctx, request));
    }
    let identity = match ctx
        .auth
        .authenticate(request.header("authorization"), cert_user)
    {
        Ok(identity) => identity,
        Err(e) => return respond(ctx, request, "", Err(e)),
    };
    let latency = ctx.faults.latency();
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    match dispatch(ctx, request, &identity, route) {
        Ok(Action::Respond(r)) => respond(ctx, request, &identity.user, Ok(r)),
        Ok(Action::Watch(plan)) => {
            ctx.recorder.push(request, &identity.user, 200);
            Action::Watch(plan)
        }
        Ok(Action::Exec(plan)) => {
            ctx.recorder.push(request, &identity.user, 101);
            Action::Exec(plan)
        }
        Err(e) => respond(ctx, request, &identity.user, Err(e)),
    }
}

fn respond(ctx: &Ctx, request: &Request, user: &str, result: Result<Response, ApiError>) -> Action {
    let response = result.unwrap_or_else(|e| e.response());
    ctx.recorder.push(request, user, response.code);
    Action::Respond(response)
}

fn dispatch(
    ctx: &Ctx,
    request: &Request,
    who: &Identity,
    route: Route,
) -> Result<Action, ApiError> {
    let respond = |r: Result<Response, ApiError>| r.map(Action::Respond);
    match route {
        Route::Version => Ok(Action::Respond(discovery::version())),
        Route::Api => Ok(Action::Respond(discovery::api_versions())),
        Route::Apis => Ok(Action::Respond(discovery::api_groups())),
        Route::ApiV1 => Ok(Action::Respond(discovery::core_v1_resources())),
        Route::OpenApiIndex => Ok(Action::Respond(discovery::openapi_index())),
        Route::OpenApiV1 => Ok(Action::Respond(discovery::openapi_core_v1())),
        Route::Namespace(ns) => {
            who.authorize("get", "namespaces", Some(&ns), None)?;
            Ok(Action::Respond(discovery::namespace(&ns)))
        }
        Route::Collection {
            resource,
            namespace,
        } => collection(ctx, request, who, &resource, namespace.as_deref()),
        Route::Object {
            resource,
            namespace,
            name,
        } => respond(object(ctx, request, who, &resource, &namespace, &name)),
        Route::Exec { namespace, name } => exec(ctx, request, who, &namespace, &name),
        Route::Log { namespace, name } => respond(log(ctx, request, who, &namespace, &name)),
        Route::Admin | Route::Unknown => Err(ApiError::no_route()),
    }
}

fn collection(
    ctx: &Ctx,
    request: &Request,
    who: &Identity,
    resource: &str,
    namespace: Option<&str>,
) -> Result<Action, ApiError> {
    let verb = match (request.method.as_str(), request.flag("watch")) {
        ("GET", true) => "watch",
        ("GET", false) => "list",
        ("POST", _) if namespace.is_some() => "create",
        _ => return Err(ApiError::method_not_allowed()),
    };
    who.authorize(verb, resource, None, namespace)?;
    with_faults(ctx, verb, || match (verb, namespace) {
        ("watch", _) => crate::watch::plan(ctx, request, resource, namespace).map(Action::Watch),
        ("list", _) => objects::list(ctx, request, resource, namespace).map(Action::Respond),
        ("create", Some(ns)) if resource == "pods" => {
            pods::create(ctx, request, ns).map(Action::Respond)
        }
        ("create", Some(ns)) => objects::create(ctx, request, resource, ns).map(Action::Respond),
        _ => Err(ApiError::method_not_allowed()),
    })
}

/// Runs a handler under the armed fault for its verb, if any.
fn with_faults<T>(
    ctx: &Ctx,
    verb: &str,
    handler: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    match ctx.faults.take_failure(verb) {
        None => handler(),
        Some(Failure::TimeoutAfterCommit) => {
            handler()?;
            Err(Failure::TimeoutAfterCommit.error())
        }
        Some(failure) => Err(failure.error()),
    }
}

fn object(
    ctx: &Ctx,
    request: &Request,
    who: &Identity,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let verb = match (request.method.as_str(), resource) {
        ("GET", _) => "get",
        ("DELETE", _) => "delete",
        // Merge patches are served for the objects the runner owns next to its pods.
        ("PATCH", "secrets" | "configmaps") => "patch",
        _ => return Err(ApiError::method_not_allowed()),
    };
    who.authorize(verb, resource, Some(name), Some(namespace))?;
    with_faults(ctx, verb, || match (verb, resource) {
        ("get", _) => objects::get(ctx, request, resource, namespace, name),
        ("patch", _) => objects::merge_patch(ctx, request, resource, namespace, name),
        ("delete", "pods") => pods::delete(ctx, request, namespace, name),
        _ => objects::delete(ctx, resource, namespace, name),
    })
}

fn exec(
    ctx: &Ctx,
    request: &Request,
    who: &Identity,
    namespace: &str,
    name: &str,
) -> Result<Action, ApiError> {
    if request.method != "GET" && request.method != "POST" {
        return Err(ApiError::method_not_allowed());
    }
    // Newer servers authorise a WebSocket exec as `create` too; a CI role needs both verbs.
    for verb in ["get", "create"] {
        who.authorize(verb, "pods/exec", Some(name), Some(namespace))?;
    }
    with_faults(ctx, "exec", || {
        crate::exec::plan(ctx, request, namespace, name).map(Action::Exec)
    })
}

/// `GET .../pods/{name}/log`: what the container wrote so far.
fn log(
    ctx: &Ctx,
    request: &Request,
    who: &Identity,
    namespace: &str,
    name: &str,
) -> Result<Response, ApiError> {
    if request.method != "GET" {
        return Err(ApiError::method_not_allowed());
    }
    who.authorize("get", "pods/log", Some(name), Some(namespace))?;
    let pod = ctx
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let first = pod["spec"]["containers"][0]["name"].as_str().unwrap_or("");
    let container = request.param("container").unwrap_or(first);
    let bytes = ctx
        .node
        .logs(namespace, name, container)
        .unwrap_or_default();
    let mut response = Response::text(200, "");
    response.body = bytes;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resources_objects_and_exec() {
        assert_eq!(
            route_of("/api/v1/namespaces/ci/pods/p1/exec"),
            Route::Exec {
                namespace: "ci".into(),
                name: "p1".into()
            }
        );
        assert_eq!(
            route_of("/api/v1/namespaces/ci/secrets"),
            Route::Collection {
                resource: "secrets".into(),
                namespace: Some("ci".into())
            }
        );
        assert_eq!(
            route_of("/api/v1/pods"),
            Route::Collection {
                resource: "pods".into(),
                namespace: None
            }
        );
        assert_eq!(route_of("/api/v1/namespaces/ci/widgets"), Route::Unknown);
        assert_eq!(route_of("/openapi/v3/api/v1"), Route::OpenApiV1);
    }
}
