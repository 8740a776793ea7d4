//! `runi run`: execute a Scenario or a DAG file, its stages split across slice processes
//! (`--slices`, default `auto`) or all in this process (`--slices inprocess`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_distributed::DistributedExec;
use futures::FutureExt;
use runink_cluster::herd::parse_bytes;
use runink_cluster::state::ResourceQuotas;
use runink_engine::run::{RunContext, new_run_id};
use runink_engine::session::SessionLimits;
use runink_engine::slice::SlicePool;
use runink_planner::dag::{self, DagMeta};
use runink_planner::slices::{SliceOptions, SliceWorkers, distributed_run_context, slice_graph};

use sha2::{Digest, Sha256};

use crate::cli::{Global, RunArgs, SliceMode};
use crate::compile::compile_scenario;
use crate::exit::{CmdResult, Failure};
use crate::output;
use crate::record::{self, Outcome, RunLock, RunPlan};
use crate::slices::{self, Budget};

/// How often the progress bar refreshes.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

pub async fn run(global: &Global, args: &RunArgs) -> CmdResult {
    // Listened to from the start, so that a signal while the Scenario compiles or the plan
    // is made cancels the run too (a signal then is kept until it is looked at below); one
    // listener for the whole run, so a Ctrl-C between two ticks is not missed. Also where the
    // shell started runi with SIGINT ignored (`runi run … &` in a script): `kill -INT` stops
    // it at any point, not only once it executes.
    let interrupted = crate::exit::interruption();
    tokio::pin!(interrupted);
    let overrides = parse_inputs(&args.inputs)?;
    let (mut meta, plan, dag_bytes, dag_file) = match (&args.dag, &args.scenario.scenario) {
        (Some(path), _) => {
            let ctx = runink_planner::new_context(
                &SessionLimits::default(),
                Arc::new(RunContext::new("load")),
            )
            .map_err(Failure::run)?;
            let (meta, plan) = dag::read(path, &ctx).map_err(Failure::input)?;
            let bytes = std::fs::read(path).map_err(Failure::input)?;
            (meta, plan, bytes, path.display().to_string())
        }
        (None, Some(feature)) => {
            let (_, compiled) = compile_scenario(global, &args.scenario).await?;
            let bytes = dag::encode(&compiled.meta, &compiled.plan).map_err(Failure::run)?;
            let file = format!("(compiled from {})", feature.display());
            (compiled.meta, compiled.plan, bytes, file)
        }
        (None, None) => {
            return Err(Failure::input(anyhow!(
                "give --dag FILE or --scenario FILE"
            )));
        }
    };
    let sinks = runink_planner::nodes::sink_schemas(&plan);
    // A compiled DAG reads its `dataset://` sources where they are now: a later run may have
    // registered the dataset somewhere else since it was compiled.
    let inputs = overrides.clone();
    let mut overrides = overrides;
    if args.dag.is_some() {
        let datasets: Vec<(String, String)> = meta
            .sources
            .iter()
            .filter(|s| !overrides.keys().any(|k| k.eq_ignore_ascii_case(&s.name)))
            .filter_map(|s| {
                let key = s.uri.strip_prefix("dataset://")?;
                Some((s.name.clone(), key.trim_end_matches('/').to_string()))
            })
            .collect();
        if !datasets.is_empty() {
            let now = crate::compile::dataset_locations(global).await?;
            for (name, key) in datasets {
                let location = now.get(&key).ok_or_else(|| {
                    Failure::input(anyhow!(
                        "source `{name}` reads dataset://{key}, which is no longer registered"
                    ))
                })?;
                overrides.insert(name, location.clone());
            }
        }
    }
    let plan = if overrides.is_empty() {
        plan
    } else {
        runink_planner::override_sources(plan, &overrides).map_err(Failure::input)?
    };
    // What this run reads, for its record and lineage: the overrides, not the compiled URIs.
    for source in &mut meta.sources {
        if let Some((_, uri)) = inputs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&source.name))
        {
            source.uri = uri.clone();
            if let Ok(location) = runink_engine::source::FileLocation::parse(uri, None) {
                source.format = location.format.name().to_string();
            }
        }
    }

    let mut limits = SessionLimits::default();
    if let Some(cpu) = &meta.resources.cpu
        && runink_cluster::herd::parse_cpu_millis(cpu).is_none_or(|m| m == 0)
    {
        return Err(Failure::input(anyhow!(
            "@requires(cpu=\"{cpu}\") is not a CPU quantity like 1, 0.5 or 500m"
        )));
    }
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

    let herd = global
        .herd
        .clone()
        .or_else(|| meta.herd.clone())
        .unwrap_or_else(|| record::DEFAULT_HERD.to_string());
    let dag_hash = hex::encode(Sha256::digest(&dag_bytes));
    let record_plan = RunPlan {
        run_id: &run_ctx.run_id,
        herd: &herd,
        meta: &meta,
        dag_id: dag_hash[..16].to_string(),
        dag_hash,
        dag_file,
        sinks,
        // The contract's text as compiled: the file may have changed since.
        contract_text: meta.contract.as_ref().and_then(|c| {
            let text = std::fs::read_to_string(&c.file).ok()?;
            let now = runink_contracts::Contract::load(&c.file, &text).ok()?;
            (now.hash() == c.hash).then_some(text)
        }),
    };
    // Interrupted while compiling: nothing was recorded or written yet.
    if (&mut interrupted).now_or_never().is_some() {
        return Err(Failure::RunInterrupted);
    }
    // Held until this function returns: while it is, `runi status` knows the run is alive.
    let lock = RunLock::acquire(&global.home, &run_ctx.run_id)?;
    let quotas = record::start(global, &record_plan).await?;
    let started = std::time::Instant::now();
    let fail = |e: Failure| async {
        let message = match &e {
            Failure::Input(e) | Failure::Run(e) => format!("{e:#}"),
            _ => "could not start its slices".to_string(),
        };
        let report = run_ctx.report(started.elapsed().as_millis() as u64);
        if let Err(e) =
            record::finish(global, &record_plan, Outcome::Failed(&report, message)).await
        {
            warn_unrecorded(&run_ctx.run_id, e);
        }
        e
    };
    // A relation the plan reads more than once (sinks reading it through different steps, a
    // self-join) is computed once, into the run's spool, which goes when the run ends.
    // The spool lives in the state directory (not a shared /tmp: it holds copies of data).
    let spool_root = std::path::absolute(global.home.join("spool"))
        .unwrap_or_else(|_| global.home.join("spool"));
    let materialized = tokio::select! {
        done = runink_planner::shared::materialize_shared(&ctx, plan, &spool_root, &run_ctx.run_id) => done,
        _ = &mut interrupted => {
            // Dropping the spooling stops it, and its spool goes with it.
            let report = run_ctx.report(started.elapsed().as_millis() as u64);
            if let Err(e) = record::finish(global, &record_plan, Outcome::Cancelled(&report)).await {
                warn_unrecorded(&run_ctx.run_id, e);
            }
            return Err(Failure::RunInterrupted);
        }
    };
    let (plan, _spool, changed) = match materialized {
        Ok(done) => done,
        Err(e) => return Err(fail(Failure::run(anyhow!("{e}"))).await),
    };
    let physical = match changed {
        false => physical,
        true => match ctx.state().create_physical_plan(&plan).await {
            Ok(p) => p,
            Err(e) => {
                let e = Failure::run(anyhow!("{}", runink_engine::user_message(&e)));
                return Err(fail(e).await);
            }
        },
    };
    // Split across slice processes, unless the run stays in this process.
    let split = match split_run(args.slices, &herd, &meta, &quotas, &limits, &run_ctx, &plan).await
    {
        Ok(split) => split,
        Err(e) => return Err(fail(e).await),
    };
    if split.is_none() && quotas.isolation_required {
        // Isolation is per slice; a run in this process has none of a slice's limits.
        eprintln!(
            "note: herd `{herd}` requires isolation, but this run runs in the `runi run` process, \
             without a slice's cgroup or namespaces ({})",
            match args.slices {
                SliceMode::InProcess => "--slices inprocess",
                _ => "its plan does not split across two slices",
            }
        );
    }
    let stages = split
        .as_ref()
        .and_then(|s| slice_graph(&s.physical, s.pool.len()));
    let heartbeat = record::spawn_heartbeat(global, Arc::clone(&run_ctx), started);

    let show_bar = std::io::stderr().is_terminal();
    let bar = show_bar.then(|| progress_bar(&meta));
    if !show_bar && args.follow {
        eprintln!(
            "run {}: started Scenario `{}`",
            run_ctx.run_id, meta.scenario
        );
    }
    let (mut pool, execution) = match split {
        Some(Split {
            pool,
            ctx,
            physical,
        }) => {
            let execution = runink_engine::run::execute_then(
                physical,
                ctx.task_ctx(),
                &run_ctx,
                runink_planner::slices::with_slice_counters,
            );
            (Some(pool), execution.boxed())
        }
        None => (
            None,
            runink_engine::run::execute(physical, ctx.task_ctx(), &run_ctx).boxed(),
        ),
    };
    tokio::pin!(execution);
    let mut ticker = tokio::time::interval(PROGRESS_TICK);
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
                heartbeat.stop().await;
                let report = run_ctx.report(started.elapsed().as_millis() as u64);
                if let Err(e) = record::finish(global, &record_plan, Outcome::Cancelled(&report)).await {
                    warn_unrecorded(&run_ctx.run_id, e);
                }
                return Err(Failure::RunInterrupted);
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    heartbeat.stop().await;
    let mut report = match result {
        Ok(mut report) => {
            report.slices = pool.as_ref().map_or(0, SlicePool::len);
            report
        }
        Err(e) => {
            // A run that failed because a slice died says which slice and how.
            let message = match pool.as_mut() {
                Some(pool) => slices::failure_message(pool, e.to_string()),
                None => e.to_string(),
            };
            // A CSV value that failed to read, placed in its file (the reader's count is
            // off by the header, and relative to the byte range it read).
            let message = runink_planner::locate_source_error(&plan, &message).unwrap_or(message);
            let report = run_ctx.report(started.elapsed().as_millis() as u64);
            if let Err(e) = record::finish(
                global,
                &record_plan,
                Outcome::Failed(&report, message.clone()),
            )
            .await
            {
                warn_unrecorded(&run_ctx.run_id, e);
            }
            return Err(Failure::run(anyhow!(
                "run {} failed: {message}",
                run_ctx.run_id
            )));
        }
    };
    record::finish(global, &record_plan, Outcome::Succeeded(&report))
        .await
        .map_err(|e| match e {
            Failure::Input(e) | Failure::Run(e) => Failure::run(anyhow!(
                "run {} succeeded and its outputs are committed, but Barn could not record its end: {e}",
                run_ctx.run_id
            )),
            other => other,
        })?;
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
    // The run is recorded: its lock goes before the summary is printed, which a closed
    // pipe (`runi run | head -1`) ends with SIGPIPE.
    drop(lock);
    output::print_run(global.output, &meta, &herd, &report, stages.as_ref())
        .map_err(Failure::run)?;
    Ok(())
}

/// A run split across slice processes: the processes, and the plan that runs on them.
struct Split {
    pool: SlicePool,
    ctx: SessionContext,
    physical: Arc<dyn ExecutionPlan>,
}

/// Starts the slices a run asks for and plans it across them; `None` keeps it in this
/// process (`--slices inprocess`, or `auto` in a herd that allows no slices).
async fn split_run(
    mode: SliceMode,
    herd: &str,
    meta: &DagMeta,
    quotas: &ResourceQuotas,
    limits: &SessionLimits,
    run_ctx: &Arc<RunContext>,
    plan: &LogicalPlan,
) -> Result<Option<Split>, Failure> {
    let budget = Budget::for_plan(quotas, &meta.resources);
    let count = match mode {
        SliceMode::InProcess => return Ok(None),
        // A quota that fits not even one slice of what `@requires` asks is an error, as
        // with `--slices N`: running it anyway in this process would ignore the quota.
        SliceMode::Auto => match budget.auto() {
            Some(n) => n,
            None => budget.count(
                herd,
                1,
                "lower @requires(cpu=, memory=), raise the herd's quota, or run with --slices inprocess",
            )?,
        },
        SliceMode::Count(n) => budget.count(herd, n, "run with --slices inprocess")?,
    };
    let short = run_ctx.run_id.get(..8).unwrap_or(&run_ctx.run_id);
    let mut pool = slices::launch(herd, &format!("run-{short}"), count, &budget)?;
    let workers = SliceWorkers::new(&pool.urls())
        .map_err(Failure::run)?
        .with_pipe_tag(pool.pipe_tag());
    let options = SliceOptions::for_runs();
    let ctx = distributed_run_context(limits, Arc::clone(run_ctx), workers, &options)
        .map_err(Failure::run)?;
    let physical = match ctx.state().create_physical_plan(plan).await {
        Ok(p) => p,
        Err(e) => {
            let message = slices::failure_message(&mut pool, runink_engine::user_message(&e));
            return Err(Failure::run(anyhow!("{message}")));
        }
    };
    if !physical.is::<DistributedExec>() {
        // Nothing to split (one slice, or input too small for two tasks): the slices would
        // sit idle, so they stop and the run stays here.
        return Ok(None);
    }
    tracing::debug!(
        "the run's stages:\n{}",
        datafusion_distributed::display_plan_ascii(physical.as_ref(), false)
    );
    Ok(Some(Split {
        pool,
        ctx,
        physical,
    }))
}

/// Barn could not record how a run ended; the run's own outcome is what the user gets.
fn warn_unrecorded(run_id: &str, e: Failure) {
    if let Failure::Input(e) | Failure::Run(e) = e {
        eprintln!(
            "warning: run {run_id}: Barn could not record its end ({e:#}); `runi status` will show it as lost"
        );
    }
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
