//! The volumes of the job's pod: the runner's own emptyDirs `repo` (the builds dir) and
//! `scripts`, then the config's volumes, and where each kind of container mounts them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::Volumes;
use crate::executor::labels;

use super::{ManifestError, PodLayout, REPO_VOLUME, SCRIPTS_VOLUME};

/// The pod's volumes and the mounts of each kind of container.
pub(super) struct PodVolumes {
    pub(super) volumes: Vec<Value>,
    /// `repo`, `scripts`, then the config's volumes.
    pub(super) build_mounts: Vec<Value>,
    /// `repo`, then the config's volumes.
    pub(super) service_mounts: Vec<Value>,
}

/// One entry of the config's volumes.
struct ConfigVolume<'a> {
    name: &'a str,
    mount_path: &'a str,
    read_only: bool,
    volume: Value,
}

impl PodVolumes {
    /// Volumes of the same name and source (two `pvc` entries of one claim) become one pod
    /// volume mounted twice.
    pub(super) fn new(config: &Volumes, layout: &PodLayout) -> Result<PodVolumes, ManifestError> {
        let mut volumes = vec![
            json!({ "name": REPO_VOLUME, "emptyDir": {} }),
            json!({ "name": SCRIPTS_VOLUME, "emptyDir": {} }),
        ];
        let repo = mount(REPO_VOLUME, &layout.builds_dir, false);
        let scripts = mount(SCRIPTS_VOLUME, &layout.scripts_dir, false);
        let mut taken = vec![
            (layout.builds_dir.clone(), REPO_VOLUME.to_string()),
            (layout.scripts_dir.clone(), SCRIPTS_VOLUME.to_string()),
        ];

        let mut user_mounts = Vec::new();
        for entry in config_volumes(config) {
            add_volume(&mut volumes, &entry)?;
            take_mount_path(&mut taken, &entry)?;
            user_mounts.push(mount(entry.name, entry.mount_path, entry.read_only));
        }

        let mut build_mounts = vec![repo.clone(), scripts];
        build_mounts.extend(user_mounts.iter().cloned());
        let mut service_mounts = vec![repo];
        service_mounts.extend(user_mounts);
        Ok(PodVolumes {
            volumes,
            build_mounts,
            service_mounts,
        })
    }
}

fn add_volume(volumes: &mut Vec<Value>, entry: &ConfigVolume) -> Result<(), ManifestError> {
    if !labels::is_dns_label(entry.name) {
        return Err(ManifestError::InvalidVolumeName {
            name: entry.name.to_string(),
        });
    }
    if entry.name == REPO_VOLUME || entry.name == SCRIPTS_VOLUME {
        return Err(ManifestError::ReservedVolumeName {
            name: entry.name.to_string(),
        });
    }
    match volumes.iter().find(|volume| volume["name"] == entry.name) {
        Some(existing) if *existing != entry.volume => Err(ManifestError::VolumeDefinedTwice {
            name: entry.name.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            volumes.push(entry.volume.clone());
            Ok(())
        }
    }
}

fn take_mount_path(
    taken: &mut Vec<(String, String)>,
    entry: &ConfigVolume,
) -> Result<(), ManifestError> {
    let path = entry.mount_path.trim_end_matches('/');
    if let Some((_, first)) = taken
        .iter()
        .find(|(taken, _)| taken.trim_end_matches('/') == path)
    {
        return Err(ManifestError::MountPathTaken {
            path: entry.mount_path.to_string(),
            first: first.clone(),
            second: entry.name.to_string(),
        });
    }
    taken.push((entry.mount_path.to_string(), entry.name.to_string()));
    Ok(())
}

fn mount(name: &str, path: &str, read_only: bool) -> Value {
    if read_only {
        json!({ "name": name, "mountPath": path, "readOnly": true })
    } else {
        json!({ "name": name, "mountPath": path })
    }
}

/// The config's volumes in kind order (host_path, pvc, config_map, secret, empty_dir), each
/// kind in file order. `readOnly` goes on the mount, so two mounts of one claim may differ.
fn config_volumes(config: &Volumes) -> Vec<ConfigVolume<'_>> {
    let host_paths = config.host_path.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "hostPath": { "path": v.host_path } }),
    });
    let claims = config.pvc.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "persistentVolumeClaim": { "claimName": v.name } }),
    });
    let config_maps = config.config_map.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "configMap": with_items(json!({ "name": v.name }), &v.items) }),
    });
    let secrets = config.secret.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({
            "name": v.name,
            "secret": with_items(json!({ "secretName": v.name }), &v.items),
        }),
    });
    let empty_dirs = config.empty_dir.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: false,
        volume: json!({ "name": v.name, "emptyDir": empty_dir_source(&v.medium) }),
    });
    host_paths
        .chain(claims)
        .chain(config_maps)
        .chain(secrets)
        .chain(empty_dirs)
        .collect()
}

fn with_items(mut source: Value, items: &BTreeMap<String, String>) -> Value {
    if !items.is_empty() {
        let items: Vec<Value> = items
            .iter()
            .map(|(key, path)| json!({ "key": key, "path": path }))
            .collect();
        source["items"] = Value::from(items);
    }
    source
}

fn empty_dir_source(medium: &str) -> Value {
    if medium.is_empty() {
        json!({})
    } else {
        json!({ "medium": medium })
    }
}
