//! Watches: chunked JSON lines of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::Ctx;
use crate::faults::WatchMode;
use crate::http::{self, Request};
use crate::objects::{kind_of, selectors};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, Event, StoreError};
use crate::table::{self, Include};

/// A watch with no `timeoutSeconds` ends after this long, as a real server ends it at random.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// A checked watch request, ready to stream.
pub struct WatchPlan {
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Replay the current objects as ADDED first (no resourceVersion, or `0`).
    initial: bool,
    /// Stream changes after this version.
    from: u64,
    /// Send an ERROR event with 410 and end (the version is too old).
    expired: bool,
    timeout: Duration,
    bookmarks: bool,
    table: Option<Include>,
    /// Answer 200 and end at once.
    close_at_once: bool,
}

/// Checks a watch request; refused or expired watches become errors here.
pub fn plan(
    ctx: &Ctx,
    request: &Request,
    resource: &str,
    namespace: Option<&str>,
) -> Result<WatchPlan, ApiError> {
    let mode = ctx.faults.watch_mode();
    if mode == WatchMode::Refuse {
        return Err(ApiError::method_not_allowed());
    }
    let (labels, fields) = selectors(request)?;
    let rv_text = request.param("resourceVersion").unwrap_or("");
    let (initial, from) = match rv_text {
        "" | "0" => (true, ctx.store.current_rv()),
        text => (
            false,
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}")))?,
        ),
    };
    let expired = !initial
        && matches!(
            ctx.store.changes_after(from, Duration::ZERO),
            Err(StoreError::Expired)
        );
    if expired && mode == WatchMode::ExpiredAsHttp {
        return Err(ApiError::expired(from));
    }
    let timeout = match request.param("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    Ok(WatchPlan {
        resource: resource.to_string(),
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        initial,
        from,
        expired,
        timeout,
        bookmarks: request.flag("allowWatchBookmarks"),
        table: table::wanted(request),
        close_at_once: mode == WatchMode::CloseAtOnce,
    })
}

/// Streams the watch until its timeout, the client leaving, or the simulator stopping.
pub fn run(ctx: &Ctx, plan: &WatchPlan, out: &mut impl Write) -> io::Result<()> {
    http::start_chunked(out, 200, "application/json")?;
    if plan.close_at_once {
        return http::end_chunks(out);
    }
    if plan.expired {
        let status = ApiError::expired(plan.from).status;
        write_event(out, "ERROR", &status)?;
        return http::end_chunks(out);
    }
    if plan.initial {
        replay_current(ctx, plan, out)?;
    }
    stream_changes(ctx, plan, out)?;
    http::end_chunks(out)
}

fn replay_current(ctx: &Ctx, plan: &WatchPlan, out: &mut impl Write) -> io::Result<()> {
    let (items, _) = ctx.store.list(&plan.resource, plan.namespace.as_deref());
    for object in items.iter().filter(|o| plan.matches_object(o)) {
        write_event(out, "ADDED", &plan.render(object, ctx.store.current_rv()))?;
    }
    Ok(())
}

fn stream_changes(ctx: &Ctx, plan: &WatchPlan, out: &mut impl Write) -> io::Result<()> {
    let deadline = Instant::now() + plan.timeout;
    let mut last = plan.from;
    let mut last_write = Instant::now();
    while !ctx.stopping.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let wait = left
            .min(ctx.bookmark_interval)
            .min(Duration::from_millis(500));
        let events = match ctx.store.changes_after(last, wait) {
            Ok(events) => events,
            Err(_) => {
                // History was compacted under a running watch: the client must re-list.
                return write_event(out, "ERROR", &ApiError::expired(last).status);
            }
        };
        for event in &events {
            last = last.max(event.rv);
            if let Some(kind) = plan.sees(event) {
                write_event(out, kind, &plan.render(&event.object, event.rv))?;
                last_write = Instant::now();
            }
        }
        if plan.bookmarks && last_write.elapsed() >= ctx.bookmark_interval {
            write_event(out, "BOOKMARK", &plan.bookmark(last))?;
            last_write = Instant::now();
        }
    }
    Ok(())
}

fn write_event(out: &mut impl Write, kind: &str, object: &Value) -> io::Result<()> {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    http::write_chunk(out, line.as_bytes())
}

impl WatchPlan {
    fn matches_object(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event type this watch sees for a change, if any: an update that moves an object
    /// into the selection reads as ADDED, one that moves it out as DELETED.
    fn sees(&self, event: &Event) -> Option<&'static str> {
        let in_scope = event.resource == self.resource
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == event.namespace);
        if !in_scope {
            return None;
        }
        let now = self.matches_object(&event.object);
        let before = event
            .previous
            .as_ref()
            .is_none_or(|p| self.matches_object(p));
        match (event.change, before, now) {
            (Change::Modified, false, true) => Some("ADDED"),
            (Change::Modified, true, false) => Some("DELETED"),
            (Change::Modified, false, false) => None,
            (change, _, true) => Some(change.as_str()),
            _ => None,
        }
    }

    fn render(&self, object: &Value, rv: u64) -> Value {
        match self.table {
            Some(include) => {
                table::render(&self.resource, std::slice::from_ref(object), include, rv)
            }
            None => object.clone(),
        }
    }

    fn bookmark(&self, rv: u64) -> Value {
        json!({
            "kind": kind_of(&self.resource),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
        })
    }
}
