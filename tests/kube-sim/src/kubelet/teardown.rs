//! The end of a pod: stop with a grace period, teardown, and the kubelet's shutdown.

use super::pod::Pod;
use super::Inner;
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a pid of a child we have not reaped yet (pid set to None on reap).
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Stops a pod: SIGTERM, SIGKILL after the grace, teardown, `pod_gone`.
pub fn stop(inner: &Inner, pod: &Arc<Pod>, grace: Duration) {
    pod.lock().stopping = true;
    pod.wake.notify_all();
    join_worker(pod);

    let running: Vec<(String, u32)> = {
        let state = pod.lock();
        let all = state.record.all_containers();
        all.filter_map(|c| Some((c.name.clone(), c.pid?))).collect()
    };
    for (name, pid) in &running {
        pod.event(
            inner,
            "Normal",
            "Killing",
            &format!("Stopping container {name}"),
        );
        signal(*pid, libc::SIGTERM);
    }
    wait_all_exited(pod, grace);

    tear_down(pod);
    if let Ok(mut pods) = inner.pods.lock() {
        let key = (pod.namespace.clone(), pod.name.clone());
        if pods.get(&key).is_some_and(|p| Arc::ptr_eq(p, pod)) {
            pods.remove(&key);
        }
    }
    if let Some(sink) = inner.live_sink() {
        sink.pod_gone(&pod.namespace, &pod.name);
    }
}

fn join_worker(pod: &Pod) {
    let worker = pod.worker.lock().ok().and_then(|mut w| w.take());
    if let Some(worker) = worker {
        let _ = worker.join();
    }
}

fn wait_all_exited(pod: &Pod, grace: Duration) {
    let deadline = Instant::now() + grace;
    let mut state = pod.lock();
    while state.record.all_containers().any(|c| c.pid.is_some()) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        state = match pod.wake.wait_timeout(state, deadline - now) {
            Ok((s, _)) => s,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Kills every process of the pod, reaps the containers and removes the pod's folder.
fn tear_down(pod: &Pod) {
    let sandbox = {
        let mut state = pod.lock();
        state.stdins.clear();
        state.sandbox.take()
    };
    if let Some(sandbox) = sandbox {
        sandbox.teardown();
    }
    let waiters: Vec<_> = pod
        .waiters
        .lock()
        .map(|mut w| w.drain(..).collect())
        .unwrap_or_default();
    for waiter in waiters {
        let _ = waiter.join();
    }
    pod.lock().gone = true;
    if let Err(e) = fs::remove_dir_all(&pod.dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("kube-sim: cannot remove {}: {e}", pod.dir.display());
        }
    }
}

/// Kills everything at once: every pod's processes, sandboxes and folders, then the
/// spawning thread.
pub fn shutdown(inner: &Inner) {
    inner.closed.store(true, Ordering::SeqCst);
    let pods: Vec<Arc<Pod>> = match inner.pods.lock() {
        Ok(mut pods) => pods.drain().map(|(_, pod)| pod).collect(),
        Err(_) => Vec::new(),
    };
    for pod in &pods {
        pod.lock().stopping = true;
        pod.wake.notify_all();
    }
    for pod in &pods {
        join_worker(pod);
        tear_down(pod);
    }
    let stoppers: Vec<_> = inner
        .stoppers
        .lock()
        .map(|mut s| s.drain(..).collect())
        .unwrap_or_default();
    for stopper in stoppers {
        let _ = stopper.join();
    }
    inner.spawner.stop();
}
