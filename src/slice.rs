//! `runi slice`: one slice process. A run starts these (`runink_engine::slice::SlicePool`);
//! a person never needs to.
//!
//! A slice is a `datafusion-distributed` worker: it receives plan fragments (stage tasks)
//! from the coordinator and serves their output partitions to whoever reads them, over gRPC
//! (Arrow Flight frames) on a loopback port. It prints `runink-slice ready URL` once it
//! listens (with ` unisolated=REASON` when it could not enter the namespaces it was asked
//! to try), and ends when its stdin closes (its parent ended or let it go).
//!
//! Before anything else, while the process is one thread ([`prepare`]): with `--gated` it
//! waits for a line on stdin (its parent moves it into its cgroup meanwhile), and with
//! `--namespaces` it enters new mount (all mounts private), UTS (host name = slice name),
//! IPC and PID namespaces — the last by starting itself again as the namespace's init,
//! which starts the worker (see [`prepare`]).

use datafusion_distributed::{DefaultSessionBuilder, MappedWorkerSessionBuilderExt, Worker};
use runink_engine::session::{SessionLimits, runtime_env};
use runink_engine::slice::READY_PREFIX;
use tokio::io::AsyncReadExt;

use std::sync::OnceLock;

use crate::cli::{NamespaceMode, PidRole, SliceArgs};
use crate::exit::{CmdResult, Failure};

/// Why the slice runs without the namespaces it tried to enter, if it does.
static UNISOLATED: OnceLock<String> = OnceLock::new();

/// The single-threaded start of a slice: the gate, then the namespaces. An `Err` is the
/// exit code to end with.
///
/// A PID namespace takes effect for a process's children, so a slice that enters one
/// starts itself again inside it, twice: an init (PID 1, which reaps and mirrors how the
/// worker ended) and the worker (PID 2). The first process waits for its init and ends the
/// way the worker ended, so its parent sees one process. Each child dies with its parent
/// (`PR_SET_PDEATHSIG`), and all three share the slice's cgroup and process group.
pub fn prepare(args: &SliceArgs) -> Result<(), std::process::ExitCode> {
    match args.pid_role {
        Some(PidRole::Init) => return Err(pid_init(args)),
        Some(PidRole::Worker) => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if let Ok(reason) = std::env::var(UNISOLATED_ENV) {
                let _ = UNISOLATED.set(reason);
            }
            return Ok(());
        }
        None => {}
    }
    if args.gated {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => return Err(std::process::ExitCode::SUCCESS), // parent gone
            Ok(_) => {}
        }
    }
    if args.namespaces == NamespaceMode::Off {
        return Ok(());
    }
    let entered = enter_namespaces(&args.name).and_then(|()| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| format!("unshare(pid): {e}"))
    });
    match entered {
        Ok(()) => Err(run_child(args, PidRole::Init, None)),
        Err(reason) if args.namespaces == NamespaceMode::Require => {
            eprintln!(
                "error: slice {}: cannot enter namespaces: {reason}",
                args.name
            );
            Err(std::process::ExitCode::from(1))
        }
        Err(reason) => {
            let _ = UNISOLATED.set(reason);
            Ok(())
        }
    }
}

/// Passes the reason a slice runs unisolated from its init to its worker.
const UNISOLATED_ENV: &str = "RUNINK_SLICE_UNISOLATED";

/// PID 1 of the slice's PID namespace: mounts the namespace's `/proc`, starts the worker,
/// reaps every process that ends in the namespace, and ends as the worker ended.
fn pid_init(args: &SliceArgs) -> std::process::ExitCode {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // The slice's own view of processes (its mounts are private to it).
    let unisolated = nix::mount::mount(
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
    if let (Some(reason), NamespaceMode::Require) = (&unisolated, args.namespaces) {
        eprintln!("error: slice {}: {reason}", args.name);
        return std::process::ExitCode::from(1);
    }
    run_child(args, PidRole::Worker, unisolated)
}

/// Starts this program again as `role` of the slice, waits for it (an init also reaps
/// orphans), and gives the exit code that tells how it ended: its own, or 128 + the signal
/// that killed it — which the first process turns back into that signal.
fn run_child(
    args: &SliceArgs,
    role: PidRole,
    unisolated: Option<String>,
) -> std::process::ExitCode {
    use nix::sys::wait::{WaitStatus, waitpid};
    let fail = |what: String| {
        eprintln!("error: slice {}: {what}", args.name);
        std::process::ExitCode::from(1)
    };
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot find its program: {e}")),
    };
    let mut command = std::process::Command::new(program);
    // The same arguments, without the gate (passed) and the role this process had.
    let mut own = std::env::args_os().skip(1);
    while let Some(arg) = own.next() {
        if arg == "--pid-role" {
            own.next();
        } else if arg != "--gated" {
            command.arg(arg);
        }
    }
    command.args([
        "--pid-role",
        match role {
            PidRole::Init => "init",
            PidRole::Worker => "worker",
        },
    ]);
    if let Some(reason) = unisolated {
        command.env(UNISOLATED_ENV, reason);
    }
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start its {role:?} process: {e}")),
    };
    let child_pid = nix::unistd::Pid::from_raw(child.id() as i32);
    loop {
        // An init reaps any process of its namespace; the first process waits for its init.
        let waited = match role {
            PidRole::Worker => waitpid(None, None),
            PidRole::Init => waitpid(child_pid, None),
        };
        match waited {
            Ok(WaitStatus::Exited(pid, code)) if pid == child_pid => {
                // The init says "killed by signal N" as 128 + N: the first process ends by
                // that signal, so its parent sees how the worker ended.
                if role == PidRole::Init
                    && code > 128
                    && let Ok(signal) = nix::sys::signal::Signal::try_from(code - 128)
                {
                    let _ = nix::sys::signal::raise(signal);
                }
                return std::process::ExitCode::from(code.clamp(0, 255) as u8);
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child_pid => {
                if role == PidRole::Init {
                    // The first process ends by the same signal, as the worker did.
                    let _ = nix::sys::signal::raise(signal);
                }
                return std::process::ExitCode::from(128u8.saturating_add(signal as u8));
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return fail(format!("waiting for its {role:?} process: {e}")),
        }
    }
}

fn enter_namespaces(name: &str) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
        .map_err(|e| format!("unshare(mount, uts, ipc): {e}"))?;
    // Mounts made inside the slice stay inside it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    nix::unistd::sethostname(name).map_err(|e| format!("sethostname: {e}"))?;
    Ok(())
}

pub async fn slice(args: &SliceArgs) -> CmdResult {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Failure::input(anyhow::anyhow!(
                "slice {}: cannot listen on {}: {e}",
                args.name,
                args.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::run(anyhow::anyhow!("slice {}: {e}", args.name)))?;
    let mut limits = SessionLimits::default();
    if let Some(memory) = args.memory {
        limits.memory_pool_bytes = memory;
    }
    let runtime = runtime_env(&limits)
        .map_err(|e| Failure::run(anyhow::anyhow!("slice {}: {e}", args.name)))?;
    // Runink's operators (contract enforcement, lineage taps, `exec=` steps) decode here.
    let worker = Worker::from_session_builder(
        DefaultSessionBuilder.map(|b| Ok(runink_planner::slices::slice_session_state(b).build())),
    )
    .with_runtime_env(runtime);
    // Same-host readers take batches over shared-memory pipes, asked for on this socket.
    let exchange = runink_planner::exchange::bind_exchange(addr)
        .map_err(|e| Failure::run(anyhow::anyhow!("slice {}: exchange socket: {e}", args.name)))?;
    tokio::spawn(runink_planner::exchange::serve_exchange(
        exchange,
        worker.clone(),
    ));
    match UNISOLATED.get() {
        Some(reason) => println!("{READY_PREFIX}http://{addr} unisolated={reason}"),
        None => println!("{READY_PREFIX}http://{addr}"),
    }
    // The lifeline: stdin closes when the parent ends or drops the slice.
    let lifeline = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            lifeline,
        )
        .await
        .map_err(|e| Failure::run(anyhow::anyhow!("slice {}: {e}", args.name)))?;
    Ok(())
}
