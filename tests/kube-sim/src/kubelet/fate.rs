//! Scripted fates: what happens to a container, chosen by its image name.
//!
//! No image is ever pulled; the host's userland stands in for every image. An image whose
//! repository ends in `sim/<fate>` (any registry prefix) scripts a fate, the tag is its
//! argument; see `FATES.md` beside `Cargo.toml` for the table.

use std::time::Duration;

/// What the kubelet does with a container, by its image.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// Runs its command on the host userland.
    Normal,
    /// Stays waiting `InvalidImageName` (not a valid image reference).
    InvalidImageName,
    /// `sim/pull-error`: `ErrImagePull`, then `ImagePullBackOff`, forever.
    PullError,
    /// `sim/slow-start:<secs>`: ContainerCreating that long, then runs normally.
    SlowStart(Duration),
    /// `sim/oom-after:<secs>`: runs, then is killed as OOMKilled (exit 137) after the delay.
    OomAfter(Duration),
    /// `sim/evict-after:<secs>`: runs, then the whole pod is evicted after the delay.
    EvictAfter(Duration),
    /// `sim/exit:<code>`: its process ends at once with that exit code.
    Exit(i32),
}

/// The fate an image name scripts.
pub fn fate_of(image: &str) -> Fate {
    if image.contains("invalid:image:name") || !is_valid_reference(image) {
        return Fate::InvalidImageName;
    }
    let (repo, tag) = split_tag(image);
    let secs = |t: Option<&str>| Duration::from_secs_f64(parse_or(t, 0.0_f64).max(0.0));
    match fate_name(repo) {
        Some("pull-error") => Fate::PullError,
        Some("slow-start") => Fate::SlowStart(secs(tag)),
        Some("oom-after") => Fate::OomAfter(secs(tag)),
        Some("evict-after") => Fate::EvictAfter(secs(tag)),
        Some("exit") => Fate::Exit(parse_or(tag, 1)),
        _ => Fate::Normal,
    }
}

/// The message a real kubelet gives an image reference it cannot parse.
pub fn invalid_image_message(image: &str) -> String {
    format!(
        "Failed to apply default image tag \"{image}\": couldn't parse image reference \
         \"{image}\": invalid reference format"
    )
}

/// The message of a failed pull of an image that does not exist.
pub fn pull_error_message(image: &str) -> String {
    format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": \
         failed to resolve reference \"{image}\": {image}: not found"
    )
}

fn fate_name(repo: &str) -> Option<&str> {
    let (rest, last) = repo.rsplit_once('/')?;
    (rest == "sim" || rest.ends_with("/sim")).then_some(last)
}

fn parse_or<T: std::str::FromStr>(text: Option<&str>, default: T) -> T {
    text.and_then(|t| t.parse().ok()).unwrap_or(default)
}

/// Splits `repo[:tag][@digest]` into repository and tag.
fn split_tag(image: &str) -> (&str, Option<&str>) {
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

/// Whether an image reference parses: lowercase path components, a tag of word characters.
fn is_valid_reference(image: &str) -> bool {
    let mut parts = image.splitn(2, '@');
    let name = parts.next().unwrap_or("");
    if let Some(digest) = parts.next() {
        if !digest.contains(':') {
            return false;
        }
    }
    let (repo, tag) = split_tag(name);
    let tag_ok = tag.is_none_or(|t| {
        let mut chars = t.chars();
        let first = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        first && t.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    tag_ok && repo_ok(repo)
}

fn repo_ok(repo: &str) -> bool {
    let mut components = repo.split('/').peekable();
    let mut first = true;
    while let Some(component) = components.next() {
        // The first component may be a registry host with a port.
        let host = first && components.peek().is_some() && component.contains([':', '.']);
        first = false;
        let allowed = |c: char| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c) || (host && c == ':')
        };
        let host_upper = host && component.chars().any(|c| c.is_ascii_uppercase());
        if component.is_empty() || !component.chars().all(|c| allowed(c) || host_upper) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_images_run_normally() {
        for image in [
            "alpine",
            "alpine:3.19",
            "reg.io:5000/team/app:v1.2",
            "a/b@sha256:ab",
        ] {
            assert_eq!(fate_of(image), Fate::Normal, "{image}");
        }
    }

    #[test]
    fn malformed_references_are_invalid_image_names() {
        for image in ["node:10:16.0", "Alpine", "invalid:image:name", "a//b", ""] {
            assert_eq!(fate_of(image), Fate::InvalidImageName, "{image}");
        }
    }

    #[test]
    fn sim_images_script_their_fates() {
        assert_eq!(fate_of("sim/pull-error"), Fate::PullError);
        assert_eq!(fate_of("reg.io/sim/exit:3"), Fate::Exit(3));
        assert_eq!(
            fate_of("sim/slow-start:2"),
            Fate::SlowStart(Duration::from_secs(2))
        );
        assert_eq!(
            fate_of("sim/oom-after:0.5"),
            Fate::OomAfter(Duration::from_millis(500))
        );
        assert_eq!(
            fate_of("sim/evict-after:1"),
            Fate::EvictAfter(Duration::from_secs(1))
        );
        assert_eq!(fate_of("notsim/exit:3"), Fate::Normal);
    }
}
