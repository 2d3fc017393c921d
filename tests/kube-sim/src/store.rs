//! The object store: every object by resource, namespace and name, one global resource version,
//! and a bounded history of changes that watches replay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util;

/// Changes kept for watches; an older resource version is answered 410 Expired.
const HISTORY_LIMIT: usize = 10_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

impl Change {
    /// The watch event type (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resource version the change produced.
    pub rv: u64,
    /// Plural resource, e.g. `pods`.
    pub resource: String,
    /// The object's namespace.
    pub namespace: String,
    /// What happened.
    pub change: Change,
    /// The object after the change (before removal for `Deleted`).
    pub object: Value,
    /// The object before a `Modified` change.
    pub previous: Option<Value>,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An object of that name exists.
    AlreadyExists,
    /// No object of that name.
    NotFound,
    /// The asked resource version is older than the history kept.
    Expired,
}

type Key = (String, String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    /// Changes at or below this version are forgotten.
    compacted: u64,
}

/// The shared object store.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler thread must not take the whole simulator down with it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest resource version.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Stores a new object, stamping uid, creationTimestamp and resourceVersion.
    pub fn create(&self, resource: &str, mut object: Value) -> Result<Value, StoreError> {
        let key = key_of(resource, &object);
        let mut inner = self.lock();
        if inner.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        object["metadata"]["uid"] = json!(util::uid());
        object["metadata"]["creationTimestamp"] = json!(util::now_rfc3339());
        let object = record(&mut inner, resource, key, object, Change::Added);
        self.changed.notify_all();
        Ok(object)
    }

    /// One object.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
    }

    /// Every object of a resource (in one namespace, or all) and the version they were read at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// Changes an object in place; a change that leaves it equal records nothing.
    pub fn update(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        let key = key(resource, namespace, name);
        let mut inner = self.lock();
        let mut object = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        let before = object.clone();
        change(&mut object);
        if object == before {
            return Ok(object);
        }
        let object = record(&mut inner, resource, key, object, Change::Modified);
        if let Some(last) = inner.history.back_mut() {
            last.previous = Some(before);
        }
        self.changed.notify_all();
        Ok(object)
    }

    /// Removes an object, recording a `Deleted` change.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, StoreError> {
        let key = key(resource, namespace, name);
        let mut inner = self.lock();
        let object = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        let object = record(&mut inner, resource, key, object, Change::Deleted);
        self.changed.notify_all();
        Ok(object)
    }

    /// The changes after `rv`, waiting up to `wait` for one to come; `Expired` when `rv` is
    /// older than the history kept.
    pub fn changes_after(&self, rv: u64, wait: Duration) -> Result<Vec<Event>, StoreError> {
        let deadline = Instant::now() + wait;
        let mut inner = self.lock();
        loop {
            if rv < inner.compacted {
                return Err(StoreError::Expired);
            }
            if inner.rv > rv {
                return Ok(inner
                    .history
                    .iter()
                    .filter(|e| e.rv > rv)
                    .cloned()
                    .collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            inner = match self.changed.wait_timeout(inner, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Forgets the whole history so far: a watch from any earlier version gets 410.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.rv;
        inner.history.clear();
        self.changed.notify_all();
    }

    /// Wakes every waiting watch (at shutdown).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }
}

/// Bumps the version, stamps it on the object, keeps or drops it, and logs the change.
fn record(inner: &mut Inner, resource: &str, key: Key, mut object: Value, change: Change) -> Value {
    inner.rv += 1;
    object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
    match change {
        Change::Deleted => inner.objects.remove(&key),
        _ => inner.objects.insert(key.clone(), object.clone()),
    };
    inner.history.push_back(Event {
        rv: inner.rv,
        resource: resource.to_string(),
        namespace: key.1,
        change,
        object: object.clone(),
        previous: None,
    });
    while inner.history.len() > HISTORY_LIMIT {
        if let Some(old) = inner.history.pop_front() {
            inner.compacted = old.rv;
        }
    }
    object
}

fn key(resource: &str, namespace: &str, name: &str) -> Key {
    (
        resource.to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

fn key_of(resource: &str, object: &Value) -> Key {
    let meta = &object["metadata"];
    let text = |k: &str| {
        meta.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (resource.to_string(), text("namespace"), text("name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ci"}})
    }

    #[test]
    fn versions_grow_with_every_change() {
        let s = Store::default();
        let a = s.create("pods", pod("a")).unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        let a = s
            .update("pods", "ci", "a", |p| {
                p["status"] = json!({"phase": "Running"})
            })
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(
            s.create("pods", pod("a")).unwrap_err(),
            StoreError::AlreadyExists
        );
        s.remove("pods", "ci", "a").unwrap();
        assert_eq!(s.current_rv(), 3);
        assert!(s.get("pods", "ci", "a").is_none());
    }

    #[test]
    fn replays_changes_after_a_version_and_expires_old_ones() {
        let s = Store::default();
        s.create("pods", pod("a")).unwrap();
        s.create("pods", pod("b")).unwrap();
        let events = s.changes_after(1, Duration::ZERO).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].object["metadata"]["name"], "b");
        s.compact();
        assert_eq!(
            s.changes_after(1, Duration::ZERO).unwrap_err(),
            StoreError::Expired
        );
        assert!(s.changes_after(2, Duration::ZERO).unwrap().is_empty());
    }
}
