//! A pod's sandbox: its own mount, PID and UTS (hostname = pod name) namespaces, and one
//! private root per container; the network is the host's.
//!
//! The namespaces are made by util-linux (`setpriv --pdeathsig KILL unshare --mount
//! --propagation private --uts --pid --fork --kill-child=KILL sleep infinity`); the holder is the
//! PID namespace's init, so killing it kills every process of the pod, and it dies with the
//! simulator. Mounts are made by a thread that joins the mount namespace, so the host never
//! sees one: each container's root is a tmpfs holding bind mounts of the host's top-level
//! entries, a private `/tmp`, and the volumes at their mount paths. A mount point below a
//! host entry is made by shadowing that entry's folder with a tmpfs of bind mounts first,
//! never by creating a folder on the host.

use super::spawn::Spawner;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where a volume's files come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A host folder or file, bound as it is.
    Host(PathBuf),
    /// A folder under the pod's state that gets a tmpfs inside the sandbox (emptyDir Memory).
    Memory(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Host(p) | Source::Memory(p) => p,
        }
    }
}

/// One volume mount of one container.
#[derive(Clone, Debug)]
pub struct PlannedMount {
    pub source: Source,
    pub sub_path: String,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// What one container's root needs.
#[derive(Clone, Debug)]
pub struct ContainerRoot {
    pub name: String,
    pub mounts: Vec<PlannedMount>,
    pub working_dir: String,
}

/// A live sandbox; `teardown` (or drop) kills every process in it.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    holder: Mutex<Option<Child>>,
    /// Host pid of the PID namespace's init (the holder's child).
    init: u32,
    mnt_ns: Arc<File>,
    pid_ns: Arc<File>,
    uts_ns: Arc<File>,
}

impl Sandbox {
    /// Makes the namespaces (with `hostname`) and every container's root under `dir`.
    pub fn create(
        dir: &Path,
        hostname: &str,
        roots: &[ContainerRoot],
        spawner: &Spawner,
    ) -> io::Result<Sandbox> {
        for sub in ["rootfs", "tmp", "volumes"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let holder = spawner.spawn(holder_command(), None)?;
        let holder_pid = holder.id();
        let mut sandbox = Sandbox {
            dir: dir.to_path_buf(),
            holder: Mutex::new(Some(holder)),
            init: 0,
            mnt_ns: Arc::new(File::open("/dev/null")?),
            pid_ns: Arc::new(File::open("/dev/null")?),
            uts_ns: Arc::new(File::open("/dev/null")?),
        };
        sandbox.init = wait_for_namespaces(holder_pid)?;
        sandbox.mnt_ns = Arc::new(File::open(format!("/proc/{holder_pid}/ns/mnt"))?);
        sandbox.pid_ns = Arc::new(File::open(format!(
            "/proc/{holder_pid}/ns/pid_for_children"
        ))?);
        sandbox.uts_ns = Arc::new(File::open(format!("/proc/{holder_pid}/ns/uts"))?);
        set_hostname(&sandbox.uts_ns, hostname)?;

        let plan = RootPlan {
            dir: dir.to_path_buf(),
            roots: roots.to_vec(),
        };
        let mnt = Arc::clone(&sandbox.mnt_ns);
        let worker = thread::spawn(move || inside_namespace(&mnt, holder_pid, || plan.build()));
        match worker.join() {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("sandbox setup thread panicked")),
        }
        Ok(sandbox)
    }

    /// The host path of a container's root (an empty folder outside the sandbox).
    pub fn root_of(&self, container: &str) -> PathBuf {
        self.dir.join("rootfs").join(container)
    }

    /// Starts `argv` in a container's root with exactly `env`, in `working_dir`.
    pub fn spawn(&self, spawner: &Spawner, job: Job<'_>) -> io::Result<Child> {
        let Some((program, args)) = job.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(job.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(job.stdin).stdout(job.stdout).stderr(job.stderr);
        let root = cstring(self.root_of(job.container).as_os_str())?;
        let wd = cstring(OsStr::new(job.working_dir))?;
        let entry = Entry {
            mnt: Arc::clone(&self.mnt_ns),
            uts: Arc::clone(&self.uts_ns),
            root,
            wd,
            user: job.user,
        };
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe system calls on values prepared before the fork.
        unsafe {
            cmd.pre_exec(move || entry.enter());
        }
        spawner.spawn(cmd, Some(Arc::clone(&self.pid_ns)))
    }

    /// Kills every process of the pod (the PID namespace's init first); idempotent.
    pub fn teardown(&self) {
        let holder = self.holder.lock().map(|mut h| h.take()).unwrap_or(None);
        let Some(mut holder) = holder else {
            return;
        };
        // The init is killed directly too: its parent-death signal is not all we rely on.
        if self.init != 0 && self.is_our_init(self.init) {
            if let Ok(pid) = libc::pid_t::try_from(self.init) {
                // SAFETY: kill(2) on the init of our own PID namespace, checked just above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = holder.kill();
        let _ = holder.wait();
        self.wait_until_empty(Duration::from_secs(5));
    }

    /// Whether `pid` still is the init of this sandbox's PID namespace (not a reused pid).
    fn is_our_init(&self, pid: u32) -> bool {
        let ours = self.pid_ns.metadata();
        let theirs = fs::metadata(format!("/proc/{pid}/ns/pid"));
        match (ours, theirs) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Waits until no live process is left in the mount namespace (killing is asynchronous).
    /// The namespace's inode cannot be reused meanwhile: we hold a descriptor of it.
    fn wait_until_empty(&self, patience: Duration) {
        let Ok(ns) = self.mnt_ns.metadata() else {
            return;
        };
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline && any_process_in(ns.dev(), ns.ino()) {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A process to start inside a sandbox.
pub struct Job<'a> {
    pub container: &'a str,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub working_dir: &'a str,
    /// User and group ids to run as (`securityContext.runAsUser`/`runAsGroup`); root if none.
    pub user: Option<(u32, u32)>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

fn holder_command() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--pdeathsig",
        "KILL",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--uts",
    ]);
    cmd.args(["--pid", "--fork", "--kill-child=KILL", "sleep", "infinity"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Waits until the holder has its own namespaces and the PID namespace's init runs
/// `sleep` (so it has set its parent-death signal); answers the init's host pid.
fn wait_for_namespaces(holder: u32) -> io::Result<u32> {
    let ours = fs::read_link("/proc/self/ns/mnt")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mnt = fs::read_link(format!("/proc/{holder}/ns/mnt"));
        let children = fs::read_to_string(format!("/proc/{holder}/task/{holder}/children"));
        let init = children
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok());
        let comm = init.map(|pid| fs::read_to_string(format!("/proc/{pid}/comm")));
        let running = comm.is_some_and(|c| c.is_ok_and(|c| c.trim() == "sleep"));
        if let (true, Some(init)) = (mnt.is_ok_and(|m| m != ours) && running, init) {
            return Ok(init);
        }
        thread::sleep(Duration::from_millis(5));
    }
    let message = format!("namespace holder {holder} never came up");
    Err(io::Error::new(io::ErrorKind::TimedOut, message))
}

fn any_process_in(dev: u64, ino: u64) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok());
        let ns = fs::metadata(entry.path().join("ns/mnt"));
        is_pid && ns.is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    })
}

/// Runs `work` on this thread after moving it into the sandbox's mount namespace; refuses
/// to run it anywhere else, so no mount can land on the host.
fn inside_namespace<T>(
    mnt: &File,
    holder: u32,
    work: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let host = fs::read_link("/proc/thread-self/ns/mnt")?;
    // SAFETY: plain system calls on this thread's own state and a valid descriptor.
    unsafe {
        if libc::unshare(libc::CLONE_FS) != 0
            || libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    let now = fs::read_link("/proc/thread-self/ns/mnt")?;
    let target = fs::read_link(format!("/proc/{holder}/ns/mnt"))?;
    if now == host || now != target {
        return Err(io::Error::other(
            "setup thread did not enter the sandbox's mount namespace",
        ));
    }
    work()
}

/// What a child needs to become a container process.
struct Entry {
    mnt: Arc<File>,
    uts: Arc<File>,
    root: CString,
    wd: CString,
    user: Option<(u32, u32)>,
}

impl Entry {
    /// The child's last steps before exec: die with the simulator, enter the pod's mount
    /// and UTS namespaces, the container's root and its working folder, take its user.
    fn enter(&self) -> io::Result<()> {
        // SAFETY: async-signal-safe system calls with valid pointers and descriptors, in a
        // single-threaded child.
        let failed = unsafe {
            unblock_all_signals() != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                || libc::setns(self.mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0
                || libc::setns(self.uts.as_raw_fd(), libc::CLONE_NEWUTS) != 0
                || libc::chroot(self.root.as_ptr()) != 0
                || libc::chdir(self.wd.as_ptr()) != 0
                || self.user.is_some_and(|(uid, gid)| {
                    libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                })
        };
        if failed {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Sets the hostname inside the pod's UTS namespace, from a thread that joins it.
fn set_hostname(uts: &Arc<File>, hostname: &str) -> io::Result<()> {
    let (uts, name) = (Arc::clone(uts), hostname.as_bytes().to_vec());
    let worker = thread::spawn(move || {
        // SAFETY: setns and sethostname on this thread only, with a valid descriptor and a
        // buffer of the given length.
        let failed = unsafe {
            libc::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS) != 0
                || libc::sethostname(name.as_ptr().cast(), name.len()) != 0
        };
        if failed {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    });
    worker
        .join()
        .map_err(|_| io::Error::other("hostname thread panicked"))?
}

/// Clears the signal mask the child inherited: the simulator's binary blocks SIGINT and
/// SIGTERM in its threads to wait for them, and a container must still get the SIGTERM of a
/// pod deletion, as under a real kubelet.
///
/// # Safety
/// Async-signal-safe; for a forked child before exec.
unsafe fn unblock_all_signals() -> libc::c_int {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
}

fn cstring(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// What a folder inside a container root is, for deciding where a mount point may be made.
#[derive(Clone, Debug)]
enum Origin {
    /// A folder of a tmpfs we own: creating in it touches nothing outside.
    Private,
    /// The host's folder at this path, bound.
    Host(PathBuf),
    /// A volume's folder (creating in it is what a real runtime does too).
    Volume,
}

struct RootPlan {
    dir: PathBuf,
    roots: Vec<ContainerRoot>,
}

impl RootPlan {
    /// Builds every root; runs inside the sandbox's mount namespace only.
    fn build(&self) -> io::Result<()> {
        let mut memory_done = Vec::new();
        for root in &self.roots {
            for m in &root.mounts {
                if let Source::Memory(path) = &m.source {
                    if !memory_done.contains(path) {
                        mount_tmpfs(path, "mode=0777")?;
                        memory_done.push(path.clone());
                    }
                }
            }
            self.build_root(root)?;
        }
        Ok(())
    }

    fn build_root(&self, spec: &ContainerRoot) -> io::Result<()> {
        let root = self.dir.join("rootfs").join(&spec.name);
        fs::create_dir_all(&root)?;
        mount_tmpfs(&root, "mode=0755")?;
        // Unbindable: the next container's bind of a host entry holding the state folder
        // leaves this root out instead of copying its whole tree.
        mount(None, &root, None, libc::MS_UNBINDABLE, None)?;
        let mut tree = Tree {
            root: root.clone(),
            origins: HashMap::new(),
        };
        tree.origins.insert(root.clone(), Origin::Private);
        tree.populate(&root, Path::new("/"), &["tmp"])?;

        // A private /tmp per container, kept under the pod's state.
        let tmp = self.dir.join("tmp").join(&spec.name);
        fs::create_dir_all(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
        let tmp_target = tree.ensure_dir("/tmp")?;
        bind(&tmp, &tmp_target, false)?;

        let mut mounts = spec.mounts.clone();
        mounts.sort_by_key(|m| Path::new(&m.target).components().count());
        for m in &mounts {
            tree.mount_volume(m)?;
        }
        tree.ensure_dir(&spec.working_dir)?;
        Ok(())
    }
}

struct Tree {
    root: PathBuf,
    origins: HashMap<PathBuf, Origin>,
}

impl Tree {
    fn mount_volume(&mut self, m: &PlannedMount) -> io::Result<()> {
        let source = m.source.path().join(relative(&m.sub_path)?);
        if !m.sub_path.is_empty() && !source.exists() {
            fs::create_dir_all(&source)?;
        }
        let target = if source.is_dir() {
            self.ensure_dir(&m.target)?
        } else {
            self.ensure_file(&m.target)?
        };
        bind(&source, &target, true)?;
        if m.read_only {
            remount_read_only(&target)?;
        }
        self.origins.insert(target, Origin::Volume);
        Ok(())
    }

    /// Binds every entry of the host folder `host` into `at` (a tmpfs), except `skip`.
    fn populate(&mut self, at: &Path, host: &Path, skip: &[&str]) -> io::Result<()> {
        for entry in fs::read_dir(host)? {
            let entry = entry?;
            let name = entry.file_name();
            if skip.iter().any(|s| OsStr::new(s) == name) {
                continue;
            }
            let (from, to) = (entry.path(), at.join(&name));
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                symlink(fs::read_link(&from)?, &to)?;
            } else if kind.is_dir() {
                fs::create_dir(&to)?;
                bind(&from, &to, true)?;
                self.origins.insert(to, Origin::Host(from));
            } else {
                File::create(&to)?;
                bind(&from, &to, false)?;
            }
        }
        Ok(())
    }

    /// The folder at `path` inside the root, made without touching the host.
    fn ensure_dir(&mut self, path: &str) -> io::Result<PathBuf> {
        self.ensure_dir_at(relative(path)?, 0)
    }

    fn ensure_dir_at(&mut self, rel: PathBuf, hops: u32) -> io::Result<PathBuf> {
        let mut current = self.root.clone();
        let mut walked = PathBuf::new();
        let names: Vec<_> = rel.components().collect();
        for (i, name) in names.iter().enumerate() {
            let next = current.join(name);
            match fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() && hops < 16 => {
                    // Follow the link inside the root, as the container would see it.
                    let link = fs::read_link(&next)?;
                    let base = if link.is_absolute() {
                        PathBuf::new()
                    } else {
                        walked
                    };
                    let mut resolved = base.join(link);
                    resolved.extend(&names[i + 1..]);
                    return self.ensure_dir_at(normalize(&resolved), hops + 1);
                }
                Ok(meta) if meta.is_dir() => {
                    let inherited = self.origin(&current).child(name.as_os_str());
                    self.origins.entry(next.clone()).or_insert(inherited);
                }
                Ok(_) => return Err(not_a_folder(&next)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.make_private(&current)?;
                    fs::create_dir(&next)?;
                    self.origins.insert(next.clone(), Origin::Private);
                }
                Err(e) => return Err(e),
            }
            walked.push(name);
            current = next;
        }
        Ok(current)
    }

    /// The file at `path` inside the root (for a file volume), made like `ensure_dir`.
    fn ensure_file(&mut self, path: &str) -> io::Result<PathBuf> {
        let rel = relative(path)?;
        let parent = rel
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.ensure_dir(&parent)?;
        let file = dir.join(rel.file_name().unwrap_or_default());
        if !file.exists() {
            self.make_private(&dir)?;
            File::create(&file)?;
        }
        Ok(file)
    }

    fn origin(&self, dir: &Path) -> Origin {
        self.origins.get(dir).cloned().unwrap_or(Origin::Private)
    }

    /// Turns a bound host folder into a tmpfs of bind mounts of its entries, so that
    /// something new can be created in it.
    fn make_private(&mut self, dir: &Path) -> io::Result<()> {
        let Origin::Host(host) = self.origin(dir) else {
            return Ok(());
        };
        mount_tmpfs(dir, "mode=0755")?;
        self.origins.insert(dir.to_path_buf(), Origin::Private);
        self.populate(dir, &host, &[])
    }
}

impl Origin {
    fn child(&self, name: &OsStr) -> Origin {
        match self {
            Origin::Host(p) => Origin::Host(p.join(name)),
            other => other.clone(),
        }
    }
}

/// A container path as a relative one, refusing `..`.
fn relative(path: &str) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                let msg = format!("path {path} must not contain '..'");
                return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A path with `.` and `..` resolved lexically, relative to the root.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn not_a_folder(path: &Path) -> io::Error {
    io::Error::other(format!("{} is not a folder", path.display()))
}

fn mount_tmpfs(target: &Path, options: &str) -> io::Result<()> {
    mount(Some("tmpfs"), target, Some("tmpfs"), 0, Some(options))
}

fn bind(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    mount(Some(&source.to_string_lossy()), target, None, flags, None)
}

fn remount_read_only(target: &Path) -> io::Result<()> {
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    mount(None, target, None, flags, None)
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: Option<&str>| s.map(|s| cstring(OsStr::new(s))).transpose();
    let (source, fstype, data) = (c(source)?, c(fstype)?, c(data)?);
    let target_c = cstring(target.as_os_str())?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mount on {}: {e}", target.display()),
        ));
    }
    Ok(())
}
