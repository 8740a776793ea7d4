//! Sinks: routing rows to files and making them visible only when the run succeeds.
//!
//! ```text
//!   input (with `_violations` when a contract is enforced)
//!     │  per batch: valid = len(_violations) == 0
//!     ├─ when=valid      → valid rows, `_violations` dropped ─┐
//!     ├─ when=invalid    → rejected rows with `_violations`   ├─► temp file / temp dir
//!     └─ when=<SQL>      → valid rows where the predicate holds┘
//!   run succeeded → CommitLog::commit renames temp → target (overwrite) or moves parts in
//!   run failed    → CommitLog::abort removes every temp file
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, BooleanArray, ListArray, RecordBatch, StringArray, StructArray, UInt64Array,
};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{and, filter_record_batch, not, prep_null_mask_filter};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::source::{FileFormatKind, FileLocation};
use crate::{EngineError, Result};

/// Name of the column that carries contract violations.
pub const VIOLATIONS_COLUMN: &str = "_violations";

/// Which rows a sink receives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkWhen {
    /// Rows that satisfy the contract (all rows without a contract).
    Valid,
    /// Rows the contract rejected, with `_violations`.
    Invalid,
    /// Valid rows for which this SQL predicate is true.
    Predicate(String),
}

impl fmt::Display for SinkWhen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Valid => f.write_str("valid"),
            Self::Invalid => f.write_str("invalid"),
            Self::Predicate(p) => write!(f, "{p}"),
        }
    }
}

/// Whether a sink replaces or extends what is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    Overwrite,
    Append,
}

/// A sink as compiled: where, which rows, how.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SinkSpec {
    /// Where it writes.
    pub location: FileLocation,
    /// Which rows.
    pub when: SinkWhen,
    /// Overwrite or append.
    pub mode: SinkMode,
    /// The dataset this sink registers, if any.
    pub dataset: Option<String>,
    /// The relation it reads.
    pub from: String,
}

impl SinkSpec {
    /// Checks what can be checked before any data flows.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let dir = self.location.path.ends_with('/');
        if self.mode == SinkMode::Append
            && !dir
            && matches!(
                self.location.format,
                FileFormatKind::Parquet | FileFormatKind::Arrow
            )
        {
            return Err(format!(
                "mode=append needs a directory for {} output (end the path with `/`): a {} file cannot be extended",
                self.location.format.name(),
                self.location.format.name()
            ));
        }
        Ok(())
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Rows written.
    pub rows: AtomicU64,
}

/// A sink wired into a physical plan.
#[derive(Debug, Clone)]
pub struct SinkTarget {
    /// What the sink is.
    pub spec: SinkSpec,
    /// The physical predicate for [`SinkWhen::Predicate`].
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    /// Its counters.
    pub stats: Arc<SinkStats>,
    /// The outermost missing folder on the way to the sink's target when the plan was made
    /// ([`SinkSpec::folder_to_make`]): a run that does not commit removes it again if it
    /// is empty. Found before any sink of the run creates anything, so sinks sharing a new
    /// folder all know it.
    pub made_folder: Option<PathBuf>,
}

impl SinkSpec {
    /// The outermost folder that writing this sink's output would create (missing parents
    /// of its target), resolved against the working directory.
    pub fn folder_to_make(&self) -> Option<PathBuf> {
        let base = std::env::current_dir().ok()?;
        first_missing(self.location.resolve(&base).parent()?)
    }
}

/// Output written to a temporary place, waiting for the run to succeed.
#[derive(Debug)]
struct PendingOutput {
    temp: PathBuf,
    target: PathBuf,
    mode: SinkMode,
    directory: bool,
    format: FileFormatKind,
    uri: String,
    /// The outermost folder this sink created for its output (missing parents of the
    /// target), removed again, if empty, when the output is.
    made: Option<PathBuf>,
}

/// The sink outputs of one run, committed together when it succeeds or removed when it
/// fails.
#[derive(Debug, Default)]
pub struct CommitLog {
    pending: Mutex<Vec<PendingOutput>>,
}

impl CommitLog {
    fn push(&self, out: PendingOutput) -> Result<()> {
        self.pending
            .lock()
            .map_err(|_| EngineError::Internal("commit log lock poisoned".into()))?
            .push(out);
        Ok(())
    }

    fn take(&self) -> Vec<PendingOutput> {
        match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Makes every pending output visible under its target name.
    pub fn commit(&self, run_id: &str) -> Result<()> {
        let pending = self.take();
        let mut first_error = None;
        let mut committed = Vec::new();
        for out in &pending {
            if first_error.is_some() {
                remove_temp(out);
                continue;
            }
            match commit_one(out, run_id) {
                Ok(()) => committed.push(out.uri.as_str()),
                Err(e) => {
                    remove_temp(out);
                    first_error = Some(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            // Say what is already visible: those outputs stay (a rename cannot be undone
            // once another sink has failed), and the rest were discarded.
            Some(EngineError::Sink { uri, message }) if !committed.is_empty() => {
                Err(EngineError::Sink {
                    uri,
                    message: format!(
                        "{message} (already committed before this failure: {}; the other sinks' output was discarded)",
                        committed.join(", ")
                    ),
                })
            }
            Some(e) => Err(e),
        }
    }

    /// Removes every pending output.
    pub fn abort(&self) {
        for out in self.take() {
            remove_temp(&out);
        }
    }
}

/// A log dropped without a commit (a run that ended early) leaves nothing behind.
impl Drop for CommitLog {
    fn drop(&mut self) {
        self.abort();
    }
}

fn remove_temp(out: &PendingOutput) {
    let _ = if out.directory {
        fs::remove_dir_all(&out.temp)
    } else {
        fs::remove_file(&out.temp)
    };
    remove_made_folders(&out.temp, out.made.as_deref());
}

/// The folders between `temp` and `made` (the outermost one a sink created), innermost
/// first, each removed if nothing else was written there.
fn remove_made_folders(temp: &Path, made: Option<&Path>) {
    let Some(made) = made else { return };
    let mut dir = temp.parent();
    while let Some(d) = dir {
        if !d.starts_with(made) || fs::remove_dir(d).is_err() {
            break;
        }
        if d == made {
            break;
        }
        dir = d.parent();
    }
}

/// The outermost missing folder on the way to `dir`, which creating `dir` would create.
fn first_missing(dir: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing = Some(p.to_path_buf());
        d = p.parent();
    }
    missing
}

fn sink_io(uri: &str, what: &str, path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Sink {
        uri: uri.to_string(),
        message: format!("{what} {}: {e}", path.display()),
    }
}

fn commit_one(out: &PendingOutput, run_id: &str) -> Result<()> {
    let uri = out.uri.as_str();
    match (out.directory, out.mode) {
        (true, SinkMode::Overwrite) => {
            let old = sibling(&out.target, &format!("runink-{run_id}.old"));
            let had_old = out.target.exists();
            if had_old {
                fs::rename(&out.target, &old)
                    .map_err(|e| sink_io(uri, "cannot move aside", &out.target, e))?;
            }
            if let Err(e) = fs::rename(&out.temp, &out.target) {
                if had_old {
                    let _ = fs::rename(&old, &out.target);
                }
                return Err(sink_io(uri, "cannot rename into", &out.target, e));
            }
            if had_old {
                let _ = if old.is_dir() {
                    fs::remove_dir_all(&old)
                } else {
                    fs::remove_file(&old)
                };
            }
        }
        (true, SinkMode::Append) => {
            fs::create_dir_all(&out.target)
                .map_err(|e| sink_io(uri, "cannot create", &out.target, e))?;
            let entries =
                fs::read_dir(&out.temp).map_err(|e| sink_io(uri, "cannot list", &out.temp, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| sink_io(uri, "cannot list", &out.temp, e))?;
                let name = entry.file_name();
                let dest = out
                    .target
                    .join(format!("{run_id}-{}", name.to_string_lossy()));
                fs::rename(entry.path(), &dest)
                    .map_err(|e| sink_io(uri, "cannot move into", &dest, e))?;
            }
            let _ = fs::remove_dir_all(&out.temp);
        }
        (false, SinkMode::Overwrite) => {
            fs::rename(&out.temp, &out.target)
                .map_err(|e| sink_io(uri, "cannot rename into", &out.target, e))?;
        }
        (false, SinkMode::Append) => {
            let target_has_data = fs::metadata(&out.target)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
            if !target_has_data {
                fs::rename(&out.temp, &out.target)
                    .map_err(|e| sink_io(uri, "cannot rename into", &out.target, e))?;
            } else {
                let mut data = Vec::new();
                File::open(&out.temp)
                    .and_then(|mut f| f.read_to_end(&mut data))
                    .map_err(|e| sink_io(uri, "cannot read", &out.temp, e))?;
                let body = if out.format == FileFormatKind::Csv {
                    // The target already has a header line.
                    match data.iter().position(|b| *b == b'\n') {
                        Some(i) => &data[i + 1..],
                        None => &data[..0],
                    }
                } else {
                    &data[..]
                };
                // A file written by another tool may lack its last line's end: without one,
                // the first appended row would join the last existing row.
                let ends_line = {
                    use std::io::{Seek, SeekFrom};
                    let mut last = [0u8; 1];
                    File::open(&out.target)
                        .and_then(|mut f| {
                            f.seek(SeekFrom::End(-1))?;
                            f.read_exact(&mut last)
                        })
                        .map(|_| last[0] == b'\n')
                        .map_err(|e| sink_io(uri, "cannot read", &out.target, e))?
                };
                fs::OpenOptions::new()
                    .append(true)
                    .open(&out.target)
                    .and_then(|mut f| {
                        if !ends_line && !body.is_empty() {
                            f.write_all(b"\n")?;
                        }
                        f.write_all(body).and_then(|_| f.sync_all())
                    })
                    .map_err(|e| sink_io(uri, "cannot append to", &out.target, e))?;
                let _ = fs::remove_file(&out.temp);
            }
        }
    }
    Ok(())
}

/// Cleans what a run that died mid-way left next to one sink's `target`: its temp output is
/// removed; an overwritten directory it had moved aside (`.old`) is put back when the new
/// one never arrived, and removed when it did. Returns what it did, for the caller to say.
pub fn recover_after(target: &Path, run_id: &str) -> std::io::Result<Vec<String>> {
    let mut done = Vec::new();
    let temp = sibling(target, &format!("runink-{run_id}.tmp"));
    if temp.is_dir() {
        fs::remove_dir_all(&temp)?;
        done.push(format!("removed {}", temp.display()));
    } else if temp.exists() {
        fs::remove_file(&temp)?;
        done.push(format!("removed {}", temp.display()));
    }
    let old = sibling(target, &format!("runink-{run_id}.old"));
    if old.exists() {
        if target.exists() {
            if old.is_dir() {
                fs::remove_dir_all(&old)?;
            } else {
                fs::remove_file(&old)?;
            }
            done.push(format!("removed {}", old.display()));
        } else {
            fs::rename(&old, target)?;
            done.push(format!("restored {}", target.display()));
        }
    }
    Ok(done)
}

/// `dir/.name.SUFFIX` next to `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    parent.join(format!(".{name}.{suffix}"))
}

/// The schema of the summary [`SinkExec`] returns: one row per sink.
pub fn summary_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sink", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
    ]))
}

/// Writes each input to its sinks. Output partition `i` drains input `i`.
#[derive(Debug)]
pub struct SinkExec {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    targets: Vec<Vec<SinkTarget>>,
    run_id: String,
    commit: Arc<CommitLog>,
    properties: Arc<PlanProperties>,
    /// Each input's order as planned (a step's `ORDER BY`), which the sinks keep: the
    /// optimizer would otherwise drop a sort no operator above it asks for.
    orderings: Vec<Option<LexOrdering>>,
}

impl SinkExec {
    /// `targets[i]` are the sinks fed by `inputs[i]`, written in the order each input has.
    pub fn try_new(
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        targets: Vec<Vec<SinkTarget>>,
        run_id: impl Into<String>,
        commit: Arc<CommitLog>,
    ) -> Result<Self> {
        let orderings = inputs
            .iter()
            .map(|i| i.properties().output_ordering().cloned())
            .collect();
        Self::with_orderings(inputs, targets, run_id, commit, orderings)
    }

    fn with_orderings(
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        targets: Vec<Vec<SinkTarget>>,
        run_id: impl Into<String>,
        commit: Arc<CommitLog>,
        orderings: Vec<Option<LexOrdering>>,
    ) -> Result<Self> {
        if inputs.len() != targets.len() || inputs.is_empty() {
            return Err(EngineError::Internal(format!(
                "SinkExec needs one sink group per input ({} inputs, {} groups)",
                inputs.len(),
                targets.len()
            )));
        }
        for group in &targets {
            for t in group {
                t.spec.validate().map_err(|message| EngineError::Sink {
                    uri: t.spec.location.uri.clone(),
                    message,
                })?;
            }
        }
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(summary_schema()),
            Partitioning::UnknownPartitioning(inputs.len()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            inputs,
            targets,
            run_id: run_id.into(),
            commit,
            properties,
            orderings,
        })
    }

    /// The sinks, per input.
    pub fn targets(&self) -> &[Vec<SinkTarget>] {
        &self.targets
    }
}

impl DisplayAs for SinkExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SinkExec: ")?;
        let mut first = true;
        for group in &self.targets {
            for t in group {
                if !first {
                    write!(f, ", ")?;
                }
                first = false;
                write!(
                    f,
                    "{} when={} mode={:?}",
                    t.spec.location.uri, t.spec.when, t.spec.mode
                )?;
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for SinkExec {
    fn name(&self) -> &str {
        "SinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; self.inputs.len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.orderings
            .iter()
            .map(|o| o.clone().map(OrderingRequirements::from))
            .collect()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for t in self.targets.iter().flatten() {
            if let Some(p) = &t.predicate
                && f(p)? == TreeNodeRecursion::Stop
            {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::with_orderings(
            children,
            self.targets.clone(),
            self.run_id.clone(),
            Arc::clone(&self.commit),
            self.orderings.clone(),
        )?))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.inputs.get(partition).ok_or_else(|| {
            DataFusionError::Internal(format!("SinkExec has no partition {partition}"))
        })?;
        let mut stream = input.execute(0, context)?;
        let targets = self.targets[partition].clone();
        let run_id = self.run_id.clone();
        let commit = Arc::clone(&self.commit);
        let input_schema = input.schema();
        let fut = async move {
            // Each sink is written by a thread of its own (encoding Parquet, formatting CSV
            // and JSON are CPU work), fed each input batch in order through a short queue.
            let mut writers = Vec::with_capacity(targets.len());
            for t in &targets {
                let sink = OpenSink::create(t, &input_schema, &run_id)?;
                writers.push(SinkThread::start(t.clone(), sink));
            }
            let mut failed: Option<DataFusionError> = None;
            'input: while let Some(batch) = stream.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let routed = match Routed::new(batch) {
                    Ok(r) => Arc::new(r),
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                };
                for w in &writers {
                    if w.queue
                        .send(Message::Batch(Arc::clone(&routed)))
                        .await
                        .is_err()
                    {
                        // That writer stopped on an error, which its thread returns below.
                        break 'input;
                    }
                }
            }
            // Nothing of a failed input may become visible: without `Finish`, each thread
            // drops its writer, which removes its temp output.
            if failed.is_none() {
                for w in &writers {
                    // A writer that already stopped reports why below.
                    let _ = w.queue.send(Message::Finish).await;
                }
            }
            let mut finished = Vec::with_capacity(writers.len());
            let mut first_error: Option<EngineError> = None;
            for w in writers {
                drop(w.queue);
                let outcome = match w.thread.await {
                    Ok(outcome) => outcome,
                    Err(e) => Err(EngineError::Internal(format!(
                        "a sink's writer failed: {e}"
                    ))),
                };
                match outcome {
                    Ok(Some(done)) => finished.push(done),
                    Ok(None) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                finished.iter().for_each(remove_temp);
                return Err(e);
            }
            if let Some(e) = first_error {
                finished.iter().for_each(remove_temp);
                return Err(e.into());
            }
            for done in finished {
                commit.push(done)?;
            }
            let mut names = Vec::with_capacity(targets.len());
            let mut rows = Vec::with_capacity(targets.len());
            for t in &targets {
                names.push(t.spec.location.uri.clone());
                rows.push(t.stats.rows.load(Ordering::Relaxed));
            }
            let batch = RecordBatch::try_new(
                summary_schema(),
                vec![
                    Arc::new(StringArray::from(names)) as ArrayRef,
                    Arc::new(UInt64Array::from(rows)),
                ],
            )?;
            Ok(batch)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            summary_schema(),
            futures::stream::once(fut),
        )))
    }
}

/// An input batch on its way to the sinks, with which of its rows passed the contract.
struct Routed {
    batch: RecordBatch,
    /// Index of `_violations`, when a contract is enforced.
    violations: Option<usize>,
    /// Rows without violations (`None`: no contract, every row is valid).
    valid: Option<BooleanArray>,
}

impl Routed {
    fn new(batch: RecordBatch) -> Result<Self> {
        let violations = batch.schema().index_of(VIOLATIONS_COLUMN).ok();
        let valid = match violations {
            Some(i) => {
                let list = batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .ok_or_else(|| EngineError::Internal("`_violations` is not a list".into()))?;
                let lengths = arrow::compute::kernels::length::length(list).map_err(df)?;
                let zero = arrow::array::Int32Array::new_scalar(0);
                Some(eq(&lengths, &zero).map_err(df)?)
            }
            None => None,
        };
        Ok(Self {
            batch,
            violations,
            valid,
        })
    }

    /// The rows (and columns) of this batch that `t` receives; `None` when there are none.
    fn select(&self, t: &SinkTarget) -> Result<Option<RecordBatch>> {
        // Only `when="invalid"` writes `_violations`: the others drop it before filtering,
        // which spares copying the nested list of the rows they keep.
        let batch = match (&t.spec.when, self.violations) {
            (SinkWhen::Invalid, _) | (_, None) => self.batch.clone(),
            (_, Some(i)) => {
                let mut b = self.batch.clone();
                b.remove_column(i);
                b
            }
        };
        let mask = match (&t.spec.when, &self.valid) {
            (SinkWhen::Valid, None) => return Ok(non_empty(batch)),
            (SinkWhen::Valid, Some(v)) => v.clone(),
            (SinkWhen::Invalid, None) => return Ok(None),
            (SinkWhen::Invalid, Some(v)) => not(v).map_err(df)?,
            (SinkWhen::Predicate(text), v) => {
                let predicate = t.predicate.as_ref().ok_or_else(|| {
                    EngineError::Internal(format!("sink predicate `{text}` was not planned"))
                })?;
                // Planned against the input's columns, `_violations` included.
                let value = predicate
                    .evaluate(&self.batch)
                    .and_then(|v| v.into_array(self.batch.num_rows()))?;
                let mask = value
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| EngineError::Sink {
                        uri: t.spec.location.uri.clone(),
                        message: format!("when=\"{text}\" is not a boolean expression"),
                    })?;
                // A null predicate is not true: the row is not selected.
                let mask = if mask.null_count() > 0 {
                    prep_null_mask_filter(mask)
                } else {
                    mask.clone()
                };
                match v {
                    Some(v) => and(&mask, v).map_err(df)?,
                    None => mask,
                }
            }
        };
        let selected = match mask.true_count() {
            0 => return Ok(None),
            n if n == batch.num_rows() => batch,
            _ => filter_record_batch(&batch, &mask).map_err(df)?,
        };
        Ok(non_empty(selected))
    }
}

fn non_empty(batch: RecordBatch) -> Option<RecordBatch> {
    (batch.num_rows() > 0).then_some(batch)
}

/// What a sink's writer thread receives.
enum Message {
    Batch(Arc<Routed>),
    /// The input ended without error: close the file for commit.
    Finish,
}

/// Batches queued per sink writer: enough to keep it busy while the input produces the
/// next, few enough that a slow sink holds back the input (memory stays bounded).
const SINK_QUEUE: usize = 2;

/// A sink written by a thread of its own.
struct SinkThread {
    queue: tokio::sync::mpsc::Sender<Message>,
    /// The closed output for commit after `Finish`; `None` when the queue closed without it
    /// (the writer was dropped, removing its temp output).
    thread: tokio::task::JoinHandle<Result<Option<PendingOutput>>>,
}

impl SinkThread {
    fn start(target: SinkTarget, mut sink: OpenSink) -> Self {
        let (queue, mut incoming) = tokio::sync::mpsc::channel(SINK_QUEUE);
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(message) = incoming.blocking_recv() {
                let routed = match message {
                    Message::Batch(routed) => routed,
                    Message::Finish => return sink.finish().map(Some),
                };
                let selected = routed.select(&target).map_err(|e| match e {
                    e @ EngineError::Sink { .. } => e,
                    other => sink_err(&target.spec.location.uri, other),
                })?;
                if let Some(out) = selected {
                    sink.write(&out)?;
                    target
                        .stats
                        .rows
                        .fetch_add(out.num_rows() as u64, Ordering::Relaxed);
                }
            }
            Ok(None)
        });
        Self { queue, thread }
    }
}

fn df(e: arrow::error::ArrowError) -> EngineError {
    EngineError::DataFusion(DataFusionError::from(e))
}

/// The schema a sink writes, given its input.
pub fn sink_schema(input: &Schema, when: &SinkWhen, format: FileFormatKind) -> Schema {
    let fields = input
        .fields()
        .iter()
        .filter(|f| matches!(when, SinkWhen::Invalid) || f.name() != VIOLATIONS_COLUMN)
        .map(|f| {
            if format == FileFormatKind::Csv && f.name() == VIOLATIONS_COLUMN {
                Arc::new(Field::new(VIOLATIONS_COLUMN, DataType::Utf8, false))
            } else {
                // `_violations` keeps its shape: nothing in it is ever null.
                let mut t = if f.name() == VIOLATIONS_COLUMN {
                    plain_type(f.data_type())
                } else {
                    nullable_inside(&plain_type(f.data_type()))
                };
                if format == FileFormatKind::Parquet {
                    t = parquet_time_unit(&t);
                }
                // Every column nullable, whatever the plan could prove: a dataset's files
                // then agree however the run that wrote them was planned.
                let nullable = f.name() != VIOLATIONS_COLUMN || f.is_nullable();
                Arc::new(f.as_ref().clone().with_data_type(t).with_nullable(nullable))
            }
        })
        .collect::<Vec<_>>();
    Schema::new(fields)
}

/// Parquet has no timestamps in seconds: written as they are, they become bare 64-bit
/// integers that readers take for numbers. Milliseconds hold every such value exactly.
fn parquet_time_unit(t: &DataType) -> DataType {
    map_leaves(t, &|leaf| match leaf {
        DataType::Timestamp(arrow::datatypes::TimeUnit::Second, tz) => Some(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Millisecond,
            tz.clone(),
        )),
        _ => None,
    })
}

/// `t` with every field inside it (struct fields, list items, map entries) nullable: what a
/// source could prove not null is not a property of the dataset the sink writes, and files
/// of one dataset must agree (an append compares their types).
fn nullable_inside(t: &DataType) -> DataType {
    let field = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(nullable_inside(f.data_type()))
                .with_nullable(true),
        )
    };
    match t {
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        // A map's entries and keys stay as Arrow requires them (non-null).
        _ => t.clone(),
    }
}

/// `t` with string and binary views as plain strings and binaries. Files keep the Arrow
/// type they were written with, and whether a string column arrives as a view depends on
/// where it was read from (Parquet sources give views, CSV does not): two runs appending to
/// one dataset would write files a reader cannot merge (`Utf8View` vs `Utf8`).
fn plain_type(t: &DataType) -> DataType {
    map_leaves(t, &|leaf| match leaf {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        DataType::ListView(f) => Some(DataType::List(Arc::clone(f))),
        // Dictionaries are an encoding of the values: an Arrow file cannot replace one
        // between batches, and files of one dataset must agree whatever their source read.
        DataType::Dictionary(_, values) => Some(plain_type(values)),
        _ => None,
    })
}

/// `t` with `change` applied to it and, through lists, structs and maps, to the types
/// inside it (`None`: keep that type).
fn map_leaves(t: &DataType, change: &dyn Fn(&DataType) -> Option<DataType>) -> DataType {
    let t = change(t).unwrap_or_else(|| t.clone());
    let field = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(map_leaves(f.data_type(), change)),
        )
    };
    match &t {
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        _ => t,
    }
}

/// `batch` with its timestamp columns as the text the CSV and JSON writers would write
/// for them, formatted by [`crate::timetext`] (the writers' own formatting is several
/// times dearer). Columns it does not format are left to the writer.
fn timestamps_formatted(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Timestamp(..)))
    {
        return Ok(batch);
    }
    let schema = batch.schema();
    let (mut fields, mut columns) = (Vec::new(), Vec::new());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        match crate::timetext::timestamps_as_text(c) {
            Some(text) => {
                fields.push(Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8)));
                columns.push(text);
            }
            None => {
                fields.push(Arc::clone(f));
                columns.push(Arc::clone(c));
            }
        }
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(df)
}

/// `batch` with each column cast to `schema`'s type where it differs (views to plain).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch
        .columns()
        .iter()
        .zip(schema.fields())
        .all(|(c, f)| c.data_type() == f.data_type())
    {
        // The same arrays under the sink's schema (its nullability).
        return RecordBatch::try_new_with_options(
            Arc::clone(schema),
            batch.columns().to_vec(),
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(df);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(df)?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(df)
}

/// Appending to `target`, a folder of `format` files: the files there must have the
/// columns this sink writes (names and types), or the folder could no longer be read as
/// one table. `None` when it has no such file yet.
fn append_conflict(target: &Path, format: FileFormatKind, schema: &Schema) -> Option<String> {
    let mut files: Vec<PathBuf> = fs::read_dir(target)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == format.extension()))
        .collect();
    files.sort();
    let file = files.first()?;
    let existing: Schema = match format {
        FileFormatKind::Parquet => {
            let f = File::open(file).ok()?;
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .ok()?
                .schema()
                .as_ref()
                .clone()
        }
        FileFormatKind::Arrow => {
            let f = File::open(file).ok()?;
            match arrow::ipc::reader::FileReader::try_new(f, None) {
                Ok(r) => r.schema().as_ref().clone(),
                Err(_) => arrow::ipc::reader::StreamReader::try_new(File::open(file).ok()?, None)
                    .ok()?
                    .schema()
                    .as_ref()
                    .clone(),
            }
        }
        _ => return None,
    };
    // Nullability inside a type is no conflict: older runs wrote what their source proved.
    let shape = |s: &Schema| -> Vec<(String, DataType)> {
        s.fields()
            .iter()
            .map(|f| {
                (
                    f.name().clone(),
                    nullable_inside(&plain_type(f.data_type())),
                )
            })
            .collect()
    };
    if shape(&existing) == shape(schema) {
        return None;
    }
    let show = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), plain_type(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "mode=append: {} has the columns ({}), but this run writes ({}); append needs the same columns and types: write elsewhere, or use mode=overwrite",
        file.display(),
        show(&existing),
        show(schema)
    ))
}

/// Appending to the CSV file `target`: its header must be the one this sink writes, or
/// the appended rows would sit under other column names.
fn csv_append_conflict(target: &Path, schema: &SchemaRef) -> Option<String> {
    let f = File::open(target).ok()?;
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut first).ok()?;
    let existing = first.trim_end_matches(['\n', '\r']);
    if existing.is_empty() {
        return None;
    }
    let mut header = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut header);
        w.write(&RecordBatch::new_empty(Arc::clone(schema))).ok()?;
    }
    let ours = String::from_utf8_lossy(&header);
    let ours = ours.trim_end_matches(['\n', '\r']);
    (existing != ours).then(|| {
        format!(
            "mode=append: {} has the header `{existing}`, but this run writes `{ours}`; append needs the same columns in the same order: write elsewhere, or use mode=overwrite",
            target.display()
        )
    })
}

/// Appending to the NDJSON file `target`: a column the file's records already hold must
/// keep its JSON type (a number stays a number), or the file, read as one table, fails
/// on the mix. Looks at the first thousand records.
fn json_append_conflict(target: &Path, schema: &SchemaRef) -> Option<String> {
    use std::io::BufRead;
    let f = File::open(target).ok()?;
    // The JSON type the writer gives a column of each Arrow type; `None`: not checked.
    let written = |t: &DataType| -> Option<&'static str> {
        Some(match t {
            t if t.is_integer() || t.is_floating() => "a number",
            DataType::Boolean => "a boolean",
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "a list",
            DataType::Struct(_) => "an object",
            _ => return None,
        })
    };
    let kind = |v: &serde_json::Value| (!v.is_null()).then(|| crate::source::json_kind(v));
    for (i, line) in std::io::BufReader::new(f).lines().take(1000).enumerate() {
        let line = line.ok()?;
        let Ok(serde_json::Value::Object(record)) = serde_json::from_str(&line) else {
            continue;
        };
        let place = format!("{}:{}", target.display(), i + 1);
        // A column the file has and this run does not write: the dataset would lose it.
        if let Some((name, _)) = record
            .iter()
            .find(|(k, v)| !v.is_null() && schema.field_with_name(k).is_err())
        {
            return Some(format!(
                "mode=append: {place} holds `{name}`, which this run does not write; append needs the same columns: write elsewhere, or use mode=overwrite"
            ));
        }
        // A column of type Null (nothing but nulls to infer from) where the file has values.
        if let Some(field) = schema.fields().iter().find(|f| {
            f.data_type() == &DataType::Null && record.get(f.name()).is_some_and(|v| !v.is_null())
        }) {
            return Some(format!(
                "mode=append: {place} holds values of `{}`, but this run's are all null, with no type (nothing to infer one from): give the source a contract that types it, or use mode=overwrite",
                field.name()
            ));
        }
        for field in schema.fields() {
            let (Some(ours), Some(theirs)) = (
                written(field.data_type()),
                record.get(field.name()).and_then(kind),
            ) else {
                continue;
            };
            if ours != theirs {
                return Some(format!(
                    "mode=append: {}:{} holds `{}` as {theirs}, but this run writes it as {ours} ({}); append needs the same types: write elsewhere, or use mode=overwrite",
                    target.display(),
                    i + 1,
                    field.name(),
                    field.data_type()
                ));
            }
        }
    }
    None
}

enum Writer {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv(arrow::csv::Writer<BufWriter<File>>),
    Json(arrow::json::LineDelimitedWriter<BufWriter<File>>),
    Arrow(arrow::ipc::writer::FileWriter<BufWriter<File>>),
}

/// A sink being written. Dropped without [`OpenSink::finish`] (a failed or cancelled
/// run), it removes its temp output itself.
struct OpenSink {
    writer: Option<Writer>,
    pending: Option<PendingOutput>,
    uri: String,
    schema: SchemaRef,
}

impl Drop for OpenSink {
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(p) = self.pending.take() {
            remove_temp(&p);
        }
    }
}

impl OpenSink {
    fn create(t: &SinkTarget, input: &Schema, run_id: &str) -> Result<Self> {
        let uri = t.spec.location.uri.as_str();
        let base = std::env::current_dir().map_err(|e| EngineError::Sink {
            uri: uri.to_string(),
            message: format!("cannot read the working directory: {e}"),
        })?;
        let target = t.spec.location.resolve(&base);
        let directory = t.spec.location.path.ends_with('/') || target.is_dir();
        let temp = sibling(&target, &format!("runink-{run_id}.tmp"));
        let format = t.spec.location.format;
        // Checked before anything is created, rather than found when the run commits
        // (after other sinks may have committed).
        // (Without its trailing `/`: a file named `x/` does not exist, the file `x` does.)
        let without_slash: PathBuf = target.components().collect();
        if t.spec.location.path.ends_with('/') && without_slash.is_file() {
            return Err(sink_err(
                uri,
                format!(
                    "{} is a file, not a folder: a sink whose path ends in `/` writes a folder of files",
                    without_slash.display()
                ),
            ));
        }
        // Checked before anything is created: a refused append leaves nothing behind.
        let schema = Arc::new(sink_schema(input, &t.spec.when, format));
        if t.spec.mode == SinkMode::Append {
            let conflict = match (directory, format) {
                (true, FileFormatKind::Parquet | FileFormatKind::Arrow) => {
                    append_conflict(&target, format, &schema)
                }
                (false, FileFormatKind::Csv) => csv_append_conflict(&target, &schema),
                (false, FileFormatKind::Json) => json_append_conflict(&target, &schema),
                _ => None,
            };
            if let Some(message) = conflict {
                return Err(sink_err(uri, message));
            }
        }
        let made = t.made_folder.clone();
        let file_path = if directory {
            fs::create_dir_all(&temp).map_err(|e| sink_io(uri, "cannot create", &temp, e))?;
            temp.join(format!("part-00000.{}", format.extension()))
        } else {
            if let Some(parent) = temp.parent() {
                fs::create_dir_all(parent).map_err(|e| sink_io(uri, "cannot create", parent, e))?;
            }
            temp.clone()
        };
        // Past here, a failure removes what was created for this sink.
        let cleanup = |e: EngineError| {
            if directory {
                let _ = fs::remove_dir_all(&temp);
            } else {
                let _ = fs::remove_file(&temp);
            }
            remove_made_folders(&temp, made.as_deref());
            e
        };
        let file = File::create(&file_path)
            .map_err(|e| cleanup(sink_io(uri, "cannot create", &file_path, e)))?;
        let w = BufWriter::with_capacity(1 << 20, file);
        let writer = match format {
            FileFormatKind::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                Writer::Parquet(
                    ArrowWriter::try_new(w, Arc::clone(&schema), Some(props))
                        .map_err(|e| cleanup(sink_err(uri, e)))?,
                )
            }
            FileFormatKind::Csv => {
                Writer::Csv(arrow::csv::WriterBuilder::new().with_header(true).build(w))
            }
            // Every row carries every column, null ones as `null`: a reader of the file (and
            // of a rejected row) sees the column exists rather than guessing it away.
            FileFormatKind::Json => Writer::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(w),
            ),
            FileFormatKind::Arrow => Writer::Arrow(
                arrow::ipc::writer::FileWriter::try_new(w, &schema)
                    .map_err(|e| cleanup(sink_err(uri, e)))?,
            ),
        };
        Ok(Self {
            writer: Some(writer),
            pending: Some(PendingOutput {
                temp,
                target,
                mode: t.spec.mode,
                directory,
                format,
                uri: uri.to_string(),
                made,
            }),
            uri: uri.to_string(),
            schema,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let uri = self.uri.clone();
        let batch = if matches!(self.writer, Some(Writer::Csv(_))) {
            flatten_violations(batch, &self.schema)?
        } else {
            batch.clone()
        };
        let batch = conform(&batch, &self.schema)?;
        let batch = match self.writer {
            Some(Writer::Csv(_) | Writer::Json(_)) => timestamps_formatted(batch)?,
            _ => batch,
        };
        let Some(writer) = self.writer.as_mut() else {
            return Err(EngineError::Internal(format!(
                "sink `{uri}` written after finish"
            )));
        };
        match writer {
            Writer::Parquet(w) => w.write(&batch).map_err(|e| sink_err(&uri, e)),
            Writer::Csv(w) => w.write(&batch).map_err(|e| sink_err(&uri, e)),
            Writer::Json(w) => w.write(&batch).map_err(|e| sink_err(&uri, e)),
            Writer::Arrow(w) => w.write(&batch).map_err(|e| sink_err(&uri, e)),
        }
    }

    fn finish(mut self) -> Result<PendingOutput> {
        let uri = self.uri.clone();
        let Some(writer) = self.writer.take() else {
            return Err(EngineError::Internal(format!(
                "sink `{uri}` finished twice"
            )));
        };
        let inner = match writer {
            Writer::Parquet(w) => w.into_inner().map_err(|e| sink_err(&uri, e))?,
            Writer::Csv(mut w) => {
                // Writes the header when no row came (after rows, nothing): an empty CSV
                // output still names its columns, so it reads back as a table.
                w.write(&RecordBatch::new_empty(Arc::clone(&self.schema)))
                    .map_err(|e| sink_err(&uri, e))?;
                w.into_inner()
            }
            Writer::Json(mut w) => {
                w.finish().map_err(|e| sink_err(&uri, e))?;
                w.into_inner()
            }
            Writer::Arrow(mut w) => {
                w.finish().map_err(|e| sink_err(&uri, e))?;
                w.into_inner().map_err(|e| sink_err(&uri, e))?
            }
        };
        let file = inner
            .into_inner()
            .map_err(|e| sink_err(&uri, e.into_error()))?;
        file.sync_all().map_err(|e| sink_err(&uri, e))?;
        self.pending
            .take()
            .ok_or_else(|| EngineError::Internal(format!("sink `{uri}` has no pending output")))
    }
}

fn sink_err(uri: &str, e: impl fmt::Display) -> EngineError {
    EngineError::Sink {
        uri: uri.to_string(),
        message: e.to_string(),
    }
}

/// CSV cannot hold nested columns: `_violations` becomes `rule(column): message; …`.
fn flatten_violations(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let Ok(idx) = batch.schema().index_of(VIOLATIONS_COLUMN) else {
        return Ok(batch.clone());
    };
    let list = batch
        .column(idx)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| EngineError::Internal("`_violations` is not a list".into()))?;
    let mut texts = Vec::with_capacity(list.len());
    for row in 0..list.len() {
        let items = list.value(row);
        let items = items
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| EngineError::Internal("`_violations` items are not structs".into()))?;
        let col = |name: &str| {
            items
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (Some(rule), Some(column), Some(message)) =
            (col("rule"), col("column"), col("message"))
        else {
            return Err(EngineError::Internal(
                "`_violations` has an unexpected shape".into(),
            ));
        };
        let mut text = String::new();
        for i in 0..items.len() {
            if i > 0 {
                text.push_str("; ");
            }
            text.push_str(&format!(
                "{}({}): {}",
                rule.value(i),
                column.value(i),
                message.value(i)
            ));
        }
        texts.push(text);
    }
    let mut columns = batch.columns().to_vec();
    columns[idx] = Arc::new(StringArray::from(texts));
    // The other columns as they came (string views, say); `conform` casts them after.
    let fields: Vec<FieldRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .enumerate()
        .map(|(i, (came, written))| {
            if i == idx {
                Arc::clone(written)
            } else {
                Arc::clone(came)
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(df)
}
