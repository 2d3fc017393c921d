//! The job's output as the coordinator stores it: masked values, repaired bytes, the output
//! limit, CR and ANSI kept, and several MiB arriving complete and in order.

mod e2e_support;

use coordinator_sim::Dialect;
use e2e_support::{assert_failed, log_of, show, Var, World};

/// Runs one queued payload job and returns its record and the log with the runner's output.
fn run_payload(world: &World, payload: serde_json::Value) -> (coordinator_sim::JobRecord, String) {
    let id = world.enqueue(payload);
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = log_of(&record);
    assert!(
        world.coordinator.violations().is_empty(),
        "{:?}",
        world.coordinator.violations()
    );
    (record, format!("{log}\n{}", show(&output)))
}

fn masked(key: &'static str, value: &'static str) -> Var {
    Var {
        key,
        value,
        masked: true,
        file: false,
    }
}

#[test]
fn masked_values_never_reach_the_coordinator() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"mask": {"stage": "test", "script": [
        "printf 'sp'; printf 'lit al'; printf 'l val'; printf 'ues ar'; printf 'e '; printf 'mask'; printf 'ed\\n'",
        "echo \"token=$TOP_SECRET_TOKEN\""],
        "after_script": ["echo \"after token=$TOP_SECRET_TOKEN\""]}}"#;
    let vars = [
        masked("M1", "split"),
        masked("M2", "all"),
        masked("M3", "values"),
        masked("M4", "are"),
        masked("M5", "masked"),
        masked("TOP_SECRET_TOKEN", "s3cr3t-t0ken-value"),
    ];
    let (record, log) = run_payload(&world, world.payload(pipeline, "mask", &vars));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    let trace = log_of(&record);
    assert!(
        trace.contains("[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]\n"),
        "{trace}"
    );
    assert!(trace.contains("token=[MASKED]\n"), "{trace}");
    assert!(trace.contains("after token=[MASKED]\n"), "{trace}");
    assert!(!trace.contains("s3cr3t-t0ken-value"), "{trace}");
    assert!(!trace.contains("split"), "{trace}");
    let patched = String::from_utf8_lossy(&record.trace_incremental);
    assert!(!patched.contains("s3cr3t-t0ken-value"), "{patched}");
    assert!(
        !log.contains("s3cr3t-t0ken-value"),
        "the runner's own log shows it: {log}"
    );
}

fn bytes_are_repaired_and_kept(dialect: Dialect) {
    let world = World::start(dialect, "", "");
    let pipeline = r#"{"bytes": {"stage": "test", "script": [
        "printf 'lone \\324 byte\\n'",
        "printf 'split \\303'; printf '\\251 whole\\n'",
        "printf 'progress 1\\rprogress 2\\n'",
        "printf '\\033[31mred\\033[0m\\n'"]}}"#;
    let (record, log) = run_payload(&world, world.payload(pipeline, "bytes", &[]));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    let trace = log_of(&record);
    assert!(trace.contains("lone \u{FFFD} byte\n"), "{trace:?}");
    assert!(trace.contains("split \u{e9} whole\n"), "{trace:?}");
    assert!(trace.contains("progress 1\rprogress 2\n"), "{trace:?}");
    assert!(trace.contains("\x1b[31mred\x1b[0m\n"), "{trace:?}");
    assert!(
        std::str::from_utf8(record.log()).is_ok(),
        "the stored log is UTF-8"
    );
}

#[test]
fn bytes_are_repaired_and_control_sequences_kept_with_gitlab() {
    bytes_are_repaired_and_kept(Dialect::GitLab);
}

#[test]
fn bytes_are_repaired_and_control_sequences_kept_with_alloyci() {
    bytes_are_repaired_and_kept(Dialect::AlloyCi);
}

#[test]
fn output_limit_appends_the_notice_and_the_job_reaches_its_result() {
    let world = World::start(Dialect::GitLab, "  output_limit = 1\n", "");
    let pipeline = r#"{"limit": {"stage": "test", "script": [
        "seq 1 5000", "echo after-the-limit", "exit 3"]}}"#;
    let (record, log) = run_payload(&world, world.payload(pipeline, "limit", &[]));
    assert_failed(&record, "script_failure", &log);
    assert_eq!(record.exit_code, Some(3), "{log}");
    let trace = log_of(&record);
    assert!(
        trace.contains(
            "\nJob's log exceeded limit of 1024 bytes.\nJob execution will continue but no more \
             output will be collected.\n"
        ),
        "{trace}"
    );
    assert!(!trace.contains("after-the-limit"), "{trace}");
    assert!(!trace.contains("\n4999\n"), "{trace}");
}

fn large_output_arrives_in_order(dialect: Dialect) {
    let world = World::start(dialect, "", "");
    // About 3.4 MB: several trace patches of at most 1 MiB each.
    let pipeline =
        r#"{"large": {"stage": "test", "script": ["seq 1 500000", "echo done-printing"]}}"#;
    let (record, log) = run_payload(&world, world.payload(pipeline, "large", &[]));
    assert_eq!(
        record.reported_state.as_deref(),
        Some("success"),
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    let expected: String = (1..=500_000).map(|n| format!("{n}\n")).collect();
    let trace = log_of(&record);
    let start = trace.find("\n1\n2\n3\n").expect("the output starts") + 1;
    assert_eq!(
        &trace[start..start + expected.len()],
        expected,
        "output complete and in order"
    );
    assert!(trace[start + expected.len()..].contains("done-printing\n"));
    if dialect == Dialect::GitLab {
        assert!(record.patches >= 4, "{} patches", record.patches);
    }
}

#[test]
fn several_mib_of_output_arrive_complete_with_gitlab() {
    large_output_arrives_in_order(Dialect::GitLab);
}

#[test]
fn several_mib_of_output_arrive_complete_with_alloyci() {
    large_output_arrives_in_order(Dialect::AlloyCi);
}

#[test]
fn output_limit_never_cuts_a_character_in_two() {
    let world = World::start(Dialect::AlloyCi, "  output_limit = 1\n", "");
    let pipeline = r#"{"wide": {"stage": "test", "script": [
        "for i in $(seq 1 300); do printf 'é€'; done; echo"]}}"#;
    let (record, log) = run_payload(&world, world.payload(pipeline, "wide", &[]));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    let trace = std::str::from_utf8(record.log()).expect("the stored log is UTF-8");
    assert!(!trace.contains('\u{FFFD}'), "{trace}");
    let cut = trace
        .find("\nJob's log exceeded limit of 1024 bytes.\n")
        .expect("notice");
    let last = trace[..cut].chars().last();
    assert!(
        matches!(last, Some('é' | '€')),
        "{last:?} before the notice"
    );
}
