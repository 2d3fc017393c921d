//! The bridge from the simulated kubelet back to the API server's store.

use std::sync::Arc;

use serde_json::Value;

use crate::kubelet::StatusSink;
use crate::objects;
use crate::store::Store;

/// Receives the kubelet's reports and writes them into the store.
pub struct StoreSink {
    store: Arc<Store>,
}

impl StoreSink {
    /// A sink writing into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreSink { store }
    }
}

impl StatusSink for StoreSink {
    fn set_status(&self, namespace: &str, name: &str, status: Value) {
        // A pod deleted meanwhile has no status to update.
        let _ = self
            .store
            .update("pods", namespace, name, |pod| merge_status(pod, status));
    }

    fn pod_gone(&self, namespace: &str, name: &str) {
        // Already gone when it was deleted with no grace.
        let _ = self.store.remove("pods", namespace, name);
    }

    fn event(&self, namespace: &str, pod: &str, kind: &str, reason: &str, message: &str) {
        let object = self.store.get("pods", namespace, pod).unwrap_or_else(
            || serde_json::json!({"metadata": {"namespace": namespace, "name": pod}}),
        );
        objects::record_event(&self.store, &object, kind, reason, message, "kubelet");
    }

    fn lookup(&self, namespace: &str, kind: &str, name: &str) -> Option<Value> {
        self.store.get(kind, namespace, name)
    }
}

/// Lays the kubelet's status keys over the stored ones (keeping e.g. `qosClass` if absent).
fn merge_status(pod: &mut Value, status: Value) {
    let Value::Object(fields) = status else {
        return;
    };
    if !pod["status"].is_object() {
        pod["status"] = Value::Object(Default::default());
    }
    for (key, value) in fields {
        pod["status"][key] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_reports_update_the_stored_pod_and_gone_removes_it() {
        let store = Arc::new(Store::default());
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ci"},
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        });
        store.create("pods", pod).unwrap();
        let sink = StoreSink::new(store.clone());
        sink.set_status("ci", "p", json!({"phase": "Running"}));
        let stored = store.get("pods", "ci", "p").unwrap();
        assert_eq!(stored["status"]["phase"], "Running");
        assert_eq!(stored["status"]["qosClass"], "BestEffort");
        sink.event("ci", "p", "Warning", "Failed", "boom");
        let (events, _) = store.list("events", Some("ci"));
        assert_eq!(events[0]["involvedObject"]["name"], "p");
        sink.pod_gone("ci", "p");
        assert!(store.get("pods", "ci", "p").is_none());
    }
}
