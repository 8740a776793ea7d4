//! Lineage capture as a physical operator.
//!
//! The planner puts a [`LineageTapExec`] above every source and every step. It passes
//! batches through untouched and counts what flows, so a run knows the rows read per
//! source and produced per step; the column-level edges themselves come from the plan
//! and travel in the DAG file.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::projection::{ProjectionExec, make_with_child};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// What a tap observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TapKind {
    /// Rows read from a source.
    Source,
    /// Rows produced by a step.
    Step,
}

impl fmt::Display for TapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Source => "source",
            Self::Step => "step",
        })
    }
}

/// Counters of one tap.
#[derive(Debug, Default)]
pub struct TapStats {
    /// Rows that passed.
    pub rows: AtomicU64,
    /// Batches that passed.
    pub batches: AtomicU64,
}

/// Pass-through operator that counts rows for lineage and the run report.
#[derive(Debug)]
pub struct LineageTapExec {
    input: Arc<dyn ExecutionPlan>,
    relation: String,
    kind: TapKind,
    stats: Arc<TapStats>,
}

impl LineageTapExec {
    /// A tap named after the relation it observes.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        relation: impl Into<String>,
        kind: TapKind,
        stats: Arc<TapStats>,
    ) -> Self {
        Self {
            input,
            relation: relation.into(),
            kind,
            stats,
        }
    }

    /// The relation observed.
    pub fn relation(&self) -> &str {
        &self.relation
    }

    /// Whether it observes a source or a step.
    pub fn kind(&self) -> TapKind {
        self.kind
    }
}

impl DisplayAs for LineageTapExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineageTapExec: {}={}", self.kind, self.relation)
    }
}

impl ExecutionPlan for LineageTapExec {
    fn name(&self) -> &str {
        "LineageTapExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    // A tap must not change how DataFusion plans around it: it passes its input's
    // statistics on (so join selection still sees a small build side), it keeps the row
    // count, and projections move below it into the scan. Passed on as estimates: exact ones
    // let DataFusion answer `count(*)` or `min`/`max` from a Parquet footer without reading
    // a row, and the tap would count nothing read.
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(Arc::new(match input_stats.first() {
            Some(stats) => stats.as_ref().clone().to_inexact(),
            None => Statistics::new_unknown(&self.schema()),
        }))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    // The counters as metrics, so they travel back from slices (see `run::RunContext::set_totals`).
    fn metrics(&self) -> Option<MetricsSet> {
        let labels = [
            ("relation", self.relation.clone()),
            ("kind", self.kind.to_string()),
        ];
        let mut set = MetricsSet::new();
        set.push(crate::run::count_metric(
            crate::run::TAP_ROWS,
            self.stats.rows.load(Ordering::Relaxed),
            &labels,
        ));
        Some(set)
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        // Only a projection that drops columns moves below: one that computes something
        // stays in the step that wrote it, so an error it raises (a division by zero) is
        // named after that step, not after the tap it would have moved below.
        if projection.expr().len() >= projection.input().schema().fields().len()
            || projection.expr().iter().any(|e| {
                e.expr
                    .downcast_ref::<datafusion::physical_expr::expressions::Column>()
                    .is_none()
            })
        {
            return Ok(None);
        }
        let below = make_with_child(projection, &self.input)?;
        Ok(Some(Arc::new(Self::new(
            below,
            self.relation.clone(),
            self.kind,
            Arc::clone(&self.stats),
        ))))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "LineageTapExec takes one child".into(),
            ));
        }
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.relation.clone(),
            self.kind,
            Arc::clone(&self.stats),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let stats = Arc::clone(&self.stats);
        // A reader's error (a ragged CSV line, a value that does not parse) names neither the
        // source nor its file, nor does an operator's (a division by zero) its step: the first
        // tap above the failure adds the name of its source or step.
        let source = Some(format!("{} `{}`", self.kind, self.relation));
        let stream = input.map(move |batch| match batch {
            Ok(batch) => {
                stats
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                Ok(batch)
            }
            Err(e) => Err(match &source {
                Some(name) if !names_its_place(&e) => {
                    DataFusionError::Context(name.clone(), Box::new(e))
                }
                _ => e,
            }),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

/// Whether an error already says which source or step it comes from (a tap below named it,
/// or a slice's did before the error crossed a pipe).
fn names_its_place(e: &DataFusionError) -> bool {
    let text = crate::user_message(e);
    text.contains("source `") || text.contains("step `")
}
