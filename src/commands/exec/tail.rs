//! Copies the job's trace from its spool to stdout as it grows, so the log shows while the job
//! runs; the spool holds what the trace pipeline wrote (masked, UTF-8 repaired, limited).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::trace::Spool;

/// How long the copier sleeps when it has caught up with the spool.
const IDLE: Duration = Duration::from_millis(50);
/// Bytes copied per read.
const CHUNK: usize = 64 * 1024;

/// A thread copying a spool to an output until [`Tail::finish`].
pub struct Tail {
    done: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Tail {
    /// Starts copying `spool`, from its first byte, to `out`.
    pub fn start(spool: Arc<Spool>, out: Box<dyn Write + Send>) -> Tail {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || follow(&spool, out, &flag));
        Tail { done, thread }
    }

    /// Copies what is left and stops; returns the bytes copied.
    pub fn finish(self) -> u64 {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| {
            log::warn!("the log copier stopped unexpectedly");
            0
        })
    }
}

fn follow(spool: &Spool, mut out: Box<dyn Write + Send>, done: &AtomicBool) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    let mut writable = true;
    loop {
        // Read the flag first: once it is up, one more pass sees every byte written before it.
        let last_pass = done.load(Ordering::SeqCst);
        let got = match spool.read_at(offset, &mut buf) {
            Ok(got) => got,
            Err(err) => {
                log::warn!("cannot read the job log spool: {err}");
                return offset;
            }
        };
        if got > 0 {
            if writable {
                writable = write_out(&mut out, &buf[..got]);
            }
            offset += got as u64;
            continue;
        }
        if last_pass {
            return offset;
        }
        std::thread::sleep(IDLE);
    }
}

/// Writes and flushes; false once the reader went away (the job still runs to its end).
fn write_out(out: &mut Box<dyn Write + Send>, bytes: &[u8]) -> bool {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(err) => {
            if err.kind() != io::ErrorKind::BrokenPipe {
                log::warn!("cannot write the job log to stdout: {err}");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// An output whose content the test can look at while the tail runs.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("test lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("test lock")).into_owned()
        }
    }

    #[test]
    fn copies_each_append_before_the_end() {
        let spool = Spool::new().expect("spool");
        let out = Shared::default();
        let tail = Tail::start(Arc::clone(&spool), Box::new(out.clone()));
        spool.append(b"first line\n").expect("append");
        let until = Instant::now() + Duration::from_secs(5);
        while out.text().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(out.text(), "first line\n");
        spool.append(b"second ").expect("append");
        spool.append(b"line\n").expect("append");
        assert_eq!(tail.finish(), 23);
        assert_eq!(out.text(), "first line\nsecond line\n");
    }

    #[test]
    fn a_closed_output_does_not_stop_the_copy() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let spool = Spool::new().expect("spool");
        spool.append(b"lost").expect("append");
        let tail = Tail::start(Arc::clone(&spool), Box::new(Closed));
        spool.append(b" too").expect("append");
        assert_eq!(tail.finish(), 8);
    }
}
