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
//! the pool kills and reaps every child. [`SlicePool::check`] reports a slice that ended, by
//! name, with its exit status or signal.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use crate::{EngineError, Result};

/// The line a slice prints when it is ready, before its URL.
pub const READY_PREFIX: &str = "runink-slice ready ";

/// Running slice processes, killed when the pool is dropped.
pub struct SlicePool {
    slices: Vec<Slice>,
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
    drain: Option<std::thread::JoinHandle<()>>,
}

/// How much of a slice's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 4096;

impl SlicePool {
    /// Starts `count` slices named `PREFIX-0`, `PREFIX-1`, …: `program` with `args` plus
    /// `--name NAME`, and waits for each to be ready.
    pub fn launch(program: &Path, args: &[String], prefix: &str, count: usize) -> Result<Self> {
        let mut pool = Self {
            slices: Vec::with_capacity(count),
        };
        for i in 0..count {
            let name = format!("{prefix}-{i}");
            let mut child = Command::new(program)
                .args(args)
                .args(["--name", &name])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    slice_error(&name, format!("cannot start {}: {e}", program.display()))
                })?;
            let lifeline = child.stdin.take();
            let stdout = child.stdout.take();
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let drain = child.stderr.take().map(|mut err| {
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
                })
            });
            let mut slice = Slice {
                name: name.clone(),
                url: String::new(),
                child,
                _lifeline: lifeline,
                stderr,
                drain,
            };
            let ready = stdout.and_then(|out| {
                let mut line = String::new();
                BufReader::new(out).read_line(&mut line).ok()?;
                line.trim_end()
                    .strip_prefix(READY_PREFIX)
                    .map(str::to_string)
            });
            match ready {
                Some(url) => slice.url = url,
                None => {
                    let status = slice.child.wait().ok();
                    let stderr = slice.stderr_tail();
                    pool.slices.push(slice);
                    return Err(slice_error(
                        &name,
                        format!(
                            "ended before it was ready ({}){}",
                            status.map_or("unknown status".into(), describe),
                            stderr
                        ),
                    ));
                }
            }
            pool.slices.push(slice);
        }
        Ok(pool)
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

    /// Fails, naming the slice, if any slice has ended.
    pub fn check(&mut self) -> Result<()> {
        for s in &mut self.slices {
            if let Ok(Some(status)) = s.child.try_wait() {
                let stderr = s.stderr_tail();
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
        // Called once the process has ended: its stderr is at EOF, so the drain ends.
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
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
        }
        for s in &mut self.slices {
            let _ = s.child.wait();
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
