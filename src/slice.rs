//! `runi slice`: one slice process. A run starts these (`runink_engine::slice::SlicePool`);
//! a person never needs to.
//!
//! A slice is a `datafusion-distributed` worker: it receives plan fragments (stage tasks)
//! from the coordinator and serves their output partitions to whoever reads them, over gRPC
//! (Arrow Flight frames) on a loopback port. It prints `runink-slice ready URL` once it
//! listens, and ends when its stdin closes (its parent ended or let it go).

use datafusion_distributed::Worker;
use runink_engine::session::{SessionLimits, runtime_env};
use runink_engine::slice::READY_PREFIX;
use tokio::io::AsyncReadExt;

use crate::cli::SliceArgs;
use crate::exit::{CmdResult, Failure};

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
    let worker = Worker::default().with_runtime_env(runtime);
    println!("{READY_PREFIX}http://{addr}");
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
