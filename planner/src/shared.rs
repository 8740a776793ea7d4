//! Relations read more than once in a run are computed once.
//!
//! A Scenario's plan is a tree: a relation that two sinks read through different steps (a
//! sink on step `a`, another on step `b` that reads `a`), or that one step reads twice (a
//! self-join), appears as two copies of the same sub-plan, and DataFusion runs each copy —
//! its sources are read twice (and counted twice), its `exec=` programs run twice, and
//! `random()` or which duplicate `Dedupe` keeps may differ between the copies.
//!
//! [`materialize_shared`] finds relations (the lineage taps that mark sources and steps) that
//! occur more than once, runs each once into an Arrow IPC file in a spool directory owned by
//! the run, and puts a scan of that file (with the relation's column names and qualifiers) in
//! place of every copy. It starts with the smallest such relation and looks again after each,
//! so a relation shared inside another is computed once too. A plan without repeated
//! relations (the common case) is returned unchanged, without a spool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::FileWriter;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, HashMap};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use runink_engine::source::{FileLocation, SourceTable};

use crate::error::{PlanError, Result};
use crate::nodes::LineageTapNode;

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
/// `spool_root`, and returns the plan reading those files instead (see the module).
pub async fn materialize_shared(
    ctx: &SessionContext,
    mut plan: LogicalPlan,
    spool_root: &Path,
    run_id: &str,
) -> Result<(LogicalPlan, Option<Spool>)> {
    let mut spool: Option<Spool> = None;
    let mut n = 0usize;
    while let Some(shared) = smallest_repeated_relation(&plan)? {
        let dir = match &spool {
            Some(s) => s.dir.clone(),
            None => {
                let dir = spool_root.join(format!("runink-spool-{run_id}"));
                std::fs::create_dir_all(&dir).map_err(|e| PlanError::Io {
                    path: dir.display().to_string(),
                    message: format!("cannot create the run's spool directory: {e}"),
                })?;
                spool = Some(Spool { dir: dir.clone() });
                dir
            }
        };
        let file = dir.join(format!("relation-{n}.arrow"));
        let scan = spool_relation(ctx, &shared, &file, n).await?;
        plan = plan
            .transform_down(|node| {
                Ok(if node == shared {
                    Transformed::new(scan.clone(), true, TreeNodeRecursion::Jump)
                } else {
                    Transformed::no(node)
                })
            })?
            .data;
        n += 1;
    }
    Ok((plan, spool))
}

/// The smallest relation (a lineage tap and what is below it) that occurs more than once.
fn smallest_repeated_relation(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let mut counts: HashMap<&LogicalPlan, usize> = HashMap::new();
    plan.apply(|node| {
        if let LogicalPlan::Extension(e) = node
            && e.node.as_any().is::<LineageTapNode>()
        {
            *counts.entry(node).or_default() += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut best: Option<(usize, &LogicalPlan)> = None;
    for (node, count) in counts {
        if count < 2 {
            continue;
        }
        let size = nodes_in(node)?;
        if best.is_none_or(|(s, _)| size < s) {
            best = Some((size, node));
        }
    }
    Ok(best.map(|(_, node)| node.clone()))
}

fn nodes_in(plan: &LogicalPlan) -> Result<usize> {
    let mut n = 0;
    plan.apply(|_| {
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
        .map(|(i, c)| Expr::Column(c).alias(format!("c{i}")))
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
    let stored = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable())
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
    ));
    let table = SourceTable::new(table_name.clone(), location, stored);
    let named: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(table_name.clone()), format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(
        LogicalPlanBuilder::scan(table_name, provider_as_source(Arc::new(table)), None)?
            .project(named)?
            .build()?,
    )
}
