//! `Status` error bodies worded as the API server words them
//! (k8s.io/apimachinery/pkg/api/errors/errors.go).

use serde_json::{json, Value};

use crate::http::Response;
use crate::validate::Cause;

/// A failed API call: its HTTP code and its `Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `Status` object sent as the body.
    pub status: Value,
    /// Extra headers (Retry-After).
    pub headers: Vec<(String, String)>,
    /// Answer the message as plain text instead of the Status (a proxied kubelet answer).
    pub plain_text: bool,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &str, message: String, details: Option<Value>) -> Self {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let Some(details) = details {
            status["details"] = details;
        }
        ApiError {
            code,
            status,
            headers: Vec::new(),
            plain_text: false,
        }
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        let details = json!({"name": name, "kind": resource});
        Self::new(
            404,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
            Some(details),
        )
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        let details = json!({});
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(details),
        )
    }

    /// 409: `pods "x" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        let details = json!({"name": name, "kind": resource});
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
            Some(details),
        )
    }

    /// 422: `Pod "x" is invalid: field: message, ...` with one cause per problem.
    pub fn invalid(kind: &str, name: &str, causes: &[Cause]) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match summary.len() {
            1 => summary[0].clone(),
            _ => format!("[{}]", summary.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let details = json!({"name": name, "kind": kind, "causes": causes});
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
            Some(details),
        )
    }

    /// 400 BadRequest with a message.
    pub fn bad_request(message: String) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// 403 in the authorizer's words: `pods "x" is forbidden: User "u" cannot get resource ...`.
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &str,
        name: Option<&str>,
        ns: Option<&str>,
    ) -> Self {
        let base = resource.split('/').next().unwrap_or(resource);
        let subject = match name {
            Some(name) => format!("{base} \"{name}\""),
            None => base.to_string(),
        };
        let scope = match ns {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        let message = format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" \
             in API group \"\"{scope}"
        );
        let mut details = json!({"kind": base});
        if let Some(name) = name {
            details["name"] = json!(name);
        }
        Self::new(403, "Forbidden", message, Some(details))
    }

    /// 405 for a verb the resource does not take.
    pub fn method_not_allowed() -> Self {
        let message = "the server does not allow this method on the requested resource".into();
        Self::new(405, "MethodNotAllowed", message, Some(json!({})))
    }

    /// 410: the resource version is older than the server keeps.
    pub fn expired(rv: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {rv}"),
            None,
        )
    }

    /// 500 InternalError.
    pub fn internal(message: &str) -> Self {
        let details = json!({"causes": [{"message": message}]});
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(details),
        )
    }

    /// 504 Timeout: the server gave up waiting, the request may still have taken effect.
    pub fn timeout() -> Self {
        let message = "Timeout: request did not complete within requested timeout - context \
                       deadline exceeded";
        Self::new(504, "Timeout", message.into(), Some(json!({})))
    }

    /// 429 TooManyRequests with `Retry-After` in seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let message = "Too many requests, please try again later.".into();
        let details = json!({"retryAfterSeconds": retry_after});
        let mut e = Self::new(429, "TooManyRequests", message, Some(details));
        e.headers
            .push(("Retry-After".into(), retry_after.to_string()));
        e
    }

    /// An error the kubelet gave, with its own code and reason.
    pub fn from_refusal(code: u16, reason: &str, message: String) -> Self {
        Self::new(code, reason, message, None)
    }

    /// An error answered as plain text, not as a Status (a proxied kubelet answer).
    pub fn plain(code: u16, message: String) -> Self {
        let mut e = Self::new(code, "InternalError", message, None);
        e.plain_text = true;
        e
    }

    /// The HTTP response carrying this error.
    pub fn response(&self) -> Response {
        if self.plain_text {
            let text = self.status["message"].as_str().unwrap_or("");
            let mut r = Response::text(self.code, text);
            r.headers.extend(self.headers.iter().cloned());
            return r;
        }
        let mut r = Response::json(self.code, &self.status);
        r.headers.extend(self.headers.iter().cloned());
        r
    }
}

/// A `Status` of success, as a delete of a secret or configmap answers.
pub fn success(resource: &str, name: &str, uid: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": resource, "uid": uid},
    })
}
