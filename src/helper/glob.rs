//! Glob patterns of `paths` (`*`, `?`, `[...]`, `{a,b}`, `**`), matched against paths relative
//! to the base folder with `/` separators.

use regex::Regex;

/// Whether `pattern` has a glob character; otherwise it names one path.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// The literal folder a glob starts from: its components before the first one with a glob
/// character.
pub fn literal_prefix(pattern: &str) -> String {
    let components: Vec<&str> = pattern.split('/').take_while(|c| !is_glob(c)).collect();
    components.join("/")
}

/// Compiles `pattern` to a regex matching whole relative paths: `*` and `?` stay within one
/// component, `**` spans any number of them (`a/**/b` also matches `a/b`).
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut braces = 0;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let slash_follows = chars.get(i + 2) == Some(&'/');
                re.push_str(if slash_follows { "(?:.*/)?" } else { ".*" });
                i += if slash_follows { 3 } else { 2 };
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => i = push_class(&chars, i, &mut re),
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            ',' if braces > 0 => re.push('|'),
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re)
}

/// Appends the character class starting at `chars[open]` (`[`); returns the index of its `]`.
/// A `[` with no closing `]` is a literal.
fn push_class(chars: &[char], open: usize, re: &mut String) -> usize {
    let mut end = open + 1;
    if matches!(chars.get(end), Some('!') | Some('^')) {
        end += 1;
    }
    if chars.get(end) == Some(&']') {
        end += 1;
    }
    while end < chars.len() && chars[end] != ']' {
        end += 1;
    }
    if end >= chars.len() {
        re.push_str(r"\[");
        return open;
    }

    let mut body: String = chars[open + 1..end].iter().collect();
    if let Some(rest) = body.strip_prefix('!') {
        body = format!("^{rest}");
    }
    re.push('[');
    for c in body.chars() {
        if matches!(c, '[' | '\\' | '&' | '~') {
            re.push('\\');
        }
        re.push(c);
    }
    re.push(']');
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        compile(pattern).unwrap().is_match(path)
    }

    #[test]
    fn star_stays_within_one_component() {
        assert!(matches("build/*.txt", "build/a.txt"));
        assert!(!matches("build/*.txt", "build/sub/a.txt"));
        assert!(!matches("build/*.txt", "build/a.txt.bak"));
    }

    #[test]
    fn double_star_spans_components() {
        assert!(matches("**/*.log", "a.log"));
        assert!(matches("**/*.log", "x/y/a.log"));
        assert!(matches("src/**/mod.rs", "src/mod.rs"));
        assert!(matches("src/**", "src/a/b"));
        assert!(matches("**", "anything/at/all"));
    }

    #[test]
    fn classes_braces_and_question_mark() {
        assert!(matches("f[0-9].c", "f7.c"));
        assert!(!matches("f[!0-9].c", "f7.c"));
        assert!(matches("*.{rs,toml}", "Cargo.toml"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "a/c"));
        assert!(matches("odd[name", "odd[name"));
        assert!(matches("dot.txt", "dot.txt") && !matches("dot.txt", "dotatxt"));
    }

    #[test]
    fn literal_prefix_stops_at_first_glob_component() {
        assert_eq!(literal_prefix("build/out/*.txt"), "build/out");
        assert_eq!(literal_prefix("**/x"), "");
    }
}
