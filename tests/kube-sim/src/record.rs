//! A log of every request the simulator answered, for tests to assert on.

use std::sync::Mutex;

use serde_json::Value;

use crate::http::Request;

/// Headers never recorded.
const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// One answered request; credentials and secret values are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Headers (lower-case names) minus credentials.
    pub headers: Vec<(String, String)>,
    /// The body, with the values of a Secret's `data` and `stringData` masked.
    pub body: Vec<u8>,
    /// The user the request was authenticated as (`system:anonymous` without auth).
    pub user: String,
    /// The HTTP status answered (101 for an exec upgrade, 200 for a watch).
    pub code: u16,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The shared log.
#[derive(Debug, Default)]
pub struct Recorder {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    /// Records one request and the code it was answered with.
    pub fn push(&self, request: &Request, user: &str, code: u16) {
        let headers = request
            .headers
            .iter()
            .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect();
        let entry = RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers,
            body: mask_secret_body(&request.path, &request.body),
            user: user.to_string(),
            code,
        };
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }

    /// Every request so far, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets every request so far.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn mask_secret_body(path: &str, body: &[u8]) -> Vec<u8> {
    if !path.contains("/secrets") {
        return body.to_vec();
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return b"<masked>".to_vec();
    };
    for field in ["data", "stringData"] {
        if let Some(map) = value.get_mut(field).and_then(Value::as_object_mut) {
            map.values_mut()
                .for_each(|v| *v = Value::String("<masked>".into()));
        }
    }
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_out_credentials_and_secret_values() {
        let request = Request {
            method: "POST".into(),
            path: "/api/v1/namespaces/ci/secrets".into(),
            query: vec![],
            headers: vec![
                ("authorization".into(), "Bearer t0ken".into()),
                ("x".into(), "y".into()),
            ],
            body: br#"{"metadata":{"name":"s"},"stringData":{"pw":"hunter2"}}"#.to_vec(),
        };
        let r = Recorder::default();
        r.push(&request, "u", 201);
        let entry = &r.all()[0];
        assert_eq!(entry.headers, vec![("x".to_string(), "y".to_string())]);
        let body = String::from_utf8(entry.body.clone()).unwrap();
        assert!(!body.contains("hunter2"));
        assert!(body.contains("<masked>"));
    }
}
