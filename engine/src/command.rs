//! `exec="cmd args"` steps: any program that reads Arrow IPC on stdin and writes Arrow IPC
//! on stdout.
//!
//! ```text
//!  input stream ─► feeder task ─► writer thread ─► child stdin (IPC stream)
//!  child stdout (IPC stream) ─► reader thread ─► bounded channel ─► output stream
//!  child stderr ─► kept (last STDERR_TAIL_BYTES) for the error message
//! ```
//! The program runs under `/bin/sh -c` in the working directory, so `exec="python3
//! scripts/enrich.py --fast"` means what it means in a shell. A non-zero exit, a crash, or
//! output that is not Arrow IPC with the declared schema fails the step with the
//! program's status and the end of its stderr.

use std::fmt;
use std::io::{BufReader, BufWriter, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::{EngineError, Result};

/// Bytes of a failing program's stderr quoted in the error.
pub const STDERR_TAIL_BYTES: usize = 2048;
/// Batches in flight between the program and the rest of the plan, each way.
pub const CHANNEL_BATCHES: usize = 4;
/// How long the compile-time schema probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs an `exec=` step's program.
#[derive(Debug)]
pub struct ExternalCommandExec {
    input: Arc<dyn ExecutionPlan>,
    step: String,
    command: String,
    properties: Arc<PlanProperties>,
}

impl ExternalCommandExec {
    /// `schema` is the program's output schema (found by [`probe_schema`] at compile time).
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        step: impl Into<String>,
        command: impl Into<String>,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            step: step.into(),
            command: command.into(),
            properties,
        }
    }
}

impl ExternalCommandExec {
    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The command line it runs.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl DisplayAs for ExternalCommandExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExternalCommandExec: step={} exec=\"{}\"",
            self.step, self.command
        )
    }
}

impl ExecutionPlan for ExternalCommandExec {
    fn name(&self) -> &str {
        "ExternalCommandExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "ExternalCommandExec takes one child".into(),
            ));
        }
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.step.clone(),
            self.command.clone(),
            self.schema(),
        )))
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
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ExternalCommandExec has one partition, asked for {partition}"
            )));
        }
        let mut input = self.input.execute(0, context)?;
        let input_schema = self.input.schema();
        let schema = self.schema();
        let step = self.step.clone();
        let mut child = spawn(&self.command).map_err(|m| step_error(&step, m))?;
        // Whoever drops the output stream (the run ended, failed or was cancelled) stops the
        // program and everything it started, even while it blocks without writing.
        let group = ProcessGroup::new(&child);
        let reaped = Arc::clone(&group.reaped);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&schema), CHANNEL_BATCHES);

        // Feeder: pulls the input stream and hands batches to a blocking writer thread.
        // A tokio channel: the feeder awaits room (a stalled program must not block a
        // runtime worker), the writer thread blocks on it.
        let (batch_tx, mut batch_rx) = tokio::sync::mpsc::channel::<RecordBatch>(CHANNEL_BATCHES);
        let writer = std::thread::spawn(move || -> std::result::Result<(), String> {
            let Some(stdin) = stdin else {
                return Err("stdin was not captured".into());
            };
            let mut w = StreamWriter::try_new(BufWriter::new(stdin), &input_schema)
                .map_err(|e| e.to_string())?;
            while let Some(batch) = batch_rx.blocking_recv() {
                if let Err(e) = w.write(&batch) {
                    // The program closed stdin early; its exit status tells why.
                    return if is_broken_pipe(&e) {
                        Ok(())
                    } else {
                        Err(e.to_string())
                    };
                }
            }
            match w.finish() {
                Err(e) if !is_broken_pipe(&e) => Err(e.to_string()),
                _ => Ok(()),
            }
        });
        builder.spawn(async move {
            while let Some(batch) = input.next().await {
                let batch = batch?;
                if batch_tx.send(batch).await.is_err() {
                    break;
                }
            }
            drop(batch_tx);
            Ok(())
        });

        // Reader: decodes the program's stdout, then reports its exit status.
        let tx = builder.tx();
        let command = self.command.clone();
        builder.spawn_blocking(move || {
            let stderr_tail = std::thread::spawn(move || read_tail(stderr));
            let decoded = stdout
                .ok_or_else(|| Decode::Broken("stdout was not captured".to_string()))
                .and_then(|out| {
                    StreamReader::try_new(BufReader::new(out), None).map_err(|e| {
                        Decode::Broken(format!("its output is not an Arrow IPC stream ({e})"))
                    })
                })
                .and_then(|reader| {
                    let got = reader.schema();
                    if !same_columns(&got, &schema) {
                        // (Same names, types equal up to string/binary layout: converted.)
                        return Err(Decode::Refused(format!(
                            "its output schema changed since compile: expected {}, got {}",
                            describe(&schema),
                            describe(&got)
                        )));
                    }
                    for batch in reader {
                        let batch = batch
                            .map_err(|e| Decode::Broken(format!("bad Arrow IPC output: {e}")))?;
                        // Text may come back as views or large strings where compile saw plain
                        // ones (DataFusion picks the layout at run time, e.g. after a UNION).
                        let columns = batch
                            .columns()
                            .iter()
                            .zip(schema.fields())
                            .map(|(c, f)| {
                                if c.data_type() == f.data_type() {
                                    Ok(Arc::clone(c))
                                } else {
                                    arrow::compute::cast(c, f.data_type())
                                }
                            })
                            .collect::<std::result::Result<Vec<_>, _>>()
                            .map_err(|e| {
                                Decode::Refused(format!("output does not fit the schema: {e}"))
                            })?;
                        let batch =
                            RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| {
                                Decode::Refused(format!("output does not fit the schema: {e}"))
                            })?;
                        if tx.blocking_send(Ok(batch)).is_err() {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                });
            // Nobody reads the output any more (the run failed or was cancelled): stop the
            // program rather than wait for it to notice.
            if matches!(decoded, Ok(false)) {
                let _ = child.kill();
            }
            let status = child.wait();
            reaped.store(true, std::sync::atomic::Ordering::SeqCst);
            let writer_result = writer
                .join()
                .unwrap_or_else(|_| Err("writer thread panicked".into()));
            let tail = stderr_tail.join().unwrap_or_default();
            let exit = match status {
                Ok(s) if s.success() => None,
                Ok(s) => Some(format!("`{command}` {}", describe_status(s))),
                Err(e) => Some(format!("`{command}`: cannot wait for the program: {e}")),
            };
            let message = match (exit, decoded, writer_result) {
                // Stopped because nothing reads on; the run's own error says why.
                (_, Ok(false), _) => None,
                // A decode error closes stdout, and the program then dies of SIGPIPE or fails
                // writing (Python's BrokenPipeError): the decode error is the cause.
                (Some(exit), Err(e), _) if exit.contains("signal 13") => {
                    Some(format!("`{command}`: {e}"))
                }
                // Runink refused output it had read (the schema changed, a column does not
                // fit): that refusal is the cause, and the program's failure after it a
                // consequence. Output that never was a stream is the program's failure.
                (Some(exit), Err(Decode::Refused(e)), _) => Some(format!(
                    "`{command}`: {e} (Runink stopped reading, and then {})",
                    exit.trim_start_matches(&format!("`{command}` "))
                )),
                (Some(exit), _, _) => Some(exit),
                (None, Err(e), _) => Some(format!("`{command}`: {e}")),
                (None, Ok(_), Err(e)) => Some(format!("`{command}`: cannot write its input: {e}")),
                (None, Ok(_), Ok(())) => None,
            };
            match message {
                None => Ok(()),
                Some(mut m) => {
                    if !tail.trim().is_empty() {
                        m.push_str(&stderr_shown(&tail));
                    }
                    Err(step_error(&step, m).into())
                }
            }
        });
        Ok(Box::pin(KillOnDrop {
            inner: builder.build(),
            _group: group,
        }))
    }
}

/// Why reading an `exec=` program's output stopped.
enum Decode {
    /// The output was not an Arrow IPC stream (the program failed, most likely).
    Broken(String),
    /// Runink refused output it could read: the schema changed, a column does not fit.
    Refused(String),
}

impl std::fmt::Display for Decode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decode::Broken(m) | Decode::Refused(m) => f.write_str(m),
        }
    }
}

/// The process group of a running `exec=` program (it leads its own group).
struct ProcessGroup {
    pgid: nix::unistd::Pid,
    /// Set once the program has been waited for: its group id may be reused after that.
    reaped: Arc<std::sync::atomic::AtomicBool>,
}

impl ProcessGroup {
    fn new(child: &Child) -> Self {
        Self {
            pgid: nix::unistd::Pid::from_raw(child.id() as i32),
            reaped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = nix::sys::signal::killpg(self.pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The program's output stream, holding its process group until dropped.
struct KillOnDrop {
    inner: SendableRecordBatchStream,
    _group: ProcessGroup,
}

impl futures::Stream for KillOnDrop {
    type Item = DfResult<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl datafusion::physical_plan::RecordBatchStream for KillOnDrop {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

fn step_error(step: &str, message: String) -> EngineError {
    EngineError::Step {
        step: step.to_string(),
        message,
    }
}

fn is_broken_pipe(e: &arrow::error::ArrowError) -> bool {
    match e {
        arrow::error::ArrowError::IoError(_, io) => io.kind() == std::io::ErrorKind::BrokenPipe,
        other => other.to_string().contains("Broken pipe"),
    }
}

/// Starts `sh -c COMMAND` as the leader of a new process group, so that it and whatever it
/// starts can be stopped together, and so that it is killed if this process dies without
/// stopping it (SIGKILL): see [`crate::pidns::kill_with_parent`]. That signal follows the
/// thread that started the process, so every program is started by one thread that lasts as
/// long as the process (tokio's blocking threads end when idle).
fn spawn(command: &str) -> std::result::Result<Child, String> {
    type Reply = std::sync::mpsc::Sender<std::result::Result<Child, String>>;
    static SPAWNER: OnceLock<
        std::result::Result<std::sync::mpsc::Sender<(String, Reply)>, String>,
    > = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = std::sync::mpsc::channel::<(String, Reply)>();
        std::thread::Builder::new()
            .name("runi-exec-spawner".into())
            .spawn(move || {
                for (command, reply) in incoming {
                    let _ = reply.send(spawn_here(&command));
                }
            })
            .map(|_| requests)
            .map_err(|e| format!("cannot start the thread that starts `exec=` programs: {e}"))
    });
    let spawner = spawner.as_ref().map_err(Clone::clone)?;
    let ended = || "the thread that starts `exec=` programs has ended".to_string();
    let (reply, answer) = std::sync::mpsc::channel();
    spawner
        .send((command.to_string(), reply))
        .map_err(|_| ended())?;
    answer.recv().map_err(|_| ended())?
}

fn spawn_here(command: &str) -> std::result::Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let start = |mut process: Command| {
        process
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::pidns::kill_with_parent(&mut process);
        process.spawn()
    };
    // A plain `program arg…` starts as itself, so the signal reaches the program: `sh -c`
    // forks what it runs (dash does, even a single command), and the signal would reach only
    // the shell. Anything the shell would expand or interpret goes to `sh -c`, and so does a
    // program not found on the path (a shell builtin such as `exit`, or a missing program,
    // which the shell reports as before).
    if let Some((program, args)) = plain_words(command) {
        let mut direct = Command::new(program);
        direct.args(args);
        match start(direct) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            started => return started.map_err(|e| format!("cannot start `{command}`: {e}")),
        }
    }
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c").arg(command);
    start(sh).map_err(|e| format!("cannot start `{command}`: {e}"))
}

/// `command` as a program and its arguments when the shell would run it as exactly that:
/// words of characters the shell gives no meaning to, separated by spaces.
fn plain_words(command: &str) -> Option<(&str, Vec<&str>)> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,+@%-".contains(c);
    if !command.chars().all(|c| c == ' ' || plain(c)) {
        return None;
    }
    let mut words = command.split(' ').filter(|w| !w.is_empty());
    let program = words.next()?;
    // `NAME=value program` sets a variable for the shell to pass on.
    if program.contains('=') {
        return None;
    }
    Some((program, words.collect()))
}

fn read_tail(stderr: Option<std::process::ChildStderr>) -> String {
    let Some(mut stderr) = stderr else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL_BYTES {
                    let cut = tail.len() - STDERR_TAIL_BYTES;
                    tail.drain(..cut);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

/// Same names, and types equal up to the layout of strings or binaries (`Utf8`, `LargeUtf8`,
/// `Utf8View` hold the same values).
fn same_columns(a: &Schema, b: &Schema) -> bool {
    use arrow::datatypes::DataType::*;
    let family = |t: &arrow::datatypes::DataType| match t {
        Utf8 | LargeUtf8 | Utf8View => Some(0),
        Binary | LargeBinary | BinaryView => Some(1),
        _ => None,
    };
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| {
            x.name() == y.name()
                && (x.data_type() == y.data_type()
                    || family(x.data_type()).is_some_and(|f| Some(f) == family(y.data_type())))
        })
}

fn describe(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", cols.join(", "))
}

/// Finds an `exec=` program's output schema: runs it on an empty input (the schema alone)
/// and reads the schema it answers with. Runs at compile time, bounded by
/// [`PROBE_TIMEOUT`].
pub fn probe_schema(step: &str, command: &str, input: &Schema) -> Result<Schema> {
    let mut child = spawn(command).map_err(|m| step_error(step, m))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = input.clone();
    let writer = std::thread::spawn(move || {
        if let Some(stdin) = stdin
            && let Ok(mut w) = StreamWriter::try_new(BufWriter::new(stdin), &input)
        {
            let _ = w.finish();
        }
    });
    let reader = std::thread::spawn(move || {
        let out = stdout.ok_or_else(|| "stdout was not captured".to_string())?;
        let mut reader = StreamReader::try_new(BufReader::new(out), None)
            .map_err(|e| format!("its output is not an Arrow IPC stream ({e})"))?;
        let schema = reader.schema();
        // Drain whatever it writes for an empty input.
        for batch in reader.by_ref() {
            batch.map_err(|e| format!("bad Arrow IPC output: {e}"))?;
        }
        Ok::<_, String>(schema.as_ref().clone())
    });
    let stderr_tail = std::thread::spawn(move || read_tail(stderr));
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // The whole group: `sh -c` may have started the program as its child.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return Err(step_error(
                    step,
                    format!(
                        "`{command}` did not finish within {}s when given an empty input",
                        PROBE_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err(e) => {
                return Err(step_error(
                    step,
                    format!("cannot wait for `{command}`: {e}"),
                ));
            }
        }
    };
    let _ = writer.join();
    let schema = reader
        .join()
        .unwrap_or_else(|_| Err("reader thread panicked".into()));
    let tail = stderr_tail.join().unwrap_or_default();
    let with_tail = |mut m: String| {
        if !tail.trim().is_empty() {
            m.push_str(&stderr_shown(&tail));
        }
        m
    };
    if !status.success() {
        return Err(step_error(
            step,
            with_tail(format!(
                "`{command}` {} when given an empty input",
                describe_status(status)
            )),
        ));
    }
    schema.map_err(|m| step_error(step, with_tail(format!("`{command}`: {m}"))))
}

/// A program's stderr in an error message: one line stays on the message's line; more are
/// indented below it, so they read as the program's, not as more of runi's errors.
fn stderr_shown(tail: &str) -> String {
    let tail = tail.trim();
    if !tail.contains('\n') {
        return format!("; stderr: {tail}");
    }
    let mut shown = String::from("; its stderr ended:");
    for line in tail.lines() {
        shown.push_str("\n    ");
        shown.push_str(line);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::plain_words;

    #[test]
    fn only_words_the_shell_would_leave_alone_are_started_directly() {
        assert_eq!(
            plain_words("python3  ./tool.py --mode=fast a,b"),
            Some(("python3", vec!["./tool.py", "--mode=fast", "a,b"]))
        );
        for shell in [
            "a | b",
            "a; b",
            "a && b",
            "echo $HOME",
            "ls *.csv",
            "cat < in",
            "say 'hi'",
            "~/bin/x",
            "LANG=C sort",
            "a\tb",
            "",
            "   ",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?}");
        }
    }
}
