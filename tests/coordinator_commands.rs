//! `register`, `verify` and `unregister` against scripted loopback coordinators and config
//! files in temporary folders.

mod coordinator_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use alloy_runner::commands::{register, unregister, verify, CommandError, Globals};
use coordinator_support::{Reply, Server, TempDir};
use serde_json::json;

fn globals(path: &Path) -> Globals {
    Globals {
        config_path: path.to_path_buf(),
        log_level: None,
    }
}

fn parser(args: &[&str]) -> lexopt::Parser {
    lexopt::Parser::from_args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

fn register_with(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), CommandError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    register::run_with_env(&globals(path), &mut parser(args), &|name| {
        env.get(name).cloned()
    })
}

fn registering_server() -> Server {
    Server::start(|request| match request.method.as_str() {
        "POST" => Reply::new(201).json(json!({"id": 9, "token": "fresh-runner-t"})),
        _ => Reply::new(204),
    })
}

fn parsed(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).expect("the file exists");
    text.parse::<toml::Table>().expect("the file is valid TOML")
}

fn runners(table: &toml::Table) -> Vec<toml::Table> {
    let list = table
        .get("runners")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    list.into_iter()
        .filter_map(|r| r.as_table().cloned())
        .collect()
}

const EXISTING: &str = r#"# Runner configuration, kept by hand.
concurrent = 4 # two per node

[[runners]]
  # The old runner.
  name = "old"
  url = "http://127.0.0.1:1"
  token = "old-token-0001"
  executor = "kubernetes"
  [runners.kubernetes]
    namespace = "ci"
"#;

#[test]
fn register_appends_an_entry_and_keeps_the_file_and_its_comments() {
    let server = registering_server();
    let dir = TempDir::new("register");
    let path = dir.0.join("config.toml");
    std::fs::write(&path, EXISTING).expect("write");
    let url = server.url();
    let args = [
        "--url",
        &url,
        "--registration-token",
        "reg-t",
        "--name",
        "k8s-2",
        "--tag-list",
        "a, b",
        "--run-untagged",
        "--kubernetes-namespace",
        "builds",
        "--kubernetes-cpu-limit",
        "1500m",
        "--kubernetes-privileged",
        "true",
        "--kubernetes-poll-timeout",
        "300",
    ];
    register_with(&path, &args, &[]).expect("register succeeds");

    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.starts_with(EXISTING),
        "the old content is untouched:\n{text}"
    );
    let table = parsed(&path);
    let runners = runners(&table);
    assert_eq!(runners.len(), 2);
    let new = &runners[1];
    assert_eq!(new["name"].as_str(), Some("k8s-2"));
    assert_eq!(new["url"].as_str(), Some(url.as_str()));
    assert_eq!(new["token"].as_str(), Some("fresh-runner-t"));
    assert_eq!(new["executor"].as_str(), Some("kubernetes"));
    let kubernetes = new["kubernetes"].as_table().expect("a kubernetes table");
    assert_eq!(kubernetes["namespace"].as_str(), Some("builds"));
    assert_eq!(kubernetes["cpu_limit"].as_str(), Some("1500m"));
    assert_eq!(kubernetes["privileged"].as_bool(), Some(true));
    assert_eq!(kubernetes["poll_timeout"].as_integer(), Some(300));

    let body = server.requests()[0].json();
    assert_eq!(body["token"], "reg-t");
    assert_eq!(
        (body["description"].clone(), body["tag_list"].clone()),
        (json!("k8s-2"), json!("a,b"))
    );
    assert_eq!(
        (body["run_untagged"].clone(), body["locked"].clone()),
        (json!(true), json!(false))
    );
}

#[cfg(unix)]
#[test]
fn register_creates_the_folder_and_a_private_file_from_the_environment() {
    use std::os::unix::fs::PermissionsExt;
    let server = registering_server();
    let dir = TempDir::new("register-env");
    let path: PathBuf = dir.0.join("etc/alloy-runner/config.toml");
    let url = server.url();
    let env = [
        ("CI_SERVER_URL", url.as_str()),
        ("REGISTRATION_TOKEN", "reg-env"),
        ("RUNNER_NAME", "from-env"),
        ("RUNNER_TAG_LIST", "x"),
        ("REGISTER_LOCKED", "true"),
        ("KUBERNETES_HOST", "https://127.0.0.1:6443"),
        ("KUBERNETES_NAMESPACE", "env-ns"),
    ];
    register_with(&path, &["--non-interactive"], &env).expect("register succeeds");

    let mode = std::fs::metadata(&path)
        .expect("the file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let table = parsed(&path);
    assert_eq!(table["concurrent"].as_integer(), Some(1));
    let new = &runners(&table)[0];
    assert_eq!(new["name"].as_str(), Some("from-env"));
    let kubernetes = new["kubernetes"].as_table().expect("a kubernetes table");
    assert_eq!(kubernetes["host"].as_str(), Some("https://127.0.0.1:6443"));
    assert_eq!(kubernetes["namespace"].as_str(), Some("env-ns"));
    let body = server.requests()[0].json();
    assert_eq!(
        (body["locked"].clone(), body["run_untagged"].clone()),
        (json!(true), json!(false))
    );
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[test]
fn flags_win_over_the_environment_and_the_template_fills_the_rest() {
    let server = registering_server();
    let dir = TempDir::new("register-template");
    let template = dir.0.join("template.toml");
    let template_text = "[[runners]]\nname = \"tmpl\"\nlimit = 3\n[runners.kubernetes]\nimage = \"alpine:3\"\nnamespace = \"tmpl-ns\"\n";
    std::fs::write(&template, template_text).expect("write");
    let path = dir.0.join("config.toml");
    let url = server.url();
    let template_arg = template.to_string_lossy().into_owned();
    let args = [
        "--url",
        &url,
        "-r",
        "reg",
        "--template-config",
        &template_arg,
        "--kubernetes-namespace",
        "flag-ns",
    ];
    register_with(&path, &args, &[("KUBERNETES_NAMESPACE", "env-ns")]).expect("registered");
    let body = server.requests()[0].json();
    assert_eq!(
        body["run_untagged"], true,
        "a runner without tags takes untagged jobs"
    );

    let new = &runners(&parsed(&path))[0];
    assert_eq!(new["name"].as_str(), Some("tmpl"));
    assert_eq!(new["limit"].as_integer(), Some(3));
    let kubernetes = new["kubernetes"].as_table().expect("a kubernetes table");
    assert_eq!(kubernetes["image"].as_str(), Some("alpine:3"));
    assert_eq!(kubernetes["namespace"].as_str(), Some("flag-ns"));
}

#[test]
fn register_refused_by_the_coordinator_writes_nothing() {
    let server = Server::start(|_| Reply::new(403));
    let dir = TempDir::new("register-403");
    let path = dir.0.join("config.toml");
    let url = server.url();
    let error = register_with(&path, &["--url", &url, "-r", "bad"], &[]).expect_err("403");
    assert_eq!(error.exit_code(), 1);
    assert!(!error.to_string().contains("bad\""), "{error}");
    assert!(!path.exists());
}

#[test]
fn register_without_url_or_token_is_a_usage_error() {
    let dir = TempDir::new("register-usage");
    let path = dir.0.join("config.toml");
    let error = register_with(&path, &["-r", "t"], &[]).expect_err("no url");
    assert_eq!(error.exit_code(), 2);
    let error = register_with(&path, &["--url", "http://127.0.0.1:1"], &[]).expect_err("no token");
    assert_eq!(error.exit_code(), 2);
    let error = register_with(&path, &["--kubernetes-colour", "red"], &[]).expect_err("unknown");
    assert!(error.to_string().contains("--kubernetes-colour"));
}

#[test]
fn a_file_that_cannot_take_the_entry_is_refused_before_registering() {
    let server = registering_server();
    let dir = TempDir::new("register-rollback");
    let path = dir.0.join("config.toml");
    std::fs::write(&path, "runners = \"oops\"\n").expect("write");
    let url = server.url();
    let error = register_with(&path, &["--url", &url, "-r", "reg"], &[]).expect_err("bad file");
    assert!(error.to_string().contains("[[runners]]"), "{error}");
    assert_eq!(server.requests().len(), 0, "nothing is registered");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "runners = \"oops\"\n"
    );
}

fn two_runner_file(server: &Server, dir: &TempDir) -> PathBuf {
    let url = server.url();
    let text = format!(
        "# keep me\nconcurrent = 2\n\n[[runners]]\nname = \"alive\"\nurl = \"{url}\"\ntoken = \"alive-token\"\nexecutor = \"kubernetes\"\n\n# the second one\n[[runners]]\nname = \"gone\"\nurl = \"{url}\"\ntoken = \"gone-token\"\nexecutor = \"kubernetes\"\n"
    );
    let path = dir.0.join("config.toml");
    std::fs::write(&path, text).expect("write");
    path
}

fn by_token(alive: u16, gone: u16) -> Server {
    Server::start(move |request| match request.json()["token"].as_str() {
        Some("alive-token") => Reply::new(alive),
        _ => Reply::new(gone),
    })
}

fn names(path: &Path) -> Vec<String> {
    runners(&parsed(path))
        .iter()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn verify_delete_removes_only_runners_answered_403() {
    let server = by_token(200, 403);
    let dir = TempDir::new("verify");
    let path = two_runner_file(&server, &dir);
    let before = std::fs::read_to_string(&path).unwrap();
    verify::run(&globals(&path), &mut parser(&[])).expect("verify");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "without --delete nothing changes"
    );

    verify::run(&globals(&path), &mut parser(&["--delete"])).expect("verify --delete");
    assert_eq!(names(&path), ["alive"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# keep me\nconcurrent = 2\n"), "{text}");
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert!(paths.iter().all(|p| p == "/api/v4/runners/verify"));
}

#[test]
fn verify_keeps_runners_on_other_answers() {
    let server = by_token(500, 404);
    let dir = TempDir::new("verify-keep");
    let path = two_runner_file(&server, &dir);
    verify::run(&globals(&path), &mut parser(&["--delete"])).expect("verify --delete");
    assert_eq!(names(&path), ["alive", "gone"]);
}

#[test]
fn unregister_by_name_removes_that_entry_after_the_coordinator_agrees() {
    let server = by_token(204, 204);
    let dir = TempDir::new("unregister");
    let path = two_runner_file(&server, &dir);
    unregister::run(&globals(&path), &mut parser(&["--name", "gone"])).expect("unregister");
    assert_eq!(names(&path), ["alive"]);
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.json()["token"].clone()),
        ("DELETE", json!("gone-token"))
    );
}

#[test]
fn unregister_all_keeps_the_runners_the_coordinator_could_not_remove() {
    let server = by_token(500, 403);
    let dir = TempDir::new("unregister-all");
    let path = two_runner_file(&server, &dir);
    let error = unregister::run(&globals(&path), &mut parser(&["--all-runners"])).expect_err("500");
    assert_eq!(error.exit_code(), 1);
    assert_eq!(
        names(&path),
        ["alive"],
        "403 means unknown: removed; 500 kept"
    );
}

#[test]
fn unregister_by_token_and_usage_errors() {
    let server = by_token(204, 204);
    let dir = TempDir::new("unregister-token");
    let path = two_runner_file(&server, &dir);
    unregister::run(&globals(&path), &mut parser(&["--token", "alive-token"])).expect("unregister");
    assert_eq!(names(&path), ["gone"]);
    let error = unregister::run(&globals(&path), &mut parser(&[])).expect_err("no selection");
    assert_eq!(error.exit_code(), 2);
    let error =
        unregister::run(&globals(&path), &mut parser(&["--name", "nope"])).expect_err("none");
    assert_eq!(error.exit_code(), 2);
}
