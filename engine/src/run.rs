//! Running a physical plan to completion in this process, and what the run reports.
//!
//! A [`RunContext`] travels with the session (a `SessionConfig` extension). When the
//! physical planner builds a Runink operator it registers the operator's counters here,
//! so a progress bar can read them live and [`execute`] can turn them into a
//! [`RunReport`]. Sink output is committed only after every partition finished.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{Count, Label, Metric, MetricValue};
use datafusion::physical_plan::{ExecutionPlan, collect};
use serde::Serialize;

use crate::enforce::EnforceStats;
use crate::lineage::{TapKind, TapStats};
use crate::sink::{CommitLog, SinkSpec, SinkStats};
use crate::{EngineError, Result};

/// Per-run state shared by the operators of one run.
#[derive(Debug)]
pub struct RunContext {
    /// The run's id: names temp files and appended parts.
    pub run_id: String,
    /// Sink outputs waiting for the run to succeed.
    pub commit: Arc<CommitLog>,
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    taps: Vec<(String, TapKind, Arc<TapStats>)>,
    enforcements: Vec<(String, Arc<EnforceStats>)>,
    sinks: Vec<(SinkSpec, Arc<SinkStats>)>,
}

impl RunContext {
    /// A fresh context for run `run_id`.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            commit: Arc::new(CommitLog::default()),
            registry: Mutex::new(Registry::default()),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counters for the tap on `relation` (the same ones if planned twice).
    pub fn tap_stats(&self, relation: &str, kind: TapKind) -> Arc<TapStats> {
        let mut reg = self.registry();
        if let Some((_, _, s)) = reg
            .taps
            .iter()
            .find(|(r, k, _)| r == relation && *k == kind)
        {
            return Arc::clone(s);
        }
        let s = Arc::new(TapStats::default());
        reg.taps.push((relation.to_string(), kind, Arc::clone(&s)));
        s
    }

    /// Counters for enforcement at `label`.
    pub fn enforce_stats(&self, label: &str) -> Arc<EnforceStats> {
        let mut reg = self.registry();
        if let Some((_, s)) = reg.enforcements.iter().find(|(l, _)| l == label) {
            return Arc::clone(s);
        }
        let s = Arc::new(EnforceStats::default());
        reg.enforcements.push((label.to_string(), Arc::clone(&s)));
        s
    }

    /// Counters of their own for one tap on `relation` in a plan split across slices, still
    /// counted by [`Self::progress`] and the report (summed with the relation's others)
    /// until [`Self::set_totals`] replaces them all with the plan's totals.
    pub fn tap_instance(&self, relation: &str, kind: TapKind) -> Arc<TapStats> {
        let s = Arc::new(TapStats::default());
        self.registry()
            .taps
            .push((relation.to_string(), kind, Arc::clone(&s)));
        s
    }

    /// Like [`Self::tap_instance`], for enforcement at `label`.
    pub fn enforce_instance(&self, label: &str) -> Arc<EnforceStats> {
        let s = Arc::new(EnforceStats::default());
        self.registry()
            .enforcements
            .push((label.to_string(), Arc::clone(&s)));
        s
    }

    /// Counters for a sink.
    pub fn sink_stats(&self, spec: &SinkSpec) -> Arc<SinkStats> {
        let mut reg = self.registry();
        if let Some((_, s)) = reg.sinks.iter().find(|(sp, _)| sp == spec) {
            return Arc::clone(s);
        }
        let s = Arc::new(SinkStats::default());
        reg.sinks.push((spec.clone(), Arc::clone(&s)));
        s
    }

    /// A snapshot of the counters so far.
    pub fn progress(&self) -> Progress {
        let reg = self.registry();
        let rows_read = reg
            .taps
            .iter()
            .filter(|(_, k, _)| *k == TapKind::Source)
            .map(|(_, _, s)| s.rows.load(Ordering::Relaxed))
            .sum();
        let (mut valid, mut rejected) = (0, 0);
        for (_, s) in &reg.enforcements {
            valid += s.valid.load(Ordering::Relaxed);
            rejected += s.rejected.load(Ordering::Relaxed);
        }
        Progress {
            rows_read,
            valid,
            rejected,
        }
    }

    /// The report of the run as it stands: one line per relation and enforcement point
    /// (the counters of several instances of one, in a split plan, summed), in the order
    /// they were first planned.
    pub fn report(&self, elapsed_ms: u64) -> RunReport {
        let reg = self.registry();
        let rows = |kind| {
            let mut out: Vec<RelationRows> = Vec::new();
            for (name, _, s) in reg.taps.iter().filter(|(_, k, _)| *k == kind) {
                let n = s.rows.load(Ordering::Relaxed);
                match out.iter_mut().find(|r| r.name == *name) {
                    Some(r) => r.rows += n,
                    None => out.push(RelationRows {
                        name: name.clone(),
                        rows: n,
                    }),
                }
            }
            out
        };
        let mut contracts: Vec<ContractReport> = Vec::new();
        for (label, s) in &reg.enforcements {
            let per_rule = s.per_rule.lock().map(|m| m.clone()).unwrap_or_default();
            let (rows, valid, rejected) = (
                s.rows_in.load(Ordering::Relaxed),
                s.valid.load(Ordering::Relaxed),
                s.rejected.load(Ordering::Relaxed),
            );
            match contracts.iter_mut().find(|c| c.at == *label) {
                Some(c) => {
                    c.rows += rows;
                    c.valid += valid;
                    c.rejected += rejected;
                    for (rule, n) in per_rule {
                        *c.rejected_per_rule.entry(rule).or_default() += n;
                    }
                }
                None => contracts.push(ContractReport {
                    at: label.clone(),
                    rows,
                    valid,
                    rejected,
                    rejected_per_rule: per_rule,
                }),
            }
        }
        RunReport {
            run_id: self.run_id.clone(),
            sources: rows(TapKind::Source),
            steps: rows(TapKind::Step),
            contracts,
            sinks: reg
                .sinks
                .iter()
                .map(|(spec, s)| SinkReport {
                    uri: spec.location.uri.clone(),
                    when: spec.when.to_string(),
                    from: spec.from.clone(),
                    rows: s.rows.load(Ordering::Relaxed),
                })
                .collect(),
            elapsed_ms,
            slices: 0,
        }
    }
}

/// Metric names under which Runink's operators report their counters (DataFusion
/// `Count` metrics with labels), so the counters of operators that ran in slice processes
/// come back to the run with `datafusion-distributed`'s task metrics.
pub const TAP_ROWS: &str = "runink_tap_rows";
/// Rows an enforcement point checked (label `at`).
pub const ENFORCE_ROWS: &str = "runink_enforce_rows";
/// Rows without violations (label `at`).
pub const ENFORCE_VALID: &str = "runink_enforce_valid";
/// Rows with a violation (label `at`).
pub const ENFORCE_REJECTED: &str = "runink_enforce_rejected";
/// Rows violating one rule (labels `at`, `rule`).
pub const ENFORCE_RULE: &str = "runink_enforce_rule";

/// A `Count` metric `name` = `value` with `labels`.
pub fn count_metric(
    name: &'static str,
    value: u64,
    labels: &[(&'static str, String)],
) -> Arc<Metric> {
    let count = Count::new();
    count.add(value as usize);
    Arc::new(Metric::new_with_labels(
        MetricValue::Count {
            name: name.into(),
            count,
        },
        None,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect(),
    ))
}

impl RunContext {
    /// Replaces the counters with the totals of the Runink metrics found anywhere in
    /// `plan` (after a distributed run: the plan with the slices' task metrics folded in).
    /// Every operator instance reports once, whichever process it ran in.
    pub fn set_totals(&self, plan: &Arc<dyn ExecutionPlan>) {
        let mut taps: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut enforce: BTreeMap<String, (u64, u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
        let mut stack = vec![Arc::clone(plan)];
        while let Some(node) = stack.pop() {
            stack.extend(node.children().into_iter().cloned());
            let Some(metrics) = node.metrics() else {
                continue;
            };
            for m in metrics.iter() {
                let MetricValue::Count { name, count } = m.value() else {
                    continue;
                };
                let label = |key: &str| {
                    m.labels()
                        .iter()
                        .find(|l| l.name() == key)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                let n = count.value() as u64;
                match name.as_ref() {
                    TAP_ROWS => *taps.entry((label("relation"), label("kind"))).or_default() += n,
                    ENFORCE_ROWS => enforce.entry(label("at")).or_default().0 += n,
                    ENFORCE_VALID => enforce.entry(label("at")).or_default().1 += n,
                    ENFORCE_REJECTED => enforce.entry(label("at")).or_default().2 += n,
                    ENFORCE_RULE => {
                        *enforce
                            .entry(label("at"))
                            .or_default()
                            .3
                            .entry(label("rule"))
                            .or_default() += n
                    }
                    _ => {}
                }
            }
        }
        let mut reg = self.registry();
        for ((relation, kind), rows) in taps {
            let kind = if kind == TapKind::Source.to_string() {
                TapKind::Source
            } else {
                TapKind::Step
            };
            let total = TapStats::default();
            total.rows.store(rows, Ordering::Relaxed);
            reg.taps.retain(|(r, k, _)| !(*r == relation && *k == kind));
            reg.taps.push((relation, kind, Arc::new(total)));
        }
        for (at, (rows, valid, rejected, per_rule)) in enforce {
            let total = EnforceStats::default();
            total.rows_in.store(rows, Ordering::Relaxed);
            total.valid.store(valid, Ordering::Relaxed);
            total.rejected.store(rejected, Ordering::Relaxed);
            if let Ok(mut m) = total.per_rule.lock() {
                *m = per_rule;
            }
            reg.enforcements.retain(|(l, _)| *l != at);
            reg.enforcements.push((at, Arc::new(total)));
        }
    }
}

/// Live counters for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows read from all sources.
    pub rows_read: u64,
    /// Rows that satisfied the contract.
    pub valid: u64,
    /// Rows the contract rejected.
    pub rejected: u64,
}

/// Rows through one source or step.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RelationRows {
    pub name: String,
    pub rows: u64,
}

/// One enforcement point.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ContractReport {
    /// The relation the Scenario contract is enforced on (in front of its sinks), or
    /// `source:NAME` / `step:NAME` for a contract bound to a source or step.
    pub at: String,
    pub rows: u64,
    pub valid: u64,
    pub rejected: u64,
    /// Rows violating each rule, keyed `column:rule`.
    pub rejected_per_rule: BTreeMap<String, u64>,
}

/// One sink.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SinkReport {
    pub uri: String,
    pub when: String,
    pub from: String,
    pub rows: u64,
}

/// What a finished run did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: String,
    pub sources: Vec<RelationRows>,
    pub steps: Vec<RelationRows>,
    pub contracts: Vec<ContractReport>,
    pub sinks: Vec<SinkReport>,
    pub elapsed_ms: u64,
    /// Slice processes the run's stages ran in; 0: all in the `runi run` process.
    pub slices: usize,
}

/// Runs `plan` (rooted at a `SinkExec`) to completion, then commits the sinks. On any
/// failure nothing the run wrote stays behind.
pub async fn execute(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    run: &RunContext,
) -> Result<RunReport> {
    execute_then(plan, task, run, |_| async { Ok(None) }).await
}

/// [`execute`], and before committing, `totals` may give a plan whose metrics hold the
/// counters of operators that ran elsewhere (slices): the report is then made of those
/// ([`RunContext::set_totals`]). A failure there fails the run: its counts would be wrong.
pub async fn execute_then<F, Fut>(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    run: &RunContext,
    totals: F,
) -> Result<RunReport>
where
    F: FnOnce(Arc<dyn ExecutionPlan>) -> Fut,
    Fut: std::future::Future<Output = datafusion::error::Result<Option<Arc<dyn ExecutionPlan>>>>,
{
    let started = Instant::now();
    let outcome = match collect(Arc::clone(&plan), task).await {
        Ok(_) => totals(plan).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(with_metrics) => {
            if let Some(p) = with_metrics {
                run.set_totals(&p);
            }
            run.commit.commit(&run.run_id)?;
            Ok(run.report(started.elapsed().as_millis() as u64))
        }
        Err(e) => {
            run.commit.abort();
            Err(EngineError::from(e))
        }
    }
}

/// A run id: a UUID v7, so ids sort by start time and are unique across machines (and
/// OpenLineage, which wants a UUID run id, takes them as they are).
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_uuid_v7_in_time_order() {
        let a = super::new_run_id();
        let b = super::new_run_id();
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        assert_ne!(a, b);
        // The first 48 bits are the time in milliseconds: later ids never sort earlier.
        assert!(a[..13] <= b[..13]);
    }
}
