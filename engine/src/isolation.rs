//! Slice isolation: one cgroup per slice with memory, CPU and process-count limits, through
//! cgroups-rs, which speaks cgroup v1 and v2 (this crate never names a cgroup file).
//!
//! A [`crate::slice::SlicePool`] creates a [`SliceCgroup`] before it lets a slice process run, moves the process
//! into it, and after the process ends asks [`SliceCgroup::oom_killed`] whether the kernel
//! killed it for memory — so the run can say "slice X was OOM-killed (limit 512Mi)" instead of
//! "killed by signal 9". Dropping the handle kills what is left in the cgroup and removes it.

use cgroups_rs::CgroupPid;
use cgroups_rs::fs::cgroup_builder::CgroupBuilder;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::{Cgroup, MaxValue, hierarchies};

/// The folder every Runink cgroup lives under, in each hierarchy.
pub const CGROUP_PARENT: &str = "runink";
/// CFS period for CPU limits, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// What a slice may use; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceLimits {
    pub memory_bytes: Option<u64>,
    /// Thousandths of a core (`"500m"` is 500, `"2"` is 2000).
    pub cpu_millis: Option<u64>,
    pub max_processes: Option<u64>,
}

impl std::fmt::Display for SliceLimits {
    /// `memory 2 GiB, cpu 1 core, 1024 processes`: the limits that were asked for.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(bytes) = self.memory_bytes {
            parts.push(format!("memory {} MiB", bytes >> 20));
        }
        if let Some(millis) = self.cpu_millis {
            parts.push(format!("cpu {}", millis as f64 / 1000.0));
        }
        if let Some(n) = self.max_processes {
            parts.push(format!("{n} processes"));
        }
        if parts.is_empty() {
            parts.push("no limits".to_string());
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// A cgroups-rs error as a sentence: what failed and the system's reason (its `Display`
/// shows the reason as Rust debug text, `Os { code: 30, … }`).
fn cgroup_error(e: &cgroups_rs::fs::error::Error) -> String {
    // "fs error" says nothing a person can use; the cause does.
    let kind = match e.kind() {
        cgroups_rs::fs::error::ErrorKind::FsError => "cgroup file system".to_string(),
        other => other.to_string(),
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind,
    }
}

/// Why a cgroup could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("cannot create cgroup `{name}` ({limits}): {message}")]
    Create {
        name: String,
        limits: SliceLimits,
        message: String,
    },
    #[error("cannot move process {pid} into cgroup `{name}`: {message}")]
    Attach {
        name: String,
        pid: u64,
        message: String,
    },
}

impl IsolationError {
    /// The reason without the slice's own name: the same for every slice of a run, so it
    /// can be said once.
    pub fn reason(&self) -> String {
        match self {
            IsolationError::Create {
                limits, message, ..
            } => format!("cannot create a cgroup under `{CGROUP_PARENT}/` ({limits}): {message}"),
            IsolationError::Attach { message, .. } => {
                format!("cannot move a slice into its cgroup: {message}")
            }
        }
    }
}

/// A slice's cgroup; removed (with anything still in it) when dropped.
pub struct SliceCgroup {
    name: String,
    cgroup: Cgroup,
    limits: SliceLimits,
}

impl std::fmt::Debug for SliceCgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceCgroup")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish()
    }
}

impl SliceCgroup {
    /// Creates `runink/NAME` in the host's cgroup hierarchy (v1 or v2) with `limits`.
    pub fn create(name: &str, limits: SliceLimits) -> Result<SliceCgroup, IsolationError> {
        let path = format!("{CGROUP_PARENT}/{name}");
        let mut builder = CgroupBuilder::new(&path);
        if let Some(bytes) = limits.memory_bytes {
            builder = builder
                .memory()
                .memory_hard_limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                .done();
        }
        if let Some(millis) = limits.cpu_millis {
            let quota = millis.saturating_mul(CPU_PERIOD_US) / 1000;
            builder = builder
                .cpu()
                .period(CPU_PERIOD_US)
                .quota(i64::try_from(quota.max(1000)).unwrap_or(i64::MAX))
                .done();
        }
        if let Some(n) = limits.max_processes {
            builder = builder
                .pid()
                .maximum_number_of_processes(MaxValue::Value(i64::try_from(n).unwrap_or(i64::MAX)))
                .done();
        }
        let cgroup = builder
            .build(hierarchies::auto())
            .map_err(|e| IsolationError::Create {
                name: name.to_string(),
                limits,
                message: cgroup_error(&e),
            })?;
        // No swap either: a slice over its limit is OOM-killed (and said so), not slowed down
        // by swapping. v1 limits memory + swap together, v2 swap alone. A host without swap
        // accounting has no such file; it then has nothing to set.
        if let Some(bytes) = limits.memory_bytes
            && let Some(memory) = cgroup.controller_of::<MemController>()
        {
            let swap = if cgroup.v2() {
                0
            } else {
                i64::try_from(bytes).unwrap_or(i64::MAX)
            };
            let _ = memory.set_memswap_limit(swap);
        }
        Ok(SliceCgroup {
            name: name.to_string(),
            cgroup,
            limits,
        })
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), IsolationError> {
        self.cgroup
            .add_task_by_tgid(CgroupPid::from(u64::from(pid)))
            .map_err(|e| IsolationError::Attach {
                name: self.name.clone(),
                pid: u64::from(pid),
                message: cgroup_error(&e),
            })
    }

    /// Whether the kernel OOM-killed a process of this cgroup for exceeding its memory
    /// limit.
    pub fn oom_killed(&self) -> bool {
        self.cgroup
            .controller_of::<MemController>()
            .map(|m| {
                let stat = m.memory_stat();
                stat.oom_control.oom_kill > 0 || stat.oom_control.under_oom
            })
            .unwrap_or(false)
    }

    /// The limits the cgroup was made with.
    pub fn limits(&self) -> SliceLimits {
        self.limits
    }

    /// Where the cgroup lives, relative to each hierarchy's root.
    pub fn path(&self) -> String {
        format!("{CGROUP_PARENT}/{}", self.name)
    }
}

/// Removes slice cgroups whose owner is gone, which hold no process and are at least
/// `min_age` old (pools use [`SWEEP_AGE`]): what a `runi` killed with SIGKILL could not
/// remove. A slice's cgroup is `runink/NAME-PID-oOWNER` (see
/// `SlicePool`): only an owner that no longer exists cannot report on it any more, so a live
/// (or reused) owner PID keeps it. Returns how many went. Cgroups are found under
/// `/sys/fs/cgroup` (each v1 controller, or the v2 tree) and removed through cgroups-rs.
pub fn sweep_abandoned(min_age: std::time::Duration) -> usize {
    let mut removed = 0;
    for name in slice_cgroup_names() {
        let Some(pid) = owner_of(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Young cgroups are left alone: their owner may live in another PID namespace (where
        // its id means nothing here) and be between creating the cgroup and filling it, or
        // about to read an OOM kill from it.
        if !old_enough(&name, min_age) {
            continue;
        }
        removed += usize::from(remove_if_empty(&name));
    }
    removed
}

/// Removes the slice cgroups of `owner`, a runner known to be dead (its run was found
/// lost), whatever their age. Its slices have nobody to report to: any still in them
/// (they notice the runner's death within seconds) are killed, and their exit awaited for up
/// to two seconds. Returns how many cgroups went.
pub fn remove_owned_by(owner: u32) -> usize {
    let names: Vec<String> = slice_cgroup_names()
        .into_iter()
        .filter(|name| owner_of(name) == Some(owner))
        .collect();
    for name in &names {
        let cgroup = Cgroup::load(hierarchies::auto(), format!("{CGROUP_PARENT}/{name}"));
        for p in cgroup.procs() {
            if let Ok(pid) = i32::try_from(p.pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let found = names.len();
    let mut left = names;
    loop {
        left.retain(|name| !remove_if_empty(name));
        if left.is_empty() || std::time::Instant::now() >= deadline {
            break;
        }
        // The killed processes leave their cgroup as the kernel reaps them (polled: a cgroup
        // v1 hierarchy has no event for it).
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    found - left.len()
}

/// The owner PID in a slice cgroup's name (`NAME-PID-oOWNER`).
fn owner_of(name: &str) -> Option<u32> {
    name.rsplit_once("-o").and_then(|(_, p)| p.parse().ok())
}

fn remove_if_empty(name: &str) -> bool {
    let cgroup = Cgroup::load(hierarchies::auto(), format!("{CGROUP_PARENT}/{name}"));
    cgroup.procs().is_empty() && cgroup.delete().is_ok()
}

/// The names of every cgroup under `runink/`, in any v1 controller or the v2 tree.
fn slice_cgroup_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let roots = ["/sys/fs/cgroup".to_string()].into_iter().chain(
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().display().to_string()),
    );
    for root in roots {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{CGROUP_PARENT}")) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// How old a slice cgroup must be before a pool that is not its owner removes it.
pub const SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether every copy of `runink/NAME` under `/sys/fs/cgroup` is at least `min_age` old
/// (a cgroup whose age cannot be read is not).
fn old_enough(name: &str, min_age: std::time::Duration) -> bool {
    let dirs = ["/sys/fs/cgroup".to_string()]
        .into_iter()
        .chain(
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().display().to_string()),
        )
        .map(|root| {
            std::path::PathBuf::from(root)
                .join(CGROUP_PARENT)
                .join(name)
        })
        .filter(|p| p.is_dir());
    let mut any = false;
    for dir in dirs {
        any = true;
        let age = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_none_or(|a| a < min_age) {
            return false;
        }
    }
    any
}

/// How long dropping a cgroup waits for the processes it killed to leave it.
const REMOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for SliceCgroup {
    fn drop(&mut self) {
        // A cgroup with processes in it cannot be removed: stop them first (v2 has
        // `cgroup.kill`; on v1, signal each one).
        if !self.cgroup.procs().is_empty() && self.cgroup.kill().is_err() {
            for p in self.cgroup.procs() {
                if let Ok(pid) = i32::try_from(p.pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        // Killed processes leave the cgroup as the kernel tears them down.
        let started = std::time::Instant::now();
        loop {
            match self.cgroup.delete() {
                Ok(()) => return,
                Err(e) if started.elapsed() >= REMOVE_WAIT => {
                    tracing::warn!("cgroup {} not removed: {e}", self.path());
                    return;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}
