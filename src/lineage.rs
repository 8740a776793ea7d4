//! `runi lineage`: what Barn recorded about where data comes from, as JSON, as OpenLineage
//! 2-0-2 RunEvents, or as a Graphviz graph.
//!
//! `--runid ID` exports one run. `--dataset HERD.NAME` exports every run that wrote or read
//! the dataset, so both its upstream and its downstream show.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::anyhow;
use runink_cluster::state::{
    IoDataset, LineageEdge, LineageKind, LineageNode, RunRecord, RunState,
};
use serde_json::{Value, json};

use crate::barn;
use crate::cli::{Global, LineageArgs, OutputFormat};
use crate::exit::{CmdResult, Failure};

/// The OpenLineage spec version of the events.
pub const OPENLINEAGE_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const COLUMN_LINEAGE_FACET: &str = "https://openlineage.io/spec/facets/1-1-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
/// Who wrote the events (OpenLineage's `producer`).
const PRODUCER: &str = concat!(
    "https://github.com/runink/runink/tree/v",
    env!("CARGO_PKG_VERSION")
);

pub async fn lineage(global: &Global, args: &LineageArgs) -> CmdResult {
    let (runs, edges) = match (&args.runid, &args.dataset) {
        (Some(id), _) => by_run(global, id).await?,
        (None, Some(dataset)) => by_dataset(global, dataset).await?,
        (None, None) => {
            return Err(Failure::input(anyhow!(
                "give --runid ID or --dataset HERD.NAME"
            )));
        }
    };
    match global.output {
        OutputFormat::Openlineage => {
            for run in &runs {
                let run_edges: Vec<&LineageEdge> =
                    edges.iter().filter(|e| e.run_id == run.id).collect();
                for event in openlineage_events(run, &run_edges) {
                    println!("{}", serde_json::to_string(&event).map_err(Failure::run)?);
                }
            }
        }
        OutputFormat::Dot => print!("{}", dot(&runs, &edges)),
        OutputFormat::Svg => print!("{}", svg(&dot(&runs, &edges))?),
        OutputFormat::Yaml => print!(
            "{}",
            crate::output::to_yaml(&json!({ "runs": runs, "edges": edges }))
                .map_err(Failure::run)?
        ),
        OutputFormat::Json | OutputFormat::Table => println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "runs": runs, "edges": edges }))
                .map_err(Failure::run)?
        ),
        OutputFormat::Csv => {
            return Err(Failure::input(anyhow!(
                "-o csv is not a format of `runi lineage` (json, yaml, openlineage, dot, svg)"
            )));
        }
    }
    Ok(())
}

async fn by_run(global: &Global, id: &str) -> Result<(Vec<RunRecord>, Vec<LineageEdge>), Failure> {
    let (runs, edges) = barn::read_once(global, |s| {
        let runs: Vec<RunRecord> = s.runs().filter(|r| r.id.starts_with(id)).cloned().collect();
        let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        let edges: Vec<LineageEdge> = s
            .lineage()
            .filter(|e| ids.contains(e.run_id.as_str()))
            .cloned()
            .collect();
        (runs, edges)
    })
    .await?;
    match runs.len() {
        0 => Err(Failure::input(anyhow!("no run `{id}`"))),
        1 => Ok((runs, edges)),
        n => Err(Failure::input(anyhow!(
            "`{id}` names {n} runs; give more of the id"
        ))),
    }
}

async fn by_dataset(
    global: &Global,
    dataset: &str,
) -> Result<(Vec<RunRecord>, Vec<LineageEdge>), Failure> {
    let Some((herd, name)) = dataset.split_once('.') else {
        return Err(Failure::input(anyhow!(
            "--dataset `{dataset}`: expected HERD.NAME"
        )));
    };
    let (known_herd, known, runs, edges) = barn::read_once(global, |s| {
        let touches = |n: &LineageNode| n.kind == LineageKind::Dataset && n.name == dataset;
        let ids: BTreeSet<String> = s
            .lineage()
            .filter(|e| touches(&e.from) || touches(&e.to))
            .map(|e| e.run_id.clone())
            .collect();
        let runs: Vec<RunRecord> = ids.iter().filter_map(|id| s.run(id).cloned()).collect();
        let edges: Vec<LineageEdge> = s
            .lineage()
            .filter(|e| ids.contains(&e.run_id))
            .cloned()
            .collect();
        (
            s.herd(herd).is_some(),
            s.dataset(herd, name).is_some(),
            runs,
            edges,
        )
    })
    .await?;
    if !known_herd {
        return Err(Failure::input(anyhow!("unknown herd `{herd}`")));
    }
    if !known && runs.is_empty() {
        return Err(Failure::input(anyhow!(
            "unknown dataset `{name}` in herd `{herd}`"
        )));
    }
    Ok((runs, edges))
}

/// An OpenLineage dataset's identity: registered datasets live in `runink://HERD`, files in
/// the `file` namespace under their absolute path (OpenLineage's naming for local files).
fn ol_identity(io: &IoDataset) -> (String, String) {
    match io.dataset.as_deref().and_then(|d| d.split_once('.')) {
        Some((herd, name)) => (format!("runink://{herd}"), name.to_string()),
        None => {
            let path = io.uri.split_once("://").map_or(io.uri.as_str(), |(_, p)| p);
            ("file".to_string(), path.to_string())
        }
    }
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

fn schema_facet(io: &IoDataset) -> Value {
    json!({
        "_producer": PRODUCER,
        "_schemaURL": SCHEMA_FACET,
        "fields": io.fields.iter().map(|f| json!({ "name": f.name, "type": f.data_type })).collect::<Vec<_>>(),
    })
}

/// The START event and, for a finished run, its COMPLETE, FAIL or ABORT event.
pub fn openlineage_events(run: &RunRecord, edges: &[&LineageEdge]) -> Vec<Value> {
    let job = json!({ "namespace": format!("runink://{}", run.herd), "name": run.job });
    let inputs: Vec<Value> = run
        .io
        .inputs
        .iter()
        .map(|io| {
            let (namespace, name) = ol_identity(io);
            json!({ "namespace": namespace, "name": name, "facets": { "schema": schema_facet(io) } })
        })
        .collect();
    // The relation an edge end names, as an input of the run.
    let input_of = |node: &LineageNode| -> Option<&IoDataset> {
        run.io.inputs.iter().find(|io| match node.kind {
            LineageKind::Dataset => io.dataset.as_deref() == Some(node.name.as_str()),
            _ => io.name == node.name,
        })
    };
    let outputs: Vec<Value> = run
        .io
        .outputs
        .iter()
        .map(|io| {
            let (namespace, name) = ol_identity(io);
            let is_this = |node: &LineageNode| match node.kind {
                LineageKind::Dataset => io.dataset.as_deref() == Some(node.name.as_str()),
                LineageKind::Sink => io.name == node.name,
                _ => false,
            };
            let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for e in edges {
                let (Some(to_col), Some(from_col)) = (&e.to.column, &e.from.column) else {
                    continue;
                };
                if !is_this(&e.to) {
                    continue;
                }
                let Some(input) = input_of(&e.from) else {
                    continue;
                };
                let (ns, n) = ol_identity(input);
                fields.entry(to_col.clone()).or_default().push(json!({
                    "namespace": ns,
                    "name": n,
                    "field": from_col,
                }));
            }
            let mut facets = json!({ "schema": schema_facet(io) });
            if !fields.is_empty() {
                facets["columnLineage"] = json!({
                    "_producer": PRODUCER,
                    "_schemaURL": COLUMN_LINEAGE_FACET,
                    "fields": fields.into_iter().map(|(k, v)| (k, json!({ "inputFields": v }))).collect::<serde_json::Map<_, _>>(),
                });
            }
            json!({ "namespace": namespace, "name": name, "facets": facets })
        })
        .collect();
    let event = |kind: &str, at: u64, run_facets: Value| {
        json!({
            "eventType": kind,
            "eventTime": rfc3339(at),
            "run": { "runId": run.id, "facets": run_facets },
            "job": job,
            "inputs": inputs,
            "outputs": outputs,
            "producer": PRODUCER,
            "schemaURL": OPENLINEAGE_SCHEMA,
        })
    };
    let mut events = vec![event("START", run.started_ms, json!({}))];
    let end = run.ended_ms.unwrap_or(run.heartbeat_ms);
    match run.state {
        RunState::Succeeded => events.push(event("COMPLETE", end, json!({}))),
        RunState::Failed => events.push(event(
            "FAIL",
            end,
            json!({ "errorMessage": {
                "_producer": PRODUCER,
                "_schemaURL": ERROR_FACET,
                "message": run.error.clone().unwrap_or_default(),
                "programmingLanguage": "rust",
            }}),
        )),
        RunState::Cancelled => events.push(event("ABORT", end, json!({}))),
        RunState::Pending | RunState::Running => {}
    }
    events
}

/// A Graphviz graph: one cluster per run; relations (sources, steps, sinks, datasets) as
/// clusters of their columns; relation edges bold, column edges thin.
pub fn dot(runs: &[RunRecord], edges: &[LineageEdge]) -> String {
    let id = |n: &LineageNode| {
        let kind = match n.kind {
            LineageKind::Dataset => "dataset",
            LineageKind::Source => "source",
            LineageKind::Step => "step",
            LineageKind::Sink => "sink",
        };
        match &n.column {
            Some(c) => format!("{kind}:{}.{c}", n.name),
            None => format!("{kind}:{}", n.name),
        }
    };
    let mut relations: BTreeMap<(LineageKind, String), BTreeSet<String>> = BTreeMap::new();
    for e in edges {
        for n in [&e.from, &e.to] {
            let cols = relations.entry((n.kind, n.name.clone())).or_default();
            if let Some(c) = &n.column {
                cols.insert(c.clone());
            }
        }
    }
    let mut out = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "  // run {} ({}): {}",
            r.id,
            r.state,
            r.job.replace('\n', " ")
        );
    }
    for (i, ((kind, name), columns)) in relations.iter().enumerate() {
        let (shape, style) = match kind {
            LineageKind::Dataset => ("cylinder", "filled"),
            LineageKind::Source => ("box", "solid"),
            LineageKind::Step => ("ellipse", "solid"),
            LineageKind::Sink => ("box", "dashed"),
        };
        let node = LineageNode {
            kind: *kind,
            name: name.clone(),
            column: None,
        };
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};\n    style=dotted;",
            quote(name)
        );
        let _ = writeln!(
            out,
            "    {} [label={}, shape={shape}, style={style}];",
            quote(&id(&node)),
            quote(name)
        );
        for c in columns {
            let col = LineageNode {
                kind: *kind,
                name: name.clone(),
                column: Some(c.clone()),
            };
            let _ = writeln!(
                out,
                "    {} [label={}, shape=plaintext];",
                quote(&id(&col)),
                quote(c)
            );
        }
        out.push_str("  }\n");
    }
    let mut seen = BTreeSet::new();
    for e in edges {
        let pair = (id(&e.from), id(&e.to));
        if !seen.insert(pair.clone()) {
            continue;
        }
        let style = if e.from.column.is_some() {
            "[color=gray50]"
        } else {
            "[penwidth=2]"
        };
        let _ = writeln!(out, "  {} -> {} {style};", quote(&pair.0), quote(&pair.1));
    }
    out.push_str("}\n");
    out
}

/// Renders a DOT graph as SVG with Graphviz's `dot`, which must be on PATH.
fn svg(graph: &str) -> Result<String, Failure> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Failure::run(anyhow!(
                "-o svg needs Graphviz's `dot` on PATH (e.g. `apt install graphviz`): {e}; \
                 `-o dot` prints the graph for any Graphviz tool"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(graph.as_bytes())
            .map_err(|e| Failure::run(anyhow!("cannot feed `dot`: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Failure::run(anyhow!("`dot` failed: {e}")))?;
    if !out.status.success() {
        return Err(Failure::run(anyhow!(
            "`dot -Tsvg` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|e| Failure::run(anyhow!("`dot` wrote non-UTF-8: {e}")))
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
