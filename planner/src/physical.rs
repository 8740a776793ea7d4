//! From Runink's logical nodes to the engine's operators, and the session that knows how.
//!
//! [`new_context`] builds the one kind of DataFusion session Runink uses for compile,
//! explain and run: bounded memory, Runink's query planner, and a [`RunContext`] that the
//! operators report their counters into.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;
use runink_engine::command::ExternalCommandExec;
use runink_engine::enforce::ContractEnforceExec;
use runink_engine::lineage::LineageTapExec;
use runink_engine::run::RunContext;
use runink_engine::session::{SessionLimits, runtime_env, session_config};
use runink_engine::sink::{SinkExec, SinkTarget};

use crate::Result;
use crate::nodes::{ContractEnforceNode, ExecStepNode, LineageTapNode, SinksNode};

/// A DataFusion session for Runink: `run` receives the counters and the sink commits.
pub fn new_context(limits: &SessionLimits, run: Arc<RunContext>) -> Result<SessionContext> {
    let config = session_config(limits).with_extension(run);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime_env(limits)?)
        .with_default_features()
        .with_query_planner(Arc::new(RuninkQueryPlanner::default()))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// DataFusion's physical planner plus [`RuninkExtensionPlanner`].
#[derive(Debug, Default)]
pub struct RuninkQueryPlanner {
    /// The plan will be split across slices: enforcement that checks `unique` gets all
    /// its rows in one stream (a coalesce below it), so no row escapes the check in another
    /// process.
    pub split: bool,
}

#[async_trait]
impl QueryPlanner for RuninkQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let extensions = RuninkExtensionPlanner { split: self.split };
        let plan = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(extensions)])
            .create_physical_plan(logical_plan, session)
            .await?;
        if !self.split {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(enforce) = node.downcast_ref::<ContractEnforceExec>() else {
                return Ok(Transformed::no(node));
            };
            let input = Arc::clone(node.children()[0]);
            // Even over one partition: the distributed planner may still split its scan
            // into several tasks; a coalesce makes the stage above it one task.
            if !enforce.needs_one_stream() || input.is::<CoalescePartitionsExec>() {
                return Ok(Transformed::no(node));
            }
            let one: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(input));
            Ok(Transformed::yes(node.replace_children(
                vec![one],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )?))
        })
        .map(|t| t.data)
    }
}

/// Plans Runink's extension nodes.
#[derive(Debug, Default)]
pub struct RuninkExtensionPlanner {
    /// The plan will be split across slices: each tap and enforcement gets counters of its
    /// own (`RunContext::tap_instance`), not the run's shared ones, so
    /// `RunContext::set_totals` counts every instance once (the head stage's copy of an
    /// operator that runs in a slice never counts), while progress still sees the head
    /// stage's.
    pub split: bool,
}

#[async_trait]
impl ExtensionPlanner for RuninkExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let any = node.as_any();
        let run = || {
            session
                .config()
                .get_extension::<RunContext>()
                .ok_or_else(|| DataFusionError::Internal("session has no RunContext".into()))
        };
        let first = || {
            physical_inputs
                .first()
                .cloned()
                .ok_or_else(|| DataFusionError::Internal(format!("{} has no input", node.name())))
        };
        if let Some(n) = any.downcast_ref::<LineageTapNode>() {
            let stats = if self.split {
                run()?.tap_instance(&n.relation, n.kind)
            } else {
                run()?.tap_stats(&n.relation, n.kind)
            };
            return Ok(Some(Arc::new(LineageTapExec::new(
                first()?,
                n.relation.clone(),
                n.kind,
                stats,
            ))));
        }
        if let Some(n) = any.downcast_ref::<ContractEnforceNode>() {
            let stats = if self.split {
                run()?.enforce_instance(&n.label)
            } else {
                run()?.enforce_stats(&n.label)
            };
            let exec = ContractEnforceExec::try_new(
                first()?,
                Arc::clone(&n.contract),
                n.mode,
                n.label.clone(),
                stats,
            )?;
            return Ok(Some(Arc::new(exec)));
        }
        if let Some(n) = any.downcast_ref::<ExecStepNode>() {
            let schema = Arc::new(n.output_schema());
            return Ok(Some(Arc::new(ExternalCommandExec::new(
                first()?,
                n.step.clone(),
                n.command.clone(),
                schema,
            ))));
        }
        if let Some(n) = any.downcast_ref::<SinksNode>() {
            let run = run()?;
            let mut groups: Vec<Vec<SinkTarget>> = vec![Vec::new(); physical_inputs.len()];
            for ((spec, &input), predicate) in n.sinks.iter().zip(&n.input_of).zip(&n.predicates) {
                let logical = logical_inputs.get(input).ok_or_else(|| {
                    DataFusionError::Internal(format!("sink reads missing input {input}"))
                })?;
                let predicate = match predicate {
                    Some(expr) => Some(planner.create_physical_expr(
                        expr,
                        logical.schema(),
                        session,
                        planning_ctx,
                    )?),
                    None => None,
                };
                groups[input].push(SinkTarget {
                    made_folder: spec.folder_to_make(),
                    spec: spec.clone(),
                    predicate,
                    stats: run.sink_stats(spec),
                });
            }
            let exec = SinkExec::try_new(
                physical_inputs.to_vec(),
                groups,
                run.run_id.clone(),
                Arc::clone(&run.commit),
            )?;
            return Ok(Some(Arc::new(exec)));
        }
        Ok(None)
    }
}
