//! `runi status`: runs as Barn recorded them.
//!
//! Before reading, runs that are pending or running but whose runner is gone are recorded
//! as failed (see [`crate::record`]), so a killed run never looks alive or successful.

use anyhow::anyhow;
use runink_cluster::state::RunRecord;

use crate::barn;
use crate::cli::{Global, OutputFormat, StatusArgs};
use crate::exit::{CmdResult, Failure};
use crate::record::sweep_lost;

pub async fn status(global: &Global, args: &StatusArgs) -> CmdResult {
    // Nothing was ever recorded here: no runs, and no Barn made just to say so.
    let (herd_known, mut runs) = if runink_cluster::Barn::exists(&global.home) {
        read_runs(global).await?
    } else {
        (global.herd.is_none(), Vec::new())
    };
    // A deleted herd's runs stay in the record, and can still be listed by its name.
    if !herd_known && runs.is_empty() {
        return Err(Failure::input(anyhow!(
            "unknown herd `{}`",
            global.herd.as_deref().unwrap_or_default()
        )));
    }
    // Newest first (run ids are UUID v7, but runs from other clocks may interleave).
    runs.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.id.cmp(&a.id)));

    if let Some(wanted) = &args.runid {
        let matching: Vec<&RunRecord> = runs
            .iter()
            .filter(|r| r.id.starts_with(wanted.as_str()))
            .collect();
        let run = match matching.as_slice() {
            [one] => *one,
            [] => {
                return Err(Failure::input(anyhow!(
                    "no run `{wanted}`{}",
                    global
                        .herd
                        .as_ref()
                        .map(|h| format!(" in herd `{h}`"))
                        .unwrap_or_default()
                )));
            }
            many => {
                return Err(Failure::input(anyhow!(
                    "`{wanted}` names {} runs; give more of the id",
                    many.len()
                )));
            }
        };
        return print(global.output, run, || show_run(run));
    }
    runs.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));
    print(global.output, &runs, || list(&runs))
}

/// Runs as Barn recorded them (lost ones recorded failed first), and whether `--herd` is
/// a herd Barn knows.
async fn read_runs(global: &Global) -> Result<(bool, Vec<RunRecord>), Failure> {
    let barn = barn::open(global).await?;
    let result = async {
        sweep_lost(global, &barn).await?;
        barn::read(&barn, |s| {
            let herd_known = global.herd.as_ref().is_none_or(|h| s.herd(h).is_some());
            let runs: Vec<RunRecord> = s
                .runs()
                .filter(|r| global.herd.as_ref().is_none_or(|h| &r.herd == h))
                .cloned()
                .collect();
            (herd_known, runs)
        })
        .await
    }
    .await;
    barn::close(barn).await?;
    result
}

/// JSON or YAML of `value`, or the table `table` draws.
fn print<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
    table: impl FnOnce() -> String,
) -> CmdResult {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).map_err(Failure::run)?
        ),
        OutputFormat::Yaml => print!("{}", crate::output::to_yaml(value).map_err(Failure::run)?),
        _ => print!("{}", table()),
    }
    Ok(())
}

/// Milliseconds since the epoch as a UTC time.
pub fn time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn elapsed(run: &RunRecord) -> String {
    let end = run.ended_ms.unwrap_or(run.heartbeat_ms);
    format!("{:.2}s", end.saturating_sub(run.started_ms) as f64 / 1000.0)
}

/// Rows read, valid and rejected over a run. A row is rejected at most once (a contract on
/// a source or step drops the rows it rejects), so rejections add up across enforcement
/// points; valid rows do not — the rows a source contract passes are checked again by the
/// Scenario's contract — so valid counts the Scenario contract's points when it has any.
fn totals(run: &RunRecord) -> (u64, u64, u64) {
    let read = run.counters.sources.iter().map(|s| s.rows).sum();
    let contracts = &run.counters.contracts;
    let bound = |at: &str| at.starts_with("source:") || at.starts_with("step:");
    let scenario: Vec<_> = contracts.iter().filter(|c| !bound(&c.at)).collect();
    let valid = if scenario.is_empty() {
        contracts.iter().map(|c| c.valid).sum()
    } else {
        scenario.iter().map(|c| c.valid).sum()
    };
    let rejected = contracts.iter().map(|c| c.rejected).sum();
    (read, valid, rejected)
}

fn list(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:<36}  {:<12} {:<9}  {:<19}  {:>8}  {:>10} {:>10} {:>9}  job\n",
        "run", "herd", "state", "started (UTC)", "elapsed", "read", "valid", "rejected"
    );
    for r in runs {
        let (read, valid, rejected) = totals(r);
        out.push_str(&format!(
            "{:<36}  {:<12} {:<9}  {:<19}  {:>8}  {:>10} {:>10} {:>9}  {}\n",
            r.id,
            r.herd,
            r.state.as_str(),
            time(r.started_ms),
            elapsed(r),
            read,
            valid,
            rejected,
            r.job
        ));
    }
    if runs.is_empty() {
        out.push_str("(no runs)\n");
    }
    out
}

fn show_run(r: &RunRecord) -> String {
    let mut out = format!("run       {}\nstate     {}\n", r.id, r.state);
    if let Some(e) = &r.error {
        out.push_str(&format!("error     {e}\n"));
    }
    out.push_str(&format!(
        "job       {}\nherd      {}\nactor     {}\ndag       {}\n",
        r.job, r.herd, r.actor, r.dag
    ));
    if let Some(c) = &r.contract {
        out.push_str(&format!("contract  {} {} ({})\n", c.id, c.version, c.hash));
    }
    out.push_str(&format!(
        "started   {} UTC\n{}  {} UTC\nelapsed   {}\n",
        time(r.started_ms),
        if r.ended_ms.is_some() {
            "ended   "
        } else {
            "heartbeat"
        },
        time(r.ended_ms.unwrap_or(r.heartbeat_ms)),
        elapsed(r)
    ));
    out.push_str(&crate::output::counters_table(&r.counters));
    if matches!(
        r.state,
        runink_cluster::state::RunState::Failed | runink_cluster::state::RunState::Cancelled
    ) && !r.counters.sinks.is_empty()
    {
        // The counts are what reached the sinks before the run stopped; none of it was
        // committed.
        out.push_str(
            "(sink rows were written to temp output and discarded: the run did not succeed)\n",
        );
    }
    out
}
