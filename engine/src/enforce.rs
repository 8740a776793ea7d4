//! Contract enforcement as a physical operator.
//!
//! [`ContractEnforceExec`] runs the contract's vectorized [`Checker`] over every batch.
//! In [`EnforceMode::Annotate`] (the Scenario's contract, in front of the sinks) it passes
//! every row on with a `_violations` list column — empty for valid rows — so each sink can
//! pick valid or rejected rows. In [`EnforceMode::DropInvalid`] (a `contract=` on a source
//! or step) it passes only the valid rows on and counts the others.
//!
//! Each partition checks with its own clone of one [`Checker`]: the vectorized rules run in
//! parallel, while the clones share the values `unique` rules have seen, so uniqueness holds
//! across the whole run, not per partition or per batch.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use runink_contracts::{Checker, Contract, violations_field};
use serde::{Deserialize, Serialize};

use crate::Result;

/// What the operator does with rows that break the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceMode {
    /// Keep every row, add `_violations`.
    Annotate,
    /// Keep valid rows only (no `_violations`; the contract's columns take its types).
    DropInvalid,
}

/// Counters of one enforcement point, read live by progress bars and by the run report.
#[derive(Debug, Default)]
pub struct EnforceStats {
    /// Rows checked.
    pub rows_in: AtomicU64,
    /// Rows without violations.
    pub valid: AtomicU64,
    /// Rows with at least one violation.
    pub rejected: AtomicU64,
    /// Rows violating each rule, keyed `column:rule`.
    pub per_rule: Mutex<BTreeMap<String, u64>>,
}

impl EnforceStats {
    fn add(&self, rows: usize, valid: usize, counts: &BTreeMap<String, u64>) {
        self.rows_in.fetch_add(rows as u64, Ordering::Relaxed);
        self.valid.fetch_add(valid as u64, Ordering::Relaxed);
        self.rejected
            .fetch_add((rows - valid) as u64, Ordering::Relaxed);
        if !counts.is_empty()
            && let Ok(mut per_rule) = self.per_rule.lock()
        {
            for (rule, n) in counts {
                *per_rule.entry(rule.clone()).or_default() += n;
            }
        }
    }
}

/// The output schema of enforcement in `mode` over `input`: the contract's columns take
/// the contract's types (rows whose value does not convert are rejected, the value shows
/// in the violation message and becomes null), other columns pass unchanged, and annotate
/// mode adds `_violations`.
pub fn enforced_schema(input: &Schema, checker: &Checker, mode: EnforceMode) -> Schema {
    let mut fields: Vec<_> = input.fields().iter().cloned().collect();
    for (index, field) in checker.conformed_fields() {
        if let Some(slot) = fields.get_mut(index) {
            *slot = Arc::new(field);
        }
    }
    if mode == EnforceMode::Annotate {
        fields.push(Arc::new(violations_field()));
    }
    Schema::new_with_metadata(fields, input.metadata().clone())
}

/// Physical contract enforcement.
#[derive(Debug)]
pub struct ContractEnforceExec {
    input: Arc<dyn ExecutionPlan>,
    contract: Arc<Contract>,
    contract_hash: String,
    mode: EnforceMode,
    /// Where the contract is enforced (`sinks`, or a source/step name).
    label: String,
    /// Cloned per partition; clones share the `unique` state.
    checker: Checker,
    /// Input index of each contract column, in contract order.
    conformed: Arc<Vec<usize>>,
    stats: Arc<EnforceStats>,
    properties: Arc<PlanProperties>,
}

impl ContractEnforceExec {
    /// Builds the operator; fails when the input cannot satisfy the contract's columns.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        contract: Arc<Contract>,
        mode: EnforceMode,
        label: impl Into<String>,
        stats: Arc<EnforceStats>,
    ) -> Result<Self> {
        let checker = Checker::new(&contract, &input.schema())?;
        let schema: SchemaRef = Arc::new(enforced_schema(&input.schema(), &checker, mode));
        let conformed = checker
            .conformed_fields()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let properties = Arc::new(Self::properties_for(&input, schema));
        Ok(Self {
            contract_hash: contract.hash(),
            input,
            contract,
            mode,
            label: label.into(),
            checker,
            conformed: Arc::new(conformed),
            stats,
            properties,
        })
    }

    /// The input's partitioning, and its order (a step's `ORDER BY`, which the sinks keep)
    /// where converting the ordered columns keeps their order (numbers to numbers, text to
    /// text): a column the contract converts from text to numbers is in the input's order,
    /// not in its own type's. A value that fails to convert is null in `Annotate` mode,
    /// where only the sinks read the order.
    fn properties_for(input: &Arc<dyn ExecutionPlan>, schema: SchemaRef) -> PlanProperties {
        let in_schema = input.schema();
        let kept = input.output_ordering().filter(|ordering| {
            ordering.iter().all(|sort| {
                sort.expr.downcast_ref::<Column>().is_some_and(|c| {
                    let i = c.index();
                    i < in_schema.fields().len()
                        && schema.fields().get(i).is_some_and(|out| {
                            out.name() == in_schema.field(i).name()
                                && same_order(in_schema.field(i).data_type(), out.data_type())
                        })
                })
            })
        });
        let equivalence = match kept {
            Some(ordering) => {
                EquivalenceProperties::new_with_orderings(schema, [ordering.iter().cloned()])
            }
            None => EquivalenceProperties::new(schema),
        };
        PlanProperties::new(
            equivalence,
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        )
    }

    /// The counters this operator reports into.
    pub fn stats(&self) -> &Arc<EnforceStats> {
        &self.stats
    }

    /// Where the contract is enforced.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The contract enforced.
    pub fn contract(&self) -> &Arc<Contract> {
        &self.contract
    }

    /// What happens to rows that break it.
    pub fn mode(&self) -> EnforceMode {
        self.mode
    }

    /// Whether a rule needs every row in one stream: `unique` state is per operator
    /// instance, so split across processes it would only see its own rows.
    pub fn needs_one_stream(&self) -> bool {
        self.checker.has_unique()
    }
}

impl DisplayAs for ContractEnforceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ContractEnforceExec: contract={}@{} hash={} mode={:?} at={}",
            self.contract.id,
            self.contract.version,
            short_hash(&self.contract_hash),
            self.mode,
            self.label
        )
    }
}

/// The first 12 hex digits of a `sha256:` hash, for plan displays.
pub fn short_hash(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    hex.get(..12).unwrap_or(hex)
}

impl ExecutionPlan for ContractEnforceExec {
    fn name(&self) -> &str {
        "ContractEnforceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    // The counters as metrics, so they travel back from slices (see `run::RunContext::set_totals`).
    fn metrics(&self) -> Option<MetricsSet> {
        use crate::run::{
            ENFORCE_REJECTED, ENFORCE_ROWS, ENFORCE_RULE, ENFORCE_VALID, count_metric,
        };
        let at = [("at", self.label.clone())];
        let s = &self.stats;
        let mut set = MetricsSet::new();
        set.push(count_metric(
            ENFORCE_ROWS,
            s.rows_in.load(Ordering::Relaxed),
            &at,
        ));
        set.push(count_metric(
            ENFORCE_VALID,
            s.valid.load(Ordering::Relaxed),
            &at,
        ));
        set.push(count_metric(
            ENFORCE_REJECTED,
            s.rejected.load(Ordering::Relaxed),
            &at,
        ));
        if let Ok(per_rule) = s.per_rule.lock() {
            for (rule, n) in per_rule.iter() {
                let labels = [("at", self.label.clone()), ("rule", rule.clone())];
                set.push(count_metric(ENFORCE_RULE, *n, &labels));
            }
        }
        Some(set)
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
        options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "ContractEnforceExec takes one child".into(),
            ));
        }
        let input = children.swap_remove(0);
        match options.children_properties {
            ChildrenPropertiesMode::Keep => Ok(Arc::new(Self {
                input,
                contract: Arc::clone(&self.contract),
                contract_hash: self.contract_hash.clone(),
                mode: self.mode,
                label: self.label.clone(),
                checker: self.checker.clone(),
                conformed: Arc::clone(&self.conformed),
                stats: Arc::clone(&self.stats),
                properties: Arc::clone(&self.properties),
            })),
            ChildrenPropertiesMode::Recompute => Ok(Arc::new(Self::try_new(
                input,
                Arc::clone(&self.contract),
                self.mode,
                self.label.clone(),
                Arc::clone(&self.stats),
            )?)),
        }
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
        // The run-wide `unique` state is accounted in the memory pool: a run with more
        // distinct keys than the pool allows fails with "resources exhausted" naming this
        // operator instead of growing without bound.
        let reservation = MemoryConsumer::new(format!("ContractEnforceExec[{}]", self.label))
            .register(context.memory_pool());
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let mut checker = self.checker.clone();
        let conformed = Arc::clone(&self.conformed);
        let stats = Arc::clone(&self.stats);
        let mode = self.mode;
        let out_schema = Arc::clone(&schema);
        let partitions = self
            .properties
            .output_partitioning()
            .partition_count()
            .max(1);
        let stream = input.map(move |batch| {
            let batch = batch?;
            let (out, state_bytes) =
                enforce_batch(&batch, &mut checker, &conformed, &stats, mode, &out_schema)?;
            // Each partition reserves its share of the shared checker's state.
            reservation.try_resize(state_bytes / partitions)?;
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Checks one batch; returns the output batch and the checker's state size after it.
fn enforce_batch(
    batch: &RecordBatch,
    checker: &mut Checker,
    conformed: &[usize],
    stats: &EnforceStats,
    mode: EnforceMode,
    out_schema: &SchemaRef,
) -> Result<(RecordBatch, usize)> {
    let outcome = checker.check(batch)?;
    let state_bytes = checker.state_bytes();
    let valid_rows = outcome.valid.true_count();
    stats.add(batch.num_rows(), valid_rows, &outcome.counts);
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (&index, column) in conformed.iter().zip(outcome.columns) {
        if let Some(slot) = columns.get_mut(index) {
            *slot = column;
        }
    }
    if mode == EnforceMode::Annotate {
        columns.push(Arc::new(outcome.violations));
    }
    let out =
        RecordBatch::try_new(Arc::clone(out_schema), columns).map_err(DataFusionError::from)?;
    let out = if mode == EnforceMode::DropInvalid && valid_rows < out.num_rows() {
        filter_record_batch(&out, &outcome.valid).map_err(DataFusionError::from)?
    } else {
        out
    };
    Ok((out, state_bytes))
}

/// Whether values of `from` converted to `to` keep their order: the same type, numbers to
/// numbers, text to text, instants to instants of the same zone.
fn same_order(from: &DataType, to: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    from == to
        || (from.is_numeric() && to.is_numeric())
        || (text(from) && text(to))
        || matches!((from, to), (DataType::Timestamp(_, a), DataType::Timestamp(_, b)) if a == b)
}
