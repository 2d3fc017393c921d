//! Why no pod can be planned for a job.

use std::fmt;

use crate::executor::labels::{self, KeyError};
use crate::executor::overwrites::OverwriteError;

use super::MAX_ANNOTATIONS_BYTES;

/// Whether a metadata key is a label or an annotation, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    Label,
    Annotation,
}

impl fmt::Display for MetadataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataKind::Label => "pod label",
            MetadataKind::Annotation => "pod annotation",
        })
    }
}

/// Why no pod can be planned for a job. Nothing has been created when this is returned.
#[derive(Debug)]
pub enum ManifestError {
    /// Neither the job nor the config names a build image.
    NoImage,
    /// A service without an image name.
    EmptyServiceImage { index: usize },
    /// Two services run the same image with the same command, so both listen on one port.
    ServicesShareImage {
        first: String,
        second: String,
        image: String,
    },
    /// Two services whose images are known to listen on the same port.
    ServicesSharePort {
        first: String,
        second: String,
        images: (String, String),
        port: u16,
    },
    /// A service alias that cannot be a host name.
    InvalidServiceAlias { service: String, alias: String },
    /// A job variable asked for an overwrite the config does not allow.
    Overwrite(OverwriteError),
    /// A `pod_labels` or `pod_annotations` key that Kubernetes would reject.
    InvalidKey {
        kind: MetadataKind,
        key: String,
        source: KeyError,
    },
    /// A `pod_labels` or `pod_annotations` key under the runner's own prefix.
    ReservedKey { kind: MetadataKind, key: String },
    /// A label or annotation value refers to a variable that is not public.
    NonPublicVariable {
        kind: MetadataKind,
        key: String,
        variable: String,
    },
    /// The annotations are larger than Kubernetes accepts.
    AnnotationsTooLarge { bytes: usize },
    /// A `node_selector` entry that is not a valid label key and value.
    InvalidNodeSelector { key: String, value: String },
    /// A config volume whose name is not a DNS-1123 label.
    InvalidVolumeName { name: String },
    /// A config volume uses the name of one of the runner's own volumes.
    ReservedVolumeName { name: String },
    /// Two config volumes share a name but not a source.
    VolumeDefinedTwice { name: String },
    /// Two volumes are mounted at the same path.
    MountPathTaken {
        path: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::NoImage => f.write_str(
                "no build image: the job names none and the runner's config sets no \
                 [runners.kubernetes] image",
            ),
            ManifestError::EmptyServiceImage { index } => {
                write!(f, "service {index} of the job names no image")
            }
            ManifestError::ServicesShareImage {
                first,
                second,
                image,
            } => write!(
                f,
                "services {first} and {second} both run {image} with the same command: the \
                 containers of a pod share one network, so they would listen on the same port"
            ),
            ManifestError::ServicesSharePort {
                first,
                second,
                images: (first_image, second_image),
                port,
            } => write!(
                f,
                "services {first} ({first_image}) and {second} ({second_image}) would both \
                 listen on port {port}: the containers of a pod share one network"
            ),
            ManifestError::InvalidServiceAlias { service, alias } => write!(
                f,
                "service {service}: alias {alias:?} is not a host name (lowercase letters, \
                 digits, '-' and '.')"
            ),
            ManifestError::Overwrite(err) => write!(f, "overwrite refused: {err}"),
            ManifestError::InvalidKey { kind, key, source } => {
                write!(f, "{kind} key {key:?} is not valid: {source}")
            }
            ManifestError::ReservedKey { kind, key } => write!(
                f,
                "{kind} key {key:?} is reserved for the runner ({}/)",
                labels::RESERVED_PREFIX
            ),
            ManifestError::NonPublicVariable {
                kind,
                key,
                variable,
            } => write!(
                f,
                "{kind} {key:?} refers to variable {variable}, which is not public: secret \
                 values stay out of pod metadata"
            ),
            ManifestError::AnnotationsTooLarge { bytes } => write!(
                f,
                "pod annotations take {bytes} bytes, more than the {MAX_ANNOTATIONS_BYTES} \
                 Kubernetes accepts"
            ),
            ManifestError::InvalidNodeSelector { key, value } => write!(
                f,
                "node_selector {key:?} = {value:?} is not a valid label key and value"
            ),
            ManifestError::InvalidVolumeName { name } => write!(
                f,
                "volume name {name:?} is not valid: lowercase letters, digits and '-', at most \
                 63"
            ),
            ManifestError::ReservedVolumeName { name } => {
                write!(f, "volume name {name:?} is used by the runner itself")
            }
            ManifestError::VolumeDefinedTwice { name } => {
                write!(f, "volume {name:?} is defined twice with different sources")
            }
            ManifestError::MountPathTaken {
                path,
                first,
                second,
            } => {
                write!(
                    f,
                    "volumes {first:?} and {second:?} are both mounted at {path:?}"
                )
            }
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManifestError::Overwrite(err) => Some(err),
            ManifestError::InvalidKey { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OverwriteError> for ManifestError {
    fn from(err: OverwriteError) -> Self {
        ManifestError::Overwrite(err)
    }
}
