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
//! IPC and PID namespaces — the last by forking the namespace's init, which forks the
//! worker (`runink_engine::pidns`).

use datafusion_distributed::{DefaultSessionBuilder, MappedWorkerSessionBuilderExt, Worker};
use runink_engine::session::{SessionLimits, runtime_env};
use runink_engine::slice::READY_PREFIX;
use tokio::io::AsyncReadExt;

use std::sync::OnceLock;

use crate::cli::{NamespaceMode, SliceArgs};
use crate::exit::{CmdResult, Failure};

/// Why the slice runs without the namespaces it tried to enter, if it does.
static UNISOLATED: OnceLock<String> = OnceLock::new();

/// The single-threaded start of a slice: the gate, then the namespaces (the PID namespace
/// by forking: see `runink_engine::pidns`). An `Err` is the exit code to end with.
pub fn prepare(args: &SliceArgs) -> Result<(), std::process::ExitCode> {
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
        // Only the worker returns. Without the namespace's own /proc it is still isolated,
        // it just sees the host's process list; `require` asks for all of it.
        match runink_engine::pidns::enter()? {
            Some(reason) if args.namespaces == NamespaceMode::Require => Err(reason),
            Some(reason) => {
                tracing::warn!(slice = %args.name, %reason, "slice sees the host's /proc");
                Ok(())
            }
            None => Ok(()),
        }
    });
    match entered {
        Ok(()) => Ok(()),
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
