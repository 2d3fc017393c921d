//! The variables a job sees: the runner's own `CI_*`, the runner entry's `environment`, then
//! the job's own (a later entry with the same key wins).

use crate::config::RunnerConfig;
use crate::coordinator::job::{Job, JobVariable};
use crate::executor::layout::PodLayout;

/// The runner's version, as `CI_RUNNER_VERSION` shows it.
pub const RUNNER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// All variables of a job, in precedence order (later wins on lookup).
pub fn job_variables(
    runner: &RunnerConfig,
    job: &Job,
    layout: &PodLayout,
    concurrent_id: u32,
) -> Vec<JobVariable> {
    let mut vars = runner_variables(job, layout, concurrent_id);
    vars.extend(runner.environment.iter().map(|(k, v)| public(k, v)));
    vars.extend(job.variables.iter().cloned());
    vars
}

/// The value of `key`, the last entry winning.
pub fn lookup<'a>(vars: &'a [JobVariable], key: &str) -> Option<&'a str> {
    vars.iter()
        .rev()
        .find(|v| v.key == key)
        .map(|v| v.value.as_str())
}

/// The variables with duplicates removed (the last entry of each key kept, at its place).
pub fn deduplicated(vars: &[JobVariable]) -> Vec<&JobVariable> {
    vars.iter()
        .enumerate()
        .filter(|(i, v)| !vars[i + 1..].iter().any(|later| later.key == v.key))
        .map(|(_, v)| v)
        .collect()
}

/// The non-empty values of masked variables, longest first.
pub fn masked_values(vars: &[JobVariable]) -> Vec<String> {
    let mut values: Vec<String> = vars
        .iter()
        .filter(|v| v.masked && !v.value.is_empty())
        .map(|v| v.value.clone())
        .collect();
    values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    values.dedup();
    values
}

fn runner_variables(job: &Job, layout: &PodLayout, concurrent_id: u32) -> Vec<JobVariable> {
    let image = job
        .image
        .as_ref()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    vec![
        public("CI_SERVER", "yes"),
        public("CI_BUILDS_DIR", &layout.builds_dir),
        public("CI_PROJECT_DIR", &layout.project_dir),
        public("CI_CONCURRENT_ID", &concurrent_id.to_string()),
        public("CI_JOB_IMAGE", &image),
        public("CI_RUNNER_VERSION", RUNNER_VERSION),
        public(
            "CI_RUNNER_REVISION",
            option_env!("ALLOY_RUNNER_GIT_REVISION").unwrap_or("unknown"),
        ),
        public(
            "CI_RUNNER_EXECUTABLE_ARCH",
            &format!("{}/{}", std::env::consts::OS, arch()),
        ),
        public("CI_DISPOSABLE_ENVIRONMENT", "true"),
    ]
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn public(key: &str, value: &str) -> JobVariable {
    JobVariable {
        key: key.to_string(),
        value: value.to_string(),
        public: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str, masked: bool) -> JobVariable {
        JobVariable {
            key: key.into(),
            value: value.into(),
            masked,
            ..Default::default()
        }
    }

    #[test]
    fn later_entries_win_and_duplicates_keep_the_last() {
        let vars = vec![
            var("A", "1", false),
            var("B", "2", false),
            var("A", "3", false),
        ];
        assert_eq!(lookup(&vars, "A"), Some("3"));
        let kept: Vec<(&str, &str)> = deduplicated(&vars)
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(kept, vec![("B", "2"), ("A", "3")]);
    }

    #[test]
    fn masked_values_are_longest_first_without_empties() {
        let vars = vec![
            var("S", "ab", true),
            var("T", "", true),
            var("U", "abcd", true),
        ];
        assert_eq!(
            masked_values(&vars),
            vec!["abcd".to_string(), "ab".to_string()]
        );
    }
}
