//! Printing results: a table for people, JSON or YAML for programs.

use runink_engine::RunReport;
use runink_planner::dag::{DagMeta, SliceGraph, StageMeta};
use serde::Serialize;

use crate::cli::OutputFormat;

#[derive(Serialize)]
struct RunSummary<'a> {
    status: &'static str,
    feature: &'a str,
    scenario: &'a str,
    herd: Option<&'a str>,
    contract: Option<&'a runink_planner::dag::ContractMeta>,
    #[serde(flatten)]
    report: &'a RunReport,
    /// The stages the run was split into; `null` when it ran in the `runi run` process.
    stages: Option<&'a [StageMeta]>,
}

/// Prints `value` as pretty JSON, or as YAML for `-o yaml` (the commands that have no table).
pub fn print_value(
    format: OutputFormat,
    value: &impl Serialize,
) -> Result<(), crate::exit::Failure> {
    use crate::exit::Failure;
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).map_err(Failure::run)?
        ),
        _ => print!("{}", to_yaml(value).map_err(Failure::run)?),
    }
    Ok(())
}

/// Prints a finished run's summary.
pub fn print_run(
    format: OutputFormat,
    meta: &DagMeta,
    herd: &str,
    report: &RunReport,
    split: Option<&SliceGraph>,
) -> anyhow::Result<()> {
    let summary = RunSummary {
        status: "succeeded",
        feature: &meta.feature.name,
        scenario: &meta.scenario,
        herd: Some(herd),
        contract: meta.contract.as_ref(),
        report,
        stages: split.map(|g| g.stages.as_slice()),
    };
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        OutputFormat::Yaml => print!("{}", to_yaml(&summary)?),
        _ => print!("{}", table(meta, report, split)),
    }
    Ok(())
}

/// YAML via JSON values: keeps the output dependency-free and identical in content.
pub fn to_yaml(value: &impl Serialize) -> anyhow::Result<String> {
    let json = serde_json::to_value(value)?;
    let mut out = String::new();
    write_yaml(&json, 0, &mut out);
    Ok(out)
}

fn write_yaml(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_yaml(v, indent + 1, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_yaml(v, indent + 1, out);
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        write_yaml(item, indent + 1, &mut inner);
                        let inner = inner.trim_start().to_string();
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
        serde_json::Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn table(meta: &DagMeta, r: &RunReport, split: Option<&SliceGraph>) -> String {
    let mut out = String::new();
    let stages = split.map_or(String::new(), |g| match g.stages.len() {
        1 => " (1 stage)".to_string(),
        n => format!(" ({n} stages)"),
    });
    out.push_str(&format!(
        "run {} succeeded in {:.2}s {}{stages} — Scenario `{}`",
        r.run_id,
        r.elapsed_ms as f64 / 1000.0,
        match r.slices {
            0 => "in process".to_string(),
            1 => "on 1 slice".to_string(),
            n => format!("on {n} slices"),
        },
        meta.scenario
    ));
    if let Some(c) = &meta.contract {
        out.push_str(&format!(", contract {}@{} ({})", c.id, c.version, c.hash));
        // Bound on a source or step only, it checks there, not the rows reaching the sinks.
        if let Some((kind, name)) = c.at.split_once(':') {
            out.push_str(&format!(" at {kind} `{name}`"));
        }
    }
    out.push('\n');
    out.push_str(&counters_table(&crate::record::counters(r)));
    out
}

/// Rows per source, step, contract rule and sink, as `run` and `status` print them.
pub fn counters_table(c: &runink_cluster::state::RunCounters) -> String {
    let mut out = String::new();
    let width = c
        .sources
        .iter()
        .chain(&c.steps)
        .map(|s| s.name.len())
        .chain(c.sinks.iter().map(|s| s.uri.len()))
        .chain(
            c.contracts
                .iter()
                .flat_map(|e| e.rejected_per_rule.keys().map(String::len)),
        )
        .max()
        .unwrap_or(8)
        .max(8);
    for (title, relations) in [("sources", &c.sources), ("steps", &c.steps)] {
        if !relations.is_empty() {
            out.push_str(title);
            out.push('\n');
            for s in relations {
                out.push_str(&format!("  {:<width$}  {:>12} rows\n", s.name, s.rows));
            }
        }
    }
    for e in &c.contracts {
        out.push_str(&format!(
            "contract at {}: {} rows, {} valid, {} rejected\n",
            e.at, e.rows, e.valid, e.rejected
        ));
        for (rule, n) in &e.rejected_per_rule {
            out.push_str(&format!("  {rule:<width$}  {n:>12} rows\n"));
        }
    }
    if !c.sinks.is_empty() {
        out.push_str("sinks\n");
        for s in &c.sinks {
            out.push_str(&format!(
                "  {:<width$}  {:>12} rows  (when={})\n",
                s.uri, s.rows, s.when
            ));
        }
    }
    out
}
