//! What a create of unknown outcome needs to find its object again: the name, or for a
//! generated name the labels.

use serde_json::Value;

use super::rest::{encode, Lookup, Req, Transport};

/// The identity of an object about to be created.
pub(crate) struct NewObject {
    resource: &'static str,
    kind: &'static str,
    ns: String,
    name: Option<String>,
    generate_name: Option<String>,
    labels: String,
}

impl NewObject {
    /// Reads `metadata.name`, `metadata.generateName` and `metadata.labels`.
    pub fn read(resource: &'static str, kind: &'static str, ns: &str, object: &Value) -> Self {
        let meta = |key: &str| {
            object
                .pointer(&format!("/metadata/{key}"))
                .and_then(Value::as_str)
        };
        NewObject {
            resource,
            kind,
            ns: ns.to_string(),
            name: meta("name").map(str::to_string),
            generate_name: meta("generateName").map(str::to_string),
            labels: label_selector(object),
        }
    }

    /// The name, or the generated name's prefix, for messages.
    pub fn shown_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.generate_name.as_deref())
            .unwrap_or_default()
    }

    /// Looks for the object: by name, else by labels and the generated name's prefix.
    pub fn find(&self, transport: &Transport) -> Lookup {
        if let Some(name) = &self.name {
            return self.find_by_name(transport, name);
        }
        match &self.generate_name {
            Some(prefix) if !self.labels.is_empty() => self.find_by_labels(transport, prefix),
            _ => Lookup::CannotTell,
        }
    }

    fn find_by_name(&self, transport: &Transport, name: &str) -> Lookup {
        let (ns, resource, kind) = (&self.ns, self.resource, self.kind);
        let req = Req {
            method: "GET",
            path: format!(
                "/api/v1/namespaces/{}/{resource}/{}",
                encode(ns),
                encode(name)
            ),
            query: vec![],
            body: None,
            action: format!("get {kind} {name} in namespace {ns}"),
        };
        match transport.call(&req) {
            Ok(found) => Lookup::Found(found),
            Err(e) if e.is_not_found() => Lookup::Absent,
            Err(e) => Lookup::Failed(e),
        }
    }

    fn find_by_labels(&self, transport: &Transport, prefix: &str) -> Lookup {
        let (ns, resource, labels) = (&self.ns, self.resource, &self.labels);
        let req = Req {
            method: "GET",
            path: format!("/api/v1/namespaces/{}/{resource}", encode(ns)),
            query: vec![("labelSelector", labels.clone())],
            body: None,
            action: format!("list {resource} with labels {labels} in namespace {ns}"),
        };
        let list = match transport.call(&req) {
            Ok(list) => list,
            Err(e) => return Lookup::Failed(e),
        };
        let found = items(list).into_iter().find(|item| {
            let name = item.pointer("/metadata/name").and_then(Value::as_str);
            name.is_some_and(|n| n.starts_with(prefix))
        });
        found.map_or(Lookup::Absent, Lookup::Found)
    }
}

/// The `items` of a list answer (empty when there are none).
pub(crate) fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut map) => match map.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// `k=v,k2=v2` from the object's labels (empty without labels).
fn label_selector(object: &Value) -> String {
    let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let pairs = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")));
    pairs.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_name_generated_name_and_labels() {
        let object =
            json!({"metadata": {"generateName": "runner-", "labels": {"a": "1", "b": "x"}}});
        let new = NewObject::read("pods", "pod", "ci", &object);
        assert_eq!(new.shown_name(), "runner-");
        assert_eq!(new.labels, "a=1,b=x");
        assert_eq!(items(json!({"items": [1, 2]})), [json!(1), json!(2)]);
        assert!(items(json!({"kind": "PodList"})).is_empty());
    }
}
