//! Benchmark harness (not a timed test): the 22 TPC-H queries.
//!
//! Data comes from the `tpchgen` generators (SF 1 by default), written once as Parquet under
//! `$HOME/.cache/runink-tpch/sfN` (or `--data DIR`). Each query runs, alternating, through
//!
//! * (a) Runink in one process: Runink's session and its `parquet://` sources;
//! * (b) the same, split into stages whose tasks run in `--slices N` (default 2) `runi slice`
//!   processes (`datafusion-distributed` workers; exchanges over shared-memory pipes, or
//!   with `--exchange grpc` Arrow Flight over loopback);
//! * (c) DataFusion run directly, on the same files, with the same partitions;
//! * (d) DuckDB from PyPI (`benches/tpch/duckdb_run.py`), on the same files.
//!
//! Every answer of (a), (b) and (c) is checked against DuckDB's. Printed: per-query medians,
//! and the ratios the project tracks — (a)/(c) (target ≤ 1.05), (b)/(a) (target ≤ 1.15) and
//! (a)/(d) — as ratios of the summed medians.
//!
//! ```text
//! cargo bench --bench tpch -- [--sf 1] [--iterations 3] [--partitions N] [--data DIR]
//!                             [--queries 1,3,5] [--no-duckdb] [--slices N]
//!                             [--exchange pipes|grpc] [--slice-threads N] [--explain] [--broadcast]
//!                             [--no-join-filters] [--only a|b|c]
//! ```

#[path = "tpch/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::BoxError;
use runink_planner::slices::Exchange;

fn main() -> Result<(), BoxError> {
    let mut sf = 1.0f64;
    let mut iterations = 3usize;
    let mut partitions = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut data: Option<PathBuf> = None;
    let mut queries: Vec<usize> = (1..=22).collect();
    let mut duckdb = true;
    let mut explain = false;
    let mut broadcast = false;
    let mut slices = 2usize;
    let mut exchange = Exchange::Pipes;
    let mut slice_threads: Option<String> = None;
    let mut join_filters = true;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sf" => sf = args.next().ok_or("--sf N")?.parse()?,
            "--iterations" => iterations = args.next().ok_or("--iterations K")?.parse()?,
            "--partitions" => partitions = args.next().ok_or("--partitions N")?.parse()?,
            "--data" => data = Some(PathBuf::from(args.next().ok_or("--data DIR")?)),
            "--queries" => {
                queries = args
                    .next()
                    .ok_or("--queries 1,2,3")?
                    .split(',')
                    .map(|q| q.trim().trim_start_matches('q').parse())
                    .collect::<Result<_, _>>()?
            }
            "--no-duckdb" => duckdb = false,
            // Print each query's split plan (b) before timing it.
            "--explain" => explain = true,
            // Broadcast small join sides, as `runi run` does (`runi sql` does not).
            "--broadcast" => broadcast = true,
            "--slices" => slices = args.next().ok_or("--slices N")?.parse()?,
            // Hash joins' dynamic filters off in (a), (b) and (c): what the split costs
            // apart from them (they do not cross a stage boundary).
            "--no-join-filters" => join_filters = false,
            // Time one of (a), (b), (c) only, e.g. under `perf stat -a`.
            "--only" => only = Some(args.next().ok_or("--only a|b|c")?),
            "--slice-threads" => {
                slice_threads = Some(args.next().ok_or("--slice-threads N")?);
            }
            "--exchange" => {
                exchange = match args.next().as_deref() {
                    Some("pipes") => Exchange::Pipes,
                    Some("grpc") => Exchange::Grpc,
                    _ => return Err("--exchange pipes|grpc".into()),
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    // One variant alone has no answers to check against DuckDB's.
    duckdb &= only.is_none();
    let data = match data {
        Some(d) => d,
        None => PathBuf::from(std::env::var("HOME")?)
            .join(".cache/runink-tpch")
            .join(format!("sf{sf}")),
    };
    let started = Instant::now();
    harness::generate(&data, sf)?;
    println!(
        "tpch: SF {sf}, data in {} (ready in {:.1} s), {iterations} iterations, {partitions} partitions",
        data.display(),
        started.elapsed().as_secs_f64()
    );

    // (d) DuckDB first: its answers are the reference.
    let answers = std::env::temp_dir().join(format!("runink-tpch-duckdb-{}", std::process::id()));
    std::fs::create_dir_all(&answers)?;
    let duck = if duckdb {
        let out = Command::new("python3")
            .arg(harness::repo().join("benches/tpch/duckdb_run.py"))
            .arg(&data)
            .arg(harness::query_dir())
            .arg(&answers)
            .arg(iterations.to_string())
            .env("RUNINK_TPCH_THREADS", partitions.to_string())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "DuckDB run failed (pip install duckdb, or pass --no-duckdb): {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "duckdb {} with {} threads",
            report["version"], report["threads"]
        );
        Some(report)
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions)
        .enable_all()
        .build()?;
    let slice_args: Vec<&str> = match &slice_threads {
        Some(n) => vec!["--threads", n.as_str()],
        None => Vec::new(),
    };
    let mut pool = harness::launch_slices(slices, &slice_args, &Default::default())?;
    let (ours, sliced, plain) = rt.block_on(async {
        Ok::<_, BoxError>((
            harness::runink_context(&data, partitions).await?,
            harness::sliced_context_with(
                &data,
                partitions,
                &pool,
                &runink_planner::slices::SliceOptions {
                    scan_bytes_per_task: None,
                    broadcast_joins: broadcast,
                    exchange,
                },
            )
            .await?,
            harness::datafusion_context(&data, partitions).await?,
        ))
    })?;

    if !join_filters {
        rt.block_on(async {
            for ctx in [&ours, &sliced, &plain] {
                ctx.sql("SET datafusion.optimizer.enable_join_dynamic_filter_pushdown = false")
                    .await?
                    .collect()
                    .await?;
            }
            Ok::<_, BoxError>(())
        })?;
    }
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8} {:>8}  answers",
        "query",
        "(a) runink",
        "(b) slices",
        "(c) datafus",
        "(d) duckdb",
        "(a)/(c)",
        "(b)/(a)",
        "(a)/(d)"
    );
    let (mut sum_a, mut sum_b, mut sum_c, mut sum_d) = (0.0, 0.0, 0.0, 0.0);
    let mut wrong = Vec::new();
    for n in queries {
        let statements = harness::query(n)?;
        if explain && let Some(last) = statements.last() {
            let plan =
                rt.block_on(async { sliced.sql(last).await?.create_physical_plan().await })?;
            println!(
                "== q{n} (b)\n{}",
                datafusion_distributed::display_plan_ascii(plan.as_ref(), false)
            );
        }
        let mut ta = Vec::new();
        let mut tb = Vec::new();
        let mut tc = Vec::new();
        let mut answer_a = Vec::new();
        let mut answer_b = Vec::new();
        let mut answer_c = Vec::new();
        let runs = |which: &str| only.as_deref().is_none_or(|o| o == which);
        for _ in 0..iterations {
            if runs("c") {
                let start = Instant::now();
                answer_c = rt.block_on(harness::run(&plain, &statements))?;
                tc.push(start.elapsed());
            }
            if runs("a") {
                let start = Instant::now();
                answer_a = rt.block_on(harness::run(&ours, &statements))?;
                ta.push(start.elapsed());
            }
            if runs("b") {
                let start = Instant::now();
                answer_b = rt.block_on(harness::run(&sliced, &statements))?;
                tb.push(start.elapsed());
                pool.check()?;
            }
        }
        let (a, b, c) = (median(&mut ta), median(&mut tb), median(&mut tc));
        let d = duck.as_ref().and_then(|r| {
            let mut v: Vec<f64> = r["seconds"][format!("q{n}")]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_f64())
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        });
        let verdict = if duck.is_some() {
            let reference = harness::read_csv_rows(&answers.join(format!("q{n}.csv")))?;
            let name = format!("q{n}");
            let check = |label: &str, batches: &[arrow::array::RecordBatch]| {
                let rows = harness::rows(batches).map_err(|e| e.to_string())?;
                let label = format!("{name} {label}");
                match harness::compare(&label, &rows, &reference) {
                    Ok(()) => Ok(None),
                    // Same rows, other order: ties in ORDER BY keys, not a wrong answer.
                    Err(e) => harness::compare_unordered(&label, &rows, &reference)
                        .map(|()| Some(format!("{label}: order differs among ties ({e})"))),
                }
            };
            let checks = [
                check("(a)", &answer_a),
                check("(b)", &answer_b),
                check("(c)", &answer_c),
            ];
            let notes: Vec<String> = checks
                .iter()
                .filter_map(|c| c.as_ref().ok().cloned().flatten())
                .collect();
            for n in &notes {
                eprintln!("note: {n}");
            }
            let errors: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
            if errors.is_empty() {
                "= duckdb".to_string()
            } else {
                wrong.extend(errors.iter().cloned());
                format!("DIFFERENT: {}", errors.join("; "))
            }
        } else {
            "not checked".to_string()
        };
        sum_a += a;
        sum_b += b;
        sum_c += c;
        sum_d += d.unwrap_or(0.0);
        println!(
            "{:>5} {:>10.1}ms {:>10.1}ms {:>10.1}ms {:>12} {:>8.2} {:>8.2} {:>8}  {verdict}",
            format!("q{n}"),
            a * 1e3,
            b * 1e3,
            c * 1e3,
            d.map_or("-".into(), |d| format!("{:.1}ms", d * 1e3)),
            a / c,
            b / a,
            d.map_or("-".into(), |d| format!("{:.2}", a / d)),
        );
    }
    let _ = std::fs::remove_dir_all(&answers);
    println!(
        "total (a) {:.2} s, (b) {:.2} s, (c) {:.2} s, (d) {:.2} s",
        sum_a, sum_b, sum_c, sum_d
    );
    println!("ratio (a)/(c) {:.3} (target <= 1.05)", sum_a / sum_c);
    println!(
        "ratio (b)/(a) {:.3} (target <= 1.15), {slices} slice processes",
        sum_b / sum_a
    );
    if sum_d > 0.0 {
        println!("ratio (a)/(d) {:.3}", sum_a / sum_d);
    }
    if !wrong.is_empty() {
        return Err(format!("{} answer(s) differ from DuckDB's", wrong.len()).into());
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, Duration::as_secs_f64)
}
