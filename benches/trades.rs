//! Benchmark harness (not a timed test): the bundled example Scenario on 1 M trades,
//!
//! 1. with contract enforcement + lineage capture vs. the same plan without them, both run
//!    in this process, alternating, in the same run — target ratio ≤ 1.10;
//! 2. `runi compile` of the example (parse, contract, schema inference, planning, DAG
//!    encoding) vs. DataFusion planning the equivalent SQL alone (table registration with
//!    schema inference + SQL → optimized logical plan).
//!
//! ```text
//! cargo bench --bench trades -- [--rows N] [--iterations K]
//! ```
//! Prints medians and ratios; the ratios are what the project tracks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use runink_engine::run::{RunContext, execute, new_run_id};
use runink_engine::session::SessionLimits;
use runink_planner::nodes::{ContractEnforceNode, LineageTapNode};
use runink_planner::{CompileOptions, compile, dag};

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let mut rows = 1_000_000usize;
    let mut iterations = 5usize;
    let mut contract: Option<PathBuf> = None;
    let mut explain = false;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            "--iterations" => iterations = args.next().ok_or("--iterations K")?.parse()?,
            // Another contract for the same Scenario, to see what each rule costs.
            "--explain" => explain = true,
            // Run one variant only, many times, e.g. under `perf record`.
            "--only" => only = Some(args.next().ok_or("--only with|without")?),
            "--contract" => {
                contract = Some(std::fs::canonicalize(
                    args.next().ok_or("--contract FILE")?,
                )?)
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("runink-bench-{rows}"));
    std::fs::create_dir_all(&work)?;
    for f in ["trades.feature", "contracts/trade.yaml"] {
        let to = work.join(f);
        std::fs::create_dir_all(to.parent().ok_or("no parent")?)?;
        std::fs::copy(repo.join("examples/trades").join(f), to)?;
    }
    if !work.join("data/trades.csv").exists() {
        let status = Command::new(env!("CARGO_BIN_EXE_gen-trades"))
            .args(["--rows", &rows.to_string(), "--out", "data"])
            .current_dir(&work)
            .status()?;
        if !status.success() {
            return Err("gen-trades failed".into());
        }
    }
    std::env::set_current_dir(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(rows, iterations, &work, contract, explain, only))
}

async fn bench(
    rows: usize,
    iterations: usize,
    work: &Path,
    contract: Option<PathBuf>,
    explain: bool,
    only: Option<String>,
) -> Result<(), BoxError> {
    let options = CompileOptions {
        feature_file: PathBuf::from("trades.feature"),
        scenario: None,
        contract_file: contract,
        ..Default::default()
    };
    let ctx = runink_planner::new_context(
        &SessionLimits::default(),
        Arc::new(RunContext::new("bench")),
    )?;
    let compiled = compile(&ctx, &options).await?;
    let with = compiled.plan.clone();
    let without = strip_runink_operators(with.clone())?;
    println!("workload: {rows} trades in {}", work.display());
    if explain {
        for (name, plan) in [("with", &with), ("without", &without)] {
            let ctx = runink_planner::new_context(
                &SessionLimits::default(),
                Arc::new(RunContext::new("x")),
            )?;
            let physical = ctx.state().create_physical_plan(plan).await?;
            println!(
                "== {name}\n{}",
                datafusion::physical_plan::displayable(physical.as_ref()).indent(false)
            );
        }
    }

    if let Some(which) = only {
        let plan = match which.as_str() {
            "with" => &with,
            "without" => &without,
            other => return Err(format!("--only {other}: expected with or without").into()),
        };
        let mut times = Vec::new();
        for _ in 0..iterations {
            times.push(run_plan(plan).await?);
        }
        println!(
            "run {which}: {:>8.1} ms (median of {iterations})",
            ms(median(&mut times))
        );
        return Ok(());
    }

    // Warm the page cache and the allocator once for each variant.
    run_plan(&with).await?;
    run_plan(&without).await?;
    let (mut t_with, mut t_without) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        t_with.push(run_plan(&with).await?);
        t_without.push(run_plan(&without).await?);
    }
    // Each iteration runs both plans back to back: the ratio of a pair is measured under
    // the same load, so the median of the pairs' ratios is steadier than the ratio of the
    // medians on a shared machine (both are printed).
    let mut pairs: Vec<f64> = t_with
        .iter()
        .zip(&t_without)
        .map(|(w, o)| w.as_secs_f64() / o.as_secs_f64())
        .collect();
    pairs.sort_by(f64::total_cmp);
    let (m_with, m_without) = (median(&mut t_with), median(&mut t_without));
    println!(
        "run with enforcement + lineage: {:>8.1} ms (median of {iterations})",
        ms(m_with)
    );
    println!("run without them:               {:>8.1} ms", ms(m_without));
    println!(
        "ratio of the medians:              {:.3}",
        m_with.as_secs_f64() / m_without.as_secs_f64()
    );
    println!(
        "ratio enforcement+lineage / plain: {:.3}  (median of {iterations} pairs; target <= 1.10)",
        pairs[pairs.len() / 2]
    );

    let (mut t_compile, mut t_df) = (Vec::new(), Vec::new());
    for _ in 0..iterations.max(5) * 4 {
        let start = Instant::now();
        let ctx = runink_planner::new_context(
            &SessionLimits::default(),
            Arc::new(RunContext::new("bench")),
        )?;
        let c = compile(&ctx, &options).await?;
        let bytes = dag::encode(&c.meta, &c.plan)?;
        std::hint::black_box(bytes);
        t_compile.push(start.elapsed());

        let start = Instant::now();
        let df = SessionContext::new();
        df.register_csv("trades", "data/trades.csv", CsvReadOptions::new())
            .await?;
        df.register_parquet(
            "instruments",
            "data/instruments.parquet",
            ParquetReadOptions::default(),
        )
        .await?;
        let plan = df
            .sql("SELECT t.*, i.sector, i.exchange FROM trades t LEFT JOIN instruments i ON t.symbol = i.symbol")
            .await?
            .into_optimized_plan()?;
        std::hint::black_box(plan);
        t_df.push(start.elapsed());
    }
    let (m_compile, m_df) = (median(&mut t_compile), median(&mut t_df));
    println!("runi compile (to DAG bytes):    {:>8.2} ms", ms(m_compile));
    println!("DataFusion plans the SQL alone: {:>8.2} ms", ms(m_df));
    println!(
        "ratio compile / DataFusion planning: {:.2}",
        m_compile.as_secs_f64() / m_df.as_secs_f64()
    );
    Ok(())
}

/// The same plan without Runink's contract and lineage operators.
fn strip_runink_operators(plan: LogicalPlan) -> Result<LogicalPlan, BoxError> {
    Ok(plan
        .transform_up(|node| {
            if let LogicalPlan::Extension(ext) = &node {
                let any = ext.node.as_any();
                if let Some(n) = any.downcast_ref::<LineageTapNode>() {
                    return Ok(Transformed::yes(n.input.clone()));
                }
                if let Some(n) = any.downcast_ref::<ContractEnforceNode>() {
                    return Ok(Transformed::yes(n.input.clone()));
                }
            }
            Ok(Transformed::no(node))
        })?
        .data)
}

async fn run_plan(plan: &LogicalPlan) -> Result<Duration, BoxError> {
    let run = Arc::new(RunContext::new(new_run_id()));
    let ctx = runink_planner::new_context(&SessionLimits::default(), Arc::clone(&run))?;
    let start = Instant::now();
    let physical = ctx.state().create_physical_plan(plan).await?;
    execute(physical, ctx.task_ctx(), &run).await?;
    Ok(start.elapsed())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
