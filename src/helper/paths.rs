//! Lexical path checks shared by archiving and extraction: nothing may name a place outside the
//! base or destination folder.

/// The components of an entry name, or why the name is refused: absolute names, drive letters,
/// `..` components and NUL bytes are refused; `.` and empty components are dropped.
pub fn entry_components(name: &str) -> Result<Vec<&str>, &'static str> {
    if name.contains('\0') {
        return Err("name contains a NUL byte");
    }
    if name.starts_with('/') || name.starts_with('\\') || has_drive_prefix(name) {
        return Err("absolute path");
    }
    let mut components = Vec::new();
    for component in name.split(['/', '\\']) {
        match component {
            "" | "." => {}
            ".." => return Err("path goes up out of the destination (`..`)"),
            _ => components.push(component),
        }
    }
    Ok(components)
}

/// A `paths` pattern made relative to the base folder, with `.` and `..` resolved; `None` when
/// it points outside.
pub fn relative_pattern(base: &str, pattern: &str) -> Option<String> {
    let pattern = match pattern.strip_prefix('/') {
        Some(_) => pattern
            .strip_prefix(base.trim_end_matches('/'))?
            .strip_prefix('/')?,
        None => pattern,
    };
    let mut kept: Vec<&str> = Vec::new();
    for component in pattern.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                kept.pop()?;
            }
            _ => kept.push(component),
        }
    }
    Some(kept.join("/"))
}

/// Checks that a symlink at `link` (components relative to the root) pointing at `target` stays
/// inside the root. The target must be relative and of the form `../../a/b`: `..` only at the
/// start, so resolving it never depends on other symlinks, and not more `..` than the link's
/// depth.
pub fn check_link_target(link: &[&str], target: &str) -> Result<(), &'static str> {
    if target.is_empty() || target.contains('\0') {
        return Err("empty or invalid symlink target");
    }
    if target.starts_with('/') || target.starts_with('\\') || has_drive_prefix(target) {
        return Err("symlink target is absolute");
    }
    let mut ups = 0;
    let mut descended = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if descended => return Err("symlink target goes back up after going down"),
            ".." => ups += 1,
            _ => descended = true,
        }
    }
    if ups >= link.len() {
        return Err("symlink target points outside");
    }
    Ok(())
}

/// Whether `name` starts like a Windows drive path (`C:`).
fn has_drive_prefix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_going_outside_are_refused() {
        assert!(entry_components("../evil").is_err());
        assert!(entry_components("a/../../evil").is_err());
        assert!(entry_components("a\\..\\evil").is_err());
        assert!(entry_components("/etc/x").is_err());
        assert!(entry_components("C:/x").is_err());
        assert_eq!(entry_components("./a//b/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn patterns_are_made_relative_to_the_base() {
        assert_eq!(
            relative_pattern("/b/p", "./out/x").as_deref(),
            Some("out/x")
        );
        assert_eq!(
            relative_pattern("/b/p", "/b/p/out/").as_deref(),
            Some("out")
        );
        assert_eq!(relative_pattern("/b/p", "a/../c").as_deref(), Some("c"));
        assert_eq!(relative_pattern("/b/p", "../secret"), None);
        assert_eq!(relative_pattern("/b/p", "/etc/passwd"), None);
        assert_eq!(relative_pattern("/b/p", "/b/pother"), None);
    }

    #[test]
    fn symlink_targets_must_stay_inside() {
        assert!(check_link_target(&["a", "link"], "../b/c").is_ok());
        assert!(check_link_target(&["link"], "b").is_ok());
        assert!(check_link_target(&["link"], "../x").is_err());
        assert!(check_link_target(&["a", "link"], "../../x").is_err());
        assert!(check_link_target(&["link"], "/etc/passwd").is_err());
        assert!(check_link_target(&["a", "b", "link"], "x/../../..").is_err());
    }
}
