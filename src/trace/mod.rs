//! The job output pipeline: every byte of every stage's output goes through masking of masked
//! variable values, UTF-8 repair, the output limit and into a file-backed [`Spool`].
//!
//! Bytes pass through as produced: no newline is added, CR and ANSI escapes are kept. Memory
//! stays bounded whatever the output size: writes are processed in chunks, the held-back tail
//! is at most the longest mask plus three bytes of a character, and the trace lives in a file.

mod automaton;
mod limit;
mod mask;
mod spool;
mod utf8;

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

pub use mask::MASKED;
pub use spool::Spool;

use limit::OutputLimit;
use mask::Masker;
use utf8::Utf8Repair;

/// Writes are cut into pieces of this size, which bounds the pipeline's working buffers.
const CHUNK: usize = 64 * 1024;

/// How a runner line is coloured in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// No colour.
    Plain,
    /// Bold green, for the runner's progress notices.
    Notice,
    /// Bold yellow, for warnings.
    Warning,
    /// Bold red, for errors and the job's failure.
    Error,
}

impl Style {
    /// The ANSI escape that starts the style, empty for [`Style::Plain`].
    fn start(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Notice => "\x1b[32;1m",
            Style::Warning => "\x1b[33;1m",
            Style::Error => "\x1b[31;1m",
        }
    }
}

/// ANSI escape that resets the colour.
const RESET: &str = "\x1b[0;m";

/// A handle on the job's trace; clones share one pipeline, so stages and the runner's own
/// messages write into the same stream.
#[derive(Clone)]
pub struct TraceWriter {
    inner: Arc<Mutex<Pipeline>>,
}

impl TraceWriter {
    /// A pipeline that masks `masks` (empty values ignored), keeps at most `limit_bytes` bytes
    /// of output and appends to `spool`.
    pub fn new(spool: Arc<Spool>, masks: Vec<String>, limit_bytes: u64) -> TraceWriter {
        let pipeline = Pipeline {
            masker: Masker::new(&masks),
            utf8: Utf8Repair::default(),
            limit: OutputLimit::new(limit_bytes),
            spool,
            masked: Vec::new(),
            repaired: Vec::new(),
        };
        TraceWriter {
            inner: Arc::new(Mutex::new(pipeline)),
        }
    }

    /// Emits the bytes held back for masking or UTF-8 repair; call it when a stage ends.
    pub fn flush_pending(&self) {
        if let Err(err) = self.lock().flush_pending() {
            log::warn!("cannot write the trace spool: {err}");
        }
    }

    /// Writes one runner line (masked like job output) followed by `\n`, after flushing what
    /// the stage left pending.
    pub fn line(&self, text: &str) -> io::Result<()> {
        self.styled_line(Style::Plain, text)
    }

    /// Writes one runner line in `style` followed by `\n`, after flushing what the stage left
    /// pending.
    pub fn styled_line(&self, style: Style, text: &str) -> io::Result<()> {
        let mut pipeline = self.lock();
        pipeline.flush_pending()?;
        if style == Style::Plain {
            pipeline.push(text.as_bytes())?;
        } else {
            pipeline.push(format!("{}{text}{RESET}", style.start()).as_bytes())?;
        }
        pipeline.push(b"\n")?;
        pipeline.flush_pending()
    }

    /// Writes a plain runner line; a spool failure is logged, not returned (the job goes on).
    pub fn say(&self, text: &str) {
        self.say_styled(Style::Plain, text);
    }

    /// Writes a bold green runner line (stage headers, success).
    pub fn notice(&self, text: &str) {
        self.say_styled(Style::Notice, text);
    }

    /// Writes a bold yellow runner line.
    pub fn warning(&self, text: &str) {
        self.say_styled(Style::Warning, text);
    }

    /// Writes a bold red runner line.
    pub fn error(&self, text: &str) {
        self.say_styled(Style::Error, text);
    }

    /// Writes bytes the runner produces itself (section markers) through the pipeline.
    pub fn raw(&self, bytes: &[u8]) {
        if let Err(err) = self.lock().push(bytes) {
            log::warn!("cannot write the trace spool: {err}");
        }
    }

    fn say_styled(&self, style: Style, text: &str) {
        if let Err(err) = self.styled_line(style, text) {
            log::warn!("cannot write the trace spool: {err}");
        }
    }

    /// Whether the output limit was reached and output is being dropped.
    pub fn limit_reached(&self) -> bool {
        self.lock().limit.reached()
    }

    /// Bytes currently held back for masking or UTF-8 repair.
    pub fn held_back(&self) -> usize {
        let pipeline = self.lock();
        pipeline.masker.held() + pipeline.utf8.held()
    }

    /// The pipeline; a panic in another writer leaves it consistent enough to go on.
    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for TraceWriter {
    /// Takes all of `buf`; past the output limit the bytes are dropped yet still accepted.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().push(buf)?;
        Ok(buf.len())
    }

    /// Flushes nothing: held bytes wait for the rest of a mask or character on purpose; see
    /// [`TraceWriter::flush_pending`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The masks themselves must never be printed.
        f.debug_struct("TraceWriter").finish_non_exhaustive()
    }
}

/// The stages and their reused buffers.
struct Pipeline {
    masker: Masker,
    utf8: Utf8Repair,
    limit: OutputLimit,
    spool: Arc<Spool>,
    /// Output of the masker for the current chunk.
    masked: Vec<u8>,
    /// Output of the UTF-8 repair for the current chunk.
    repaired: Vec<u8>,
}

impl Pipeline {
    /// Sends `data` through every stage.
    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(CHUNK) {
            if self.limit.reached() {
                return Ok(());
            }
            self.masked.clear();
            self.masker.write(chunk, &mut self.masked);
            self.repaired.clear();
            self.utf8.write(&self.masked, &mut self.repaired);
            self.store()?;
        }
        Ok(())
    }

    /// Decides everything held back in the masker and the UTF-8 repair and stores it.
    fn flush_pending(&mut self) -> io::Result<()> {
        self.masked.clear();
        self.masker.flush(&mut self.masked);
        self.repaired.clear();
        self.utf8.write(&self.masked, &mut self.repaired);
        self.utf8.flush(&mut self.repaired);
        self.store()
    }

    /// Applies the limit to the repaired bytes and appends what is kept to the spool.
    fn store(&mut self) -> io::Result<()> {
        let (kept, notice) = self.limit.apply(&self.repaired);
        self.spool.append(kept)?;
        if let Some(notice) = notice {
            self.spool.append(notice.as_bytes())?;
        }
        Ok(())
    }
}
