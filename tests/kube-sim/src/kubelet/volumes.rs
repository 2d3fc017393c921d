//! The pod's volumes, prepared on the host side under the state folder.

use super::env::{missing_key, not_found, object_data};
use super::sandbox::{PlannedMount, Source};
use super::StatusSink;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Why the volumes could not be prepared.
#[derive(Debug, PartialEq)]
pub enum VolumeError {
    /// A Secret or ConfigMap (or a key of one) is missing: `CreateContainerConfigError`.
    Config(String),
    /// Anything else (a host path of the wrong type, a file that cannot be written).
    Setup(String),
}

/// Prepares every volume of the pod and answers its source by volume name.
pub fn prepare(
    pod: &Value,
    state_dir: &Path,
    pod_dir: &Path,
    sink: &dyn StatusSink,
) -> Result<HashMap<String, Source>, VolumeError> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out = HashMap::new();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("");
        let own_dir = pod_dir.join("volumes").join(name);
        let source = if let Some(empty) = volume.get("emptyDir") {
            empty_dir(empty, own_dir)
        } else if let Some(host) = volume.get("hostPath") {
            host_path(host)
        } else if let Some(claim) = volume.get("persistentVolumeClaim") {
            let claim = claim["claimName"].as_str().unwrap_or("");
            let dir = state_dir.join("pvc").join(namespace).join(claim);
            fs::create_dir_all(&dir).map_err(|e| setup(&dir, e))?;
            Ok(Source::Host(dir))
        } else if let Some(cm) = volume.get("configMap") {
            let name = cm["name"].as_str().unwrap_or("");
            projected(cm, ("configmaps", name), namespace, own_dir, sink)
        } else if let Some(secret) = volume.get("secret") {
            let name = secret["secretName"].as_str().unwrap_or("");
            projected(secret, ("secrets", name), namespace, own_dir, sink)
        } else {
            // TODO: downwardAPI, projected and the other volume types are not simulated;
            // they appear as an empty folder.
            fs::create_dir_all(&own_dir).map_err(|e| setup(&own_dir, e))?;
            Ok(Source::Host(own_dir))
        }?;
        out.insert(name.to_string(), source);
    }
    Ok(out)
}

/// The volume mounts of one container, against the prepared sources.
pub fn mounts_for(container: &Value, sources: &HashMap<String, Source>) -> Vec<PlannedMount> {
    let mounts = container["volumeMounts"].as_array().into_iter().flatten();
    mounts
        .filter_map(|m| {
            let source = sources.get(m["name"].as_str().unwrap_or(""))?;
            Some(PlannedMount {
                source: source.clone(),
                sub_path: m["subPath"].as_str().unwrap_or("").to_string(),
                target: m["mountPath"].as_str().unwrap_or("/").to_string(),
                read_only: m["readOnly"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

fn empty_dir(spec: &Value, dir: PathBuf) -> Result<Source, VolumeError> {
    fs::create_dir_all(&dir).map_err(|e| setup(&dir, e))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| setup(&dir, e))?;
    // TODO: sizeLimit is not enforced.
    match spec["medium"].as_str() {
        Some("Memory") => Ok(Source::Memory(dir)),
        _ => Ok(Source::Host(dir)),
    }
}

fn host_path(spec: &Value) -> Result<Source, VolumeError> {
    let path = PathBuf::from(spec["path"].as_str().unwrap_or(""));
    let kind = spec["type"].as_str().unwrap_or("");
    let meta = fs::metadata(&path).ok();
    let fail = |what: &str| {
        let msg = format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        );
        Err(VolumeError::Setup(msg))
    };
    match (kind, &meta) {
        ("DirectoryOrCreate" | "", None) => {
            fs::create_dir_all(&path).map_err(|e| setup(&path, e))?;
        }
        ("FileOrCreate", None) => {
            fs::File::create(&path).map_err(|e| setup(&path, e))?;
        }
        ("Directory", m) if !m.as_ref().is_some_and(|m| m.is_dir()) => return fail("directory"),
        ("File", m) if !m.as_ref().is_some_and(|m| m.is_file()) => return fail("file"),
        _ => {}
    }
    Ok(Source::Host(path))
}

/// Writes a ConfigMap's or Secret's entries as files (`items` maps keys to paths).
fn projected(
    spec: &Value,
    (kind, name): (&str, &str),
    namespace: &str,
    dir: PathBuf,
    sink: &dyn StatusSink,
) -> Result<Source, VolumeError> {
    let optional = spec["optional"].as_bool().unwrap_or(false);
    let object = match sink.lookup(namespace, kind, name) {
        Some(object) => object,
        None if optional => Value::Null,
        None => return Err(VolumeError::Config(not_found(kind, name))),
    };
    let data = object_data(&object, kind);
    let default_mode = spec["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    let files = match spec["items"].as_array() {
        Some(items) => select_items(items, &data, (kind, namespace, name), optional)?,
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), None))
            .collect(),
    };

    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| setup(&dir, e))?;
    for (path, bytes, mode) in files {
        let file = dir.join(safe_relative(&path)?);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(|e| setup(parent, e))?;
        }
        fs::write(&file, bytes).map_err(|e| setup(&file, e))?;
        let mode = fs::Permissions::from_mode(mode.unwrap_or(default_mode));
        fs::set_permissions(&file, mode).map_err(|e| setup(&file, e))?;
    }
    Ok(Source::Host(dir))
}

type File = (String, Vec<u8>, Option<u32>);

fn select_items(
    items: &[Value],
    data: &[(String, Vec<u8>)],
    (kind, namespace, name): (&str, &str, &str),
    optional: bool,
) -> Result<Vec<File>, VolumeError> {
    let mut out = Vec::new();
    for item in items {
        let key = item["key"].as_str().unwrap_or("");
        let path = item["path"].as_str().unwrap_or(key).to_string();
        let mode = item["mode"].as_u64().map(|m| m as u32);
        match data.iter().find(|(k, _)| k == key) {
            Some((_, bytes)) => out.push((path, bytes.clone(), mode)),
            None if optional => {}
            None => return Err(VolumeError::Config(missing_key(kind, namespace, name, key))),
        }
    }
    Ok(out)
}

fn safe_relative(path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    let ok = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(VolumeError::Setup(format!(
            "item path {path} must be relative without '..'"
        )));
    }
    Ok(p.to_path_buf())
}

fn setup(path: &Path, e: std::io::Error) -> VolumeError {
    VolumeError::Setup(format!("{}: {e}", path.display()))
}
