//! Recording runs in Barn: start, heartbeats, finish, datasets and lineage.
//!
//! A run's life in Barn: `StartRun` (pending) and `UpdateRun` (running) before the first
//! batch; an `UpdateRun` heartbeat with the counters so far every [`HEARTBEAT`]; at the
//! end `FinishRun` (succeeded, failed or cancelled) and, for a run that succeeded, the
//! datasets its sinks registered and its lineage edges. Barn is opened for each of these
//! and closed again, so other `runi` commands can use it while the run goes on.
//!
//! A runner that dies (SIGKILL, power cut) cannot say so. For the embedded Barn, the runner
//! holds an exclusive lock on `runs/RUN_ID.lock` in the state directory for the whole run:
//! the OS drops it when the process dies, whatever the reason. `runi status` (and the next
//! `runi run`) find runs that are pending or running whose lock nobody holds and record
//! them as failed ("lost").

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use arrow::datatypes::Schema;
use runink_cluster::state::{
    AuditEntry, Command, ContractRef, Dataset, EnforcementRows, Herd, IoDataset, IoField,
    LineageEdge, LineageKind, LineageNode, RelationRows, ResourceQuotas, RunCounters, RunIo,
    RunRecord, RunState, SinkRows,
};
use runink_cluster::{Barn, StateMachineData};
use runink_engine::RunReport;
use runink_engine::run::RunContext;
use runink_engine::sink::SinkSpec;
use runink_planner::dag::DagMeta;

use crate::barn;
use crate::cli::Global;
use crate::exit::Failure;

/// How often a running run reports its counters (its heartbeat).
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a heartbeat waits for Barn before skipping a beat.
const HEARTBEAT_WAIT: Duration = Duration::from_secs(1);
/// How long recording a run's end waits for Barn.
const FINISH_WAIT: Duration = Duration::from_secs(30);
/// The herd a Scenario runs in when neither the Feature nor `--herd` names one. It is
/// registered (without quotas) the first time it is used.
pub const DEFAULT_HERD: &str = "default";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Who runs this: `$USER` (or `$LOGNAME`), else the name /etc/passwd gives the process's
/// uid, else `uid:N`.
pub fn actor() -> String {
    if let Some(user) = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
    {
        return user;
    }
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut parts = line.split(':');
                let name = parts.next()?;
                (parts.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// The exclusive lock a runner holds on `runs/RUN_ID.lock` while its run goes on.
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    fn path(home: &Path, run_id: &str) -> PathBuf {
        home.join("runs").join(format!("{run_id}.lock"))
    }

    /// Creates and locks the run's lock file.
    pub fn acquire(home: &Path, run_id: &str) -> Result<Self, Failure> {
        let path = Self::path(home, run_id);
        let make = || -> anyhow::Result<File> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = File::create(&path)?;
            file.try_lock().map_err(|e| anyhow!("{e}"))?;
            // The runner's PID: its slices' cgroups carry it (`…-oPID`), so whoever finds
            // the run lost can remove them at once rather than after their sweep age.
            std::io::Write::write_all(&mut file, std::process::id().to_string().as_bytes())?;
            Ok(file)
        };
        let file = make()
            .with_context(|| format!("cannot lock {}", path.display()))
            .map_err(Failure::run)?;
        Ok(Self { _file: file, path })
    }

    /// Whether the process running `run_id` may still be alive. Only a missing lock file
    /// or one this process can lock means it is gone; anything else (no permission to
    /// read it, a file system without locks) counts as alive, so a live run is never
    /// swept.
    pub fn held(home: &Path, run_id: &str) -> bool {
        let file = match File::open(Self::path(home, run_id)) {
            Ok(file) => file,
            Err(e) => return e.kind() != std::io::ErrorKind::NotFound,
        };
        match file.try_lock() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => true,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records runs whose runner died as failed. Returns how many it found.
pub async fn sweep_lost(global: &Global, barn: &Barn) -> Result<usize, Failure> {
    let open: Vec<RunRecord> = barn::read(barn, |s| {
        s.runs()
            .filter(|r| !r.state.is_terminal())
            .cloned()
            .collect()
    })
    .await?;
    let mut lost = 0;
    for run in open {
        if RunLock::held(&global.home, &run.id) {
            continue;
        }
        // What the dead runner left next to its sinks: temp output goes, output it had
        // moved aside comes back.
        for output in &run.io.outputs {
            let Some((_, path)) = output.uri.split_once("://") else {
                continue;
            };
            let target = Path::new(path.trim_end_matches('/'));
            match runink_engine::sink::recover_after(target, &run.id) {
                Ok(done) => done
                    .iter()
                    .for_each(|d| eprintln!("run {} (lost): {d}", run.id)),
                Err(e) => eprintln!(
                    "warning: run {} (lost): cannot clean up next to {}: {e}",
                    run.id,
                    target.display()
                ),
            }
        }
        // The dead runner's slice cgroups (its PID is in the lock file it held).
        if let Some(owner) = std::fs::read_to_string(RunLock::path(&global.home, &run.id))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            runink_engine::isolation::remove_owned_by(owner);
        }
        let at = chrono::DateTime::from_timestamp_millis(run.heartbeat_ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        barn::propose(
            barn,
            Command::FinishRun {
                id: run.id.clone(),
                state: RunState::Failed,
                // Its last sign of life: when it was found dead says nothing of when it died.
                ended_ms: run.heartbeat_ms.max(run.started_ms),
                counters: run.counters.clone(),
                error: Some(format!(
                    "lost: the process running it ended without finishing it (killed?); \
                     last heartbeat {at}"
                )),
            },
        )
        .await?;
        let _ = std::fs::remove_file(RunLock::path(&global.home, &run.id));
        lost += 1;
    }
    // Cgroups of runners that died longer ago (found lost by an older runi, or with
    // slices that outlived the sweep above).
    runink_engine::isolation::sweep_abandoned(runink_engine::isolation::SWEEP_AGE);
    Ok(lost)
}

/// Everything about a run that Barn needs to know at its start.
pub struct RunPlan<'a> {
    pub run_id: &'a str,
    pub herd: &'a str,
    pub meta: &'a DagMeta,
    /// What ran: the DAG file's id and where it is.
    pub dag_id: String,
    pub dag_hash: String,
    pub dag_file: String,
    /// Each sink with the schema of what it writes.
    pub sinks: Vec<(SinkSpec, Schema)>,
    /// The contract's source text, when it was read from a file.
    pub contract_text: Option<String>,
}

impl RunPlan<'_> {
    fn contract(&self) -> Option<ContractRef> {
        self.meta.contract.as_ref().map(|c| ContractRef {
            id: c.id.clone(),
            version: c.version.clone(),
            hash: c.hash.clone(),
        })
    }

    fn dataset_sinks(&self) -> impl Iterator<Item = (&SinkSpec, &Schema, &str)> {
        self.sinks
            .iter()
            .filter_map(|(spec, schema)| Some((spec, schema, spec.dataset.as_deref()?)))
    }

    fn io(&self) -> RunIo {
        let inputs = self
            .meta
            .sources
            .iter()
            .map(|s| IoDataset {
                name: s.name.clone(),
                uri: absolute_uri(&s.uri),
                dataset: s
                    .uri
                    .strip_prefix("dataset://")
                    .map(|rest| rest.replacen('/', ".", 1)),
                fields: s
                    .schema
                    .iter()
                    .map(|c| IoField {
                        name: c.name.clone(),
                        data_type: c.data_type.clone(),
                    })
                    .collect(),
            })
            .collect();
        let outputs = self
            .sinks
            .iter()
            .map(|(spec, schema)| IoDataset {
                name: spec.location.uri.clone(),
                uri: absolute_uri(&spec.location.uri),
                dataset: spec.dataset.as_ref().map(|d| format!("{}.{d}", self.herd)),
                fields: schema
                    .fields()
                    .iter()
                    .map(|f| IoField {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                    })
                    .collect(),
            })
            .collect();
        RunIo { inputs, outputs }
    }
}

/// The URI with its path made absolute against the working directory (`dataset://` and
/// URIs that are not files are kept as they are).
pub fn absolute_uri(uri: &str) -> String {
    let Some((scheme, path)) = uri.split_once("://") else {
        return uri.to_string();
    };
    if scheme == "dataset" || scheme == "flight" || Path::new(path).is_absolute() {
        return uri.to_string();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return uri.to_string();
    };
    let mut abs = cwd
        .join(path.trim_start_matches("./"))
        .display()
        .to_string();
    if path.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    format!("{scheme}://{abs}")
}

/// Opens Barn, checks the herd and the contract policy, and records the run as running;
/// gives the herd's quotas. Bad input (unknown herd, drift a herd blocks) fails before
/// anything is written.
pub async fn start(global: &Global, plan: &RunPlan<'_>) -> Result<ResourceQuotas, Failure> {
    let barn = barn::open(global).await?;
    let result = start_on(global, &barn, plan).await;
    barn::close(barn).await?;
    result
}

async fn start_on(
    global: &Global,
    barn: &Barn,
    plan: &RunPlan<'_>,
) -> Result<ResourceQuotas, Failure> {
    sweep_lost(global, barn).await?;
    let herd_id = plan.herd;
    let (herd, known, registered) = barn::read(barn, |s: &StateMachineData| {
        let registered: BTreeMap<String, Dataset> = plan
            .dataset_sinks()
            .filter_map(|(_, _, name)| Some((name.to_string(), s.dataset(herd_id, name)?.clone())))
            .collect();
        (
            s.herd(herd_id).cloned(),
            s.herds().map(|h| h.id.clone()).collect::<Vec<_>>(),
            registered,
        )
    })
    .await?;
    let herd = match herd {
        Some(h) => h,
        None if herd_id == DEFAULT_HERD => {
            let herd = Herd {
                id: DEFAULT_HERD.into(),
                description: "Scenarios that name no herd".into(),
                ..Herd::default()
            };
            barn::propose(barn, Command::PutHerd { herd: herd.clone() }).await?;
            herd
        }
        None => {
            let hint = if known.is_empty() {
                "no herd is registered".to_string()
            } else {
                format!("registered herds: {}", known.join(", "))
            };
            return Err(Failure::input(anyhow!(
                "unknown herd `{herd_id}` ({hint}): register it with `runi herd init {herd_id}` \
                 or `runi herd apply -f herd.toml`, or run in another herd with --herd"
            )));
        }
    };
    check_drift(barn, plan, &herd, &registered).await?;

    let contract = plan.contract();
    if let (Some(c), Some(text)) = (&contract, &plan.contract_text) {
        let put = Command::PutContract {
            id: c.id.clone(),
            version: c.version.clone(),
            hash: c.hash.clone(),
            text: text.clone(),
        };
        // A contract edited without a new version is worth saying, not worth failing a
        // run over: the run records the hash it actually enforced.
        if let Err(Failure::Input(why)) = barn::propose(barn, put).await {
            eprintln!("warning: {why}");
        }
    }
    barn::propose(
        barn,
        Command::PutDag {
            id: plan.dag_id.clone(),
            bytes_hash: plan.dag_hash.clone(),
            file: plan.dag_file.clone(),
        },
    )
    .await?;
    let started = now_ms();
    barn::propose(
        barn,
        Command::StartRun {
            id: plan.run_id.to_string(),
            dag: plan.dag_id.clone(),
            job: format!("{} / {}", plan.meta.feature.name, plan.meta.scenario),
            herd: herd_id.to_string(),
            actor: actor(),
            contract,
            io: plan.io(),
            started_ms: started,
        },
    )
    .await?;
    barn::propose(
        barn,
        Command::UpdateRun {
            id: plan.run_id.to_string(),
            state: RunState::Running,
            heartbeat_ms: started,
            counters: RunCounters::default(),
        },
    )
    .await?;
    Ok(herd.resource_quotas)
}

/// Compares the contract each `dataset=` sink writes with the one its dataset is
/// registered with; the herd's `default_contract_policy` decides what drift does.
async fn check_drift(
    barn: &Barn,
    plan: &RunPlan<'_>,
    herd: &Herd,
    registered: &BTreeMap<String, Dataset>,
) -> Result<(), Failure> {
    let ours = plan.contract();
    for (_, _, name) in plan.dataset_sinks() {
        let Some(dataset) = registered.get(name) else {
            continue;
        };
        let Some(theirs) = &dataset.contract else {
            continue;
        };
        if ours.as_ref().is_some_and(|o| o.hash == theirs.hash) {
            continue;
        }
        let now = match &ours {
            Some(o) => format!("contract {}@{} ({})", o.id, o.version, o.hash),
            None => "no contract".into(),
        };
        let what = format!(
            "dataset `{}.{name}` is registered with contract {}@{} ({}); this run writes it with {now}",
            herd.id, theirs.id, theirs.version, theirs.hash
        );
        let blocked = herd.default_contract_policy.block_on_drift;
        barn::propose(
            barn,
            Command::Audit {
                entry: AuditEntry {
                    at_ms: now_ms(),
                    actor: actor(),
                    action: "write:dataset".into(),
                    herd: Some(herd.id.clone()),
                    target: name.to_string(),
                    allowed: !blocked,
                    detail: format!("contract drift: {what}"),
                },
            },
        )
        .await?;
        if blocked {
            // Same version, other rules: the contract was edited in place.
            let hint = if ours.as_ref().is_some_and(|o| o.version == theirs.version) {
                format!(
                    "The contract changed but kept version {}: give it a new version and write \
                     it to a new dataset (dataset=…), or allow drift in the herd file",
                    theirs.version
                )
            } else {
                "Write this contract's data to a new dataset (dataset=…), or allow drift in the herd file"
                    .to_string()
            };
            return Err(Failure::input(anyhow!(
                "contract drift: {what}. Herd `{}` blocks drift (default_contract_policy.block_on_drift = true); \
                 nothing was run or written. {hint}",
                herd.id
            )));
        }
        eprintln!(
            "warning: contract drift: {what} (allowed by herd `{}`; recorded in the audit log)",
            herd.id
        );
    }
    Ok(())
}

/// The counters Barn keeps, from the engine's report.
pub fn counters(report: &RunReport) -> RunCounters {
    let rows = |r: &[runink_engine::run::RelationRows]| {
        r.iter()
            .map(|s| RelationRows {
                name: s.name.clone(),
                rows: s.rows,
            })
            .collect()
    };
    RunCounters {
        sources: rows(&report.sources),
        steps: rows(&report.steps),
        contracts: report
            .contracts
            .iter()
            .map(|c| EnforcementRows {
                at: c.at.clone(),
                rows: c.rows,
                valid: c.valid,
                rejected: c.rejected,
                rejected_per_rule: c.rejected_per_rule.clone(),
            })
            .collect(),
        sinks: report
            .sinks
            .iter()
            .map(|s| SinkRows {
                uri: s.uri.clone(),
                when: s.when.clone(),
                from: s.from.clone(),
                rows: s.rows,
            })
            .collect(),
    }
}

/// Sends the run's counters to Barn every [`HEARTBEAT`] until told to stop. A beat that
/// cannot reach Barn (another process holds it) is skipped.
pub fn spawn_heartbeat(
    global: &Global,
    run_ctx: Arc<RunContext>,
    started: std::time::Instant,
) -> Heartbeat {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let home = global.home.clone();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = ticks.tick() => {}
            }
            let Ok(barn) = Barn::open_waiting(&home, HEARTBEAT_WAIT).await else {
                tracing::debug!("heartbeat skipped: Barn is busy");
                continue;
            };
            let report = run_ctx.report(started.elapsed().as_millis() as u64);
            let beat = Command::UpdateRun {
                id: run_ctx.run_id.clone(),
                state: RunState::Running,
                heartbeat_ms: now_ms(),
                counters: counters(&report),
            };
            if let Err(e) = barn.write(beat).await {
                tracing::debug!("heartbeat not recorded: {e}");
            }
            let _ = barn.shutdown().await;
        }
    });
    Heartbeat { stop, task }
}

/// A running heartbeat task.
pub struct Heartbeat {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Stops the heartbeat and waits until it has let go of Barn.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How a run ended.
pub enum Outcome<'a> {
    Succeeded(&'a RunReport),
    Failed(&'a RunReport, String),
    Cancelled(&'a RunReport),
}

/// Records the end of a run; for a run that succeeded, also its datasets and lineage.
pub async fn finish(
    global: &Global,
    plan: &RunPlan<'_>,
    outcome: Outcome<'_>,
) -> Result<(), Failure> {
    let barn = barn::open_waiting(global, FINISH_WAIT).await?;
    let result = finish_on(&barn, plan, outcome).await;
    barn::close(barn).await?;
    result
}

async fn finish_on(barn: &Barn, plan: &RunPlan<'_>, outcome: Outcome<'_>) -> Result<(), Failure> {
    let (state, report, error) = match outcome {
        Outcome::Succeeded(r) => (RunState::Succeeded, r, None),
        Outcome::Failed(r, e) => (RunState::Failed, r, Some(e)),
        Outcome::Cancelled(r) => (RunState::Cancelled, r, None),
    };
    let ended = now_ms();
    barn::propose(
        barn,
        Command::FinishRun {
            id: plan.run_id.to_string(),
            state,
            ended_ms: ended,
            counters: counters(report),
            error,
        },
    )
    .await?;
    if state != RunState::Succeeded {
        return Ok(());
    }
    for (spec, schema, name) in plan.dataset_sinks() {
        let schema_json = serde_json::to_string(schema).map_err(Failure::run)?;
        barn::propose(
            barn,
            Command::PutDataset {
                dataset: Dataset {
                    herd: plan.herd.to_string(),
                    name: name.to_string(),
                    location: absolute_uri(&spec.location.uri),
                    format: spec.location.format.name().to_string(),
                    schema_json,
                    contract: plan.contract(),
                    produced_by: Some(plan.run_id.to_string()),
                    updated_ms: ended,
                },
            },
        )
        .await?;
    }
    let edges = lineage_edges(plan);
    if !edges.is_empty() {
        barn::propose(barn, Command::AddLineage { edges }).await?;
    }
    Ok(())
}

/// The run's lineage edges: relation level from the DAG's edges, column level from its
/// column lineage. Sinks that register a dataset appear as that dataset (`HERD.NAME`), and
/// `dataset://` sources as theirs.
pub fn lineage_edges(plan: &RunPlan<'_>) -> Vec<LineageEdge> {
    let meta = plan.meta;
    let node = |name: &str, column: Option<&str>| -> LineageNode {
        let column = column.map(str::to_string);
        if let Some(source) = meta.sources.iter().find(|s| s.name == name) {
            if let Some(rest) = source.uri.strip_prefix("dataset://") {
                return LineageNode {
                    kind: LineageKind::Dataset,
                    name: rest.replacen('/', ".", 1),
                    column,
                };
            }
            return LineageNode {
                kind: LineageKind::Source,
                name: name.to_string(),
                column,
            };
        }
        if meta.steps.iter().any(|s| s.name == name) {
            return LineageNode {
                kind: LineageKind::Step,
                name: name.to_string(),
                column,
            };
        }
        let dataset = meta
            .sinks
            .iter()
            .find(|s| s.spec.location.uri == name)
            .and_then(|s| s.spec.dataset.as_ref());
        match dataset {
            Some(d) => LineageNode {
                kind: LineageKind::Dataset,
                name: format!("{}.{d}", plan.herd),
                column,
            },
            None => LineageNode {
                kind: LineageKind::Sink,
                name: name.to_string(),
                column,
            },
        }
    };
    let mut edges = Vec::new();
    for e in &meta.lineage.edges {
        edges.push(LineageEdge {
            run_id: plan.run_id.to_string(),
            from: node(&e.from, None),
            to: node(&e.to, None),
        });
    }
    for c in &meta.lineage.columns {
        for s in &c.sources {
            edges.push(LineageEdge {
                run_id: plan.run_id.to_string(),
                from: node(&s.relation, Some(&s.column)),
                to: node(&c.sink, Some(&c.column)),
            });
        }
    }
    edges
}
