//! Slice processes: a pool of child processes that each run plan fragments (SPEC §8).
//!
//! [`SlicePool::launch`] starts `count` copies of a slice program (`runi slice …`) and waits
//! until each says where it listens, on one line of its stdout:
//!
//! ```text
//! runink-slice ready URL
//! ```
//!
//! The pool owns the children. Each child's stdin is a pipe the pool holds: it is the
//! child's lifeline, so a slice ends when its parent does, however the parent ends. Dropping
//! the pool kills and reaps every child and removes their cgroups. [`SlicePool::check`]
//! reports a slice that ended, by name, with its exit status or signal — or as OOM-killed
//! when its cgroup says so.
//!
//! With [`Isolation::limits`], each slice starts gated (`--gated`: it waits for a line on
//! stdin), the pool moves it into its own cgroup (`runink/PREFIX-I-PID`, see
//! [`crate::isolation`]) and then lets it go. A cgroup that cannot be made fails the launch,
//! unless [`Isolation::allow_unisolated`]: then the slice runs without one and the pool says
//! so once, in [`SlicePool::warnings`] (as it does for slices that could not enter the
//! namespaces they tried).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use crate::isolation::{SliceCgroup, SliceLimits};
use crate::{EngineError, Result};

/// How slices are isolated from the host and each other.
#[derive(Clone, Debug, Default)]
pub struct Isolation {
    /// Each slice's cgroup limits; `None`: no cgroups.
    pub limits: Option<SliceLimits>,
    /// Whether a slice may run without its cgroup where the host cannot make one (a herd's
    /// choice); otherwise that fails the launch.
    pub allow_unisolated: bool,
}

/// The line a slice prints when it is ready, before its URL.
pub const READY_PREFIX: &str = "runink-slice ready ";

/// Running slice processes, killed when the pool is dropped.
pub struct SlicePool {
    slices: Vec<Slice>,
    warnings: Vec<String>,
    /// Names the shared-memory files of this pool's exchanges (see [`PIPE_TAG_ENV`]).
    pipe_tag: String,
}

/// The environment variable that tells a slice the tag its exchange pipes carry in their
/// names (`/dev/shm/runink-x-TAG-…`), so that the pool can remove what a killed process
/// left behind.
pub const PIPE_TAG_ENV: &str = "RUNINK_PIPE_TAG";

/// Where exchange pipes live, and how their names start.
pub const PIPE_DIR: &str = "/dev/shm";

/// The file name prefix of the exchange pipes tagged `tag`.
pub fn pipe_prefix(tag: &str) -> String {
    format!("runink-x-{tag}-")
}

struct Slice {
    name: String,
    url: String,
    child: Child,
    /// Held open for as long as the slice should live.
    _lifeline: Option<ChildStdin>,
    /// The last [`STDERR_TAIL_BYTES`] the slice wrote to stderr (a thread drains it, so a
    /// chatty slice never blocks on a full pipe).
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Says when the stderr drain reached the end of the stream.
    drained: Option<std::sync::mpsc::Receiver<()>>,
    /// Dropped after the process is killed: removes the cgroup.
    cgroup: Option<SliceCgroup>,
}

/// How much of a slice's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 4096;

/// How long a slice may take from its start to its ready line.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long an ended slice's stderr may take to reach its end (a process the slice started
/// may hold it open; its message is then reported without the rest).
const STDERR_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl SlicePool {
    /// Starts `count` slices named `PREFIX-0`, `PREFIX-1`, …: `program` with `args` plus
    /// `--name NAME` (and `--gated` when they get cgroups), and waits for each to be ready.
    pub fn launch(
        program: &Path,
        args: &[String],
        prefix: &str,
        count: usize,
        isolation: &Isolation,
    ) -> Result<Self> {
        if isolation.limits.is_some() {
            // What an earlier `runi` killed with SIGKILL left behind.
            crate::isolation::sweep_abandoned(crate::isolation::SWEEP_AGE);
        }
        let mut pool = Self {
            slices: Vec::with_capacity(count),
            warnings: Vec::new(),
            pipe_tag: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        };
        for i in 0..count {
            let name = format!("{prefix}-{i}");
            let gated = isolation.limits.is_some();
            let mut child = Command::new(program)
                .args(args)
                .args(["--name", &name])
                .args(gated.then_some("--gated"))
                .env(PIPE_TAG_ENV, &pool.pipe_tag)
                // Its own process group, so that what it starts ends with it.
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    slice_error(&name, format!("cannot start {}: {e}", program.display()))
                })?;
            let mut lifeline = child.stdin.take();
            let stdout = child.stdout.take();
            let cgroup = match isolation.limits {
                Some(limits) => match pool.cgroup_for(&name, child.id(), limits, isolation) {
                    Ok(cgroup) => cgroup,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                },
                None => None,
            };
            if gated {
                use std::io::Write;
                let go = lifeline.as_mut().map(|l| l.write_all(b"go\n"));
                if !matches!(go, Some(Ok(()))) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(slice_error(
                        &name,
                        "cannot start it (its stdin is closed)".into(),
                    ));
                }
            }
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let (done, drained) = std::sync::mpsc::channel();
            if let Some(mut err) = child.stderr.take() {
                let tail = Arc::clone(&stderr);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = err.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                        t.extend_from_slice(&buf[..n]);
                        let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
                        t.drain(..excess);
                    }
                    let _ = done.send(());
                });
            }
            let mut slice = Slice {
                name: name.clone(),
                url: String::new(),
                child,
                _lifeline: lifeline,
                stderr,
                drained: Some(drained),
                cgroup,
            };
            // The ready line, read by a thread that then keeps draining stdout (so a slice
            // that prints later never meets a closed or full pipe), waited for with a
            // deadline (a slice stuck before it listens must not stall the launch).
            let (line_tx, line_rx) = std::sync::mpsc::channel();
            if let Some(out) = stdout {
                std::thread::spawn(move || {
                    let mut out = BufReader::new(out);
                    let mut line = String::new();
                    let _ = out.read_line(&mut line);
                    let _ = line_tx.send(line);
                    let _ = std::io::copy(&mut out, &mut std::io::sink());
                });
            }
            let answer = line_rx.recv_timeout(READY_TIMEOUT);
            let ready = answer.as_ref().ok().and_then(|line| {
                line.trim_end()
                    .strip_prefix(READY_PREFIX)
                    .map(str::to_string)
            });
            match ready {
                Some(line) => {
                    let (url, unisolated) = match line.split_once(" unisolated=") {
                        Some((url, reason)) => (url.to_string(), Some(reason.to_string())),
                        None => (line, None),
                    };
                    slice.url = url;
                    if let Some(reason) = unisolated {
                        pool.warn(format!("slices run without namespaces: {reason}"));
                    }
                }
                None => {
                    // Not ready (it ended, printed something else, or took too long): stop
                    // it before waiting for it, so the wait cannot block.
                    let ended = slice.child.try_wait().ok().flatten();
                    let _ = slice.child.kill();
                    let status = slice.child.wait().ok();
                    let stderr = slice.stderr_tail();
                    let oom = slice
                        .cgroup
                        .as_ref()
                        .filter(|cg| cg.oom_killed())
                        .map(|cg| {
                            cg.limits()
                                .memory_bytes
                                .map_or("its memory limit".into(), |b| {
                                    format!("its memory limit of {b} bytes")
                                })
                        });
                    let what = match (&answer, ended) {
                        // Starting a slice takes tens of MiB: a tiny `@requires(memory=)`
                        // kills it before it can say it is ready.
                        _ if oom.is_some() => format!(
                            "was OOM-killed before it was ready: starting a slice needs more than {}; raise @requires(memory=) or the herd's memory quota",
                            oom.unwrap_or_default()
                        ),
                        (Err(_), None) => format!(
                            "was not ready within {} s and was stopped",
                            READY_TIMEOUT.as_secs()
                        ),
                        (Ok(line), None) if !line.is_empty() => format!(
                            "printed `{}` instead of its ready line and was stopped",
                            line.trim_end()
                        ),
                        _ => format!(
                            "ended before it was ready ({})",
                            ended.or(status).map_or("unknown status".into(), describe)
                        ),
                    };
                    pool.slices.push(slice);
                    return Err(slice_error(&name, format!("{what}{stderr}")));
                }
            }
            pool.slices.push(slice);
        }
        Ok(pool)
    }

    /// Isolation that could not be applied, each said once for the whole pool.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    /// The slice's cgroup, or `None` (and a warning) where the host cannot make one and the
    /// isolation allows running without.
    fn cgroup_for(
        &mut self,
        name: &str,
        pid: u32,
        limits: SliceLimits,
        isolation: &Isolation,
    ) -> Result<Option<SliceCgroup>> {
        // The owner (this process) in the name lets a later pool remove the cgroup if this
        // process is killed before it can (`isolation::sweep_abandoned`).
        let cgroup_name = format!("{name}-{pid}-o{}", std::process::id());
        let made = SliceCgroup::create(&cgroup_name, limits).and_then(|cg| {
            cg.add(pid)?;
            Ok(cg)
        });
        match made {
            Ok(cg) => Ok(Some(cg)),
            Err(e) if isolation.allow_unisolated => {
                self.warn(format!("slices run without cgroups: {}", e.reason()));
                Ok(None)
            }
            Err(e) => Err(slice_error(name, e.to_string())),
        }
    }

    /// The tag the pool's exchange pipes carry (readers in this process use it too).
    pub fn pipe_tag(&self) -> &str {
        &self.pipe_tag
    }

    /// How many slices the pool has.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    /// Whether the pool has no slices (it never has: launch fails instead).
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Where each slice listens, in slice order.
    pub fn urls(&self) -> Vec<String> {
        self.slices.iter().map(|s| s.url.clone()).collect()
    }

    /// The slices' names and process ids.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.slices
            .iter()
            .map(|s| (s.name.clone(), s.child.id()))
            .collect()
    }

    /// Like [`check`](Self::check), but gives a slice up to `grace` to be seen ended: after
    /// a query fails, a slice that is dying may have closed its sockets before it can be
    /// waited for.
    pub fn check_within(&mut self, grace: std::time::Duration) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            self.check()?;
            if started.elapsed() >= grace {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Fails, naming the slice, if any slice has ended.
    pub fn check(&mut self) -> Result<()> {
        for s in &mut self.slices {
            if let Ok(Some(status)) = s.child.try_wait() {
                let stderr = s.stderr_tail();
                if let Some(cg) = s.cgroup.as_ref().filter(|cg| cg.oom_killed()) {
                    let limit = cg
                        .limits()
                        .memory_bytes
                        .map_or("its memory limit".into(), |b| {
                            format!("its memory limit of {b} bytes")
                        });
                    return Err(slice_error(
                        &s.name,
                        format!("was OOM-killed: it went over {limit}{stderr}"),
                    ));
                }
                return Err(slice_error(
                    &s.name,
                    format!("ended during the run ({}){stderr}", describe(status)),
                ));
            }
        }
        Ok(())
    }
}

impl Slice {
    /// The end of what the slice wrote to stderr, for an error message.
    fn stderr_tail(&mut self) -> String {
        // Called once the process has ended, so its stderr is at its end unless a process
        // it started still holds it: wait for the drain, but not for such a straggler.
        if let Some(drained) = self.drained.take() {
            let _ = drained.recv_timeout(STDERR_WAIT);
        }
        let bytes = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    }
}

impl Drop for SlicePool {
    fn drop(&mut self) {
        for s in &mut self.slices {
            let _ = s.child.kill();
            if let Ok(pid) = i32::try_from(s.child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for s in &mut self.slices {
            let _ = s.child.wait();
            drop(s.cgroup.take());
        }
        // Pipes a killed slice (or reader) had made and not yet handed over.
        let prefix = pipe_prefix(&self.pipe_tag);
        if let Ok(entries) = std::fs::read_dir(PIPE_DIR) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// "exit status 3" or "killed by signal 9 (SIGKILL)".
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| "unknown".into());
            format!("killed by signal {sig} ({name})")
        }
        None => "ended".into(),
    }
}

fn slice_error(name: &str, message: String) -> EngineError {
    EngineError::Slice {
        slice: name.to_string(),
        message,
    }
}
