//! A new PID namespace for a slice process.
//!
//! `unshare(CLONE_NEWPID)` puts a process's *children* in the new namespace, not the process
//! itself. So [`enter`] forks twice: the first child is the namespace's init (PID 1: it reaps
//! whatever ends in the namespace and reports how the worker ended), the second is the
//! worker (PID 2), and only the worker returns. The original process waits for the init
//! and ends the way the worker ended — the same exit code, or killed by the same signal — so
//! whoever started it sees one process. Both children die with their parent
//! (`PR_SET_PDEATHSIG`), and all three share the cgroup and process group they started in.
//!
//! Forking (not re-executing the program, which cost about 10 ms per exec of `runi`) is
//! sound only while the process has a single thread: no other thread can hold a lock the
//! child would inherit locked. [`enter`] checks that first and refuses otherwise.

#![allow(unsafe_code)]

use nix::sys::signal::{Signal, raise};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// Enters a new PID namespace as its second process (see the module). Returns in the worker
/// only, with the reason the namespace's own `/proc` could not be mounted, if it could not;
/// the original process and the init end the process when the worker has ended.
pub fn enter() -> Result<Option<String>, String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .map_err(|e| format!("cannot count this process's threads: {e}"))?;
    if threads != 1 {
        return Err(format!(
            "a PID namespace is entered with one thread, this process has {threads}"
        ));
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare(pid): {e}"))?;
    // SAFETY: the process has one thread (checked above), so the child starts with no lock
    // held by a thread that does not exist in it.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => end_as(wait_for(child, false)),
        Ok(ForkResult::Child) => {}
        // After the unshare, this process's next child would become the namespace's init:
        // going on without the namespace would break the first `exec=` step's siblings.
        Err(e) => {
            eprintln!("error: slice PID namespace: fork: {e}");
            std::process::exit(1)
        }
    }
    // The init: PID 1 of the new namespace. (Should the original process die before this
    // death signal is set, the worker still ends when its stdin lifeline closes, and the
    // pool kills the whole process group.)
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let proc_unmounted = nix::mount::mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .err()
    .map(|e| format!("mounting the PID namespace's /proc: {e}"));
    // SAFETY: still one thread (the init is a fork of a one-thread process and started none).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => end_as(wait_for(child, true)),
        Ok(ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            Ok(proc_unmounted)
        }
        Err(e) => {
            eprintln!("error: slice PID namespace: fork: {e}");
            std::process::exit(1)
        }
    }
}

/// How a child ended.
enum End {
    Code(i32),
    Signal(Signal),
}

/// Waits for `child`; an init (`reap`) also reaps every other process of its namespace.
fn wait_for(child: Pid, reap: bool) -> End {
    loop {
        let waited = if reap {
            waitpid(None, None)
        } else {
            waitpid(child, None)
        };
        match waited {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return End::Code(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => return End::Signal(signal),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("error: slice PID namespace: waiting for {child}: {e}");
                return End::Code(1);
            }
        }
    }
}

/// Ends this process the way a child ended. An init cannot be killed by a signal it sends
/// itself, so it says "killed by signal N" as exit code 128 + N, which the original process
/// turns back into the signal.
fn end_as(end: End) -> ! {
    let code = match end {
        End::Signal(signal) => {
            die_by(signal);
            128 + signal as i32
        }
        End::Code(code) => {
            // Only signals that end a process: a worker that exited with 147 (or was stopped)
            // must not stop this process with SIGSTOP.
            if code > 128
                && let Ok(signal) = Signal::try_from(code - 128)
                && ENDING.contains(&signal)
            {
                die_by(signal);
            }
            code
        }
    };
    std::process::exit(code)
}

/// The signals whose default action ends a process.
const ENDING: [Signal; 18] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGKILL,
    Signal::SIGUSR1,
    Signal::SIGSEGV,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGSYS,
];

/// Makes the process `command` starts get SIGKILL when the thread that starts it ends, and
/// fail to start if this process has already ended. Start it from a thread that lasts as long
/// as the process (see `command::spawn`): then a `runi` killed with SIGKILL, which runs no
/// clean-up, does not leave an `exec=` program behind. The signal survives `exec` (not of a
/// set-user-ID program), so it reaches the program `sh -c` runs in its place.
pub fn kill_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between `fork` and `exec`. It makes two system
    // calls (prctl, getppid) and builds an `io::Error` from an errno, which does not
    // allocate: nothing that could need a lock another thread held at the fork.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Ends this process by `signal`, with its default action (Rust's runtime ignores SIGPIPE
/// and handles SIGSEGV/SIGBUS, which would otherwise survive `raise`). Returns only if the
/// signal does not end a process (or this is a namespace's init, which it cannot end).
///
/// Also how `runi` ends on a closed stdout: unlike `exit`, a signal runs no C++ static
/// destructors while RocksDB's background threads still run.
pub fn die_by(signal: Signal) {
    // SAFETY: restoring the default action installs no handler; nothing here runs code in a
    // signal context.
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
    let _ = raise(signal);
}
