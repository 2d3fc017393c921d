//! The shell scripts of a job's stages. Each is a plain POSIX `sh` script (bash runs it when
//! the image has bash) written into the pod's scripts volume before it runs, so nothing depends
//! on stdin EOF reaching the process.

use crate::coordinator::job::{Job, JobVariable};
use crate::executor::layout::PodLayout;
use crate::executor::variables::{deduplicated, lookup};

/// How the sources are brought into the project folder (`GIT_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitStrategy {
    /// Fresh clone: the project folder is emptied first.
    Clone,
    /// Reuse what is there and fetch.
    Fetch,
    /// Do not touch the sources.
    None,
}

/// Values a script generator needs besides the step itself.
pub struct ScriptContext<'a> {
    pub job: &'a Job,
    pub variables: &'a [JobVariable],
    pub layout: &'a PodLayout,
}

/// Why a script could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// A variable the runner reads has a value it does not understand.
    BadVariable {
        key: &'static str,
        value: String,
        accepted: &'static str,
    },
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::BadVariable {
                key,
                value,
                accepted,
            } => {
                write!(
                    f,
                    "variable {key} has value {value:?}; accepted: {accepted}"
                )
            }
        }
    }
}

impl std::error::Error for ScriptError {}

/// The command that writes a script of `len` bytes read from stdin to `path`, then runs it with
/// bash when the image has it, else sh. Stdin is read by byte count, never to EOF.
pub fn exec_command(path: &str, len: usize) -> Vec<String> {
    let program = format!(
        "head -c {len} > \"$0\" || exit 1; \
         if command -v bash >/dev/null 2>&1; then exec bash \"$0\" </dev/null; \
         else exec sh \"$0\" </dev/null; fi"
    );
    vec!["sh".into(), "-c".into(), program, path.into()]
}

/// The `GIT_STRATEGY` of the job: the variable when set, else fetch when the coordinator allows
/// it, else clone.
pub fn git_strategy(ctx: &ScriptContext) -> Result<GitStrategy, ScriptError> {
    match lookup(ctx.variables, "GIT_STRATEGY").map(str::trim) {
        None | Some("") if ctx.job.allow_git_fetch => Ok(GitStrategy::Fetch),
        None | Some("") => Ok(GitStrategy::Clone),
        Some("clone") => Ok(GitStrategy::Clone),
        Some("fetch") => Ok(GitStrategy::Fetch),
        Some("none") => Ok(GitStrategy::None),
        Some(other) => Err(ScriptError::BadVariable {
            key: "GIT_STRATEGY",
            value: other.to_string(),
            accepted: "clone, fetch or none",
        }),
    }
}

/// How many times a stage that `variable` governs is tried (1 to 10, default 1).
pub fn attempts(vars: &[JobVariable], key: &'static str) -> Result<u32, ScriptError> {
    match lookup(vars, key).map(str::trim) {
        None | Some("") => Ok(1),
        Some(text) => match text.parse::<u32>() {
            Ok(n @ 1..=10) => Ok(n),
            _ => Err(ScriptError::BadVariable {
                key,
                value: text.to_string(),
                accepted: "a whole number from 1 to 10",
            }),
        },
    }
}

/// The script that brings the sources at the job's sha into the project folder (helper).
pub fn get_sources(ctx: &ScriptContext) -> Result<String, ScriptError> {
    let strategy = git_strategy(ctx)?;
    let mut s = prelude(ctx);
    if strategy == GitStrategy::None {
        line(&mut s, "echo 'Skipping Git repository setup'");
        line(
            &mut s,
            &format!("mkdir -p {}", quote(&ctx.layout.project_dir)),
        );
        return Ok(s);
    }
    let depth = git_depth(ctx)?;
    let checkout = git_checkout(ctx)?;
    line(&mut s, "set -e");
    line(
        &mut s,
        &format!(
            "mkdir -p {dir} && cd {dir}",
            dir = quote(&ctx.layout.project_dir)
        ),
    );
    if strategy == GitStrategy::Clone {
        line(&mut s, "echo 'Cloning repository...'");
        line(&mut s, "find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +");
    } else {
        line(&mut s, "echo 'Fetching changes...'");
    }
    fetch_commands(&mut s, ctx, depth);
    if checkout {
        checkout_commands(&mut s, ctx);
    } else {
        line(&mut s, "echo 'Skipping Git checkout'");
    }
    Ok(s)
}

/// The user's script (`before_script` + `script` as one step) for the build container: one
/// shell process that prints each command and stops at the first one that fails.
pub fn user_step(ctx: &ScriptContext, commands: &[String]) -> String {
    let mut s = prelude(ctx);
    line(
        &mut s,
        &format!("cd {} || exit 1", quote(&ctx.layout.project_dir)),
    );
    line(&mut s, "set -e");
    line(&mut s, "(set -o pipefail) 2>/dev/null && set -o pipefail");
    for command in commands {
        echo_command(&mut s, command);
        line(&mut s, command);
    }
    s
}

/// The `after_script` commands, with `CI_JOB_STATUS` set to `job_status`.
pub fn after_step(ctx: &ScriptContext, commands: &[String], job_status: &str) -> String {
    let mut s = prelude(ctx);
    line(
        &mut s,
        &format!("export CI_JOB_STATUS={}", quote(job_status)),
    );
    line(
        &mut s,
        &format!("cd {} || exit 1", quote(&ctx.layout.project_dir)),
    );
    line(&mut s, "set -e");
    for command in commands {
        echo_command(&mut s, command);
        line(&mut s, command);
    }
    s
}

/// Notices for the variables the scripts cannot export: names that are no shell variable
/// names. (Values with a NUL byte are refused earlier, by [`check_values`].)
pub fn unexported(vars: &[JobVariable]) -> Vec<String> {
    deduplicated(vars)
        .into_iter()
        .filter(|v| !is_shell_name(&v.key))
        .map(|v| {
            format!(
                "variable {:?} is not exported to the job's scripts: a shell variable name is \
                 letters, digits and _, not starting with a digit",
                v.key
            )
        })
        .collect()
}

/// Values shorter than this are still masked, with a warning: every occurrence of a short
/// value in the log is replaced, the runner's own lines included.
pub const SHORT_MASK: usize = 8;

/// Warnings for masked variables whose values are short enough to blot out ordinary text.
pub fn short_masks(vars: &[JobVariable]) -> Vec<String> {
    deduplicated(vars)
        .into_iter()
        .filter(|v| v.masked && !v.value.is_empty() && v.value.chars().count() < SHORT_MASK)
        .map(|v| {
            format!(
                "variable {:?} is masked but shorter than {SHORT_MASK} characters: every \
                 occurrence of its value in this log is masked",
                v.key
            )
        })
        .collect()
}

/// Refuses variables whose value holds a NUL byte: no environment and no shell can carry it,
/// so the job could only fail later and less clearly.
pub fn check_values(vars: &[JobVariable]) -> Result<(), String> {
    match vars.iter().find(|v| v.value.contains('\0')) {
        Some(v) => Err(format!(
            "variable {:?} holds a NUL byte, which no environment or shell script can carry",
            v.key
        )),
        None => Ok(()),
    }
}

/// Quotes `value` for sh: single quotes, with each `'` written as `'\''`. Any byte but NUL
/// passes through unchanged.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn prelude(ctx: &ScriptContext) -> String {
    let mut s = String::from("# stage script written by alloy-runner\n");
    let vars = deduplicated(ctx.variables);
    if vars.iter().any(|v| v.file) {
        line(
            &mut s,
            &format!("mkdir -p {} && chmod 700 {0}", quote(&vars_dir(ctx))),
        );
    }
    for var in vars.into_iter().filter(|v| is_shell_name(&v.key)) {
        if var.file {
            let path = format!("{}/{}", vars_dir(ctx), var.key);
            line(
                &mut s,
                &format!("printf '%s' {} > {}", quote(&var.value), quote(&path)),
            );
            line(&mut s, &format!("export {}={}", var.key, quote(&path)));
        } else {
            line(&mut s, &format!("export {}={}", var.key, quote(&var.value)));
        }
    }
    s
}

fn vars_dir(ctx: &ScriptContext) -> String {
    ctx.layout.script_path("vars")
}

fn fetch_commands(s: &mut String, ctx: &ScriptContext, depth: Option<u32>) {
    let url = quote(ctx.job.git_info.repo_url.expose());
    line(
        s,
        "if [ ! -d .git ]; then git -c init.defaultBranch=main init -q; fi",
    );
    line(
        s,
        &format!("git remote remove origin 2>/dev/null || true; git remote add origin {url}"),
    );
    let depth_flag = depth.map(|d| format!(" --depth {d}")).unwrap_or_default();
    let refspecs = refspecs(ctx)
        .iter()
        .map(|r| quote(r))
        .collect::<Vec<_>>()
        .join(" ");
    line(
        s,
        &format!("git fetch -q --prune{depth_flag} origin {refspecs}"),
    );
}

fn refspecs(ctx: &ScriptContext) -> Vec<String> {
    let git = &ctx.job.git_info;
    let own = if git.ref_type == "tag" {
        format!("+refs/tags/{0}:refs/tags/{0}", git.ref_name)
    } else {
        format!("+refs/heads/{0}:refs/remotes/origin/{0}", git.ref_name)
    };
    // Jobs for pull requests from forks need the pull refs (AlloyCI builds them).
    vec![own, "+refs/pull/*:refs/remotes/origin/pull/*".to_string()]
}

fn checkout_commands(s: &mut String, ctx: &ScriptContext) {
    let git = &ctx.job.git_info;
    let short: String = git.sha.chars().take(8).collect();
    line(
        s,
        &format!(
            "echo {}",
            quote(&format!("Checking out {short} as {}...", git.ref_name))
        ),
    );
    line(
        s,
        &format!(
            "git -c advice.detachedHead=false checkout -f -q {}",
            quote(&git.sha)
        ),
    );
    line(s, "git clean -ffdx -q");
}

fn git_depth(ctx: &ScriptContext) -> Result<Option<u32>, ScriptError> {
    match lookup(ctx.variables, "GIT_DEPTH").map(str::trim) {
        None | Some("") | Some("0") => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .map(Some)
            .map_err(|_| ScriptError::BadVariable {
                key: "GIT_DEPTH",
                value: text.to_string(),
                accepted: "a whole number (0 = full history)",
            }),
    }
}

fn git_checkout(ctx: &ScriptContext) -> Result<bool, ScriptError> {
    match lookup(ctx.variables, "GIT_CHECKOUT").map(str::trim) {
        None | Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ScriptError::BadVariable {
            key: "GIT_CHECKOUT",
            value: other.to_string(),
            accepted: "true or false",
        }),
    }
}

/// How much of a command the trace shows before it is shortened.
const MAX_SHOWN_COMMAND: usize = 1000;

fn echo_command(s: &mut String, command: &str) {
    let (first, multi_line) = match command.split_once('\n') {
        Some((first, _)) => (first, true),
        None => (command, false),
    };
    let mut shown = format!("$ {}", shorten(first, MAX_SHOWN_COMMAND));
    if multi_line {
        shown.push_str(" # collapsed multi-line command");
    }
    line(
        s,
        &format!("printf '\\033[32;1m%s\\033[0;m\\n' {}", quote(&shown)),
    );
}

/// `text` cut at `max` bytes (on a character boundary), saying how much was left out.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} more bytes not shown)",
        &text[..end],
        text.len() - end
    )
}

fn is_shell_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn line(s: &mut String, text: &str) {
    s.push_str(text);
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::job::GitInfo;
    use crate::secret::Secret;
    use std::process::Command;

    fn job() -> Job {
        Job {
            git_info: GitInfo {
                repo_url: Secret::new("https://h/acme/app.git"),
                ref_name: "main".into(),
                sha: "0123456789abcdef".into(),
                ref_type: "branch".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A layout whose project and scripts folders are one fresh temporary folder.
    fn temp_layout(tag: &str) -> (std::path::PathBuf, PodLayout) {
        let dir = std::env::temp_dir().join(format!("alloy-script-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let layout = PodLayout {
            builds_dir: "/tmp".into(),
            project_dir: dir.display().to_string(),
            scripts_dir: dir.display().to_string(),
            helper_bin: String::new(),
        };
        (dir, layout)
    }

    fn layout() -> PodLayout {
        PodLayout {
            builds_dir: "/builds".into(),
            project_dir: "/builds/a/b".into(),
            scripts_dir: "/alloy-runner/scripts".into(),
            helper_bin: "/alloy-runner/scripts/bin/alloy-runner".into(),
        }
    }

    fn var(key: &str, value: &str) -> JobVariable {
        JobVariable {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }
    }

    fn run_sh(script: &str) -> (String, i32) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn quoting_passes_every_byte_through_sh() {
        let value = "it's $(HOME) `x` \\ \"q\" $$ \n new line\t*";
        let (out, code) = run_sh(&format!("printf '%s' {}", quote(value)));
        assert_eq!((out.as_str(), code), (value, 0));
    }

    #[test]
    fn user_step_stops_at_the_first_failing_command_with_its_code() {
        let (dir, layout) = temp_layout("stop");
        let vars = vec![var("GREETING", "hi 'there'")];
        let job = job();
        let ctx = ScriptContext {
            job: &job,
            variables: &vars,
            layout: &layout,
        };
        let commands = vec![
            "echo \"$GREETING\"".to_string(),
            "exit 3".into(),
            "echo never".into(),
        ];
        let (out, code) = run_sh(&user_step(&ctx, &commands));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(code, 3);
        assert!(out.contains("hi 'there'\n"), "{out}");
        assert!(!out.contains("never\n"), "{out}");
    }

    #[test]
    fn file_variables_become_files_holding_the_value() {
        let (dir, layout) = temp_layout("file");
        let vars = vec![JobVariable {
            file: true,
            ..var("KEY_FILE", "line1\nline2")
        }];
        let job = job();
        let ctx = ScriptContext {
            job: &job,
            variables: &vars,
            layout: &layout,
        };
        let (out, code) = run_sh(&user_step(&ctx, &["cat \"$KEY_FILE\"".to_string()]));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(code, 0);
        assert!(out.ends_with("line1\nline2"), "{out}");
    }

    #[test]
    fn git_strategy_follows_the_variable_and_rejects_unknown_values() {
        let job = job();
        let layout = layout();
        let vars = vec![var("GIT_STRATEGY", "none")];
        let ctx = ScriptContext {
            job: &job,
            variables: &vars,
            layout: &layout,
        };
        assert_eq!(git_strategy(&ctx), Ok(GitStrategy::None));
        let vars = vec![var("GIT_STRATEGY", "rsync")];
        let ctx = ScriptContext {
            job: &job,
            variables: &vars,
            layout: &layout,
        };
        assert_eq!(
            git_strategy(&ctx).unwrap_err().to_string(),
            "variable GIT_STRATEGY has value \"rsync\"; accepted: clone, fetch or none"
        );
    }

    #[test]
    fn get_sources_uses_depth_and_the_fork_refspec() {
        let job = job();
        let layout = layout();
        let vars = vec![var("GIT_DEPTH", "3")];
        let ctx = ScriptContext {
            job: &job,
            variables: &vars,
            layout: &layout,
        };
        let script = get_sources(&ctx).expect("script");
        assert!(script.contains(
            "git fetch -q --prune --depth 3 origin '+refs/heads/main:refs/remotes/origin/main' \
             '+refs/pull/*:refs/remotes/origin/pull/*'"
        ));
        assert!(script.contains("checkout -f -q '0123456789abcdef'"));
    }

    #[test]
    fn long_commands_are_shown_shortened_but_run_whole() {
        let long = format!("echo {}", "x".repeat(5000));
        let job = job();
        let layout = layout();
        let ctx = ScriptContext {
            job: &job,
            variables: &[],
            layout: &layout,
        };
        let script = user_step(&ctx, std::slice::from_ref(&long));
        assert!(script.contains("(4005 more bytes not shown)"), "{script}");
        assert!(script.contains(&format!("\n{long}\n")));
    }

    #[test]
    fn nul_bytes_and_odd_names_are_reported() {
        let vars = vec![var("A B", "1"), var("OK", "2")];
        assert_eq!(unexported(&vars).len(), 1);
        assert!(unexported(&vars)[0].starts_with("variable \"A B\" is not exported"));
        let bad = vec![var("K", "a\0b")];
        assert_eq!(
            check_values(&bad).unwrap_err(),
            "variable \"K\" holds a NUL byte, which no environment or shell script can carry"
        );
        assert_eq!(check_values(&vars), Ok(()));
    }

    #[test]
    fn short_masked_values_are_announced_by_name_only() {
        let vars = vec![
            JobVariable {
                masked: true,
                ..var("TINY", "e")
            },
            JobVariable {
                masked: true,
                ..var("LONG", "long-enough-secret")
            },
        ];
        let warnings = short_masks(&vars);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("variable \"TINY\" is masked but shorter than 8"));
        assert!(!warnings[0].contains("\"e\""));
    }

    #[test]
    fn attempts_accept_one_to_ten() {
        assert_eq!(
            attempts(&[var("GET_SOURCES_ATTEMPTS", "3")], "GET_SOURCES_ATTEMPTS"),
            Ok(3)
        );
        assert_eq!(attempts(&[], "GET_SOURCES_ATTEMPTS"), Ok(1));
        assert!(attempts(&[var("GET_SOURCES_ATTEMPTS", "0")], "GET_SOURCES_ATTEMPTS").is_err());
    }
}
