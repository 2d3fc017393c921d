//! `kube-sim`: serves a simulated Kubernetes API in the foreground until Ctrl-C.
//!
//! Environment: `SIM_ADDR` (default `127.0.0.1:0`, port 0 = any), `SIM_KUBECONFIG` (default
//! `target/sim/kubeconfig`), `SIM_NAMESPACE` (default `default`), `SIM_TLS=1` (HTTPS with the
//! test client certificate), `SIM_TOKEN` (a bearer token; implies HTTPS), `SIM_NODE_LABELS`
//! (`k=v,k2=v2`, matched against nodeSelector), `SIM_V4_ONLY=1` (exec offers only v4).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use kube_sim::{Sim, SimOptions, TokenSpec};

const USAGE: &str = "\
usage: kube-sim   (no arguments; settings come from the environment)

Serves a simulated Kubernetes API server and kubelet in the foreground until Ctrl-C or SIGTERM,
which stops every pod it runs.

  SIM_ADDR=IP:PORT      where to listen, a loopback address (default 127.0.0.1:0, 0 = any port)
  SIM_KUBECONFIG=PATH   kubeconfig written for kubectl (default target/sim/kubeconfig)
  SIM_NAMESPACE=NAME    namespace of that kubeconfig's context (default default)
  SIM_TLS=1             serve HTTPS with the test CA (fixtures/kube-sim/tls/ca.crt) and accept
                        the test client certificate
  SIM_TOKEN=TOKEN       also accept this bearer token (implies SIM_TLS=1); alloy-runner needs
                        HTTPS, so start the simulator with a token (or SIM_TLS=1) for it
  SIM_NODE_LABELS=k=v,...  labels of the one node, matched against nodeSelector
  SIM_V4_ONLY=1         exec offers only the v4 channel protocol (as older servers do)
";

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        let help = std::env::args().skip(1).all(|a| a == "--help" || a == "-h");
        if help {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprint!("kube-sim: takes no arguments\n{USAGE}");
        return ExitCode::from(2);
    }
    // Block the stop signals in every thread so that only the wait below receives them.
    let signals = stop_signals();
    if let Err(e) = block(&signals) {
        eprintln!("kube-sim: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    match run(&signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kube-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(signals: &libc::sigset_t) -> Result<(), String> {
    let token = std::env::var("SIM_TOKEN").ok().filter(|t| !t.is_empty());
    let options = options_from_env(token.as_deref())?;
    let sim = Sim::start(options).map_err(|e| e.to_string())?;

    let kubeconfig = PathBuf::from(
        std::env::var("SIM_KUBECONFIG").unwrap_or_else(|_| "target/sim/kubeconfig".into()),
    );
    let namespace = std::env::var("SIM_NAMESPACE").unwrap_or_else(|_| "default".into());
    sim.write_kubeconfig(&kubeconfig, sim.default_credentials(), &namespace)
        .map_err(|e| format!("writing kubeconfig {}: {e}", kubeconfig.display()))?;
    println!("kube-sim serving {}", sim.url());
    println!(
        "kubeconfig: {} (kubectl --kubeconfig {} get pods)",
        kubeconfig.display(),
        kubeconfig.display()
    );
    println!("Ctrl-C stops it");

    wait(signals);
    println!("kube-sim stopping");
    drop(sim);
    Ok(())
}

/// The simulator's options from `SIM_ADDR`, `SIM_TLS`, `SIM_NODE_LABELS` (`k=v,k2=v2`) and
/// `SIM_V4_ONLY=1`.
fn options_from_env(token: Option<&str>) -> Result<SimOptions, String> {
    let addr_text = std::env::var("SIM_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let bind: SocketAddr = addr_text
        .parse()
        .map_err(|e| format!("SIM_ADDR {addr_text:?}: {e}"))?;
    let tls = token.is_some() || std::env::var("SIM_TLS").is_ok_and(|v| v == "1");
    let mut node_labels = BTreeMap::new();
    for pair in std::env::var("SIM_NODE_LABELS")
        .unwrap_or_default()
        .split(',')
    {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or(format!("SIM_NODE_LABELS: {pair:?} is not k=v"))?;
        node_labels.insert(key.to_string(), value.to_string());
    }
    Ok(SimOptions {
        tls,
        client_cert_auth: tls,
        tokens: token
            .iter()
            .map(|t| TokenSpec::admin(t, "sim-user"))
            .collect(),
        v4_only_exec: std::env::var("SIM_V4_ONLY").is_ok_and(|v| v == "1"),
        node_labels,
        bind,
        ..SimOptions::default()
    })
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write into the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

fn block(set: &libc::sigset_t) -> Result<(), std::io::Error> {
    // SAFETY: the set is initialised; no old mask is asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    match rc {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

fn wait(set: &libc::sigset_t) {
    let mut signal = 0;
    // SAFETY: the set is initialised and blocked in every thread; `signal` is ours.
    while unsafe { libc::sigwait(set, &mut signal) } != 0 {}
}
