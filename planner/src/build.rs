//! Scenario + contract → one DataFusion `LogicalPlan`.
//!
//! ```text
//!  @source ─► TableScan(SourceTable) ─► LineageTap(source) [─► ContractEnforce(drop)]
//!  @step   ─► SQL / built-in / exec over earlier relations ─► LineageTap(step) [─► …]
//!  @sink   ─► per relation read: ContractEnforce(annotate) ─┐
//!                                                           ├─► Sinks (the root)
//! ```
//! Every source and step is registered in the session as a view named after it, so a
//! step's SQL names sources, earlier steps and `input` (its implicit input) like tables.
//! Views are inlined when planned: the result is one plan, not a chain of lookups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::catalog::view::ViewTable;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use runink_contracts::{Checker, Contract};
use runink_dsl::{
    Diagnostic, Scenario, Severity, SinkMode as DslSinkMode, Span, Spanned, StepKind, When,
    has_errors,
};
use runink_engine::command::probe_schema;
use runink_engine::enforce::EnforceMode;
use runink_engine::lineage::TapKind;
use runink_engine::sink::{SinkMode, SinkSpec, SinkWhen};
use runink_engine::source::{FileLocation, SourceTable};
use runink_engine::user_message;

use crate::dag::{
    ColumnMeta, ContractMeta, DagMeta, FeatureMeta, LineageMeta, Resources, SinkMeta, SourceMeta,
    StepMeta,
};
use crate::lineage::{ColumnLineage, Edge, column_sources, direct_inputs};
use crate::nodes::{ContractEnforceNode, ExecStepNode, LineageTapNode, SinksNode};
use crate::{PlanError, Result};

/// What to compile.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// The Feature file, as the user named it (relative to the working directory).
    pub feature_file: PathBuf,
    /// Which Scenario (`--name`); may be omitted when the file has one.
    pub scenario: Option<String>,
    /// A contract that overrides the one the Scenario binds (`--contract`).
    pub contract_file: Option<PathBuf>,
    /// The herd (`--herd`), overriding the Feature's.
    pub herd: Option<String>,
    /// Registered datasets a `dataset://HERD/NAME` source may name: `HERD/NAME` → the URI
    /// of their data (e.g. `parquet:///abs/out/trades/`). The caller reads them from Barn.
    pub datasets: BTreeMap<String, String>,
    /// The schemas those datasets were registered with, by the same keys: a CSV dataset
    /// whose file holds only its header takes its column types from here.
    pub dataset_schemas: BTreeMap<String, arrow::datatypes::SchemaRef>,
}

/// A compiled Scenario: its plan and the metadata that goes into the DAG file.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub plan: LogicalPlan,
    pub meta: DagMeta,
    /// Warnings: things that compile but probably are not what was meant.
    pub warnings: Vec<Diagnostic>,
}

/// Relation names must be SQL identifiers, so a step's SQL can name them unquoted.
fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Builder<'a> {
    ctx: &'a SessionContext,
    datasets: &'a BTreeMap<String, String>,
    dataset_schemas: &'a BTreeMap<String, arrow::datatypes::SchemaRef>,
    file: String,
    /// The Feature file's text, to point into the SQL written in it.
    text: String,
    relations: BTreeMap<String, LogicalPlan>,
    order: Vec<String>,
    meta_sources: Vec<SourceMeta>,
    /// Each source's name and absolute, normalised path: no sink may write over one.
    source_paths: Vec<(String, String)>,
    meta_steps: Vec<StepMeta>,
    edges: Vec<Edge>,
}

/// An expression of `where=`, `when=` or `Derive` is evaluated row by row: an aggregate or
/// window function there has no rows to work over (DataFusion fails with its internal
/// description of the expression). `Some(message)` when `expr` holds one.
fn row_by_row(expr: &Expr, text: &str) -> Option<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = None;
    let _ = expr.apply(|e| {
        let kind = match e {
            Expr::AggregateFunction(_) => "an aggregate",
            Expr::WindowFunction(_) => "a window function",
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        found = Some(kind);
        Ok(TreeNodeRecursion::Stop)
    });
    found.map(|kind| {
        format!(
            "\"{text}\" uses {kind}, which needs a set of rows: this expression is evaluated row by row; use a `sql=` step (GROUP BY, OVER)"
        )
    })
}

/// `plan` with its `IN (subquery)` and `EXISTS (subquery)` predicates as semi and anti joins,
/// and its scalar subqueries as joins, which is what DataFusion's optimizer makes of them
/// anyway: `datafusion-proto` cannot serialize those predicates, nor a correlated subquery's
/// outer references, so a DAG could not hold the plan otherwise. Plans without
/// them are returned as they are.
fn decorrelate_predicate_subqueries(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::optimizer::decorrelate_predicate_subquery::DecorrelatePredicateSubquery;
    use datafusion::optimizer::scalar_subquery_to_join::ScalarSubqueryToJoin;
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let mut has = false;
    plan.apply_with_subqueries(|node| {
        for e in node.expressions() {
            e.apply(|e| {
                if matches!(
                    e,
                    Expr::InSubquery(_) | Expr::Exists(_) | Expr::ScalarSubquery(_)
                ) {
                    has = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if has {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if !has {
        return Ok(plan);
    }
    Optimizer::with_rules(vec![
        Arc::new(DecorrelatePredicateSubquery::new()),
        Arc::new(ScalarSubqueryToJoin::new()),
    ])
    .optimize(plan, &OptimizerContext::new(), |_, _| {})
}

/// The kind a built-in step is recorded as in the DAG's steps.
fn builtin_kind(builtin: &str) -> &'static str {
    match builtin {
        "Dedupe" => "dedupe",
        "Filter" => "filter",
        "Select" => "select",
        "Derive" => "derive",
        "Validate" => "validate",
        _ => "builtin",
    }
}

/// Where a step's SQL was written: its tag, the start of its `sql=` string or of the
/// `sql_file=` naming the file, and that file.
#[derive(Clone, Copy)]
struct SqlAt<'a> {
    tag: Span,
    body: Span,
    file: Option<&'a str>,
}

/// The SQL parser's position in a message (` at Line: 2, Column: 13`), and the message
/// without it.
fn sql_position(message: &str) -> Option<(usize, usize, String)> {
    const LINE: &str = " at Line: ";
    const COLUMN: &str = ", Column: ";
    let start = message.find(LINE)?;
    let rest = &message[start + LINE.len()..];
    let digits = |t: &str| t.chars().take_while(char::is_ascii_digit).count();
    let n = digits(rest);
    let line = rest[..n].parse().ok()?;
    let rest = rest[n..].strip_prefix(COLUMN)?;
    let m = digits(rest);
    let column = rest[..m].parse().ok()?;
    let end = message.len() - rest.len() + m;
    Some((
        line,
        column,
        format!("{}{}", &message[..start], &message[end..]),
    ))
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Compiles the Scenario `opts` names into one plan. All paths are relative to the
/// working directory.
pub async fn compile(ctx: &SessionContext, opts: &CompileOptions) -> Result<Compiled> {
    let file = opts.feature_file.display().to_string();
    let text = std::fs::read_to_string(&opts.feature_file).map_err(|e| PlanError::Io {
        path: file.clone(),
        message: e.to_string(),
    })?;
    let (doc, diags) = runink_dsl::parse(&file, &text);
    if has_errors(&diags) {
        return Err(PlanError::Diagnostics(
            diags.into_iter().filter(|d| d.is_error()).collect(),
        ));
    }
    let mut warnings = diags;
    let Some(feature) = doc.feature else {
        return Err(PlanError::at(
            &file,
            Span { line: 1, column: 1 },
            "no `Feature:` in this file",
        ));
    };
    let scenario = pick_scenario(
        &file,
        &feature.scenarios,
        feature.span,
        opts.scenario.as_deref(),
    )?;

    // The Scenario's contract: --contract wins over `Given the contract:` / @contract.
    let contract = match (&opts.contract_file, &scenario.contract) {
        (Some(path), _) => Some((
            load_contract(path, None, &file)?,
            path.display().to_string(),
        )),
        (None, Some(bound)) => Some((
            load_contract(Path::new(&bound.value), Some(bound), &file)?,
            bound.value.clone(),
        )),
        (None, None) => None,
    };

    let mut b = Builder {
        ctx,
        datasets: &opts.datasets,
        dataset_schemas: &opts.dataset_schemas,
        file: file.clone(),
        text: text.clone(),
        relations: BTreeMap::new(),
        order: Vec::new(),
        meta_sources: Vec::new(),
        source_paths: Vec::new(),
        meta_steps: Vec::new(),
        edges: Vec::new(),
    };
    let mut contracts_meta = Vec::new();
    if let Some((c, path)) = &contract {
        contracts_meta.push(ContractMeta {
            id: c.id.clone(),
            version: c.version.clone(),
            hash: c.hash(),
            file: path.clone(),
            at: "scenario".into(),
        });
    }

    if scenario.sources.is_empty() {
        return Err(PlanError::at(
            &file,
            scenario.span,
            format!("Scenario `{}` has no @source", scenario.name),
        ));
    }
    if scenario.sinks.is_empty() {
        return Err(PlanError::at(
            &file,
            scenario.span,
            format!(
                "Scenario `{}` has no @sink: its rows would go nowhere",
                scenario.name
            ),
        ));
    }
    for source in &scenario.sources {
        b.add_source(
            source,
            contract.as_ref().map(|(c, _)| c),
            &mut contracts_meta,
        )
        .await?;
    }
    let mut previous: Option<String> = None;
    for (index, step) in scenario.steps.iter().enumerate() {
        let name = b
            .add_step(
                index,
                step,
                previous.as_deref(),
                contract.as_ref(),
                &mut contracts_meta,
            )
            .await?;
        previous = Some(name);
    }
    let default_relation = previous.or_else(|| b.order.first().cloned());

    let plan = b
        .add_sinks(
            scenario,
            default_relation.as_deref(),
            contract.as_ref().map(|(c, _)| c),
        )
        .await?;

    let columns = sink_column_lineage(&plan);
    let mut edges = b.edges;
    edges.sort();
    edges.dedup();
    let sinks = match &plan {
        LogicalPlan::Extension(ext) => ext
            .node
            .as_any()
            .downcast_ref::<SinksNode>()
            .map(|n| n.sinks.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let file_for_warnings = file.clone();
    let meta = DagMeta {
        feature: FeatureMeta {
            name: feature
                .display_name
                .clone()
                .unwrap_or_else(|| feature.name.clone()),
            file,
        },
        scenario: scenario.name.clone(),
        herd: opts
            .herd
            .clone()
            .or_else(|| scenario.herd.as_ref().map(|h| h.value.clone()))
            .or_else(|| feature.herd.as_ref().map(|h| h.value.clone())),
        contract: contracts_meta.into_iter().next(),
        sources: b.meta_sources,
        steps: b.meta_steps,
        sinks: sinks
            .into_iter()
            .zip(&scenario.sinks)
            .map(|(spec, s)| SinkMeta {
                spec,
                with: s.with.clone(),
            })
            .collect(),
        lineage: LineageMeta { edges, columns },
        resources: Resources {
            cpu: scenario.requires.as_ref().and_then(|r| r.cpu.clone()),
            memory: scenario.requires.as_ref().and_then(|r| r.memory.clone()),
        },
        slices: None,
    };
    if contract.is_some() && !scenario.sinks.iter().any(|s| s.when == When::Invalid) {
        warnings.push(Diagnostic {
            file: file_for_warnings,
            span: scenario.span,
            severity: Severity::Warning,
            message: format!(
                "Scenario `{}` enforces a contract but has no @sink(…, when=\"invalid\"): rejected rows are counted, not written",
                scenario.name
            ),
        });
    }
    Ok(Compiled {
        plan,
        meta,
        warnings,
    })
}

fn pick_scenario<'a>(
    file: &str,
    scenarios: &'a [Scenario],
    feature_span: Span,
    name: Option<&str>,
) -> Result<&'a Scenario> {
    let names = || {
        scenarios
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, scenarios) {
        (_, []) => Err(PlanError::at(
            file,
            feature_span,
            "the Feature has no Scenario",
        )),
        (None, [only]) => Ok(only),
        (None, _) => Err(PlanError::at(
            file,
            feature_span,
            format!(
                "the Feature has {} Scenarios ({}): choose one with --name",
                scenarios.len(),
                names()
            ),
        )),
        (Some(n), _) => scenarios
            .iter()
            .find(|s| s.name == n || s.name.eq_ignore_ascii_case(n))
            .ok_or_else(|| {
                PlanError::at(
                    file,
                    feature_span,
                    format!("no Scenario named `{n}`; the Feature has {}", names()),
                )
            }),
    }
}

fn load_contract(
    path: &Path,
    bound: Option<&Spanned<String>>,
    feature_file: &str,
) -> Result<Contract> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| match bound {
        Some(b) => PlanError::at(
            feature_file,
            b.span,
            format!("cannot read contract `{shown}`: {e}"),
        ),
        None => PlanError::Io {
            path: shown.clone(),
            message: e.to_string(),
        },
    })?;
    Ok(Contract::load(&shown, &text)?)
}

fn tap(input: LogicalPlan, relation: &str, kind: TapKind) -> LogicalPlan {
    LogicalPlan::Extension(Extension {
        node: Arc::new(LineageTapNode {
            input,
            relation: relation.to_string(),
            kind,
        }),
    })
}

fn enforce(
    input: LogicalPlan,
    contract: &Contract,
    mode: EnforceMode,
    label: &str,
) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(ContractEnforceNode::try_new(
            input,
            Arc::new(contract.clone()),
            mode,
            label,
        )?),
    }))
}

fn columns_of(schema: &Schema) -> Vec<ColumnMeta> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnMeta {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Builder<'_> {
    fn err(&self, span: Span, message: impl Into<String>) -> PlanError {
        PlanError::at(&self.file, span, message)
    }

    fn known(&self) -> String {
        self.order.join(", ")
    }

    fn register(&mut self, name: &str, span: Span, plan: LogicalPlan) -> Result<()> {
        if !valid_identifier(name) {
            return Err(self.err(span, format!("`{name}` cannot name a relation: use letters, digits and `_`, not starting with a digit")));
        }
        let key = name.to_ascii_lowercase();
        if key == "input" {
            return Err(self.err(
                span,
                "`input` is reserved: it names a step's implicit input",
            ));
        }
        if self.relations.contains_key(&key) {
            return Err(self.err(span, format!("relation `{name}` is defined twice")));
        }
        self.ctx
            .register_table(key.as_str(), Arc::new(ViewTable::new(plan.clone(), None)))?;
        self.relations.insert(key.clone(), plan);
        self.order.push(key);
        Ok(())
    }

    fn relation(&self, name: &Spanned<String>) -> Result<LogicalPlan> {
        self.relations
            .get(&name.value.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                self.err(
                    name.span,
                    format!(
                        "unknown relation `{}` (known so far: {})",
                        name.value,
                        self.known()
                    ),
                )
            })
    }

    async fn add_source(
        &mut self,
        source: &runink_dsl::Source,
        scenario_contract: Option<&Contract>,
        contracts: &mut Vec<ContractMeta>,
    ) -> Result<()> {
        let uri = &source.uri;
        let mut resolved = uri.value.clone();
        let mut dataset_name = None;
        let mut registered: Option<arrow::datatypes::SchemaRef> = None;
        match uri.value.split_once("://") {
            Some(("flight", _)) => {
                return Err(self.err(uri.span, "`flight://` sources are not supported by this build yet (they need the Flight service); use a file or a dataset://HERD/NAME"));
            }
            Some(("dataset", rest)) => {
                let Some((herd, name)) = rest
                    .split_once('/')
                    .filter(|(h, n)| !h.is_empty() && !n.is_empty() && !n.contains('/'))
                else {
                    return Err(self.err(
                        uri.span,
                        format!(
                            "`{}` is not a dataset URI: expected dataset://HERD/NAME",
                            uri.value
                        ),
                    ));
                };
                let Some(location) = self.datasets.get(rest) else {
                    let known: Vec<&str> = self
                        .datasets
                        .keys()
                        .filter(|k| k.starts_with(&format!("{herd}/")))
                        .map(String::as_str)
                        .collect();
                    let hint = if known.is_empty() {
                        format!(
                            "herd `{herd}` has no registered datasets (a sink with dataset=NAME registers one when its run succeeds)"
                        )
                    } else {
                        format!("registered: {}", known.join(", "))
                    };
                    return Err(self.err(
                        uri.span,
                        format!("unknown dataset `{name}` in herd `{herd}`: {hint}"),
                    ));
                };
                resolved = location.clone();
                dataset_name = Some(name.to_string());
                registered = self.dataset_schemas.get(rest).cloned();
            }
            _ => {}
        }
        let location = FileLocation::parse(&resolved, source.format.as_deref())
            .map_err(|m| self.err(uri.span, m))?;
        let from_dataset = dataset_name.is_some();
        let name = match (&source.name, dataset_name) {
            (Some(n), _) => n.clone(),
            (None, Some(dataset)) => Spanned {
                value: dataset.replace(['-', '.', ' '], "_"),
                span: uri.span,
            },
            (None, None) => {
                let stem = Path::new(location.path.trim_end_matches('/'))
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace(['-', '.', ' '], "_"))
                    .unwrap_or_default();
                Spanned {
                    value: stem,
                    span: uri.span,
                }
            }
        };
        if source.name.is_none() && !valid_identifier(&name.value) {
            return Err(self.err(
                name.span,
                format!(
                    "`{}`, taken from the {} name, cannot name a relation (letters, digits and `_`, not starting with a digit): give the source one with `name=\"…\"`",
                    name.value,
                    if from_dataset { "dataset" } else { "file" }
                ),
            ));
        }
        let contract = match &source.contract {
            Some(c) => Some((
                load_contract(Path::new(&c.value), Some(c), &self.file)?,
                c.value.clone(),
            )),
            None => None,
        };
        // The data is read with its inferred schema even when a contract is given: the
        // contract's types are applied by enforcement, so a bad value is a `type`
        // violation of one row, not a reader error that fails the run.
        //
        // A dataset of CSV or NDJSON files is read with the schema it was registered with:
        // its files do not carry their types, and inference would guess them again from
        // the text (a decimal as a float, a zoned timestamp without its zone, a header-only
        // CSV as nulls).
        let mut table = match &registered {
            Some(schema)
                if matches!(
                    location.format,
                    runink_engine::source::FileFormatKind::Csv
                        | runink_engine::source::FileFormatKind::Json
                ) =>
            {
                SourceTable::registered(name.value.clone(), location.clone(), Arc::clone(schema))
            }
            _ => SourceTable::infer(name.value.clone(), location.clone(), &self.ctx.state()).await,
        }
        .map_err(|e| self.err(uri.span, e.to_string()))?;
        // Inference sees the first rows only. A CSV source bound to a contract reads the
        // contract's columns as text, so a bad value anywhere in the data (or in data that
        // changed since compiling) is a `type` violation of its row, not a reader error.
        if let Some((c, _)) = &contract
            && location.format == runink_engine::source::FileFormatKind::Csv
        {
            table = table.with_text_columns(|column| c.field(column).is_some());
        } else if let Some(c) = scenario_contract
            && location.format == runink_engine::source::FileFormatKind::Csv
        {
            // A column the Scenario's contract calls text is text from the start: inference
            // would read codes like `01` or `2.50` as numbers and give them back as `1.0`.
            table = table.with_text_columns(|column| {
                c.field(column).is_some_and(|f| {
                    matches!(
                        f.data_type,
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
                })
            });
        }
        use datafusion::catalog::TableProvider as _;
        let schema = table.schema();
        let scan = LogicalPlanBuilder::scan(
            name.value.to_ascii_lowercase(),
            provider_as_source(Arc::new(table)),
            None,
        )?
        .build()?;
        let mut plan = tap(scan, &name.value.to_ascii_lowercase(), TapKind::Source);
        if let Some((c, path)) = &contract {
            let bound = source.contract.as_ref().map_or(uri.span, |b| b.span);
            Checker::new(c, plan.schema().as_arrow()).map_err(|e| {
                self.err(
                    bound,
                    format!("the contract does not fit source `{}`: {e}", name.value),
                )
            })?;
            plan = enforce(
                plan,
                c,
                EnforceMode::DropInvalid,
                &format!("source:{}", name.value.to_ascii_lowercase()),
            )?;
            contracts.push(ContractMeta {
                id: c.id.clone(),
                version: c.version.clone(),
                hash: c.hash(),
                file: path.clone(),
                at: format!("source:{}", name.value.to_ascii_lowercase()),
            });
        }
        self.source_paths
            .push((name.value.clone(), absolute_normalised(&location.path)));
        self.meta_sources.push(SourceMeta {
            name: name.value.to_ascii_lowercase(),
            uri: uri.value.clone(),
            format: location.format.name().to_string(),
            schema: columns_of(&schema),
        });
        self.register(&name.value, name.span, plan)
    }

    async fn add_step(
        &mut self,
        index: usize,
        step: &runink_dsl::Step,
        previous: Option<&str>,
        scenario_contract: Option<&(Contract, String)>,
        contracts: &mut Vec<ContractMeta>,
    ) -> Result<String> {
        let name = match &step.name {
            Some(n) => n.value.to_ascii_lowercase(),
            None => {
                let base = match &step.kind {
                    StepKind::Builtin { name, .. } => name.to_ascii_lowercase(),
                    _ => "step".to_string(),
                };
                let mut candidate = format!("{base}{}", index + 1);
                if base != "step" && !self.relations.contains_key(&base) {
                    candidate = base;
                }
                candidate
            }
        };
        let span = step.name.as_ref().map(|n| n.span).unwrap_or(step.span);
        // The implicit input: `from=` (first), else the previous step, else the first source.
        let input_name = match step.from.first() {
            Some(f) => {
                self.relation(f)?;
                f.value.to_ascii_lowercase()
            }
            None => previous
                .map(str::to_string)
                .or_else(|| self.order.first().cloned())
                .ok_or_else(|| {
                    self.err(step.span, "a step needs an input: declare a @source first")
                })?,
        };
        for f in step.from.iter().skip(1) {
            self.relation(f)?;
        }
        let input = self
            .relations
            .get(&input_name)
            .cloned()
            .ok_or_else(|| self.err(step.span, format!("unknown relation `{input_name}`")))?;
        self.ctx.deregister_table("input")?;
        self.ctx
            .register_table("input", Arc::new(ViewTable::new(input.clone(), None)))?;
        let in_step = |e: String| self.err(step.span, format!("step `{name}`: {e}"));
        let df_in_step = |e: datafusion::error::DataFusionError| in_step(user_message(&e));

        let (kind, body) = match &step.kind {
            StepKind::Sql(sql) => {
                let written = SqlAt {
                    tag: step.span,
                    body: step.body_span,
                    file: None,
                };
                ("sql", self.plan_sql(sql, written, &name).await?)
            }
            StepKind::SqlFile(path) => {
                let sql = std::fs::read_to_string(path)
                    .map_err(|e| in_step(format!("cannot read sql_file `{path}`: {e}")))?;
                // Editors on Windows may start a file with a byte-order mark.
                let sql = sql
                    .strip_prefix('\u{feff}')
                    .map(str::to_string)
                    .unwrap_or(sql);
                let written = SqlAt {
                    tag: step.span,
                    body: step.body_span,
                    file: Some(path),
                };
                ("sql_file", self.plan_sql(&sql, written, &name).await?)
            }
            StepKind::Builtin {
                name: builtin,
                args,
            } => {
                let arg = |key: &str| {
                    let value = args
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v)
                        .ok_or_else(|| in_step(format!("{builtin} needs `{key}=`")))?;
                    // Text where the docs say text: a boolean (`where=true`) or a list nested
                    // in a list of columns is an error, not its text.
                    let names = matches!(key, "keys" | "columns");
                    let bad = |v: &runink_dsl::Value| {
                        matches!(v, runink_dsl::Value::Bool(_) | runink_dsl::Value::List(_))
                    };
                    let wrong = match value {
                        runink_dsl::Value::List(items) if names => items.iter().find(|v| bad(v)),
                        other => bad(other).then_some(other),
                    };
                    if let Some(wrong) = wrong {
                        return Err(in_step(format!(
                            "`{key}=` takes {}, not {}",
                            if names {
                                "column names (one, or a list of them)"
                            } else {
                                "text (a SQL expression, quoted)"
                            },
                            wrong.kind()
                        )));
                    }
                    Ok(value.to_text())
                };
                let own: &[&str] = match builtin.as_str() {
                    "Dedupe" => &["keys"],
                    "Filter" => &["where"],
                    "Select" => &["columns"],
                    "Validate" => &[],
                    // Every other argument of `Derive` is a column.
                    _ => &[],
                };
                if builtin != "Derive"
                    && let Some((key, _)) = args.iter().find(|(k, _)| !own.contains(&k.as_str()))
                {
                    return Err(in_step(format!(
                        "unknown argument `{key}` for {builtin}; it takes {}name=, from= and contract=",
                        own.iter().map(|k| format!("{k}=, ")).collect::<String>()
                    )));
                }
                let plan = match builtin.as_str() {
                    "Dedupe" => {
                        let keys = split_list(&arg("keys")?);
                        let on = self.columns(&input, &keys, &in_step)?;
                        let all: Vec<Expr> = input
                            .schema()
                            .columns()
                            .into_iter()
                            .map(Expr::Column)
                            .collect();
                        LogicalPlanBuilder::from(input.clone())
                            .distinct_on(on, all, None)
                            .map_err(&df_in_step)?
                            .build()
                            .map_err(&df_in_step)?
                    }
                    "Filter" => {
                        let text = arg("where")?;
                        let predicate = self
                            .row_expression("where", &text, input.schema(), true)
                            .map_err(&in_step)?;
                        LogicalPlanBuilder::from(input.clone())
                            .filter(predicate)
                            .map_err(&df_in_step)?
                            .build()
                            .map_err(&df_in_step)?
                    }
                    "Select" => {
                        let names = split_list(&arg("columns")?);
                        let cols = self.columns(&input, &names, &in_step)?;
                        LogicalPlanBuilder::from(input.clone())
                            .project(cols)
                            .map_err(&df_in_step)?
                            .build()
                            .map_err(&df_in_step)?
                    }
                    "Derive" => {
                        if args.is_empty() {
                            return Err(in_step(
                                "Derive needs at least one `column=\"SQL expression\"`, e.g. `notional=\"quantity * price\"`".into(),
                            ));
                        }
                        // Each column in turn, so a later one may use an earlier one; a name
                        // the input has is replaced in place.
                        let mut plan = input.clone();
                        for (written, value) in args {
                            // Folded to lower case, as SQL folds unquoted names: `Qty=` is
                            // the column `qty` that later expressions (and steps) name.
                            let column = &written.to_lowercase();
                            let text = value.to_text();
                            let expr = self
                                .row_expression(column, &text, plan.schema(), false)
                                .map_err(&in_step)?;
                            let mut replaced = false;
                            let mut exprs: Vec<Expr> = Vec::new();
                            for c in plan.schema().columns() {
                                if c.name == *column {
                                    exprs.push(expr.clone().alias(column.as_str()));
                                    replaced = true;
                                } else {
                                    exprs.push(Expr::Column(c));
                                }
                            }
                            if !replaced {
                                exprs.push(expr.alias(column.as_str()));
                            }
                            plan = LogicalPlanBuilder::from(plan)
                                .project(exprs)
                                .map_err(&df_in_step)?
                                .build()
                                .map_err(&df_in_step)?;
                        }
                        plan
                    }
                    "Validate" => {
                        if step.contract.is_none() && scenario_contract.is_none() {
                            return Err(in_step(
                                "Validate needs a contract: `contract=PATH` on the step, or the Scenario's (`Given the contract: PATH`)".into(),
                            ));
                        }
                        input.clone()
                    }
                    other => {
                        return Err(in_step(format!(
                            "the built-in `{other}` is not available in this build (available: Dedupe, Filter, Select, Derive, Validate; masking comes with the security features)"
                        )));
                    }
                };
                (builtin_kind(builtin), plan)
            }
            StepKind::Exec(command) => {
                let output = probe_schema(&name, command, input.schema().as_arrow())
                    .map_err(|e| self.err(step.span, e.to_string()))?;
                let node =
                    ExecStepNode::try_new(input.clone(), name.clone(), command.clone(), output)?;
                (
                    "exec",
                    LogicalPlan::Extension(Extension {
                        node: Arc::new(node),
                    }),
                )
            }
        };
        let inputs = direct_inputs(&body);
        for i in &inputs {
            self.edges.push(Edge {
                from: i.clone(),
                to: name.clone(),
            });
        }
        self.meta_steps.push(StepMeta {
            name: name.clone(),
            kind: kind.to_string(),
            inputs,
        });
        let mut plan = tap(body, &name, TapKind::Step);
        // `Validate` without `contract=` checks the Scenario's contract at this point.
        let validates_scenario = step.contract.is_none()
            && matches!(&step.kind, StepKind::Builtin { name, .. } if name == "Validate");
        let bound = match (&step.contract, scenario_contract) {
            (Some(c), _) => Some((
                load_contract(Path::new(&c.value), Some(c), &self.file)?,
                c.value.clone(),
                c.span,
            )),
            (None, Some((contract, file))) if validates_scenario => {
                Some((contract.clone(), file.clone(), step.body_span))
            }
            _ => None,
        };
        if let Some((contract, file, at)) = bound {
            Checker::new(&contract, plan.schema().as_arrow())
                .map_err(|e| self.err(at, format!("step `{name}`: {e}")))?;
            plan = enforce(
                plan,
                &contract,
                EnforceMode::DropInvalid,
                &format!("step:{name}"),
            )?;
            contracts.push(ContractMeta {
                id: contract.id.clone(),
                version: contract.version.clone(),
                hash: contract.hash(),
                file,
                at: format!("step:{name}"),
            });
        }
        self.register(&name, span, plan)?;
        Ok(name)
    }

    async fn plan_sql(&self, sql: &str, written: SqlAt<'_>, step: &str) -> Result<LogicalPlan> {
        let at = |m: String| self.sql_error(sql, &written, step, m);
        crate::sqldepth::check_sql(sql).map_err(at)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        // With spans collected, DataFusion's planning errors (an unknown column, a bad
        // GROUP BY) carry where in the SQL they are, as its parser's errors do.
        let mut state = self.ctx.state();
        state.config_mut().options_mut().sql_parser.collect_spans = true;
        let planned = match state.create_logical_plan(sql).await {
            Ok(plan) => options.verify_plan(&plan).map(|()| plan),
            Err(e) => Err(e),
        };
        let plan = planned.map_err(|e| {
            let mut m = user_message(&e);
            if m.contains("not found") {
                m.push_str(&format!(" (known relations: {}, input)", self.known()));
            }
            if let Some(span) = e.diagnostic().and_then(|d| d.span)
                && span.start.line > 0
                && !m.contains(" at Line: ")
            {
                m.push_str(&format!(
                    " at Line: {}, Column: {}",
                    span.start.line, span.start.column
                ));
            }
            at(m)
        })?;
        use datafusion::common::tree_node::TreeNodeRecursion;
        if let LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_) =
            &plan
        {
            return Err(at(
                "EXPLAIN and DESCRIBE are not queries a step can hold; `runi compile --explain` shows the plans"
                    .to_string(),
            ));
        }
        let mut catalog_table = None;
        let mut table_function = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if scan.table_name.schema() == Some("information_schema") {
                    catalog_table = Some(scan.table_name.to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                // A relation a step may name scans a source's table or a view of an earlier
                // step; anything else the SQL planner scans comes from a table function.
                let is_relation = datafusion::datasource::source_as_provider(&scan.source)
                    .is_ok_and(|p| {
                        let any: &dyn std::any::Any = &*p;
                        any.is::<ViewTable>() || any.is::<SourceTable>()
                    });
                if !is_relation {
                    table_function = Some(scan.table_name.to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if let Some(table) = catalog_table {
            return Err(at(format!(
                "reads `{table}`: a step reads the Scenario's sources and earlier steps, not the catalog (`runi sql` has SHOW TABLES and information_schema)"
            )));
        }
        if let Some(function) = table_function {
            let function = function.trim_end_matches("()");
            return Err(at(format!(
                "reads the table function `{function}(…)`: a step reads the Scenario's sources, earlier steps and VALUES; for a series use the scalar function, e.g. `SELECT unnest(range(1, 4)) AS value`"
            )));
        }
        decorrelate_predicate_subqueries(plan).map_err(|e| at(user_message(&e)))
    }

    /// An error in a step's SQL. The SQL parser's position (`at Line: 2, Column: 13`, counted
    /// from the SQL's start) becomes the place it was written: in the Feature file, through
    /// escapes and the indentation a triple-quoted string loses, or in the `sql_file=`.
    fn sql_error(&self, sql: &str, written: &SqlAt<'_>, step: &str, message: String) -> PlanError {
        let SqlAt { tag, body, file } = *written;
        let fallback = || self.err(tag, format!("step `{step}`: {message}"));
        // At the end of the SQL the parser gives no position: the place is its last character.
        let at_end = || {
            let last = sql.trim_end();
            let line = last.split('\n').count();
            let column = last.rsplit('\n').next().map_or(1, |l| l.chars().count());
            (line, column.max(1), message.clone())
        };
        let Some((line, column, cleaned)) =
            sql_position(&message).or_else(|| message.contains("found: EOF").then(at_end))
        else {
            return fallback();
        };
        if let Some(path) = file {
            return PlanError::at(
                path,
                Span::new(clamp(line), clamp(column)),
                format!("step `{step}`: {cleaned}"),
            );
        }
        // The character at (line, column) of the SQL, and where it was written.
        let index = sql
            .split('\n')
            .take(line.saturating_sub(1))
            .map(|l| l.chars().count() + 1)
            .sum::<usize>()
            + column.saturating_sub(1);
        let origins = runink_dsl::string_origins(&self.text, body).unwrap_or_default();
        match origins.get(index).or_else(|| origins.last()) {
            Some(span) => self.err(*span, format!("step `{step}`: {cleaned}")),
            None => fallback(),
        }
    }

    /// A sink's `when=` condition, planned against the relation it reads: it must be boolean.
    fn sink_predicate(&self, text: &str, input: &LogicalPlan, span: Span) -> Result<Expr> {
        self.row_expression("when", text, input.schema(), true)
            .map_err(|m| {
                let t = text.trim();
                let hint = if t.eq_ignore_ascii_case("valid") || t.eq_ignore_ascii_case("invalid") {
                    format!(
                        " (did you mean when=\"{}\"? the two routes are written in lower case)",
                        t.to_ascii_lowercase()
                    )
                } else {
                    String::new()
                };
                self.err(span, format!("{m}{hint}"))
            })
    }

    /// An expression written in a tag argument (`where=`, `when=`, a `Derive` column),
    /// planned against `schema`: one SQL expression, evaluated row by row, and boolean when
    /// it is a condition. The error is the message, naming `key="text"`.
    fn row_expression(
        &self,
        key: &str,
        text: &str,
        schema: &datafusion::common::DFSchema,
        condition: bool,
    ) -> std::result::Result<Expr, String> {
        crate::sqldepth::check_expression(text).map_err(|m| format!("{key}=\"…\": {m}"))?;
        let expr = self
            .ctx
            .state()
            .create_logical_expr(text, schema)
            .map_err(|e| format!("{key}=\"{text}\": {}", user_message(&e)))?;
        if let Some(m) = row_by_row(&expr, text) {
            return Err(format!("{key}={m}"));
        }
        if condition {
            match expr.get_type(schema) {
                Ok(DataType::Boolean) => {}
                Ok(other) => {
                    return Err(format!(
                        "{key}=\"{text}\" is not a boolean expression (it is {other}): write a condition such as `{text} > 0`"
                    ));
                }
                Err(e) => return Err(format!("{key}=\"{text}\": {}", user_message(&e))),
            }
        }
        Ok(expr)
    }

    fn columns(
        &self,
        input: &LogicalPlan,
        names: &[String],
        in_step: &impl Fn(String) -> PlanError,
    ) -> Result<Vec<Expr>> {
        if names.is_empty() {
            return Err(in_step("no columns named".into()));
        }
        names
            .iter()
            .map(|n| {
                input
                    .schema()
                    .columns()
                    .into_iter()
                    .find(|c| c.name == *n)
                    .map(Expr::Column)
                    .ok_or_else(|| {
                        let have: Vec<String> = input
                            .schema()
                            .columns()
                            .into_iter()
                            .map(|c: Column| c.name)
                            .collect();
                        in_step(format!(
                            "unknown column `{n}` (columns: {})",
                            have.join(", ")
                        ))
                    })
            })
            .collect()
    }

    async fn add_sinks(
        &mut self,
        scenario: &Scenario,
        default_relation: Option<&str>,
        contract: Option<&Contract>,
    ) -> Result<LogicalPlan> {
        let mut inputs: Vec<LogicalPlan> = Vec::new();
        let mut input_names: Vec<String> = Vec::new();
        let mut specs = Vec::new();
        let mut input_of = Vec::new();
        let mut predicates = Vec::new();
        // Resolved path, and as written.
        let mut targets: Vec<(String, String)> = Vec::new();
        for sink in &scenario.sinks {
            let uri = &sink.uri;
            if let Some((scheme, _)) = uri.value.split_once("://")
                && matches!(scheme, "dataset" | "flight")
            {
                return Err(self.err(uri.span, format!("`{scheme}://` sinks are not supported by this build yet; write a file and set dataset=NAME")));
            }
            let location = FileLocation::parse(&uri.value, sink.format.as_deref())
                .map_err(|m| self.err(uri.span, m))?;
            // Compare normalised paths: `./out/x.csv` is `out/x.csv`, and a file inside
            // another sink's directory would be destroyed when that directory is replaced.
            let target = absolute_normalised(&location.path);
            if let Some((_, other)) = targets.iter().find(|(t, _)| overlaps(t, &target)) {
                return Err(self.err(
                    uri.span,
                    format!(
                        "this sink's `{}` overlaps another sink's `{other}`: sinks need separate files or directories",
                        location.path
                    ),
                ));
            }
            // Overwriting a source's file or directory would replace the data being read
            // (a CSV sink into a folder of Parquet inputs deleted them).
            // Appending only adds files (or rows) at commit, after the sources were read.
            let absolute = &target;
            let appends = matches!(sink.mode, DslSinkMode::Append);
            if let Some((source, path)) = self
                .source_paths
                .iter()
                .filter(|_| !appends)
                .find(|(_, p)| overlaps(p, absolute))
            {
                return Err(self.err(
                    uri.span,
                    format!(
                        "this sink's `{}` overlaps source `{source}` ({path}): a run would write over the data it reads; write to another file or directory",
                        location.path
                    ),
                ));
            }
            targets.push((target, location.path.clone()));
            let from = match &sink.from {
                Some(f) => {
                    self.relation(f)?;
                    f.value.to_ascii_lowercase()
                }
                None => default_relation.map(str::to_string).ok_or_else(|| {
                    self.err(sink.span, "this sink has no input: declare a @source")
                })?,
            };
            let when = match &sink.when {
                When::Valid => SinkWhen::Valid,
                When::Invalid => SinkWhen::Invalid,
                When::Predicate(p) => SinkWhen::Predicate(p.clone()),
            };
            if when == SinkWhen::Invalid && contract.is_none() {
                return Err(self.err(sink.span, "when=\"invalid\" needs a contract: bind one with `Given the contract: PATH` or --contract"));
            }
            let spec = SinkSpec {
                location,
                when,
                mode: match sink.mode {
                    DslSinkMode::Overwrite => SinkMode::Overwrite,
                    DslSinkMode::Append => SinkMode::Append,
                },
                dataset: sink.dataset.as_ref().map(|d| d.value.clone()),
                from: from.clone(),
            };
            if let Some(d) = &sink.dataset
                && !valid_identifier(&d.value)
            {
                return Err(self.err(
                    d.span,
                    format!(
                        "dataset=\"{}\" cannot name a dataset: use letters, digits and `_`, not starting with a digit (it becomes a table name in `runi sql`)",
                        d.value
                    ),
                ));
            }
            spec.validate().map_err(|m| self.err(sink.span, m))?;
            let index = match input_names.iter().position(|n| *n == from) {
                Some(i) => i,
                None => {
                    let base =
                        self.relations.get(&from).cloned().ok_or_else(|| {
                            self.err(sink.span, format!("unknown relation `{from}`"))
                        })?;
                    // Sinks read `_violations` as the contract's verdict; data that already
                    // has such a column (a re-read rejects file) would be taken for one.
                    if base
                        .schema()
                        .has_column_with_unqualified_name(runink_engine::sink::VIOLATIONS_COLUMN)
                    {
                        return Err(self.err(
                            sink.span,
                            format!(
                                "relation `{from}` already has a column `_violations`, which Runink reserves for contract violations: rename or drop it in a step (e.g. SELECT * EXCLUDE (_violations) FROM input)"
                            ),
                        ));
                    }
                    let plan = match contract {
                        Some(c) => {
                            Checker::new(c, base.schema().as_arrow()).map_err(|e| {
                                self.err(sink.span, format!("the contract does not fit relation `{from}` that this sink reads: {e}"))
                            })?;
                            enforce(base, c, EnforceMode::Annotate, &from)?
                        }
                        None => base,
                    };
                    inputs.push(plan);
                    input_names.push(from.clone());
                    inputs.len() - 1
                }
            };
            // CSV holds flat values only (the sink writes `_violations` as text itself).
            if spec.location.format == runink_engine::source::FileFormatKind::Csv
                && let Some(nested) = inputs[index].schema().fields().iter().find(|f| {
                    f.data_type().is_nested() && f.name() != runink_engine::sink::VIOLATIONS_COLUMN
                })
            {
                return Err(self.err(
                    sink.span,
                    format!(
                        "a CSV sink cannot hold column `{}` of type {}: write it to json://, parquet:// or arrow://, or flatten it in a step",
                        nested.name(),
                        nested.data_type()
                    ),
                ));
            }
            let predicate = match &spec.when {
                SinkWhen::Predicate(text) => {
                    Some(self.sink_predicate(text, &inputs[index], sink.span)?)
                }
                _ => None,
            };
            self.edges.push(Edge {
                from: from.clone(),
                to: spec.location.uri.clone(),
            });
            specs.push(spec);
            input_of.push(index);
            predicates.push(predicate);
        }
        let node = SinksNode::try_new(inputs, specs, input_of, predicates)?;
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }))
    }
}

/// Whether two normalised paths are the same, or one lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// `path` made absolute against the working directory, [`normalise`]d, and with the
/// symbolic links of its longest existing part resolved: two spellings of one file (relative
/// and absolute, or through a linked directory) compare equal.
fn absolute_normalised(path: &str) -> String {
    let absolute = if path.starts_with('/') {
        normalise(path)
    } else {
        match std::env::current_dir() {
            Ok(cwd) => normalise(&format!("{}/{path}", cwd.display())),
            Err(_) => return normalise(path),
        }
    };
    // The part that exists resolves; what does not exist yet (a sink's new file) cannot
    // hold links, so it is appended as written.
    let mut existing = std::path::PathBuf::from(&absolute);
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return out.to_string_lossy().into_owned();
        }
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return absolute,
        }
    }
}

/// A path with `.` and empty segments removed and `..` applied, for comparing sink targets.
fn normalise(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Column lineage of every sink: each written column and the source columns behind it.
fn sink_column_lineage(plan: &LogicalPlan) -> Vec<ColumnLineage> {
    let LogicalPlan::Extension(ext) = plan else {
        return Vec::new();
    };
    let Some(sinks) = ext.node.as_any().downcast_ref::<SinksNode>() else {
        return Vec::new();
    };
    let per_input: Vec<_> = sinks.inputs.iter().map(column_sources).collect();
    let mut out = Vec::new();
    for (spec, &input) in sinks.sinks.iter().zip(&sinks.input_of) {
        let schema = sinks.inputs[input].schema();
        for (i, field) in schema.fields().iter().enumerate() {
            if field.name() == runink_engine::sink::VIOLATIONS_COLUMN
                && spec.when != SinkWhen::Invalid
            {
                continue;
            }
            out.push(ColumnLineage {
                sink: spec.location.uri.clone(),
                column: field.name().clone(),
                sources: per_input[input][i].iter().cloned().collect(),
            });
        }
    }
    out
}

/// Points sources at other places (`runi run --input NAME=URI`). The new data must have
/// the schema the plan was compiled with. Unknown names are an error.
pub fn override_sources(
    plan: LogicalPlan,
    overrides: &BTreeMap<String, String>,
) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::datasource::source_as_provider;

    let mut parsed = BTreeMap::new();
    for (name, uri) in overrides {
        let location = FileLocation::parse(uri, None).map_err(|m| PlanError::Io {
            path: format!("--input {name}={uri}"),
            message: m,
        })?;
        parsed.insert(name.to_ascii_lowercase(), location);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut json = Vec::new();
    let plan = plan
        .transform_up(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let provider = source_as_provider(&scan.source)?;
            let any: &dyn std::any::Any = &*provider;
            let Some(table) = any.downcast_ref::<SourceTable>() else {
                return Ok(Transformed::no(node));
            };
            let Some(location) = parsed.get(&table.name.to_ascii_lowercase()) else {
                return Ok(Transformed::no(node));
            };
            seen.insert(table.name.to_ascii_lowercase());
            use datafusion::catalog::TableProvider as _;
            let replaced = SourceTable::new(table.name.clone(), location.clone(), table.schema());
            if location.format == runink_engine::source::FileFormatKind::Json {
                json.push(replaced.clone());
            }
            let mut scan = scan.clone();
            scan.source = provider_as_source(Arc::new(replaced));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })?
        .data;
    if let Some(unknown) = parsed.keys().find(|k| !seen.contains(*k)) {
        return Err(PlanError::Io {
            path: format!("--input {unknown}=…"),
            message: format!("the plan has no source named `{unknown}`"),
        });
    }
    for table in json {
        table.check_json_fields().map_err(|e| PlanError::Io {
            path: format!("--input {}={}", table.name, table.location.uri),
            message: match e {
                runink_engine::EngineError::Source { message, .. } => message,
                other => other.to_string(),
            },
        })?;
    }
    // As at compile time: an overwriting sink may not write over a source given here.
    if let LogicalPlan::Extension(root) = &plan
        && let Some(sinks) = root.node.as_any().downcast_ref::<SinksNode>()
    {
        for (name, location) in &parsed {
            let source = absolute_normalised(&location.path);
            for sink in sinks.sinks.iter().filter(|s| s.mode == SinkMode::Overwrite) {
                if overlaps(&source, &absolute_normalised(&sink.location.path)) {
                    return Err(PlanError::Io {
                        path: format!("--input {name}={}", location.uri),
                        message: format!(
                            "overlaps sink `{}`: the run would write over the data it reads; read a copy, or write elsewhere",
                            sink.location.uri
                        ),
                    });
                }
            }
        }
    }
    Ok(plan)
}

/// A run's error about reading a CSV source (`source \`x\`: … at line N`), with the place
/// the reader gave (wrong for a file read in ranges, and without the file) replaced by the
/// file and line of the bad value (see [`SourceTable::locate_csv_error`]).
pub fn locate_source_error(plan: &LogicalPlan, message: &str) -> Option<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::source_as_provider;

    // Readers' errors (CSV values, JSON records, Parquet and Arrow files), not others about
    // a source (which re-reading its files would not place).
    if ![
        " at line ",
        " for line ",
        "Json error",
        "Parquet",
        "Arrow",
        "Ipc error",
        "Io error",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        return None;
    }
    let start = message.find("source `")? + "source `".len();
    let name = &message[start..start + message[start..].find('`')?];
    let mut table: Option<SourceTable> = None;
    plan.apply_with_subqueries(|node| {
        let provider = match node {
            LogicalPlan::TableScan(scan) => source_as_provider(&scan.source).ok(),
            _ => None,
        };
        let any = provider.as_deref().map(|p| p as &dyn std::any::Any);
        if let Some(t) = any.and_then(|a| a.downcast_ref::<SourceTable>())
            && t.name.eq_ignore_ascii_case(name)
        {
            table = Some(t.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    let located = table?.locate_error(message)?;
    let head = start + name.len() + 1;
    let tail = message[head..]
        .find('\n')
        .map_or(message.len(), |i| head + i);
    Some(format!(
        "{}: {located}{}",
        &message[..head],
        &message[tail..]
    ))
}
