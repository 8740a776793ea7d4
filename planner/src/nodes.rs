//! Runink's logical extension nodes.
//!
//! They sit in the DataFusion `LogicalPlan` like any built-in node, so they show in
//! `EXPLAIN`, go through the optimizer, and are serialized into the DAG file by
//! [`crate::codec::RuninkCodec`]. Their physical executions live in `runink-engine`.
//!
//! | node | physical | what it does |
//! |---|---|---|
//! | [`LineageTapNode`] | `LineageTapExec` | counts rows of a source or step |
//! | [`ContractEnforceNode`] | `ContractEnforceExec` | checks the contract, adds `_violations` |
//! | [`ExecStepNode`] | `ExternalCommandExec` | pipes rows through an `exec=` program |
//! | [`SinksNode`] | `SinkExec` | routes rows to the sinks, the plan's root |

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use runink_contracts::{Checker, Contract, violations_field};
use runink_engine::enforce::{EnforceMode, enforced_schema, short_hash};
use runink_engine::lineage::TapKind;
use runink_engine::sink::{SinkSpec, summary_schema};

/// Counts rows flowing out of a source or a step (lineage capture).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct LineageTapNode {
    pub input: LogicalPlan,
    pub relation: String,
    pub kind: TapKind,
}

impl UserDefinedLogicalNodeCore for LineageTapNode {
    fn name(&self) -> &str {
        "LineageTap"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineageTap: {}={}", self.kind, self.relation)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        Ok(Self {
            input: inputs.swap_remove(0),
            relation: self.relation.clone(),
            kind: self.kind,
        })
    }

    /// A tap is a pass-through: the columns its parent needs are the ones it needs, so
    /// projections push through it into the scan.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

/// Enforces a contract on its input.
#[derive(Debug, Clone)]
pub struct ContractEnforceNode {
    pub input: LogicalPlan,
    pub contract: Arc<Contract>,
    pub hash: String,
    pub mode: EnforceMode,
    /// Where: the relation the contract is enforced on.
    pub label: String,
    schema: DFSchemaRef,
}

impl ContractEnforceNode {
    /// Wraps `input`; the schema gains `_violations` in annotate mode.
    pub fn try_new(
        input: LogicalPlan,
        contract: Arc<Contract>,
        mode: EnforceMode,
        label: impl Into<String>,
    ) -> DfResult<Self> {
        let schema = enforced_df_schema(input.schema(), &contract, mode)?;
        Ok(Self {
            hash: contract.hash(),
            input,
            contract,
            mode,
            label: label.into(),
            schema,
        })
    }
}

fn enforced_df_schema(
    input: &DFSchemaRef,
    contract: &Contract,
    mode: EnforceMode,
) -> DfResult<DFSchemaRef> {
    let checker = Checker::new(contract, input.as_arrow())
        .map_err(|e| DataFusionError::Plan(e.to_string()))?;
    // Same columns as the engine's `enforced_schema`, keeping each column's qualifier.
    let arrow = enforced_schema(input.as_arrow(), &checker, mode);
    let mut fields: Vec<_> = input
        .iter()
        .zip(arrow.fields())
        .map(|((q, _), f)| (q.cloned(), Arc::clone(f)))
        .collect();
    if mode == EnforceMode::Annotate {
        fields.push((None, Arc::new(violations_field())));
    }
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        input.metadata().clone(),
    )?))
}

impl PartialEq for ContractEnforceNode {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input
            && self.hash == other.hash
            && self.mode == other.mode
            && self.label == other.label
    }
}

impl Eq for ContractEnforceNode {}

impl Hash for ContractEnforceNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.hash.hash(state);
        self.mode.hash(state);
        self.label.hash(state);
    }
}

impl PartialOrd for ContractEnforceNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.label, &self.hash, self.mode).partial_cmp(&(&other.label, &other.hash, other.mode))
    }
}

impl UserDefinedLogicalNodeCore for ContractEnforceNode {
    fn name(&self) -> &str {
        "ContractEnforce"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ContractEnforce: contract={}@{} hash={} mode={} at={}",
            self.contract.id,
            self.contract.version,
            short_hash(&self.hash),
            match self.mode {
                EnforceMode::Annotate => "annotate",
                EnforceMode::DropInvalid => "drop_invalid",
            },
            self.label
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        Self::try_new(
            inputs.swap_remove(0),
            Arc::clone(&self.contract),
            self.mode,
            self.label.clone(),
        )
    }
}

/// Pipes its input through an external program (`exec=`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecStepNode {
    pub input: LogicalPlan,
    pub step: String,
    pub command: String,
    schema: DFSchemaRef,
}

impl ExecStepNode {
    /// `output` is the program's schema, found by probing it at compile time.
    pub fn try_new(
        input: LogicalPlan,
        step: String,
        command: String,
        output: Schema,
    ) -> DfResult<Self> {
        Ok(Self {
            input,
            step,
            command,
            schema: Arc::new(DFSchema::try_from(output)?),
        })
    }

    /// The program's output schema.
    pub fn output_schema(&self) -> Schema {
        self.schema.as_arrow().clone()
    }
}

impl PartialOrd for ExecStepNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.step, &self.command).partial_cmp(&(&other.step, &other.command))
    }
}

impl UserDefinedLogicalNodeCore for ExecStepNode {
    fn name(&self) -> &str {
        "ExecStep"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecStep: step={} exec=\"{}\"", self.step, self.command)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        Ok(Self {
            input: inputs.swap_remove(0),
            step: self.step.clone(),
            command: self.command.clone(),
            schema: Arc::clone(&self.schema),
        })
    }
}

/// The plan's root: every sink of the Scenario, grouped by the relation they read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SinksNode {
    /// One input per distinct relation read by sinks.
    pub inputs: Vec<LogicalPlan>,
    /// The sinks, in declaration order.
    pub sinks: Vec<SinkSpec>,
    /// `input_of[i]` is the input index sink `i` reads.
    pub input_of: Vec<usize>,
    /// `predicates[i]` is sink `i`'s `when=` predicate, if it has one.
    pub predicates: Vec<Option<Expr>>,
    schema: DFSchemaRef,
}

impl SinksNode {
    /// Builds the node; `input_of` and `predicates` are per sink.
    pub fn try_new(
        inputs: Vec<LogicalPlan>,
        sinks: Vec<SinkSpec>,
        input_of: Vec<usize>,
        predicates: Vec<Option<Expr>>,
    ) -> DfResult<Self> {
        if input_of.iter().any(|&i| i >= inputs.len()) {
            return datafusion::common::plan_err!(
                "SinksNode: a sink reads input {:?} of {}",
                input_of.iter().max(),
                inputs.len()
            );
        }
        if sinks.len() != input_of.len() || sinks.len() != predicates.len() {
            return datafusion::common::internal_err!(
                "SinksNode: per-sink vectors differ in length"
            );
        }
        Ok(Self {
            inputs,
            sinks,
            input_of,
            predicates,
            schema: Arc::new(DFSchema::try_from(summary_schema().as_ref().clone())?),
        })
    }
}

/// Each sink of a compiled plan with the schema of the rows it writes (`_violations` only
/// in `when="invalid"` sinks). Empty when the plan's root is not a [`SinksNode`].
pub fn sink_schemas(plan: &LogicalPlan) -> Vec<(SinkSpec, Schema)> {
    let LogicalPlan::Extension(ext) = plan else {
        return Vec::new();
    };
    let Some(node) = ext.node.as_any().downcast_ref::<SinksNode>() else {
        return Vec::new();
    };
    node.sinks
        .iter()
        .zip(&node.input_of)
        .map(|(spec, &input)| {
            // The schema the sink writes (views as plain strings, Parquet's timestamps in
            // milliseconds, CSV's `_violations` as text): what readers of the output, and
            // `runi sql` over a dataset, find in its files.
            let schema = runink_engine::sink::sink_schema(
                node.inputs[input].schema().as_arrow(),
                &spec.when,
                spec.location.format,
            );
            (spec.clone(), schema)
        })
        .collect()
}

impl PartialOrd for SinksNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.sinks.partial_cmp(&other.sinks)
    }
}

impl UserDefinedLogicalNodeCore for SinksNode {
    fn name(&self) -> &str {
        "Sinks"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.predicates.iter().flatten().cloned().collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sinks: ")?;
        for (i, s) in self.sinks.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{} when={} mode={:?}", s.location.uri, s.when, s.mode)?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let mut exprs = exprs.into_iter();
        let predicates = self
            .predicates
            .iter()
            .map(|p| p.as_ref().and_then(|_| exprs.next()))
            .collect();
        Self::try_new(
            inputs,
            self.sinks.clone(),
            self.input_of.clone(),
            predicates,
        )
    }

    /// Sinks write every column of their input.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(
            self.inputs
                .iter()
                .map(|i| (0..i.schema().fields().len()).collect())
                .collect(),
        )
    }
}
