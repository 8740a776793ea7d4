//! Stages and slices: a session whose physical plans are split at exchange boundaries into
//! stages whose tasks run in slice processes (SPEC §8).
//!
//! The splitting is `datafusion-distributed`'s (see ARCHITECTURE.md, "Decisions"): its
//! planner wraps DataFusion's, then inserts `NetworkShuffleExec` above hash repartitions,
//! `NetworkCoalesceExec` below merges and `NetworkBroadcastExec` under broadcast join build
//! sides, and roots the plan in a `DistributedExec` that runs the head stage here and sends
//! every other stage's tasks to the slices [`SliceWorkers`] names.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExec, DistributedExt,
    DistributedMetricsFormat, NetworkBoundaryExt, NetworkBroadcastExec, NetworkShuffleExec,
    SessionStateBuilderExt, WorkerResolver, rewrite_distributed_plan_with_metrics,
};
use runink_engine::enforce::ContractEnforceExec;
use runink_engine::run::RunContext;
use runink_engine::session::{SessionLimits, runtime_env, session_config};

use crate::codec::RuninkPhysicalCodec;
use crate::dag::{SliceGraph, StageMeta};
use crate::exchange::PipeChannels;
use crate::physical::RuninkQueryPlanner;

use crate::{PlanError, Result};

/// The slices a distributed session sends stage tasks to: their URLs (`http://HOST:PORT`).
#[derive(Clone, Debug)]
pub struct SliceWorkers {
    urls: Vec<url::Url>,
    /// The tag of their pool's exchange pipes.
    pipe_tag: String,
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
        Ok(Self {
            urls,
            pipe_tag: "untagged".into(),
        })
    }

    /// Exchange pipes named with `tag` (the pool's `SlicePool::pipe_tag`), so the pool
    /// removes any that a killed process leaves behind.
    pub fn with_pipe_tag(mut self, tag: &str) -> Self {
        self.pipe_tag = tag.to_string();
        self
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
    /// Send a join's small build side to every task of the probe side. Without it a
    /// `CollectLeft` join (a small table joined to a big one) runs in one task. Broadcasts
    /// cost about 100 ms per TPC-H SF 1 query here (q2, q11, q22: 2.4–4.3× one process with
    /// them, 1.0–2.4× without), so `runi sql` goes without.
    pub broadcast_joins: bool,
    /// How stages hand batches to the tasks that read them.
    pub exchange: Exchange,
}

impl SliceOptions {
    /// How `runi run` splits a Scenario: scan tasks of 1 MiB of input (a file of a few MiB
    /// is already read by several slices), small reference tables broadcast to the tasks
    /// that join them (so the big input is still split), shared-memory pipes.
    pub fn for_runs() -> Self {
        Self {
            scan_bytes_per_task: Some(1 << 20),
            broadcast_joins: true,
            exchange: Exchange::Pipes,
        }
    }

    /// How `runi sql --slices` splits a query: scan tasks of 1 MiB as for runs (with the
    /// default, 16 MiB of the columns read, a query over tens of MiB stayed one task and ran
    /// in `runi sql`'s own process, outside the slices' cgroups), joins not broadcast.
    pub fn for_queries() -> Self {
        Self {
            broadcast_joins: false,
            ..Self::for_runs()
        }
    }
}

/// How stages hand batches to the tasks that read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exchange {
    /// Shared-memory pipes with slices on this host ([`crate::exchange`]), gRPC with others.
    #[default]
    Pipes,
    /// `datafusion-distributed`'s gRPC (Arrow Flight over loopback) for all: the baseline
    /// the pipes are measured against.
    Grpc,
}

/// A session whose plans run split into stages, with `config` and `runtime` for the part
/// that runs here (the head stage) and `workers` for the rest. Exchanges between slices are
/// uncompressed (slices share the host) and task metrics are not collected.
pub fn distributed_context(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    workers: SliceWorkers,
    options: &SliceOptions,
) -> Result<SessionContext> {
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features();
    Ok(SessionContext::from(
        split(builder, workers, options, false)?.build(),
    ))
}

/// A session for a run whose plan is split into stages that run in `workers`: Runink's
/// planner (its operators, and `unique` enforcement kept in one stream), Runink's operator
/// codec, and task metrics collected, since Runink's operators count rows through them
/// (see [`with_slice_counters`]).
pub fn distributed_run_context(
    limits: &SessionLimits,
    run: Arc<RunContext>,
    workers: SliceWorkers,
    options: &SliceOptions,
) -> Result<SessionContext> {
    let builder = SessionStateBuilder::new()
        .with_config(session_config(limits).with_extension(run))
        .with_runtime_env(runtime_env(limits)?)
        .with_default_features()
        .with_query_planner(Arc::new(RuninkQueryPlanner { split: true }))
        .with_distributed_user_codec(RuninkPhysicalCodec);
    let mut builder = split(builder, workers, options, true)?;
    let distributed = builder.query_planner().take();
    Ok(SessionContext::from(
        builder
            .with_query_planner(Arc::new(HeadEnforcement { distributed }))
            .build(),
    ))
}

/// After `datafusion-distributed` split the plan: enforcement that `RuninkQueryPlanner`
/// kept in one stream (a coalesce below it, for `unique`) and that ended up in the head
/// stage, right above the network boundary, reads the boundary's partitions directly. The
/// head stage runs as one task in this process, whose partitions share the `unique` state,
/// so the check still sees every row — in parallel, instead of one stream.
#[derive(Debug)]
struct HeadEnforcement {
    distributed: Option<Arc<dyn QueryPlanner + Send + Sync>>,
}

#[async_trait::async_trait]
impl QueryPlanner for HeadEnforcement {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(distributed) = &self.distributed else {
            return Err(DataFusionError::Internal("no distributed planner".into()));
        };
        let plan = distributed
            .create_physical_plan(logical_plan, session)
            .await?;
        if !plan.is::<DistributedExec>() {
            return Ok(plan);
        }
        let Some(base) = plan.children().first().map(|c| Arc::clone(*c)) else {
            return Ok(plan);
        };
        let head = base
            .transform_down(|node| {
                if node.is_network_boundary() {
                    return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
                }
                let below_coalesce = node
                    .downcast_ref::<ContractEnforceExec>()
                    .and_then(|_| node.children().first().map(|c| Arc::clone(*c)))
                    .filter(|c| c.is::<CoalescePartitionsExec>())
                    .and_then(|c| c.children().first().map(|b| Arc::clone(*b)))
                    .filter(|b| b.is_network_boundary());
                match below_coalesce {
                    Some(boundary) => Ok(Transformed::yes(node.replace_children(
                        vec![boundary],
                        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                    )?)),
                    None => Ok(Transformed::no(node)),
                }
            })?
            .data;
        plan.replace_children(
            vec![head],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }
}

/// The stages of `plan` as a distributed session split it, and the exchanges between
/// them; `None` for a plan that was not split. `slices` is what it was planned for.
pub fn slice_graph(plan: &Arc<dyn ExecutionPlan>, slices: usize) -> Option<SliceGraph> {
    let head = plan
        .downcast_ref::<DistributedExec>()?
        .children()
        .first()
        .copied()?;
    let mut stages = Vec::new();
    add_stage(head, 0, 1, None, &mut stages);
    Some(SliceGraph { slices, stages })
}

/// Adds the stage whose plan is `plan`, then the stages it reads, to `stages`.
fn add_stage(
    plan: &Arc<dyn ExecutionPlan>,
    num: usize,
    tasks: usize,
    feeds: Option<(usize, &str)>,
    stages: &mut Vec<StageMeta>,
) {
    let mut operators = Vec::new();
    let mut inputs = Vec::new();
    let mut pending = vec![plan];
    while let Some(node) = pending.pop() {
        operators.push(node.name().to_string());
        if let Some(boundary) = node.as_network_boundary() {
            let exchange = if node.is::<NetworkShuffleExec>() {
                "shuffle"
            } else if node.is::<NetworkBroadcastExec>() {
                "broadcast"
            } else {
                "coalesce"
            };
            inputs.push((boundary.input_stage().clone(), exchange));
            continue;
        }
        // Children in plan order: the stack pops the first child first.
        pending.extend(node.children().into_iter().rev());
    }
    stages.push(StageMeta {
        stage: num,
        tasks,
        feeds: feeds.map(|(n, _)| n),
        exchange: feeds.map(|(_, e)| e.to_string()),
        reads: inputs.iter().map(|(s, _)| s.num()).collect(),
        operators,
    });
    for (input, exchange) in inputs {
        if let Some(plan) = input.local_plan() {
            add_stage(
                plan,
                input.num(),
                input.task_count(),
                Some((num, exchange)),
                stages,
            );
        }
    }
}

/// After a split run, `plan` with the slices' task metrics folded in (waits for them), for
/// [`runink_engine::run::RunContext::set_totals`]; a plan that was not split as it is.
pub async fn with_slice_counters(
    plan: Arc<dyn ExecutionPlan>,
) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    // Task metrics arrive after the tasks end; a task that never ran (upstream issue #739)
    // would make the wait endless, so it has a deadline and the run fails instead of
    // reporting counts it does not have.
    tokio::time::timeout(
        SLICE_COUNTERS_DEADLINE,
        rewrite_distributed_plan_with_metrics(plan, DistributedMetricsFormat::Aggregated),
    )
    .await
    .map_err(|_| {
        DataFusionError::Execution(format!(
            "the slices' row counters did not come back within {} s",
            SLICE_COUNTERS_DEADLINE.as_secs()
        ))
    })?
    .map(Some)
}

/// How long a finished run waits for the counters of the tasks that ran in slices.
const SLICE_COUNTERS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The session a slice runs a stage with: Runink's operators decode there, and it reads
/// other slices' stages over shared-memory pipes.
pub fn slice_session_state(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder
        .with_distributed_user_codec(RuninkPhysicalCodec)
        .with_distributed_channel_resolver(PipeChannels::for_slice())
}

/// One task for a stage holding an operator that must see all of its input in one
/// partition (a sort or `LIMIT` over the whole input, a window without `PARTITION BY`, an
/// aggregate without groups). DataFusion inserts no coalesce where the input has one
/// partition already — a file scanned as one group — and `datafusion-distributed` would
/// still split that scan into tasks, each running the operator on its share: a global
/// `ORDER BY … LIMIT 3` gave 3 rows per task. Joins are left to the distributed planner,
/// which broadcasts or caps their build sides itself.
fn whole_input_in_one_task(
    ev: DesiredTaskCountEvent<'_>,
) -> Option<datafusion::error::Result<DesiredTaskCountEventResponse>> {
    use datafusion::physical_plan::Distribution;
    use datafusion::physical_plan::joins::{CrossJoinExec, HashJoinExec, NestedLoopJoinExec};
    let plan = ev.plan;
    if plan.children().is_empty()
        || plan.is::<HashJoinExec>()
        || plan.is::<NestedLoopJoinExec>()
        || plan.is::<CrossJoinExec>()
    {
        return None;
    }
    plan.input_distribution_requirements()
        .into_per_child()
        .iter()
        .any(|d| matches!(d, Distribution::SinglePartition))
        .then(|| Ok(DesiredTaskCountEventResponse::maximum(1)))
}

/// `builder` with `datafusion-distributed`'s planner wrapped around the query planner it
/// has, and Runink's settings for it.
fn split(
    builder: SessionStateBuilder,
    workers: SliceWorkers,
    options: &SliceOptions,
    metrics: bool,
) -> Result<SessionStateBuilder> {
    let pipe_tag = workers.pipe_tag.clone();
    let mut builder = builder
        .with_distributed_worker_resolver(workers)
        .with_distributed_planner()
        .with_distributed_compression(None)
        .map_err(PlanError::DataFusion)?
        // Per-task metrics cost a message per task; `runi sql` wants them only for EXPLAIN
        // ANALYZE, runs need them for their counters.
        .with_distributed_metrics_collection(metrics)
        .map_err(PlanError::DataFusion)?
        .with_distributed_broadcast_joins(options.broadcast_joins)
        .map_err(PlanError::DataFusion)?
        .with_distributed_desired_task_count_handler(whole_input_in_one_task);
    if options.exchange == Exchange::Pipes {
        builder = builder.with_distributed_channel_resolver(PipeChannels::new(&pipe_tag));
    }
    if let Some(bytes) = options.scan_bytes_per_task {
        builder = builder
            .with_distributed_file_scan_config_bytes_per_partition(bytes)
            .map_err(PlanError::DataFusion)?;
    }
    Ok(builder)
}
