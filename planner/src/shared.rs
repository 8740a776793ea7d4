//! Relations read more than once in a run are computed once.
//!
//! A Scenario's plan is a tree: a relation that two sinks read through different steps (a
//! sink on step `a`, another on step `b` that reads `a`), or that one step reads twice (a
//! self-join), appears as two copies of the same sub-plan, and DataFusion runs each copy —
//! its sources are read twice (and counted twice), its `exec=` programs run twice, and
//! `random()` or which duplicate `Dedupe` keeps may differ between the copies.
//!
//! [`materialize_shared`] finds relations that occur more than once — a lineage tap (which
//! marks every source and step), or a contract enforced on one — also inside subqueries. It
//! takes the largest such relation none of whose inner relations is also read elsewhere (so
//! an inner relation read only through it is not spooled on its own), runs it once into an
//! Arrow IPC file in a spool directory owned by the run (mode 0700; dictionaries stored as
//! their values; the order of its rows is not kept), and puts a scan of
//! that file (with the relation's column names and qualifiers) in place of every copy; then
//! it looks again. A source that is merely read twice is not copied: files read the same
//! twice, so every copy but the first loses its tap instead, and the source is counted once.
//! A plan without repeated relations (the common case) is returned unchanged, without a spool.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::FileWriter;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, HashMap};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, SortExpr};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use runink_engine::source::{FileLocation, SourceTable};

use crate::error::{PlanError, Result};
use crate::nodes::{ContractEnforceNode, LineageTapNode};
use runink_engine::lineage::TapKind;

/// The files of relations computed once for a run; removed with it (when dropped).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Computes each relation that `plan` reads more than once, once, into a spool under
/// `spool_root`, and returns the plan reading those files instead (see the module), the
/// spool, and whether the plan changed.
pub async fn materialize_shared(
    ctx: &SessionContext,
    mut plan: LogicalPlan,
    spool_root: &Path,
    run_id: &str,
) -> Result<(LogicalPlan, Option<Spool>, bool)> {
    let mut spool: Option<Spool> = None;
    let mut n = 0usize;
    // Sources whose tap has counted once already (in a spooled relation or earlier in the plan).
    let mut counted = std::collections::HashSet::new();
    while let Some(shared) = next_repeated_relation(&plan)? {
        let dir = match &spool {
            Some(s) => s.dir.clone(),
            None => {
                let dir = spool_root.join(run_id);
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| PlanError::Io {
                        path: dir.display().to_string(),
                        message: format!("cannot create the run's spool directory: {e}"),
                    })?;
                spool = Some(Spool { dir: dir.clone() });
                dir
            }
        };
        let file = dir.join(format!("relation-{n}.arrow"));
        let once = count_sources_once(shared.clone(), &mut counted)?.data;
        let scan = spool_relation(ctx, &once, &file, n).await?;
        plan = plan
            .transform_down_with_subqueries(|node| {
                if !is_relation(&node) {
                    return Ok(Transformed::no(node));
                }
                let (bare, sort) = unsorted(&node);
                if bare != shared {
                    return Ok(Transformed::no(node));
                }
                let read = match sort {
                    Some(exprs) => LogicalPlanBuilder::from(scan.clone())
                        .sort(exprs)?
                        .build()?,
                    None => scan.clone(),
                };
                Ok(Transformed::new(read, true, TreeNodeRecursion::Jump))
            })?
            .data;
        n += 1;
    }
    let last = count_sources_once(plan, &mut counted)?;
    let changed = n > 0 || last.transformed;
    Ok((last.data, spool, changed))
}

/// The relations `plan` reads more than once that a run computes once and spools (plain
/// sources are read again instead), by name, for `runi compile --explain`.
pub fn repeated_relations(plan: &LogicalPlan) -> Result<Vec<String>> {
    let mut names: Vec<String> = relation_counts(plan)?
        .into_iter()
        .filter(|(node, count)| *count >= 2 && !is_plain_source(node))
        .filter_map(|(node, _)| tap_name(&node))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The relation a unit is about: its tap's name.
fn tap_name(node: &LogicalPlan) -> Option<String> {
    let LogicalPlan::Extension(e) = node else {
        return None;
    };
    let any = e.node.as_any();
    if let Some(t) = any.downcast_ref::<LineageTapNode>() {
        return Some(t.relation.clone());
    }
    any.downcast_ref::<ContractEnforceNode>()
        .and_then(|c| tap_name(&c.input))
}

/// A relation as a unit: a lineage tap, or a contract enforced right on one.
fn is_relation(node: &LogicalPlan) -> bool {
    let LogicalPlan::Extension(e) = node else {
        return false;
    };
    let any = e.node.as_any();
    any.is::<LineageTapNode>()
        || any
            .downcast_ref::<ContractEnforceNode>()
            .is_some_and(|c| is_tap(&c.input))
}

fn is_tap(node: &LogicalPlan) -> bool {
    matches!(node, LogicalPlan::Extension(e) if e.node.as_any().is::<LineageTapNode>())
}

/// A source's tap right over its scan: reading the files again gives the same rows.
fn is_plain_source(node: &LogicalPlan) -> bool {
    matches!(node, LogicalPlan::Extension(e)
    if e.node.as_any().downcast_ref::<LineageTapNode>().is_some_and(|t| {
        t.kind == TapKind::Source && matches!(t.input, LogicalPlan::TableScan(_))
    }))
}

fn tap_input(node: &LogicalPlan) -> &LogicalPlan {
    match node {
        LogicalPlan::Extension(e) => e
            .node
            .as_any()
            .downcast_ref::<LineageTapNode>()
            .map_or(node, |t| &t.input),
        _ => node,
    }
}

/// How often each relation occurs in `plan`, subqueries included, by its unsorted form.
fn relation_counts(plan: &LogicalPlan) -> Result<HashMap<LogicalPlan, usize>> {
    let mut counts: HashMap<LogicalPlan, usize> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if is_relation(node) {
            *counts.entry(unsorted(node).0).or_default() += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(counts)
}

/// A step's relation without the `ORDER BY` it ends in, and that sort. The SQL planner drops
/// the sort where another step reads the relation (order in a subquery means nothing) and
/// keeps it where a sink does, so the two copies match only without it; a sink's copy reads
/// the spooled rows sorted again. A sort with a `LIMIT` chooses rows and stays.
fn unsorted(node: &LogicalPlan) -> (LogicalPlan, Option<Vec<SortExpr>>) {
    let LogicalPlan::Extension(e) = node else {
        return (node.clone(), None);
    };
    let Some(tap) = e.node.as_any().downcast_ref::<LineageTapNode>() else {
        return (node.clone(), None);
    };
    match &tap.input {
        LogicalPlan::Sort(sort) if sort.fetch.is_none() => {
            let bare = LineageTapNode {
                input: sort.input.as_ref().clone(),
                relation: tap.relation.clone(),
                kind: tap.kind,
            };
            (
                LogicalPlan::Extension(Extension {
                    node: Arc::new(bare),
                }),
                Some(sort.expr.clone()),
            )
        }
        _ => (node.clone(), None),
    }
}

/// `plan` with the tap of every plain source already in `counted` removed (the source is
/// read again, but counted once), and its other plain sources added to `counted`.
fn count_sources_once(
    plan: LogicalPlan,
    counted: &mut std::collections::HashSet<LogicalPlan>,
) -> Result<Transformed<LogicalPlan>> {
    Ok(plan.transform_down_with_subqueries(|node| {
        if !is_plain_source(&node) {
            return Ok(Transformed::no(node));
        }
        if counted.insert(node.clone()) {
            return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
        }
        let input = tap_input(&node).clone();
        Ok(Transformed::new(input, true, TreeNodeRecursion::Jump))
    })?)
}

/// The next relation to compute once: the largest repeated one none of whose inner repeated
/// relations is also read outside its copies (that one goes first). The smallest repeated
/// relation always qualifies, so there is one whenever anything but a plain source repeats.
fn next_repeated_relation(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let counts = relation_counts(plan)?;
    let mut repeated: Vec<(usize, &LogicalPlan, usize)> = Vec::new();
    for (node, count) in &counts {
        // A plain source is read again, not copied (`count_sources_once`).
        if *count >= 2 && !is_plain_source(node) {
            repeated.push((nodes_in(node)?, node, *count));
        }
    }
    repeated.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, node, count) in &repeated {
        let inner = relation_counts(node)?;
        let read_elsewhere = inner.iter().any(|(relation, within)| {
            // An inner relation read twice within each copy, or also outside the copies,
            // must be computed once first.
            relation != *node
                && !is_plain_source(relation)
                && (*within > 1
                    || counts
                        .get(relation)
                        .is_some_and(|total| *total > count * within))
        });
        if !read_elsewhere {
            return Ok(Some((*node).clone()));
        }
    }
    Ok(None)
}

fn nodes_in(plan: &LogicalPlan) -> Result<usize> {
    let mut n = 0;
    plan.apply_with_subqueries(|_| {
        n += 1;
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(n)
}

/// Runs `relation` into `file` (columns named `c0…`, so that equal names under different
/// qualifiers cannot clash) and returns a plan that reads it back with the relation's own
/// qualified column names.
async fn spool_relation(
    ctx: &SessionContext,
    relation: &LogicalPlan,
    file: &Path,
    n: usize,
) -> Result<LogicalPlan> {
    let schema = relation.schema();
    let positional: Vec<Expr> = schema
        .columns()
        .into_iter()
        .enumerate()
        .zip(schema.fields())
        .map(|((i, c), f)| {
            let column = Expr::Column(c);
            let column = match plain(f.data_type()) {
                Some(values) => datafusion::logical_expr::cast(column, values),
                None => column,
            };
            column.alias(format!("c{i}"))
        })
        .collect();
    let to_file = LogicalPlanBuilder::from(relation.clone())
        .project(positional)?
        .build()?;
    let physical = ctx.state().create_physical_plan(&to_file).await?;
    let file_schema = physical.schema();
    let io = |e: &dyn std::fmt::Display| PlanError::Io {
        path: file.display().to_string(),
        message: format!("cannot write a shared relation: {e}"),
    };
    // An IPC file (a stream scan would not survive datafusion-proto on its way to a slice).
    // Dictionaries are written as their values: a file cannot replace a dictionary between
    // batches. A file may be read in byte ranges, so the order of rows is not kept.
    let out = std::fs::File::create(file).map_err(|e| io(&e))?;
    let mut writer =
        FileWriter::try_new(std::io::BufWriter::new(out), &file_schema).map_err(|e| io(&e))?;
    let mut stream = execute_stream(physical, ctx.task_ctx())?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?).map_err(|e| io(&e))?;
    }
    writer.finish().map_err(|e| io(&e))?;

    let table_name = format!("__runink_shared_{n}");
    let location =
        FileLocation::parse(&format!("arrow://{}", file.display()), None).map_err(|m| {
            PlanError::Io {
                path: file.display().to_string(),
                message: m,
            }
        })?;
    // The table declares the relation's logical fields (types, nullability, metadata) under
    // the positional names, so the scan's schema is the relation's, whatever the physical
    // plan said about nullability.
    let stored = Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let stored_type = plain(f.data_type()).unwrap_or_else(|| f.data_type().clone());
                Field::new(format!("c{i}"), stored_type, f.is_nullable())
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
        schema.inner().metadata().clone(),
    ));
    let table = SourceTable::new(table_name.clone(), location, stored);
    let named: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let column = Expr::Column(Column::new(Some(table_name.clone()), format!("c{i}")));
            let column = match plain(field.data_type()) {
                Some(_) => datafusion::logical_expr::cast(column, field.data_type().clone()),
                None => column,
            };
            column.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(
        LogicalPlanBuilder::scan(table_name, provider_as_source(Arc::new(table)), None)?
            .project(named)?
            .build()?,
    )
}

/// The value type of a dictionary type (how a spool file stores it), or `None`.
fn plain(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Dictionary(_, values) => Some(values.as_ref().clone()),
        _ => None,
    }
}
