//! SIGTERM and SIGINT: the first one asks the runner to stop taking jobs, cancel the running
//! ones, clean up their pods and exit; a second one ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Exit status after a second signal (128 + SIGINT, as shells report it).
const FORCED_EXIT: i32 = 130;

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static RECEIVED: AtomicU32 = AtomicU32::new(0);

extern "C" {
    // From the C library std already links. `signal` installs a handler with BSD semantics
    // (restarting system calls), which suits a flag that the runner's loops poll.
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn on_signal(_signum: i32) {
    // Only async-signal-safe work here: atomics and _exit.
    if RECEIVED.fetch_add(1, Ordering::SeqCst) >= 1 {
        // SAFETY: _exit is async-signal-safe and ends the process without running any Rust code.
        unsafe { _exit(FORCED_EXIT) }
    }
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGTERM and SIGINT.
pub fn install() {
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: the handler only touches atomics and calls _exit, both async-signal-safe, and
        // stays valid for the life of the process.
        unsafe {
            signal(signum, on_signal);
        }
    }
}

/// The flag the first signal raises; loops poll it and jobs watch it.
pub fn shutdown_flag() -> &'static AtomicBool {
    &SHUTDOWN
}
