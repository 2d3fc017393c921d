//! Exec throughput: 1 GiB of stdout from one exec on the Kubernetes simulator (HTTPS, bearer
//! token), through this client into a counting sink and through `kubectl exec` into /dev/null.
//! Run with `make bench` (`cargo bench --bench exec_throughput`); not part of `make test`.
//!
//! Our side runs in a child process (this program again, with `--child`) so that its peak
//! resident memory (VmHWM) is its own and not the simulator's.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{Client, ExecIo, ExecRequest};
use alloy_runner::secret::Secret;
use kube_sim::{Credentials, Sim, SimHandle, SimOptions, TokenSpec};
use serde_json::json;

/// Bytes streamed by each run (1 GiB).
const OUTPUT: u64 = 1 << 30;
/// Runs of each side; the fastest counts (the machine may be busy), the lowest CPU time too.
const ROUNDS: usize = 3;
/// Peak resident memory our side must stay under (20 MB).
const RSS_TARGET: u64 = 20_000_000;
/// Kernel clock ticks per second in /proc (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;
const KUBECTL: &str = "/usr/bin/kubectl";
const NS: &str = "bench";
const POD: &str = "bench";
const TOKEN: &str = "bench-token";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--child") => child(&args[1..]),
        _ => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec_throughput: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// One side's best run.
struct Measure {
    secs: f64,
    /// CPU time (user + system) of the side's process and its children, in seconds.
    cpu_secs: f64,
    peak_rss: Option<u64>,
}

impl Measure {
    fn mib_per_sec(&self) -> f64 {
        OUTPUT as f64 / (1 << 20) as f64 / self.secs
    }
}

fn parent() -> Result<()> {
    let sim = start_sim()?;
    let dir = std::env::temp_dir().join(format!("alloy-bench-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, &Credentials::Token(TOKEN.into()), NS)
        .map_err(|e| format!("writing {}: {e}", kubeconfig.display()))?;
    let ca = sim.ca_pem_path().ok_or("the simulator serves no CA")?;

    let mut ours: Option<Measure> = None;
    let mut theirs: Option<Measure> = None;
    for round in 1..=ROUNDS {
        let a = run_ours(&sim.url(), &ca)?;
        eprintln!("round {round}: alloy-runner {:.0} MiB/s", a.mib_per_sec());
        let b = run_kubectl(&kubeconfig, &dir)?;
        eprintln!("round {round}: kubectl      {:.0} MiB/s", b.mib_per_sec());
        ours = Some(best(ours, a));
        theirs = Some(best(theirs, b));
    }
    let _ = fs::remove_dir_all(&dir);
    let (ours, theirs) = (ours.ok_or("no run")?, theirs.ok_or("no run")?);
    report(&ours, &theirs);
    Ok(())
}

fn best(current: Option<Measure>, new: Measure) -> Measure {
    match current {
        Some(old) if old.secs <= new.secs => Measure {
            cpu_secs: old.cpu_secs.min(new.cpu_secs),
            peak_rss: old.peak_rss.max(new.peak_rss),
            ..old
        },
        Some(old) => Measure {
            cpu_secs: old.cpu_secs.min(new.cpu_secs),
            peak_rss: old.peak_rss.max(new.peak_rss),
            ..new
        },
        None => new,
    }
}

fn report(ours: &Measure, theirs: &Measure) {
    let ratio = ours.mib_per_sec() / theirs.mib_per_sec();
    let rss = ours.peak_rss.unwrap_or(u64::MAX);
    println!("exec of 1 GiB of stdout over HTTPS on the simulator (best of {ROUNDS})");
    println!("  alloy-runner client: {:8.1} MiB/s", ours.mib_per_sec());
    println!("  kubectl exec:        {:8.1} MiB/s", theirs.mib_per_sec());
    println!("  ratio (ours/kubectl): {ratio:.2}");
    println!(
        "  cpu per GiB: alloy-runner {:.2} s, kubectl {:.2} s",
        ours.cpu_secs, theirs.cpu_secs
    );
    println!(
        "  alloy-runner peak RSS: {:.1} MB (VmHWM)",
        rss as f64 / 1e6
    );
    println!(
        "  throughput target (>= kubectl): {}",
        met(ours.mib_per_sec() >= theirs.mib_per_sec())
    );
    println!("  memory target (< 20 MB): {}", met(rss < RSS_TARGET));
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// A simulator over HTTPS with one token and the pod running.
fn start_sim() -> Result<SimHandle> {
    let sim = Sim::start(SimOptions {
        tls: true,
        tokens: vec![TokenSpec::admin(TOKEN, "bench")],
        ..SimOptions::default()
    })
    .map_err(|e| format!("starting the simulator: {e}"))?;
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "build", "image": "alpine", "command": ["sleep", "3600"]}]
        }
    });
    let client = client(&sim.url(), sim.ca_pem_path().as_deref())?;
    client
        .create_pod(NS, &pod)
        .map_err(|e| format!("creating the pod: {e}"))?;
    let running = sim.wait_for_pod(NS, POD, Duration::from_secs(30), |p| {
        p.is_some_and(|p| p["status"]["phase"] == "Running")
    });
    running
        .then_some(sim)
        .ok_or_else(|| "the pod did not start".into())
}

fn client(url: &str, ca: Option<&Path>) -> Result<Client> {
    let cfg = KubernetesConfig {
        host: Some(url.to_string()),
        ca_file: ca.map(Path::to_path_buf),
        bearer_token: Some(Secret::new(TOKEN)),
        ..KubernetesConfig::default()
    };
    Client::from_config(&cfg).map_err(|e| format!("building the client: {e}"))
}

fn run_ours(url: &str, ca: &Path) -> Result<Measure> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let cpu_before = children_cpu_secs()?;
    let out = Command::new(exe)
        .arg("--child")
        .arg(url)
        .arg(ca)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting the child: {e}"))?;
    if !out.status.success() {
        return Err(format!("the child failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(secs)), Some(Ok(kib))) => Ok(Measure {
            secs,
            cpu_secs: children_cpu_secs()? - cpu_before,
            peak_rss: Some(kib as u64 * 1024),
        }),
        _ => Err(format!("unreadable child report: {text:?}")),
    }
}

fn run_kubectl(kubeconfig: &Path, home: &Path) -> Result<Measure> {
    let size = OUTPUT.to_string();
    let cpu_before = children_cpu_secs()?;
    let started = Instant::now();
    let status = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout=600s", "exec", POD, "-c", "build", "--"])
        .args(["head", "-c", &size, "/dev/zero"])
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("starting {KUBECTL}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("kubectl exec failed ({status})"));
    }
    Ok(Measure {
        secs,
        cpu_secs: children_cpu_secs()? - cpu_before,
        peak_rss: None,
    })
}

/// Our side: one exec into a counting sink; prints the seconds and VmHWM in KiB.
fn child(args: &[String]) -> Result<()> {
    let [url, ca] = args else {
        return Err("usage: exec_throughput --child URL CA".into());
    };
    let client = client(url, Some(Path::new(ca)))?;
    let req = ExecRequest {
        namespace: NS.into(),
        pod: POD.into(),
        container: "build".into(),
        command: ["head", "-c", &OUTPUT.to_string(), "/dev/zero"]
            .map(String::from)
            .to_vec(),
    };
    let counter = Counting::default();
    let bytes = counter.0.clone();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(counter),
        stderr: Box::new(io::stderr()),
        abort: None,
    };
    let started = Instant::now();
    let outcome = client.exec(&req, io).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let got = bytes.load(Ordering::Relaxed);
    if outcome.exit_code != 0 || got != OUTPUT {
        return Err(format!("exit {} after {got} bytes", outcome.exit_code));
    }
    println!("{secs} {}", peak_kib()?);
    Ok(())
}

#[derive(Default)]
struct Counting(Arc<AtomicU64>);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn peak_kib() -> Result<u64> {
    let status =
        fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".into())
}

/// CPU time of the children waited for so far (`cutime` + `cstime` of `/proc/self/stat`).
fn children_cpu_secs() -> Result<f64> {
    let stat =
        fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // The fields after the command name's closing parenthesis start with field 3 (state).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    match (ticks(16), ticks(17)) {
        (Some(user), Some(system)) => Ok((user + system) / CLOCK_TICKS),
        _ => Err("unreadable /proc/self/stat".into()),
    }
}
