//! `[runners.kubernetes.volumes]`: the five kinds, names unique across kinds, absolute mounts.

use std::collections::BTreeMap;

use super::error::{ConfigError, KeyError};
use super::load::check;
use super::reader::{quote_key, Section};
use super::rules;
use super::{ConfigMapVolume, EmptyDirVolume, HostPathVolume, PvcVolume, SecretVolume, Volumes};

const KINDS: &[&str] = &["host_path", "pvc", "config_map", "secret", "empty_dir"];
const HOST_PATH_KEYS: &[&str] = &["name", "mount_path", "host_path", "read_only"];
const PVC_KEYS: &[&str] = &["name", "mount_path", "read_only"];
const ITEMS_KEYS: &[&str] = &["name", "mount_path", "read_only", "items"];
const EMPTY_DIR_KEYS: &[&str] = &["name", "mount_path", "medium"];
const MEDIUMS: &[&str] = &["\"\" (node disk)", "Memory"];

/// Reads the volumes of one `[runners.kubernetes]` section.
pub(super) fn volumes(kubernetes: &Section, builds_dir: &str) -> Result<Volumes, ConfigError> {
    let Some(section) = kubernetes.table("volumes", KINDS)? else {
        return Ok(Volumes::default());
    };
    let mut seen = Seen {
        builds_dir: builds_dir.to_string(),
        ..Seen::default()
    };

    let mut volumes = Volumes::default();
    for entry in section.tables("host_path", HOST_PATH_KEYS)? {
        let (name, mount_path) = seen.common(&entry, "host_path")?;
        let host_path = entry
            .string("host_path")?
            .unwrap_or_else(|| mount_path.clone());
        check(
            &entry,
            "host_path",
            &host_path,
            rules::is_absolute_path,
            rules::ABSOLUTE_PATH,
        )?;
        let read_only = read_only(&entry)?;
        volumes.host_path.push(HostPathVolume {
            name,
            mount_path,
            host_path,
            read_only,
        });
    }
    for entry in section.tables("pvc", PVC_KEYS)? {
        let (name, mount_path) = seen.common(&entry, "pvc")?;
        let read_only = read_only(&entry)?;
        volumes.pvc.push(PvcVolume {
            name,
            mount_path,
            read_only,
        });
    }
    for entry in section.tables("config_map", ITEMS_KEYS)? {
        let (name, mount_path) = seen.common(&entry, "config_map")?;
        let (read_only, items) = (read_only(&entry)?, items(&entry)?);
        volumes.config_map.push(ConfigMapVolume {
            name,
            mount_path,
            read_only,
            items,
        });
    }
    for entry in section.tables("secret", ITEMS_KEYS)? {
        let (name, mount_path) = seen.common(&entry, "secret")?;
        let (read_only, items) = (read_only(&entry)?, items(&entry)?);
        volumes.secret.push(SecretVolume {
            name,
            mount_path,
            read_only,
            items,
        });
    }
    for entry in section.tables("empty_dir", EMPTY_DIR_KEYS)? {
        let (name, mount_path) = seen.common(&entry, "empty_dir")?;
        let medium = medium(&entry)?;
        volumes.empty_dir.push(EmptyDirVolume {
            name,
            mount_path,
            medium,
        });
    }
    Ok(volumes)
}

/// Names of the volumes the runner adds to every pod (the checkout and the stage scripts).
const RESERVED_NAMES: &[&str] = &["repo", "scripts"];

/// Where the runner mounts its scripts volume; nothing may be mounted there or below.
const SCRIPTS_DIR: &str = crate::executor::layout::SCRIPTS_DIR;

/// Names and mount paths met so far, with the key path that holds them.
#[derive(Default)]
struct Seen {
    /// The runner's builds folder, where its own `repo` volume is mounted.
    builds_dir: String,
    names: BTreeMap<String, (&'static str, String)>,
    mount_paths: BTreeMap<String, String>,
}

impl Seen {
    /// Checks `name` and `mount_path` of one volume of `kind` against the rules and the
    /// volumes before it.
    fn common(
        &mut self,
        entry: &Section,
        kind: &'static str,
    ) -> Result<(String, String), ConfigError> {
        let name = required(entry, "name", rules::DNS_LABEL)?;
        check(entry, "name", &name, rules::is_dns_label, rules::DNS_LABEL)?;
        let mount_path = required(entry, "mount_path", rules::ABSOLUTE_PATH)?;
        check(
            entry,
            "mount_path",
            &mount_path,
            rules::is_absolute_path,
            rules::ABSOLUTE_PATH,
        )?;

        self.not_reserved(entry, &name, &mount_path)?;

        // Only pvc volumes may share a name: two mounts of one claim are one pod volume.
        if let Some((other_kind, other_key)) = self.names.get(&name) {
            if !(kind == "pvc" && *other_kind == "pvc") {
                let problem = KeyError::DuplicateVolumeName {
                    name: name.clone(),
                    other_key: other_key.clone(),
                };
                return Err(entry.error("name", problem));
            }
        } else {
            self.names.insert(name.clone(), (kind, entry.key("name")));
        }

        if let Some(other_key) = self.mount_paths.get(&mount_path) {
            let problem = KeyError::DuplicateMountPath {
                mount_path: mount_path.clone(),
                other_key: other_key.clone(),
            };
            return Err(entry.error("mount_path", problem));
        }
        self.mount_paths
            .insert(mount_path.clone(), entry.key("mount_path"));
        Ok((name, mount_path))
    }
}

impl Seen {
    /// Refuses the runner's own volume names and mount points: the pod could not be created
    /// (or, for a path below the scripts volume, would never start).
    fn not_reserved(&self, entry: &Section, name: &str, path: &str) -> Result<(), ConfigError> {
        if RESERVED_NAMES.contains(&name) {
            let problem = KeyError::Invalid {
                value: name.to_string(),
                accepted: "a name other than repo and scripts (the runner's own volumes)".into(),
            };
            return Err(entry.error("name", problem));
        }
        let under_scripts = path == SCRIPTS_DIR || path.starts_with(&format!("{SCRIPTS_DIR}/"));
        if path == self.builds_dir || under_scripts {
            let accepted = format!(
                "a path other than the builds folder {} and the runner's {SCRIPTS_DIR}",
                self.builds_dir
            );
            let problem = KeyError::Invalid {
                value: path.to_string(),
                accepted,
            };
            return Err(entry.error("mount_path", problem));
        }
        Ok(())
    }
}

fn required(entry: &Section, name: &str, accepted: &str) -> Result<String, ConfigError> {
    entry.string(name)?.ok_or_else(|| {
        entry.error(
            name,
            KeyError::Missing {
                accepted: accepted.into(),
            },
        )
    })
}

fn read_only(entry: &Section) -> Result<bool, ConfigError> {
    Ok(entry.bool("read_only")?.unwrap_or(false))
}

/// `items`: key -> path relative to the mount.
fn items(entry: &Section) -> Result<BTreeMap<String, String>, ConfigError> {
    let items = entry.string_map("items")?;
    for (key, path) in &items {
        let item_key = || format!("{}.{}", entry.key("items"), quote_key(key));
        if !rules::is_config_key(key) {
            let problem = KeyError::Invalid {
                value: key.clone(),
                accepted: rules::CONFIG_KEY.into(),
            };
            return Err(entry.error_at(item_key(), problem));
        }
        if !rules::is_relative_item_path(path) {
            let problem = KeyError::Invalid {
                value: path.clone(),
                accepted: rules::RELATIVE_PATH.into(),
            };
            return Err(entry.error_at(
                format!("{}.{}", entry.key("items"), quote_key(key)),
                problem,
            ));
        }
    }
    Ok(items)
}

fn medium(entry: &Section) -> Result<String, ConfigError> {
    let medium = entry.string("medium")?.unwrap_or_default();
    if medium.is_empty() || medium == "Memory" {
        return Ok(medium);
    }
    Err(entry.error(
        "medium",
        KeyError::NotOneOf {
            value: medium,
            accepted: MEDIUMS,
        },
    ))
}
