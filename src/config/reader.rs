//! A typed view of one TOML table that knows its key path, rejects unknown keys and turns every
//! type mismatch into a [`ConfigError`] naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use super::error::{ConfigError, KeyError};

/// One table of the file, with the keys it may hold.
pub(super) struct Section<'a> {
    file: &'a Path,
    prefix: String,
    table: &'a Table,
}

impl<'a> Section<'a> {
    /// Wraps `table` found at `prefix` (empty for the top level) and rejects any key not in
    /// `known`, suggesting the closest known one.
    pub fn new(
        file: &'a Path,
        prefix: String,
        table: &'a Table,
        known: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        let section = Section {
            file,
            prefix,
            table,
        };
        for name in table.keys() {
            if !known.contains(&name.as_str()) {
                let suggestion = closest(name, known).map(str::to_string);
                let problem = KeyError::Unknown {
                    suggestion,
                    known: known.to_vec(),
                };
                return Err(section.error(name, problem));
            }
        }
        Ok(section)
    }

    /// The full key path of `name` in this table (`runners[0].kubernetes.cpu_limit`).
    pub fn key(&self, name: &str) -> String {
        let name = quote_key(name);
        if self.prefix.is_empty() {
            name
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// An error about `name` in this table.
    pub fn error(&self, name: &str, problem: KeyError) -> ConfigError {
        ConfigError::Key {
            path: self.file.to_path_buf(),
            key: self.key(name),
            problem,
        }
    }

    /// An error about a key path built by the caller.
    pub fn error_at(&self, key: String, problem: KeyError) -> ConfigError {
        ConfigError::Key {
            path: self.file.to_path_buf(),
            key,
            problem,
        }
    }

    /// The file the table comes from.
    pub fn file(&self) -> &'a Path {
        self.file
    }

    /// Whether the table holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }

    /// A string value.
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(name, "a string", other)),
        }
    }

    /// A boolean value.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(name, "a boolean (true or false)", other)),
        }
    }

    /// An integer value, at least `min`.
    pub fn integer(&self, name: &str, min: i64) -> Result<Option<i64>, ConfigError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(Value::Integer(i)) if *i >= min => Ok(Some(*i)),
            Some(Value::Integer(i)) => {
                let accepted = format!("an integer of at least {min}");
                Err(self.error(
                    name,
                    KeyError::OutOfRange {
                        value: *i,
                        accepted,
                    },
                ))
            }
            Some(other) => Err(self.wrong_type(name, "an integer", other)),
        }
    }

    /// An integer value that fits a `u32`, at least `min`.
    pub fn u32(&self, name: &str, min: u32) -> Result<Option<u32>, ConfigError> {
        let Some(value) = self.integer(name, i64::from(min))? else {
            return Ok(None);
        };
        u32::try_from(value).map(Some).map_err(|_| {
            let accepted = format!("an integer from {min} to {}", u32::MAX);
            self.error(name, KeyError::OutOfRange { value, accepted })
        })
    }

    /// An array of strings.
    pub fn string_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        let items = match self.table.get(name) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong_type(name, "an array of strings", other)),
        };
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => strings.push(s.clone()),
                other => {
                    let key = format!("{}[{index}]", self.key(name));
                    let problem = wrong_type("a string", other);
                    return Err(self.error_at(key, problem));
                }
            }
        }
        Ok(strings)
    }

    /// A table whose values are all strings, with any keys.
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let table = match self.table.get(name) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Table(table)) => table,
            Some(other) => return Err(self.wrong_type(name, "a table of strings", other)),
        };
        let mut map = BTreeMap::new();
        for (key, value) in table {
            match value {
                Value::String(s) => {
                    map.insert(key.clone(), s.clone());
                }
                other => {
                    let key = format!("{}.{}", self.key(name), quote_key(key));
                    return Err(self.error_at(key, wrong_type("a string", other)));
                }
            }
        }
        Ok(map)
    }

    /// A sub-table, checked against its own known keys.
    pub fn table(
        &self,
        name: &str,
        known: &'static [&'static str],
    ) -> Result<Option<Section<'a>>, ConfigError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(Value::Table(table)) => {
                Section::new(self.file, self.key(name), table, known).map(Some)
            }
            Some(other) => Err(self.wrong_type(name, "a table", other)),
        }
    }

    /// An array of tables (`[[name]]`), each checked against `known`.
    pub fn tables(
        &self,
        name: &str,
        known: &'static [&'static str],
    ) -> Result<Vec<Section<'a>>, ConfigError> {
        let items = match self.table.get(name) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong_type(name, "an array of tables", other)),
        };
        let mut sections = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let key = format!("{}[{index}]", self.key(name));
            match item {
                Value::Table(table) => sections.push(Section::new(self.file, key, table, known)?),
                other => return Err(self.error_at(key, wrong_type("a table", other))),
            }
        }
        Ok(sections)
    }

    fn wrong_type(&self, name: &str, expected: &'static str, found: &Value) -> ConfigError {
        self.error(name, wrong_type(expected, found))
    }
}

/// A type mismatch; the found value itself is not shown, since it may be a token.
fn wrong_type(expected: &'static str, found: &Value) -> KeyError {
    let found = match found {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    };
    KeyError::WrongType { expected, found }
}

/// Quotes a key that is not a bare TOML key, so the path reads back unambiguously.
pub(super) fn quote_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// The known key closest to `name`, if it is close enough to be a likely typo.
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|candidate| (edit_distance(&name.to_lowercase(), candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("cpu_limt", "cpu_limit"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_the_closest_key_only_when_close() {
        let known = ["cpu_limit", "cpu_request", "memory_limit"];
        assert_eq!(closest("cpu_limt", &known), Some("cpu_limit"));
        assert_eq!(closest("memory-limit", &known), Some("memory_limit"));
        assert_eq!(closest("CPU_LIMIT", &known), Some("cpu_limit"));
        assert_eq!(closest("volumes", &known), None);
    }

    #[test]
    fn quotes_keys_that_are_not_bare() {
        assert_eq!(quote_key("cpu_limit"), "cpu_limit");
        assert_eq!(
            quote_key("app.kubernetes.io/name"),
            "\"app.kubernetes.io/name\""
        );
    }
}
