//! The real binary's `register`, `list`, `verify` and `unregister` against the coordinator
//! simulator, in both dialects, with a config.toml in a temporary folder. Tokens never show in
//! what the runner prints, even at the trace log level.

mod coordinator_sim_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alloy_runner::coordinator::{Client, Registration, RunnerInfo};
use alloy_runner::secret::Secret;
use coordinator_sim::{Dialect, Options, SimHandle};
use coordinator_sim_support::TempDir;

const REGISTRATION_TOKEN: &str = "sim-reg-token-7Hq2Zx";
const NAME: &str = "sim-runner";

/// What one run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Fails the test if `secret` shows in stdout or stderr.
    fn assert_hides(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "a token leaked:\n{}",
            self.show()
        );
    }
}

/// A coordinator simulator and a config.toml path in a temporary folder.
struct Setup {
    sim: SimHandle,
    /// Holds config.toml; removed with the setup.
    _dir: TempDir,
    config: PathBuf,
}

impl Setup {
    fn start(dialect: Dialect) -> Setup {
        let options = Options {
            dialect,
            registration_token: REGISTRATION_TOKEN.into(),
            ..Options::default()
        };
        let sim = coordinator_sim::Sim::start(options).expect("the simulator starts");
        let dir = TempDir::new("sim-commands");
        let config = dir.0.join("config.toml");
        Setup {
            sim,
            _dir: dir,
            config,
        }
    }

    /// Runs the binary at the trace log level with this setup's config.toml.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alloy-runner"));
        command
            .env_remove("RUST_LOG")
            .env_remove("ALLOY_RUNNER_CONFIG")
            .env_remove("REGISTRATION_TOKEN")
            .env_remove("CI_SERVER_URL")
            .arg("--config")
            .arg(&self.config)
            .args(["--log-level", "trace"])
            .args(args)
            .envs(env.iter().copied());
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("the binary runs");
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// `register` with flags and the registration token from the environment.
    fn register(&self) -> Run {
        let url = self.sim.url().to_string();
        let args = [
            "register",
            "--non-interactive",
            "--url",
            url.as_str(),
            "--name",
            NAME,
            "--tag-list",
            "k8s,linux",
            "--kubernetes-namespace",
            "ci",
        ];
        self.run(&args, &[("REGISTRATION_TOKEN", REGISTRATION_TOKEN)])
    }

    /// The runner token stored in config.toml.
    fn stored_token(&self) -> String {
        let config = alloy_runner::config::load(&self.config).expect("config.toml loads");
        let runner = config.runners.first().expect("one runner");
        let token = runner.token.as_ref().expect("a stored token");
        token.expose().to_string()
    }

    fn runner_names(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        let table: toml::Table = text.parse().expect("config.toml is TOML");
        let runners = table.get("runners").and_then(|r| r.as_array());
        runners
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect()
    }
}

fn registered_token_length(dialect: Dialect) -> usize {
    match dialect {
        Dialect::AlloyCi => 14,
        Dialect::GitLab => 20,
    }
}

fn register_list_verify_and_unregister(dialect: Dialect) {
    let setup = Setup::start(dialect);

    // register: the coordinator knows the runner, config.toml holds its token.
    let run = setup.register();
    assert_eq!(run.code, Some(0), "{}", run.show());
    let runners = setup.sim.runners();
    assert_eq!(runners.len(), 1);
    assert_eq!(runners[0].description, NAME);
    assert_eq!(runners[0].tags, ["k8s", "linux"]);
    assert_eq!(runners[0].info["executor"], "kubernetes");
    let token = setup.stored_token();
    assert_eq!(token.len(), registered_token_length(dialect));
    run.assert_hides(REGISTRATION_TOKEN);
    run.assert_hides(&token);

    // list shows it.
    let run = setup.run(&["list"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.show());
    let row = run
        .stdout
        .lines()
        .find(|line| line.starts_with(NAME))
        .unwrap_or_else(|| panic!("no row for the runner:\n{}", run.show()));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], [NAME, setup.sim.url(), "kubernetes", "ci"]);
    run.assert_hides(&token);

    // verify accepts it and keeps it.
    let run = setup.run(&["verify", "--delete"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.stdout.contains(&format!("runner \"{NAME}\": is alive")),
        "{}",
        run.show()
    );
    assert_eq!(setup.runner_names(), [NAME]);
    run.assert_hides(&token);

    // unregister removes it on both sides.
    let run = setup.run(&["unregister", "--name", NAME], &[]);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(setup.sim.runners().is_empty());
    assert!(setup.runner_names().is_empty());
    run.assert_hides(&token);
    assert!(
        setup.sim.violations().is_empty(),
        "{:#?}",
        setup.sim.violations()
    );
}

#[test]
fn register_list_verify_and_unregister_alloyci() {
    register_list_verify_and_unregister(Dialect::AlloyCi);
}

#[test]
fn register_list_verify_and_unregister_gitlab() {
    register_list_verify_and_unregister(Dialect::GitLab);
}

fn verify_delete_drops_a_runner_removed_on_the_coordinator(dialect: Dialect) {
    let setup = Setup::start(dialect);
    let run = setup.register();
    assert_eq!(run.code, Some(0), "{}", run.show());
    let token = setup.stored_token();
    let id = setup.sim.runners()[0].id;
    assert!(setup.sim.remove_runner(id));

    // Without --delete the entry stays.
    let run = setup.run(&["verify"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.stdout.contains("is removed"), "{}", run.show());
    assert_eq!(setup.runner_names(), [NAME]);

    let run = setup.run(&["verify", "--delete"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.stdout.contains("Removed 1 runner(s)"), "{}", run.show());
    assert!(setup.runner_names().is_empty());
    run.assert_hides(&token);
    assert!(
        setup.sim.violations().is_empty(),
        "{:#?}",
        setup.sim.violations()
    );
}

#[test]
fn verify_delete_drops_a_runner_removed_on_the_coordinator_alloyci() {
    verify_delete_drops_a_runner_removed_on_the_coordinator(Dialect::AlloyCi);
}

#[test]
fn verify_delete_drops_a_runner_removed_on_the_coordinator_gitlab() {
    verify_delete_drops_a_runner_removed_on_the_coordinator(Dialect::GitLab);
}

#[test]
fn a_wrong_registration_token_exits_1_with_a_clear_message() {
    let setup = Setup::start(Dialect::GitLab);
    let url = setup.sim.url().to_string();
    let wrong = "wrong-reg-token-Qw3";
    let run = setup.run(
        &["register", "--url", &url, "--registration-token", wrong],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(
        run.stderr
            .contains("the coordinator refused the registration token"),
        "{}",
        run.show()
    );
    run.assert_hides(wrong);
    assert!(setup.sim.runners().is_empty());
    assert!(!setup.config.exists(), "no config.toml is written");
}

#[test]
fn a_value_the_runner_would_reject_is_refused_before_registering() {
    let setup = Setup::start(Dialect::GitLab);
    let url = setup.sim.url().to_string();
    let args = [
        "register",
        "--url",
        &url,
        "--registration-token",
        REGISTRATION_TOKEN,
    ];
    let run = setup.run(
        &[&args[..], &["--kubernetes-cpu-limit", "abc"]].concat(),
        &[],
    );
    assert_eq!(run.code, Some(2), "{}", run.show());
    assert!(
        run.stderr.contains("runners[0].kubernetes.cpu_limit"),
        "{}",
        run.show()
    );
    assert_eq!(setup.sim.requests(coordinator_sim::Endpoint::Register), 0);
    assert!(!setup.config.exists(), "no config.toml is written");
}

#[test]
fn a_bad_flag_exits_2_and_names_it() {
    let setup = Setup::start(Dialect::AlloyCi);
    let run = setup.run(&["register", "--bogus-flag"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.show());
    assert!(run.stderr.contains("--bogus-flag"), "{}", run.show());
    assert_eq!(setup.sim.requests(coordinator_sim::Endpoint::Register), 0);
}

#[test]
fn no_reachable_debug_output_shows_a_token() {
    let setup = Setup::start(Dialect::GitLab);
    let client = Client::new(setup.sim.url()).expect("a loopback url");
    let registration = Registration {
        description: NAME.into(),
        run_untagged: true,
        ..Registration::default()
    };
    let registered = client
        .register(
            &Secret::new(REGISTRATION_TOKEN),
            &registration,
            &RunnerInfo::default(),
        )
        .expect("registered");
    let token = registered.token.expose().to_string();
    assert!(!format!("{registered:?}").contains(&token));

    write_config(&setup.config, setup.sim.url(), &token);
    let config = alloy_runner::config::load(&setup.config).expect("config.toml loads");
    let shown = format!("{config:?} {:?}", config.runners[0]);
    assert!(!shown.contains(&token), "{shown}");
    assert!(!shown.contains("bearer-t0ken-9"), "{shown}");

    // A job handed to this runner: its token is in the payload, never in the Debug.
    let id = setup
        .sim
        .enqueue_payload(
            serde_json::from_str(include_str!("../fixtures/jobs/sim-gitlab-basic.json"))
                .expect("fixture JSON"),
        )
        .expect("queued");
    let answer = client
        .request_job(&Secret::new(&token), &RunnerInfo::default())
        .expect("an answer");
    let shown = format!("{answer:?}");
    assert!(shown.contains(&format!("id: {id}")), "{shown}");
    let job_token = "3Jd9a0QkLw2ZpA";
    assert!(
        !shown.contains(job_token) && !shown.contains(&token),
        "{shown}"
    );
    assert!(
        setup.sim.violations().is_empty(),
        "{:#?}",
        setup.sim.violations()
    );
}

fn write_config(path: &Path, url: &str, token: &str) {
    let text = format!(
        "[[runners]]\n  name = \"{NAME}\"\n  url = \"{url}\"\n  token = \"{token}\"\n  \
         executor = \"kubernetes\"\n  [runners.kubernetes]\n    host = \"https://127.0.0.1:1\"\n    \
         bearer_token = \"bearer-t0ken-9\"\n"
    );
    std::fs::write(path, text).expect("config.toml written");
}
