//! `alloy-runner register`: registers a runner with the coordinator and appends its
//! `[[runners]]` entry to config.toml, keeping the rest of the file and its comments.
//! Also home of the config.toml editing that `verify --delete` and `unregister` share.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use lexopt::Arg::{Long, Short};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use super::{CommandError, Globals};
use crate::coordinator::{Client, CoordinatorError, Registration, RunnerInfo};
use crate::secret::Secret;

const USAGE: &str = "\
Usage: alloy-runner register [OPTIONS]

Registers a runner with the coordinator and appends it to config.toml.

Options (each also read from the environment variable in brackets):
  --url URL                    coordinator URL [CI_SERVER_URL]
  -r, --registration-token T   registration token [REGISTRATION_TOKEN]
  -n, --name NAME              runner name and description [RUNNER_NAME]
  --tag-list a,b               tags [RUNNER_TAG_LIST]
  --run-untagged               also take untagged jobs (default: only when no tags)
                               [REGISTER_RUN_UNTAGGED]
  --locked                     lock the runner to its project [REGISTER_LOCKED]
  --template-config FILE       start the entry from the first [[runners]] of FILE
  --kubernetes-KEY VALUE       [runners.kubernetes] KEY, e.g. --kubernetes-namespace ci
                               [KUBERNETES_KEY, e.g. KUBERNETES_NAMESPACE]
  --non-interactive            accepted; register never asks questions
";

/// The `[runners.kubernetes]` keys `register` sets from `--kubernetes-<key>` flags (dashes for
/// underscores) or `KUBERNETES_<KEY>` variables, with the kind of value each takes.
const KUBERNETES_KEYS: &[(&str, Kind)] = &[
    ("host", Kind::Text),
    ("cert_file", Kind::Text),
    ("key_file", Kind::Text),
    ("ca_file", Kind::Text),
    ("bearer_token", Kind::Text),
    ("bearer_token_overwrite_allowed", Kind::Flag),
    ("namespace", Kind::Text),
    ("namespace_overwrite_allowed", Kind::Text),
    ("service_account", Kind::Text),
    ("service_account_overwrite_allowed", Kind::Text),
    ("pod_annotations_overwrite_allowed", Kind::Text),
    ("privileged", Kind::Flag),
    ("image", Kind::Text),
    ("helper_image", Kind::Text),
    ("pull_policy", Kind::Text),
    ("cpu_limit", Kind::Text),
    ("memory_limit", Kind::Text),
    ("cpu_request", Kind::Text),
    ("memory_request", Kind::Text),
    ("service_cpu_limit", Kind::Text),
    ("service_memory_limit", Kind::Text),
    ("service_cpu_request", Kind::Text),
    ("service_memory_request", Kind::Text),
    ("helper_cpu_limit", Kind::Text),
    ("helper_memory_limit", Kind::Text),
    ("helper_cpu_request", Kind::Text),
    ("helper_memory_request", Kind::Text),
    ("poll_interval", Kind::Integer),
    ("poll_timeout", Kind::Integer),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Flag,
    Integer,
}

/// Looks up an environment variable; tests pass their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Runs `register` with the process environment.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    run_with_env(globals, args, &|name| std::env::var(name).ok())
}

/// Runs `register` reading fallbacks from `env`.
pub fn run_with_env(
    globals: &Globals,
    args: &mut lexopt::Parser,
    env: Env<'_>,
) -> Result<(), CommandError> {
    let Some(options) = parse_args(args)? else {
        return Ok(());
    };
    let request = RegisterRequest::resolve(options, env)?;
    check_before_registering(&globals.config_path, &request)?;
    let client = Client::new(&request.url).map_err(failed)?;
    let registered = client
        .register(
            &request.registration_token,
            &request.registration,
            &RunnerInfo::default(),
        )
        .map_err(registration_failed)?;
    log::info!(
        "registered runner {:?} (id {}) with {}",
        request.name,
        registered.id,
        request.url
    );

    let entry = request.entry(&registered.token);
    if let Err(error) = append_runner(&globals.config_path, entry) {
        // Do not leave a runner the file does not know about.
        if let Err(e) = client.unregister(&registered.token) {
            log::error!("cannot unregister the runner just registered: {e}");
        }
        return Err(failed(error));
    }
    println!(
        "Runner {:?} registered and saved in {}",
        request.name,
        globals.config_path.display()
    );
    Ok(())
}

/// What the command line gave.
#[derive(Debug, Default)]
struct Options {
    url: Option<String>,
    registration_token: Option<String>,
    name: Option<String>,
    tag_list: Option<String>,
    run_untagged: Option<bool>,
    locked: Option<bool>,
    template: Option<PathBuf>,
    kubernetes: Vec<(String, String)>,
}

/// Parses the flags; `None` when `--help` was printed.
fn parse_args(args: &mut lexopt::Parser) -> Result<Option<Options>, CommandError> {
    let mut options = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long("url") => options.url = Some(text(args)?),
            Short('r') | Long("registration-token") => {
                options.registration_token = Some(text(args)?)
            }
            Short('n') | Long("name") | Long("description") => options.name = Some(text(args)?),
            Long("tag-list") => options.tag_list = Some(text(args)?),
            Long("run-untagged") => options.run_untagged = Some(true),
            Long("locked") => options.locked = Some(true),
            Long("template-config") => options.template = Some(text(args)?.into()),
            Long("non-interactive") => {}
            Long("executor") => {
                let executor = text(args)?;
                if executor != "kubernetes" {
                    let message = format!("unsupported executor {executor:?}: only kubernetes");
                    return Err(CommandError::Usage(message));
                }
            }
            Long(flag) if flag.starts_with("kubernetes-") => {
                let key = kubernetes_key(flag)?;
                options.kubernetes.push((key, text(args)?));
            }
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Some(options))
}

fn text(args: &mut lexopt::Parser) -> Result<String, CommandError> {
    let value = args.value()?;
    value
        .into_string()
        .map_err(|v| CommandError::Usage(format!("{v:?} is not valid UTF-8")))
}

/// `kubernetes-cpu-limit` -> `cpu_limit`, if it is a key `register` knows.
fn kubernetes_key(flag: &str) -> Result<String, CommandError> {
    let key = flag.trim_start_matches("kubernetes-").replace('-', "_");
    if KUBERNETES_KEYS.iter().any(|(known, _)| *known == key) {
        return Ok(key);
    }
    let known: Vec<String> = KUBERNETES_KEYS
        .iter()
        .map(|(k, _)| format!("--kubernetes-{}", k.replace('_', "-")))
        .collect();
    Err(CommandError::Usage(format!(
        "unknown flag --{flag} (known: {})",
        known.join(", ")
    )))
}

/// Everything needed to register and to write the entry.
struct RegisterRequest {
    url: String,
    registration_token: Secret,
    name: String,
    registration: Registration,
    /// The entry so far: the template's, with flags and variables applied (no token yet).
    base: Table,
}

impl RegisterRequest {
    /// Flags first, then environment variables, then the template.
    fn resolve(options: Options, env: Env<'_>) -> Result<RegisterRequest, CommandError> {
        let mut base = match &options.template {
            Some(path) => template_runner(path).map_err(failed)?,
            None => Table::new(),
        };
        let pick = |flag: Option<String>, var: &str, key: &str| {
            flag.or_else(|| env(var).filter(|v| !v.is_empty()))
                .or_else(|| base.get(key).and_then(Item::as_str).map(str::to_string))
        };
        let url = pick(options.url, "CI_SERVER_URL", "url")
            .ok_or_else(|| CommandError::Usage("register needs --url or CI_SERVER_URL".into()))?;
        let name = pick(options.name, "RUNNER_NAME", "name").unwrap_or_else(default_name);
        let registration_token = options
            .registration_token
            .or_else(|| env("REGISTRATION_TOKEN").filter(|v| !v.is_empty()))
            .map(Secret::new)
            .ok_or_else(|| {
                CommandError::Usage(
                    "register needs --registration-token or REGISTRATION_TOKEN".into(),
                )
            })?;
        let tags = options
            .tag_list
            .or_else(|| env("RUNNER_TAG_LIST"))
            .unwrap_or_default();
        let tags: Vec<String> = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        // A runner without tags that refused untagged jobs would never get a job.
        let untagged_default = tags.is_empty();
        let registration = Registration {
            description: name.clone(),
            run_untagged: bool_option(
                options.run_untagged,
                env,
                "REGISTER_RUN_UNTAGGED",
                untagged_default,
            )?,
            locked: bool_option(options.locked, env, "REGISTER_LOCKED", false)?,
            tags,
        };
        apply_kubernetes(&mut base, &options.kubernetes, env)?;
        Ok(RegisterRequest {
            url,
            registration_token,
            name,
            registration,
            base,
        })
    }

    /// The `[[runners]]` entry to append.
    fn entry(&self, token: &Secret) -> Table {
        let mut entry = Table::new();
        entry.insert("name", value(self.name.as_str()));
        entry.insert("url", value(self.url.as_str()));
        entry.insert("token", value(token.expose()));
        entry.insert("executor", value("kubernetes"));
        for (key, item) in self.base.iter() {
            if !matches!(key, "name" | "url" | "token" | "executor") {
                entry.insert(key, item.clone());
            }
        }
        entry
    }
}

fn default_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "alloy-runner".into())
}

/// A flag, else a `true`/`false` variable, else `default`.
fn bool_option(
    flag: Option<bool>,
    env: Env<'_>,
    var: &str,
    default: bool,
) -> Result<bool, CommandError> {
    if let Some(flag) = flag {
        return Ok(flag);
    }
    match env(var).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => parse_bool(v)
            .ok_or_else(|| CommandError::Usage(format!("{var}={v:?} is not true or false"))),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Sets `[runners.kubernetes]` keys from flags, else from `KUBERNETES_<KEY>` variables.
fn apply_kubernetes(
    entry: &mut Table,
    flags: &[(String, String)],
    env: Env<'_>,
) -> Result<(), CommandError> {
    let mut values = Vec::new();
    for (key, kind) in KUBERNETES_KEYS {
        let var = format!("KUBERNETES_{}", key.to_ascii_uppercase());
        let flag = flags
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        if let Some(text) = flag.or_else(|| env(&var).filter(|v| !v.is_empty())) {
            values.push((*key, typed_value(key, *kind, &text)?));
        }
    }
    if values.is_empty() {
        return Ok(());
    }
    let section = entry
        .entry("kubernetes")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(section) = section.as_table_like_mut() else {
        return Err(CommandError::Usage(
            "the template's kubernetes is not a table".into(),
        ));
    };
    // New keys take the indentation of the keys already there (a template's, say).
    let indent = section
        .iter()
        .find_map(|(key, _)| {
            section
                .key(key)?
                .leaf_decor()
                .prefix()?
                .as_str()
                .map(String::from)
        })
        .filter(|prefix| prefix.chars().all(|c| c == ' ' || c == '\t'));
    for (key, item) in values {
        section.insert(key, item);
        if let (Some(indent), Some(mut key)) = (&indent, section.key_mut(key)) {
            key.leaf_decor_mut().set_prefix(indent.as_str());
        }
    }
    Ok(())
}

fn typed_value(key: &str, kind: Kind, text: &str) -> Result<Item, CommandError> {
    let bad = |expected: &str| {
        CommandError::Usage(format!("kubernetes {key} = {text:?} is not {expected}"))
    };
    match kind {
        Kind::Text => Ok(value(text)),
        Kind::Flag => parse_bool(text)
            .map(value)
            .ok_or_else(|| bad("true or false")),
        Kind::Integer => text
            .trim()
            .parse::<i64>()
            .map(value)
            .map_err(|_| bad("a whole number")),
    }
}

/// The first `[[runners]]` entry of a template file.
fn template_runner(path: &Path) -> Result<Table, ConfigFileError> {
    let document = read_document(path)?;
    let runners = runners(&document, path)?;
    let first = runners.and_then(|r| r.get(0)).cloned();
    first.ok_or_else(|| ConfigFileError::Layout {
        path: path.to_path_buf(),
        message: "the template has no [[runners]] entry".into(),
    })
}

/// A refused registration token gets a message saying which token and where it comes from.
fn registration_failed(error: CoordinatorError) -> CommandError {
    match error {
        CoordinatorError::Forbidden { url, status } => CommandError::Failed(
            format!(
                "the coordinator refused the registration token ({url} answered {status}); \
                 check --registration-token or REGISTRATION_TOKEN"
            )
            .into(),
        ),
        other => failed(other),
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> CommandError {
    CommandError::Failed(Box::new(error))
}

// Editing config.toml, shared with `verify --delete` and `unregister`.

/// Why config.toml could not be edited.
#[derive(Debug)]
pub enum ConfigFileError {
    /// The file exists but cannot be read.
    Read { path: PathBuf, source: io::Error },
    /// The file is not valid TOML.
    Parse { path: PathBuf, message: String },
    /// The file is TOML but `runners` is not a list of `[[runners]]` tables.
    Layout { path: PathBuf, message: String },
    /// The new file cannot be written or moved into place.
    Write { path: PathBuf, source: io::Error },
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFileError::Read { path, .. } => write!(f, "cannot read {}", path.display()),
            ConfigFileError::Parse { path, message } => {
                write!(f, "{} is not valid TOML: {message}", path.display())
            }
            ConfigFileError::Layout { path, message } => write!(f, "{}: {message}", path.display()),
            ConfigFileError::Write { path, .. } => write!(f, "cannot write {}", path.display()),
        }
    }
}

impl std::error::Error for ConfigFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigFileError::Read { source, .. } | ConfigFileError::Write { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// One `[[runners]]` entry as the commands see it.
#[derive(Debug, Clone)]
pub struct RunnerEntry {
    /// Position in the `runners` list.
    pub index: usize,
    pub name: String,
    pub url: Option<String>,
    pub token: Option<Secret>,
}

/// The file as an editable document; a missing file is an empty document.
pub fn read_document(path: &Path) -> Result<DocumentMut, ConfigFileError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    text.parse::<DocumentMut>()
        .map_err(|e| ConfigFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })
}

fn runners<'a>(
    document: &'a DocumentMut,
    path: &Path,
) -> Result<Option<&'a ArrayOfTables>, ConfigFileError> {
    match document.get("runners") {
        None => Ok(None),
        Some(Item::ArrayOfTables(runners)) => Ok(Some(runners)),
        Some(_) => Err(not_a_runner_list(path)),
    }
}

fn not_a_runner_list(path: &Path) -> ConfigFileError {
    ConfigFileError::Layout {
        path: path.to_path_buf(),
        message: "`runners` must be a list of [[runners]] tables".into(),
    }
}

/// The `[[runners]]` entries of `document`, in file order.
pub fn runner_entries(
    document: &DocumentMut,
    path: &Path,
) -> Result<Vec<RunnerEntry>, ConfigFileError> {
    let Some(runners) = runners(document, path)? else {
        return Ok(Vec::new());
    };
    let text = |table: &Table, key: &str| table.get(key).and_then(Item::as_str).map(String::from);
    let entries = runners
        .iter()
        .enumerate()
        .map(|(index, table)| RunnerEntry {
            index,
            name: text(table, "name").unwrap_or_default(),
            url: text(table, "url"),
            token: text(table, "token").map(Secret::new),
        });
    Ok(entries.collect())
}

/// Removes the entries at `indexes` from `document`, keeping everything else.
pub fn remove_runners(document: &mut DocumentMut, indexes: &[usize]) {
    if let Some(Item::ArrayOfTables(runners)) = document.get_mut("runners") {
        let mut position = 0;
        runners.retain(|_| {
            let keep = !indexes.contains(&position);
            position += 1;
            keep
        });
    }
}

/// Appends `entry` as a new `[[runners]]` table and writes the file.
/// Checks the file as it would be with the new entry (a stand-in token in place of the one the
/// coordinator gives), so a value the runner would reject is refused before anything is
/// registered.
fn check_before_registering(path: &Path, request: &RegisterRequest) -> Result<(), CommandError> {
    let preview =
        with_runner(path, request.entry(&Secret::new("token-not-yet-known"))).map_err(failed)?;
    crate::config::parse(&preview.to_string(), path)?;
    Ok(())
}

fn append_runner(path: &Path, entry: Table) -> Result<(), ConfigFileError> {
    let document = with_runner(path, entry)?;
    write_document(path, &document)
}

/// The document at `path` (empty when missing) with `entry` appended to `[[runners]]`.
fn with_runner(path: &Path, entry: Table) -> Result<DocumentMut, ConfigFileError> {
    let mut document = read_document(path)?;
    if document.get("concurrent").is_none() && document.get("runners").is_none() {
        document.insert("concurrent", value(1));
    }
    let runners = document
        .entry("runners")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Item::ArrayOfTables(runners) = runners else {
        return Err(not_a_runner_list(path));
    };
    runners.push(entry);
    Ok(document)
}

/// Writes `document` to `path` atomically (a temporary file in the same folder, then a rename)
/// with mode 0600, creating the folder when missing.
pub fn write_document(path: &Path, document: &DocumentMut) -> Result<(), ConfigFileError> {
    let write_error = |source| ConfigFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(write_error)?;
    let file_name = path
        .file_name()
        .map_or("config.toml".into(), |n| n.to_string_lossy());
    let temp = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut text = document.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let result = write_private(&temp, text.as_bytes()).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // An old temporary file may have kept looser permissions.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}
