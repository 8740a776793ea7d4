//! `runi run`: execute a Scenario or a DAG file in this process.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use runink_cluster::herd::parse_bytes;
use runink_engine::run::{RunContext, new_run_id};
use runink_engine::session::SessionLimits;
use runink_planner::dag::{self, DagMeta};

use crate::cli::{Global, RunArgs};
use crate::compile::compile_scenario;
use crate::exit::{CmdResult, Failure};
use crate::output;

/// How often the progress bar refreshes.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

pub async fn run(global: &Global, args: &RunArgs) -> CmdResult {
    let overrides = parse_inputs(&args.inputs)?;
    let (meta, plan) = match (&args.dag, &args.scenario.scenario) {
        (Some(path), _) => {
            let ctx = runink_planner::new_context(
                &SessionLimits::default(),
                Arc::new(RunContext::new("load")),
            )
            .map_err(Failure::run)?;
            dag::read(path, &ctx).map_err(Failure::input)?
        }
        (None, Some(_)) => {
            let (_, compiled) = compile_scenario(global, &args.scenario).await?;
            (compiled.meta, compiled.plan)
        }
        (None, None) => {
            return Err(Failure::input(anyhow!(
                "give --dag FILE or --scenario FILE"
            )));
        }
    };
    let plan = if overrides.is_empty() {
        plan
    } else {
        runink_planner::override_sources(plan, &overrides).map_err(Failure::input)?
    };

    let mut limits = SessionLimits::default();
    if let Some(memory) = &meta.resources.memory {
        limits.memory_pool_bytes = parse_bytes(memory)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                Failure::input(anyhow!(
                    "@requires(memory=\"{memory}\") is not a quantity like 512Mi or 2Gi"
                ))
            })?;
    }
    let run_ctx = Arc::new(RunContext::new(new_run_id()));
    let ctx = runink_planner::new_context(&limits, Arc::clone(&run_ctx)).map_err(Failure::run)?;
    let physical = ctx
        .state()
        .create_physical_plan(&plan)
        .await
        .map_err(|e| Failure::run(anyhow!("{}", runink_engine::user_message(&e))))?;

    let show_bar = std::io::stderr().is_terminal();
    let bar = show_bar.then(|| progress_bar(&meta));
    if !show_bar && args.follow {
        eprintln!(
            "run {}: started Scenario `{}`",
            run_ctx.run_id, meta.scenario
        );
    }
    let execution = runink_engine::run::execute(physical, ctx.task_ctx(), &run_ctx);
    tokio::pin!(execution);
    let mut ticker = tokio::time::interval(PROGRESS_TICK);
    // One listener for the whole run, so a Ctrl-C between two ticks is not missed.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result = loop {
        tokio::select! {
            r = &mut execution => break r,
            _ = ticker.tick() => {
                if let Some(bar) = &bar {
                    let p = run_ctx.progress();
                    bar.set_message(format!("read {} rows · valid {} · rejected {}", p.rows_read, p.valid, p.rejected));
                }
            }
            _ = &mut interrupted => {
                if let Some(bar) = &bar { bar.finish_and_clear(); }
                run_ctx.commit.abort();
                return Err(Failure::Interrupted);
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut report =
        result.map_err(|e| Failure::run(anyhow!("run {} failed: {e}", run_ctx.run_id)))?;
    // Operators register in planning order; report in declaration order.
    let position =
        |names: Vec<&str>, name: &str| names.iter().position(|n| *n == name).unwrap_or(usize::MAX);
    report.sources.sort_by_key(|s| {
        position(
            meta.sources.iter().map(|m| m.name.as_str()).collect(),
            &s.name,
        )
    });
    report.steps.sort_by_key(|s| {
        position(
            meta.steps.iter().map(|m| m.name.as_str()).collect(),
            &s.name,
        )
    });
    output::print_run(global.output, &meta, &report).map_err(Failure::run)?;
    Ok(())
}

fn parse_inputs(inputs: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for item in inputs {
        let (name, uri) = item
            .split_once('=')
            .ok_or_else(|| Failure::input(anyhow!("--input `{item}`: expected NAME=URI")))?;
        out.insert(name.trim().to_string(), uri.trim().to_string());
    }
    Ok(out)
}

fn progress_bar(meta: &DagMeta) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(meta.scenario.clone());
    bar.enable_steady_tick(PROGRESS_TICK);
    bar
}
