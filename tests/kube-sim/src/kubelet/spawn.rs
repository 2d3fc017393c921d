//! One long-lived thread that starts every process of the simulated node.
//!
//! A parent-death signal fires when the *thread* that forked a process ends, so every
//! process is forked from this thread, which lives as long as the kubelet. The thread can
//! also fork into a pod's PID namespace (setns on `pid_for_children`), so a pod's processes
//! all die with the namespace's init.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

struct Request {
    command: Command,
    pid_ns: Option<Arc<File>>,
    reply: Sender<io::Result<Child>>,
}

/// Handle to the spawning thread; dropping the last handle after `stop` ends it.
#[derive(Debug)]
pub struct Spawner {
    requests: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Spawner {
    /// Starts the spawning thread.
    pub fn start() -> io::Result<Spawner> {
        let (tx, rx) = channel::<Request>();
        let own_pid_ns = File::open("/proc/thread-self/ns/pid")?;
        let thread = thread::Builder::new()
            .name("kubelet-spawner".into())
            .spawn(move || {
                for mut request in rx {
                    let child =
                        spawn_in(&mut request.command, request.pid_ns.as_deref(), &own_pid_ns);
                    let _ = request.reply.send(child);
                }
            })?;
        Ok(Spawner {
            requests: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Starts `command`, inside a PID namespace when `pid_ns` (its `pid_for_children`) is given.
    pub fn spawn(&self, command: Command, pid_ns: Option<Arc<File>>) -> io::Result<Child> {
        let (reply, answer) = channel();
        let sender = self.requests.lock().ok().and_then(|s| s.clone());
        let sender = sender.ok_or_else(|| io::Error::other("the kubelet is shut down"))?;
        sender
            .send(Request {
                command,
                pid_ns,
                reply,
            })
            .map_err(|_| io::Error::other("the kubelet's spawning thread is gone"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the kubelet's spawning thread is gone"))?
    }

    /// Ends the spawning thread; the processes it started get their parent-death signal.
    pub fn stop(&self) {
        if let Ok(mut sender) = self.requests.lock() {
            sender.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn spawn_in(command: &mut Command, pid_ns: Option<&File>, own: &File) -> io::Result<Child> {
    let Some(ns) = pid_ns else {
        return command.spawn();
    };
    setns_pid(ns)?;
    let child = command.spawn();
    // Back to our own namespace; if that fails no later process may start here.
    setns_pid(own).map_err(|e| io::Error::other(format!("cannot leave a pod's namespace: {e}")))?;
    child
}

fn setns_pid(ns: &File) -> io::Result<()> {
    // SAFETY: setns on a valid descriptor changes only this thread's children's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
