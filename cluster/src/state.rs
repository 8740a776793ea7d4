//! Barn's replicated state: the typed commands of the Raft log and what they do.
//!
//! Every change to Barn is a [`Command`] appended to the Raft log. Once a command is
//! committed, every replica applies it with [`StateMachineData::apply`]:
//!
//! ```text
//!  client ─► Command ─► Raft log (replicated, fsynced) ─► committed ─► StateMachineData::apply
//!                                                                      └─► Response
//! ```
//!
//! `apply` is a pure function of the state and the command: no clock, no randomness, no
//! I/O, and only ordered maps, so replicas that applied the same commands hold equal state
//! and serialize it to identical bytes. Anything time-dependent (`started_ms`, `at_ms`) is
//! decided by the proposer and travels inside the command.
//!
//! A command that does not fit the current state (a dataset of an unknown herd, finishing a
//! run twice) is not an error: it changes nothing and answers [`Response::Rejected`]. Every
//! replica rejects it the same way, so nothing diverges, and the proposer learns why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// One change to Barn, as it is stored in the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Register a herd or replace its definition.
    PutHerd { herd: Herd },
    /// Remove a herd and the datasets registered in it. Runs, lineage and audit entries
    /// naming it stay: they are history.
    DeleteHerd { id: String },
    /// Register a dataset in its herd or replace its registration.
    PutDataset { dataset: Dataset },
    /// Register a contract version. Registering the same (id, version) again with the same
    /// hash changes nothing; with another hash it is rejected (versions are immutable).
    PutContract {
        id: String,
        version: String,
        hash: String,
        text: String,
    },
    /// Record a compiled DAG file: where it is and the SHA-256 of its bytes.
    PutDag {
        id: String,
        bytes_hash: String,
        file: String,
    },
    /// Record a new run, in state `pending`.
    StartRun {
        id: String,
        dag: String,
        /// What ran, for people: `Feature / Scenario`.
        job: String,
        herd: String,
        actor: String,
        contract: Option<ContractRef>,
        /// What the run reads and writes, with schemas (for lineage exports).
        io: RunIo,
        started_ms: u64,
    },
    /// Progress of a run that has not finished: `pending` or `running`, its counters so
    /// far and the proposer's clock (a heartbeat; a stale one means the runner is gone).
    UpdateRun {
        id: String,
        state: RunState,
        heartbeat_ms: u64,
        counters: RunCounters,
    },
    /// The end of a run: `succeeded`, `failed` or `cancelled`, its final counters and, for
    /// a failure, the reason.
    FinishRun {
        id: String,
        state: RunState,
        ended_ms: u64,
        counters: RunCounters,
        error: Option<String>,
    },
    /// Add lineage edges of a run (already present edges are kept once).
    AddLineage { edges: Vec<LineageEdge> },
    /// Append an entry to the audit log.
    Audit { entry: AuditEntry },
}

/// What applying one log entry answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The command changed the state (or was a no-op by design, such as re-registering an
    /// identical contract version, or a blank or membership entry).
    Applied,
    /// The command did not fit the state and changed nothing.
    Rejected(Rejection),
}

/// Why a command changed nothing. Deterministic: every replica rejects the same commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("{what} must not be empty")]
    EmptyName { what: String },
    #[error("unknown herd `{herd}`")]
    UnknownHerd { herd: String },
    #[error("unknown run `{run}`")]
    UnknownRun { run: String },
    #[error("run `{run}` already exists")]
    RunExists { run: String },
    #[error("run `{run}` already finished ({state})")]
    RunFinished { run: String, state: RunState },
    #[error("run `{run}` cannot go from {from} to {to}")]
    BadTransition {
        run: String,
        from: RunState,
        to: RunState,
    },
    #[error(
        "contract `{id}` version {version} is registered with hash {registered_hash}, not {hash}: \
         a changed contract needs a new version"
    )]
    ContractConflict {
        id: String,
        version: String,
        registered_hash: String,
        hash: String,
    },
}

/// A tenant: quotas, roles, masking and contract policy, and (in [`StateMachineData`]) its
/// datasets. The stored form of a herd file (SPEC §7), with quantities in plain units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Herd {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub resource_quotas: ResourceQuotas,
    #[serde(default)]
    pub rbac_policies: Vec<RbacPolicy>,
    #[serde(default)]
    pub masking_policies: MaskingPolicy,
    #[serde(default)]
    pub default_contract_policy: ContractPolicy,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A herd's limits; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceQuotas {
    pub slices_max: Option<u32>,
    /// CPU in thousandths of a core (`"4000m"` and `"4"` are both 4000).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Slices must run in their cgroups and namespaces: where the host cannot isolate
    /// them, runs fail instead of running unisolated (`isolation = "required"`).
    #[serde(default)]
    pub isolation_required: bool,
}

/// The actions one role may take in a herd (`read:datasets`, `read:*`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacPolicy {
    pub role: String,
    pub actions: Vec<String>,
}

/// How a herd masks fields classified as sensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskingPolicy {
    pub default: Option<MaskKind>,
    #[serde(default)]
    pub field_level_overrides: BTreeMap<String, MaskKind>,
}

/// A masking method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    Redact,
    Hash,
    Tokenize,
}

/// What a herd does when data or a contract drifts from the registered contract.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractPolicy {
    pub block_on_drift: bool,
}

/// A named table of a herd: where it lives, its schema and its contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub herd: String,
    pub name: String,
    /// The URI it is read from, e.g. `parquet://out/trades/`.
    pub location: String,
    /// `csv`, `json`, `parquet`, `arrow`.
    pub format: String,
    /// The Arrow schema as JSON (arrow-schema's serde form). Kept as text so that Barn
    /// does not depend on Arrow; the planner decodes it.
    pub schema_json: String,
    pub contract: Option<ContractRef>,
    /// The run that last wrote it.
    pub produced_by: Option<String>,
    pub updated_ms: u64,
}

/// A pointer to one contract version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContractRef {
    pub id: String,
    pub version: String,
    /// The contract's SHA-256 (hex), as `runi contract hash` prints it.
    pub hash: String,
}

/// One registered contract version with its source text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractVersion {
    pub id: String,
    pub version: String,
    pub hash: String,
    pub text: String,
}

/// A compiled DAG file known to Barn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagRecord {
    pub id: String,
    /// SHA-256 (hex) of the file's bytes.
    pub bytes_hash: String,
    /// Where the file was written, as the user named it.
    pub file: String,
}

/// Where a run is in its life: `pending → running → succeeded | failed | cancelled`
/// (`pending` may also end directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    /// Whether the run is over; a finished run never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state's name as users see it (`pending`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a DAG, as `runi status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// What ran: a [`DagRecord`] id, or for a Scenario compiled on the fly, whatever the
    /// runner names it by. Not checked against the registered DAGs.
    pub dag: String,
    /// What ran, for people: `Feature / Scenario`.
    #[serde(default)]
    pub job: String,
    pub herd: String,
    pub state: RunState,
    /// Who started it (a user or token subject).
    pub actor: String,
    pub contract: Option<ContractRef>,
    pub started_ms: u64,
    pub heartbeat_ms: u64,
    pub ended_ms: Option<u64>,
    pub counters: RunCounters,
    /// Why it failed (for `failed` runs).
    pub error: Option<String>,
    /// What it reads and writes.
    #[serde(default)]
    pub io: RunIo,
}

/// The inputs and outputs of a run, as known when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIo {
    pub inputs: Vec<IoDataset>,
    pub outputs: Vec<IoDataset>,
}

/// One input or output of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDataset {
    /// The source's name, or for a sink its URI.
    pub name: String,
    /// Where the data lives (absolute path where it is a file).
    pub uri: String,
    /// The registered dataset it is, as `HERD.NAME`.
    pub dataset: Option<String>,
    pub fields: Vec<IoField>,
}

/// A column of an input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoField {
    pub name: String,
    /// The Arrow type as DataFusion prints it (`Int64`, `Utf8`, ...).
    pub data_type: String,
}

/// Rows through each part of a run. Mirrors the engine's run report without depending
/// on the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounters {
    pub sources: Vec<RelationRows>,
    pub steps: Vec<RelationRows>,
    pub contracts: Vec<EnforcementRows>,
    pub sinks: Vec<SinkRows>,
}

/// Rows out of one source or step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRows {
    pub name: String,
    pub rows: u64,
}

/// One contract enforcement point of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementRows {
    /// The relation enforced on, or `source:NAME` / `step:NAME`.
    pub at: String,
    pub rows: u64,
    pub valid: u64,
    pub rejected: u64,
    /// Rejected rows per rule, keyed `column:rule`.
    pub rejected_per_rule: BTreeMap<String, u64>,
}

/// Rows written by one sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRows {
    pub uri: String,
    /// `valid`, `invalid` or a SQL predicate.
    pub when: String,
    pub from: String,
    pub rows: u64,
}

/// An edge of the lineage graph recorded by a run: dataset or relation level when both
/// ends have no column, column level when both name one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageEdge {
    pub run_id: String,
    pub from: LineageNode,
    pub to: LineageNode,
}

/// One end of a lineage edge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageNode {
    pub kind: LineageKind,
    /// A dataset as `HERD.NAME`, a source, step or sink by its name in the Scenario.
    pub name: String,
    pub column: Option<String>,
}

/// What a lineage node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineageKind {
    Dataset,
    Source,
    Step,
    Sink,
}

/// One line of the audit log: who did (or was denied) what, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub actor: String,
    /// e.g. `read:datasets`, `access:secrets`.
    pub action: String,
    pub herd: Option<String>,
    pub target: String,
    pub allowed: bool,
    pub detail: String,
}

/// Everything Barn knows, as of some log index. Replicas holding the same log prefix
/// hold equal values of this type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMachineData {
    #[serde(default)]
    herds: BTreeMap<String, Herd>,
    /// herd → dataset name → dataset.
    #[serde(default)]
    datasets: BTreeMap<String, BTreeMap<String, Dataset>>,
    /// contract id → version → contract.
    #[serde(default)]
    contracts: BTreeMap<String, BTreeMap<String, ContractVersion>>,
    #[serde(default)]
    dags: BTreeMap<String, DagRecord>,
    #[serde(default)]
    runs: BTreeMap<String, RunRecord>,
    #[serde(default)]
    lineage: BTreeSet<LineageEdge>,
    #[serde(default)]
    audit: Vec<AuditEntry>,
}

impl StateMachineData {
    /// Applies one command. Pure and deterministic; a rejected command changes nothing.
    pub fn apply(&mut self, command: &Command) -> Response {
        match self.try_apply(command) {
            Ok(()) => Response::Applied,
            Err(rejection) => Response::Rejected(rejection),
        }
    }

    /// A herd by id.
    pub fn herd(&self, id: &str) -> Option<&Herd> {
        self.herds.get(id)
    }

    /// All herds, by id.
    pub fn herds(&self) -> impl Iterator<Item = &Herd> {
        self.herds.values()
    }

    /// A dataset of a herd.
    pub fn dataset(&self, herd: &str, name: &str) -> Option<&Dataset> {
        self.datasets.get(herd)?.get(name)
    }

    /// The datasets of a herd, by name.
    pub fn datasets(&self, herd: &str) -> impl Iterator<Item = &Dataset> {
        self.datasets.get(herd).into_iter().flat_map(|d| d.values())
    }

    /// One contract version.
    pub fn contract(&self, id: &str, version: &str) -> Option<&ContractVersion> {
        self.contracts.get(id)?.get(version)
    }

    /// Every registered contract version, by id, then version as text (so `1.10.0` sorts
    /// before `1.2.0`: callers that need semver order sort again).
    pub fn contracts(&self) -> impl Iterator<Item = &ContractVersion> {
        self.contracts
            .values()
            .flat_map(|versions| versions.values())
    }

    /// A DAG by id.
    pub fn dag(&self, id: &str) -> Option<&DagRecord> {
        self.dags.get(id)
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Option<&RunRecord> {
        self.runs.get(id)
    }

    /// All runs, by id.
    pub fn runs(&self) -> impl Iterator<Item = &RunRecord> {
        self.runs.values()
    }

    /// Every lineage edge, ordered by run id, then source, then target.
    pub fn lineage(&self) -> impl Iterator<Item = &LineageEdge> {
        self.lineage.iter()
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    fn try_apply(&mut self, command: &Command) -> Result<(), Rejection> {
        match command {
            Command::PutHerd { herd } => {
                non_empty("herd id", &herd.id)?;
                self.herds.insert(herd.id.clone(), herd.clone());
            }
            Command::DeleteHerd { id } => {
                if self.herds.remove(id).is_none() {
                    return Err(Rejection::UnknownHerd { herd: id.clone() });
                }
                self.datasets.remove(id);
            }
            Command::PutDataset { dataset } => {
                non_empty("dataset name", &dataset.name)?;
                self.known_herd(&dataset.herd)?;
                self.datasets
                    .entry(dataset.herd.clone())
                    .or_default()
                    .insert(dataset.name.clone(), dataset.clone());
            }
            Command::PutContract {
                id,
                version,
                hash,
                text,
            } => {
                non_empty("contract id", id)?;
                non_empty("contract version", version)?;
                let versions = self.contracts.entry(id.clone()).or_default();
                match versions.get(version) {
                    Some(registered) if registered.hash == *hash => {}
                    Some(registered) => {
                        return Err(Rejection::ContractConflict {
                            id: id.clone(),
                            version: version.clone(),
                            registered_hash: registered.hash.clone(),
                            hash: hash.clone(),
                        });
                    }
                    None => {
                        versions.insert(
                            version.clone(),
                            ContractVersion {
                                id: id.clone(),
                                version: version.clone(),
                                hash: hash.clone(),
                                text: text.clone(),
                            },
                        );
                    }
                }
            }
            Command::PutDag {
                id,
                bytes_hash,
                file,
            } => {
                non_empty("DAG id", id)?;
                self.dags.insert(
                    id.clone(),
                    DagRecord {
                        id: id.clone(),
                        bytes_hash: bytes_hash.clone(),
                        file: file.clone(),
                    },
                );
            }
            Command::StartRun {
                id,
                dag,
                job,
                herd,
                actor,
                contract,
                io,
                started_ms,
            } => {
                non_empty("run id", id)?;
                self.known_herd(herd)?;
                if self.runs.contains_key(id) {
                    return Err(Rejection::RunExists { run: id.clone() });
                }
                self.runs.insert(
                    id.clone(),
                    RunRecord {
                        id: id.clone(),
                        dag: dag.clone(),
                        job: job.clone(),
                        herd: herd.clone(),
                        state: RunState::Pending,
                        actor: actor.clone(),
                        contract: contract.clone(),
                        started_ms: *started_ms,
                        heartbeat_ms: *started_ms,
                        ended_ms: None,
                        counters: RunCounters::default(),
                        error: None,
                        io: io.clone(),
                    },
                );
            }
            Command::UpdateRun {
                id,
                state,
                heartbeat_ms,
                counters,
            } => {
                let run = self.unfinished_run(id)?;
                // Progress only moves forward; `running → pending` would hide a live run.
                let allowed = !state.is_terminal() && *state >= run.state;
                if !allowed {
                    return Err(Rejection::BadTransition {
                        run: id.clone(),
                        from: run.state,
                        to: *state,
                    });
                }
                run.state = *state;
                run.heartbeat_ms = *heartbeat_ms;
                run.counters = counters.clone();
            }
            Command::FinishRun {
                id,
                state,
                ended_ms,
                counters,
                error,
            } => {
                let run = self.unfinished_run(id)?;
                if !state.is_terminal() {
                    return Err(Rejection::BadTransition {
                        run: id.clone(),
                        from: run.state,
                        to: *state,
                    });
                }
                run.state = *state;
                run.heartbeat_ms = *ended_ms;
                run.ended_ms = Some(*ended_ms);
                run.counters = counters.clone();
                run.error = error.clone();
            }
            Command::AddLineage { edges } => {
                // All or nothing: check every edge before inserting any.
                if let Some(edge) = edges.iter().find(|e| !self.runs.contains_key(&e.run_id)) {
                    return Err(Rejection::UnknownRun {
                        run: edge.run_id.clone(),
                    });
                }
                self.lineage.extend(edges.iter().cloned());
            }
            Command::Audit { entry } => self.audit.push(entry.clone()),
        }
        Ok(())
    }

    fn known_herd(&self, herd: &str) -> Result<(), Rejection> {
        if self.herds.contains_key(herd) {
            Ok(())
        } else {
            Err(Rejection::UnknownHerd {
                herd: herd.to_string(),
            })
        }
    }

    fn unfinished_run(&mut self, id: &str) -> Result<&mut RunRecord, Rejection> {
        let run = self.runs.get_mut(id).ok_or_else(|| Rejection::UnknownRun {
            run: id.to_string(),
        })?;
        if run.state.is_terminal() {
            return Err(Rejection::RunFinished {
                run: id.to_string(),
                state: run.state,
            });
        }
        Ok(run)
    }
}

fn non_empty(what: &str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() {
        Err(Rejection::EmptyName {
            what: what.to_string(),
        })
    } else {
        Ok(())
    }
}
