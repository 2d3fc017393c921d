//! The stages the job runs and the variables it sees: git strategies, depth, checkout,
//! attempts, values that arrive byte for byte, file variables and trace sections.

mod e2e_support;

use coordinator_sim::Dialect;
use e2e_support::{assert_failed, log_of, show, Var, World};

/// A repository with two commits, the second one changing hello.txt.
fn two_commit_repo(world: &World) -> std::path::PathBuf {
    let repo = world.repo(&[("hello.txt", "hello v1\n")]);
    world.commit(&repo, &[("hello.txt", "hello v2\n")]);
    repo
}

/// Runs the one job `name` of `pipeline` over `repo` and returns its record and log.
fn run(
    world: &World,
    pipeline: &str,
    repo: &std::path::Path,
    name: &str,
) -> (coordinator_sim::JobRecord, String) {
    let run = world.pipeline(pipeline, repo);
    let output = world.run_single(1);
    let id = run.job_id(name).expect("job queued");
    let record = world.finished(id);
    let log = log_of(&record);
    (record, format!("{log}\n{}", show(&output)))
}

#[test]
fn clone_with_depth_one_checks_out_the_last_commit_only() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = two_commit_repo(&world);
    let pipeline = r#"{"clone": {"stage": "test",
        "variables": {"GIT_STRATEGY": "clone", "GIT_DEPTH": "1"},
        "script": ["cat hello.txt", "echo \"commits=$(git rev-list --count HEAD)\""]}}"#;
    // The simulator serves git's dumb HTTP, which cannot make shallow clones; a file:// URL
    // can, with the repository mounted into the pod at the same path.
    let repo = std::fs::canonicalize(&repo).expect("repo path");
    let volume = format!(
        "    [[runners.kubernetes.volumes.host_path]]\n      name = \"origin\"\n      \
         mount_path = \"{0}\"\n      host_path = \"{0}\"\n      read_only = true\n",
        repo.display()
    );
    let section = world.runner_section("e2e", e2e_support::RUNNER_TOKEN, "", &volume);
    world.write_config(1, &[section]);
    let source = coordinator_sim::PipelineSource {
        file_url: true,
        ..coordinator_sim::PipelineSource::local_path(&repo)
    };
    let run = world
        .coordinator
        .enqueue_pipeline_from(pipeline, source)
        .expect("pipeline queued");
    let output = world.run_single(1);
    let record = world.finished(run.job_id("clone").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("Cloning repository..."), "{log}");
    assert!(log.contains("hello v2\n"), "{log}");
    assert!(log.contains("commits=1\n"), "{log}");
}

#[test]
fn fetch_brings_the_whole_history_by_default() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let repo = two_commit_repo(&world);
    let pipeline = r#"{"fetch": {"stage": "test", "variables": {"GIT_STRATEGY": "fetch"},
        "script": ["cat hello.txt", "echo \"commits=$(git rev-list --count HEAD)\""]}}"#;
    let (record, log) = run(&world, pipeline, &repo, "fetch");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("Fetching changes..."), "{log}");
    assert!(log.contains("hello v2\n"), "{log}");
    assert!(log.contains("commits=2\n"), "{log}");
}

#[test]
fn strategy_none_brings_no_sources() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = two_commit_repo(&world);
    let pipeline = r#"{"none": {"stage": "test", "variables": {"GIT_STRATEGY": "none"},
        "script": ["test ! -e hello.txt && test ! -e .git && echo no-sources-here"]}}"#;
    let (record, log) = run(&world, pipeline, &repo, "none");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("Skipping Git repository setup"), "{log}");
    assert!(log.contains("no-sources-here\n"), "{log}");
}

#[test]
fn checkout_false_fetches_without_checking_out() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = two_commit_repo(&world);
    let pipeline = r#"{"nocheckout": {"stage": "test", "variables": {"GIT_CHECKOUT": "false"},
        "script": ["test ! -e hello.txt && test -d .git && echo not-checked-out"]}}"#;
    let (record, log) = run(&world, pipeline, &repo, "nocheckout");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("Skipping Git checkout"), "{log}");
    assert!(log.contains("not-checked-out\n"), "{log}");
}

#[test]
fn get_sources_is_tried_as_many_times_as_asked() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"attempts": {"stage": "test", "script": ["echo not-reached"]}}"#;
    let vars = [
        Var::plain("GIT_STRATEGY", "clone"),
        Var::plain("GET_SOURCES_ATTEMPTS", "3"),
    ];
    let id = world.enqueue(world.payload(pipeline, "attempts", &vars));
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_failed(&record, "script_failure", &log);
    assert!(
        log.contains("Retrying getting sources (attempt 2 of 3)..."),
        "{log}"
    );
    assert!(
        log.contains("Retrying getting sources (attempt 3 of 3)..."),
        "{log}"
    );
    assert!(!log.contains("attempt 4"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

const TRICKY_PIPELINE: &str = r#"{"tricky": {"stage": "test",
    "variables": {
        "QUOTED": "it's \"quoted\" \\back `tick`",
        "DOLLAR": "$HOME $(NOT_EXPANDED) ${ALSO} $$ end$",
        "NEWLINES": "line1\nline2\n\nline4"
    },
    "services": [{"name": "alpine:3.20", "alias": "envdump",
        "command": ["sh", "-c", "cat /proc/self/environ > /sync/service-env; sleep 60"]}],
    "script": [
        "printf '[%s]\\n' \"$QUOTED\" \"$DOLLAR\" \"$NEWLINES\"",
        "for i in $(seq 1 100); do test -s /sync/service-env && break; sleep 0.1; done"
    ]}}"#;

#[test]
fn variable_values_arrive_byte_for_byte_in_the_script_and_the_containers() {
    let sync = e2e_support::TempDir::new("sync");
    let volume = format!(
        "    [[runners.kubernetes.volumes.host_path]]\n      name = \"sync\"\n      \
         mount_path = \"/sync\"\n      host_path = \"{}\"\n",
        sync.path().display()
    );
    let world = World::start(Dialect::GitLab, "", &volume);
    let repo = world.repo(&[("README", "e2e\n")]);
    let (record, log) = run(&world, TRICKY_PIPELINE, &repo, "tricky");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    let quoted = "it's \"quoted\" \\back `tick`";
    let dollar = "$HOME $(NOT_EXPANDED) ${ALSO} $$ end$";
    let newlines = "line1\nline2\n\nline4";
    assert!(
        log.contains(&format!("[{quoted}]\n[{dollar}]\n[{newlines}]\n")),
        "{log}"
    );
    let env = std::fs::read(sync.path().join("service-env")).expect("the service wrote its env");
    let env: Vec<String> = env
        .split(|b| *b == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect();
    for (key, value) in [
        ("QUOTED", quoted),
        ("DOLLAR", dollar),
        ("NEWLINES", newlines),
    ] {
        let entry = format!("{key}={value}");
        assert!(env.contains(&entry), "{entry:?} not in {env:?}");
    }
}

#[test]
fn file_variables_become_files() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"files": {"stage": "test", "script": [
        "test -f \"$SETTINGS_FILE\" && echo is-a-file", "cat \"$SETTINGS_FILE\"", "echo end-of-file"]}}"#;
    let vars = [Var {
        key: "SETTINGS_FILE",
        value: "a=1\nb='two' \"3\" $x\n",
        masked: false,
        file: true,
    }];
    let id = world.enqueue(world.payload(pipeline, "files", &vars));
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("is-a-file\n"), "{log}");
    assert!(log.contains("\na=1\nb='two' \"3\" $x\n"), "{log}");
    assert!(log.contains("end-of-file\n"), "{log}");
}

#[test]
fn gitlab_gets_trace_sections_and_alloyci_does_not() {
    let marked = regex::Regex::new(concat!(
        r"section_start:\d+:step_script\r\x1b\[0K(?s:.*)in-section\n",
        r"(?s:.*)section_end:\d+:step_script\r\x1b\[0K"
    ))
    .expect("pattern");
    for dialect in [Dialect::GitLab, Dialect::AlloyCi] {
        let world = World::start(dialect, "", "");
        let repo = world.repo(&[("README", "e2e\n")]);
        let pipeline = r#"{"sections": {"stage": "test", "script": ["echo in-section"]}}"#;
        let (record, log) = run(&world, pipeline, &repo, "sections");
        assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
        let trace = log_of(&record);
        assert_eq!(
            marked.is_match(&trace),
            dialect == Dialect::GitLab,
            "{dialect:?}: {trace:?}"
        );
        assert_eq!(
            trace.contains("section_start:"),
            dialect == Dialect::GitLab,
            "{trace:?}"
        );
    }
}
