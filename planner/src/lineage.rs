//! Lineage from plans: which relations feed which, and which source columns each output
//! column derives from.
//!
//! Column lineage is computed by walking the logical plan bottom-up, keeping for every
//! output column of a node the set of `(source, column)` pairs it derives from. Nodes
//! whose mapping is not known precisely (an `exec=` program, an unfamiliar node) map each
//! output column to all of their input columns: lineage may be wider than the truth,
//! never narrower.

use std::collections::BTreeSet;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan};
use serde::{Deserialize, Serialize};

use crate::nodes::{ContractEnforceNode, LineageTapNode};

/// A column of a relation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ColumnRef {
    pub relation: String,
    pub column: String,
}

/// One output column and the source columns it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnLineage {
    /// The sink (its URI).
    pub sink: String,
    pub column: String,
    pub sources: Vec<ColumnRef>,
}

/// A dataset-level edge: `from` feeds `to` (sources, steps and sinks by name/URI).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

type Sources = BTreeSet<ColumnRef>;

/// Per output column of `plan`, the source columns it derives from.
pub fn column_sources(plan: &LogicalPlan) -> Vec<BTreeSet<ColumnRef>> {
    let width = plan.schema().fields().len();
    let inputs = plan.inputs();
    let input_sources: Vec<Vec<Sources>> = inputs.iter().map(|i| column_sources(i)).collect();
    let all = || -> Sources { input_sources.iter().flatten().flatten().cloned().collect() };
    let passthrough = || -> Option<Vec<Sources>> {
        match input_sources.as_slice() {
            [one] if one.len() == width => Some(one.clone()),
            _ => None,
        }
    };
    let of_exprs = |exprs: &[Expr], input: usize| -> Vec<Sources> {
        exprs
            .iter()
            .map(|e| expr_sources(e, inputs[input], &input_sources[input]))
            .collect()
    };
    let result: Option<Vec<Sources>> = match plan {
        LogicalPlan::TableScan(scan) => {
            let relation = scan.table_name.table().to_string();
            Some(
                scan.projected_schema
                    .fields()
                    .iter()
                    .map(|f| {
                        BTreeSet::from([ColumnRef {
                            relation: relation.clone(),
                            column: f.name().clone(),
                        }])
                    })
                    .collect(),
            )
        }
        LogicalPlan::Projection(p) => Some(of_exprs(&p.expr, 0)),
        LogicalPlan::Aggregate(a) => {
            let mut exprs = a.group_expr.clone();
            exprs.extend(a.aggr_expr.iter().cloned());
            (exprs.len() == width).then(|| of_exprs(&exprs, 0))
        }
        LogicalPlan::Window(w) => {
            let mut out = input_sources.first().cloned().unwrap_or_default();
            out.extend(of_exprs(&w.window_expr, 0));
            (out.len() == width).then_some(out)
        }
        LogicalPlan::Distinct(Distinct::On(d)) => Some(of_exprs(&d.select_expr, 0)),
        LogicalPlan::Join(_) => {
            let joined: Vec<Sources> = input_sources.iter().flatten().cloned().collect();
            (joined.len() == width).then_some(joined)
        }
        LogicalPlan::Union(_) => {
            let mut out = vec![Sources::new(); width];
            for srcs in &input_sources {
                for (i, s) in srcs.iter().enumerate().take(width) {
                    out[i].extend(s.iter().cloned());
                }
            }
            Some(out)
        }
        LogicalPlan::Extension(ext) => {
            let any = ext.node.as_any();
            if any.is::<LineageTapNode>() {
                passthrough()
            } else if any.is::<ContractEnforceNode>() {
                input_sources.first().map(|first| {
                    let mut out = first.clone();
                    if out.len() < width {
                        out.push(all());
                    }
                    out
                })
            } else {
                None
            }
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Some(vec![Sources::new(); width]),
        _ => passthrough(),
    };
    match result {
        Some(r) if r.len() == width => r,
        _ => vec![all(); width],
    }
}

fn expr_sources(expr: &Expr, input: &LogicalPlan, input_sources: &[Sources]) -> Sources {
    let mut out = Sources::new();
    for col in expr.column_refs() {
        if let Ok(i) = input.schema().index_of_column(col)
            && let Some(s) = input_sources.get(i)
        {
            out.extend(s.iter().cloned());
        }
    }
    out
}

/// The relations (sources and steps) that `plan` reads directly: the outermost lineage
/// taps below it.
pub fn direct_inputs(plan: &LogicalPlan) -> Vec<String> {
    let mut found = BTreeSet::new();
    for input in plan.inputs() {
        let _ = input.apply_with_subqueries(|node| {
            if let LogicalPlan::Extension(ext) = node
                && let Some(tap) = ext.node.as_any().downcast_ref::<LineageTapNode>()
            {
                found.insert(tap.relation.clone());
                return Ok(TreeNodeRecursion::Jump);
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    found.into_iter().collect()
}
