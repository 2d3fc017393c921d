//! A container's environment and command line, as the kubelet builds them.

use super::StatusSink;
use base64::Engine;
use serde_json::Value;
use std::collections::HashMap;

/// The environment every container starts with (the stand-in image's own).
const IMAGE_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
];

/// A container's environment and argv, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
    pub working_dir: String,
    /// Whether the container keeps an open stdin (`stdin: true`).
    pub stdin: bool,
    /// `runAsUser` and `runAsGroup` (group defaults to the user id), container over pod.
    pub user: Option<(u32, u32)>,
}

/// Builds the environment and argv of a container; the error is the waiting message of a
/// `CreateContainerConfigError` (`secret "x" not found`).
pub fn launch(pod: &Value, container: &Value, sink: &dyn StatusSink) -> Result<Launch, String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let mut env = Env::default();
    for (k, v) in IMAGE_ENV {
        env.set(k, v.to_string());
    }
    env.set("HOSTNAME", name.to_string());

    for source in container["envFrom"].as_array().into_iter().flatten() {
        env_from(&mut env, source, namespace, sink)?;
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let key = var["name"].as_str().unwrap_or("").to_string();
        let value = match &var["valueFrom"] {
            Value::Null => Some(expand(var["value"].as_str().unwrap_or(""), &env.map)),
            from => value_from(from, pod, sink)?,
        };
        if let Some(value) = value {
            env.set(&key, value);
        }
    }

    let argv = argv(container, &env.map);
    let working_dir = container["workingDir"]
        .as_str()
        .filter(|d| !d.is_empty())
        .unwrap_or("/");
    Ok(Launch {
        env: env.list,
        argv,
        working_dir: working_dir.to_string(),
        stdin: container["stdin"].as_bool().unwrap_or(false),
        user: run_as(pod, container),
    })
}

fn run_as(pod: &Value, container: &Value) -> Option<(u32, u32)> {
    let id = |key: &str| {
        let pick = |ctx: &Value| ctx[key].as_u64().and_then(|v| u32::try_from(v).ok());
        pick(&container["securityContext"]).or_else(|| pick(&pod["spec"]["securityContext"]))
    };
    let uid = id("runAsUser");
    let gid = id("runAsGroup");
    match (uid, gid) {
        (None, None) => None,
        (uid, gid) => Some((uid.unwrap_or(0), gid.or(uid).unwrap_or(0))),
    }
}

/// The command and args, expanded; a container with neither runs `/bin/sh`, the
/// stand-in image's entrypoint.
fn argv(container: &Value, env: &HashMap<String, String>) -> Vec<String> {
    let words = |key: &str| -> Vec<String> {
        let list = container[key].as_array().into_iter().flatten();
        list.map(|w| expand(w.as_str().unwrap_or(""), env))
            .collect()
    };
    let mut argv = words("command");
    argv.extend(words("args"));
    if argv.is_empty() {
        argv.push("/bin/sh".to_string());
    }
    argv
}

#[derive(Default)]
struct Env {
    list: Vec<(String, String)>,
    map: HashMap<String, String>,
}

impl Env {
    fn set(&mut self, key: &str, value: String) {
        match self.list.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => self.list.push((key.to_string(), value.clone())),
        }
        self.map.insert(key.to_string(), value);
    }
}

fn env_from(env: &mut Env, source: &Value, ns: &str, sink: &dyn StatusSink) -> Result<(), String> {
    let prefix = source["prefix"].as_str().unwrap_or("");
    let (kind, reference) = if source["secretRef"].is_object() {
        ("secrets", &source["secretRef"])
    } else {
        ("configmaps", &source["configMapRef"])
    };
    let optional = reference["optional"].as_bool().unwrap_or(false);
    let name = reference["name"].as_str().unwrap_or("");
    let Some(object) = sink.lookup(ns, kind, name) else {
        return if optional {
            Ok(())
        } else {
            Err(not_found(kind, name))
        };
    };
    for (key, value) in object_data(&object, kind) {
        env.set(
            &format!("{prefix}{key}"),
            String::from_utf8_lossy(&value).into_owned(),
        );
    }
    Ok(())
}

fn value_from(from: &Value, pod: &Value, sink: &dyn StatusSink) -> Result<Option<String>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return Ok(Some(field_ref(pod, path)));
    }
    let (kind, selector) = if from["secretKeyRef"].is_object() {
        ("secrets", &from["secretKeyRef"])
    } else if from["configMapKeyRef"].is_object() {
        ("configmaps", &from["configMapKeyRef"])
    } else {
        // TODO: resourceFieldRef is not simulated; such variables are left unset.
        return Ok(None);
    };
    let name = selector["name"].as_str().unwrap_or("");
    let key = selector["key"].as_str().unwrap_or("");
    let optional = selector["optional"].as_bool().unwrap_or(false);
    let Some(object) = sink.lookup(ns, kind, name) else {
        return if optional {
            Ok(None)
        } else {
            Err(not_found(kind, name))
        };
    };
    match object_data(&object, kind)
        .into_iter()
        .find(|(k, _)| k == key)
    {
        Some((_, value)) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
        None if optional => Ok(None),
        None => Err(missing_key(kind, ns, name, key)),
    }
}

fn field_ref(pod: &Value, path: &str) -> String {
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let label = |map: &str, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(text(&meta[map][key]))
    };
    match path {
        "metadata.name" => text(&meta["name"]),
        "metadata.namespace" => text(&meta["namespace"]),
        "metadata.uid" => text(&meta["uid"]),
        "spec.nodeName" => text(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => text(&pod["spec"]["serviceAccountName"]),
        "status.podIP" | "status.hostIP" => super::status::POD_IP.to_string(),
        _ => label("labels", "metadata.labels['")
            .or_else(|| label("annotations", "metadata.annotations['"))
            .unwrap_or_default(),
    }
}

/// The `not found` message of a missing Secret or ConfigMap.
pub fn not_found(kind: &str, name: &str) -> String {
    let singular = if kind == "secrets" {
        "secret"
    } else {
        "configmap"
    };
    format!("{singular} \"{name}\" not found")
}

/// The message of a key missing from a Secret or ConfigMap.
pub fn missing_key(kind: &str, namespace: &str, name: &str, key: &str) -> String {
    let kind = if kind == "secrets" {
        "Secret"
    } else {
        "ConfigMap"
    };
    format!("couldn't find key {key} in {kind} {namespace}/{name}")
}

/// The decoded entries of a Secret (`data`, base64) or ConfigMap (`data`, `binaryData`).
pub fn object_data(object: &Value, kind: &str) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let entries = |field: &str| object[field].as_object().into_iter().flatten();
    let mut out = Vec::new();
    for (key, value) in entries("data") {
        let text = value.as_str().unwrap_or("");
        let bytes = match kind {
            "secrets" => b64
                .decode(text)
                .unwrap_or_else(|_| text.as_bytes().to_vec()),
            _ => text.as_bytes().to_vec(),
        };
        out.push((key.clone(), bytes));
    }
    for (key, value) in entries("binaryData").chain(entries("stringData")) {
        let text = value.as_str().unwrap_or("");
        let bytes = match b64.decode(text) {
            Ok(bytes) if kind == "configmaps" => bytes,
            _ => text.as_bytes().to_vec(),
        };
        out.push((key.clone(), bytes));
    }
    out
}

/// Expands `$(VAR)` from the variables defined so far, as Kubernetes does: `$$` is a
/// literal `$`, and a reference to an unknown variable is left as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&rest[at..at + 3 + end]),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[at..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "y".to_string()),
        ])
    }

    #[test]
    fn expands_known_references_and_keeps_unknown_ones() {
        assert_eq!(expand("$(A)-$(B)/$(C)", &vars()), "x-y/$(C)");
        assert_eq!(expand("$(A", &vars()), "$(A");
        assert_eq!(expand("cost $5 $A", &vars()), "cost $5 $A");
    }

    #[test]
    fn double_dollar_escapes_a_reference() {
        assert_eq!(expand("$$(A) $$ $$$(A)", &vars()), "$(A) $ $x");
    }

    #[test]
    fn names_missing_objects_and_keys_as_the_kubelet_does() {
        assert_eq!(not_found("secrets", "x"), "secret \"x\" not found");
        assert_eq!(
            missing_key("configmaps", "ci", "cm", "k"),
            "couldn't find key k in ConfigMap ci/cm"
        );
    }
}
