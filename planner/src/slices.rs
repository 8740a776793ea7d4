//! Stages and slices: a session whose physical plans are split at exchange boundaries into
//! stages whose tasks run in slice processes (SPEC §8).
//!
//! The splitting is `datafusion-distributed`'s (see ARCHITECTURE.md, "Decisions"): its
//! planner wraps DataFusion's, then inserts `NetworkShuffleExec` above hash repartitions,
//! `NetworkCoalesceExec` below merges and `NetworkBroadcastExec` under broadcast join build
//! sides, and roots the plan in a `DistributedExec` that runs the head stage here and sends
//! every other stage's tasks to the slices [`SliceWorkers`] names.

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt, WorkerResolver};

use crate::{PlanError, Result};

/// The slices a distributed session sends stage tasks to: their URLs (`http://HOST:PORT`).
#[derive(Clone, Debug)]
pub struct SliceWorkers {
    urls: Vec<url::Url>,
}

impl SliceWorkers {
    /// Workers at `urls`; a URL that does not parse is an error naming it.
    pub fn new(urls: &[String]) -> Result<Self> {
        let urls = urls
            .iter()
            .map(|u| {
                url::Url::parse(u).map_err(|e| PlanError::Slices(format!("slice URL `{u}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if urls.is_empty() {
            return Err(PlanError::Slices("no slices to run on".into()));
        }
        Ok(Self { urls })
    }
}

impl WorkerResolver for SliceWorkers {
    fn get_urls(&self) -> std::result::Result<Vec<url::Url>, DataFusionError> {
        Ok(self.urls.clone())
    }
}

/// How a distributed session splits work.
#[derive(Clone, Debug, Default)]
pub struct SliceOptions {
    /// Bytes of input files per scan task: smaller means more tasks per stage. `None` keeps
    /// `datafusion-distributed`'s default (16 MiB).
    pub scan_bytes_per_task: Option<usize>,
}

/// A session whose plans run split into stages, with `config` and `runtime` for the part
/// that runs here (the head stage) and `workers` for the rest. Exchanges between slices are
/// uncompressed (slices share the host), task metrics are not collected, and joins are not
/// broadcast (measured: see below).
pub fn distributed_context(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    workers: SliceWorkers,
    options: &SliceOptions,
) -> Result<SessionContext> {
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_distributed_worker_resolver(workers)
        .with_distributed_planner()
        .with_distributed_compression(None)
        .map_err(PlanError::DataFusion)?
        // Per-task metrics travel back to the coordinator only for EXPLAIN ANALYZE.
        .with_distributed_metrics_collection(false)
        .map_err(PlanError::DataFusion)?
        // Broadcast build sides cost about 100 ms per query on TPC-H SF 1 here (q2, q11, q22:
        // 2.4–4.3× one process with them, 1.0–2.4× without); hash-partitioned joins instead.
        .with_distributed_broadcast_joins(false)
        .map_err(PlanError::DataFusion)?;
    if let Some(bytes) = options.scan_bytes_per_task {
        builder = builder
            .with_distributed_file_scan_config_bytes_per_partition(bytes)
            .map_err(PlanError::DataFusion)?;
    }
    Ok(SessionContext::from(builder.build()))
}
