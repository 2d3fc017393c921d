//! Cache keys as relative paths under the cache folder.

use super::ArchiveError;

/// Longest folder name most file systems accept, in bytes.
const MAX_COMPONENT: usize = 255;

/// The relative path for a cache `key` (variables already expanded): `/` separates folders,
/// leading and repeated `/` and `.` components are dropped, every byte other than ASCII
/// letters, digits, `.`, `_` and `-` becomes `_`; `..`, an empty result and over-long folder
/// names are refused.
pub fn cache_key_path(key: &str) -> Result<String, ArchiveError> {
    let refuse = |reason| ArchiveError::CacheKey {
        key: key.to_string(),
        reason,
    };
    let mut components = Vec::new();
    for component in key.split('/') {
        match component {
            "" | "." => continue,
            ".." => return Err(refuse("`..` would leave the cache folder")),
            _ => {}
        }
        let safe: String = component
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.len() > MAX_COMPONENT {
            return Err(refuse("a folder name is longer than 255 bytes"));
        }
        components.push(safe);
    }
    if components.is_empty() {
        return Err(refuse("the key names no folder"));
    }
    Ok(components.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_make_folders_and_unsafe_characters_become_underscores() {
        assert_eq!(cache_key_path("build/main").unwrap(), "build/main");
        assert_eq!(
            cache_key_path("mix test/refs heads:x").unwrap(),
            "mix_test/refs_heads_x"
        );
        assert_eq!(
            cache_key_path("key\\with\0odd\u{e9}").unwrap(),
            "key_with_odd_"
        );
        assert_eq!(cache_key_path("v1.2-deps_x").unwrap(), "v1.2-deps_x");
    }

    #[test]
    fn absolute_keys_become_relative() {
        assert_eq!(cache_key_path("/etc//passwd/.").unwrap(), "etc/passwd");
    }

    #[test]
    fn dot_dot_and_empty_keys_are_refused() {
        assert!(matches!(
            cache_key_path("a/../b"),
            Err(ArchiveError::CacheKey { .. })
        ));
        assert!(cache_key_path("..").is_err());
        assert!(cache_key_path("").is_err());
        assert!(cache_key_path("/./").is_err());
        assert!(cache_key_path(&"x".repeat(256)).is_err());
        assert_eq!(cache_key_path("...").unwrap(), "...");
    }
}
