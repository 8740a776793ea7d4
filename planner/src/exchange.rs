//! Same-host exchange between stages over shared-memory pipes (SPEC §8).
//!
//! `datafusion-distributed` moves a stage's output to the tasks that read it through a
//! [`WorkerChannel`]; its own is gRPC (Arrow Flight frames over HTTP/2). [`PipeChannels`] is
//! a [`ChannelResolver`] whose channels keep gRPC for the control messages (plans, task
//! metrics) but move the data through [`runink_engine::pipe`] rings when the worker is on
//! this host:
//!
//! 1. the reading side creates one pipe per partition it wants, in `/dev/shm`;
//! 2. it asks the slice over the slice's exchange socket (an abstract Unix socket named
//!    after the slice's address, so no file is left behind) to run the task into them;
//! 3. the slice starts the partitions' streams (`Worker::execute_task`), attaches a writer
//!    to each pipe and answers `ok`; a thread per pipe then pulls the stream and writes it;
//! 4. the reader attaches, unlinks the files (both ends hold their mappings and locks) and
//!    reads each pipe on a thread of its own into a small channel.
//!
//! Errors travel like data: a failing stream ends its pipe with the error text, a dead slice
//! is noticed through the pipe's lock, and a reader that stops drops its end so the writer
//! stops too. A worker without an exchange socket (another host) is reached over gRPC.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::grpc::DefaultChannelResolver;
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest,
    GetWorkerInfoResponse, MaybeEncoded, ProducerHead, SetPlanRequest, TaskKey, Worker,
    WorkerChannel, WorkerToCoordinatorMsg,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::HeaderMap;
use runink_engine::pipe::{self, PipeConfig, PipeReader, PipeWriter};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Where pipes are made: a tmpfs, so the rings are memory.
const PIPE_DIR: &str = "/dev/shm";

/// The ring of one exchange pipe: 4 slots of 1 MiB (an 8 K-row batch of a wide table is
/// split across slots). A query holds a few dozen of them at once.
const EXCHANGE_PIPE: PipeConfig = PipeConfig {
    slots: 4,
    slot_bytes: 1 << 20,
};

/// Batches decoded ahead of the consumer, per pipe.
const READ_AHEAD: usize = 2;

/// The abstract Unix socket a slice at `host:port` answers exchange requests on.
fn socket_name(authority: &str) -> String {
    format!("runink-slice@{authority}")
}

/// One request: run a task's partitions into pipes.
#[derive(Serialize, Deserialize)]
struct PipeRequest {
    query_id: String,
    stage_id: usize,
    task_number: usize,
    partition_start: usize,
    partition_end: usize,
    head: Head,
    /// One per partition, in order.
    pipes: Vec<PathBuf>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Head {
    None,
    Broadcast {
        output_partitions: usize,
    },
    /// The partitioning, protobuf-encoded by `datafusion-distributed`, in base64.
    Repartition {
        partitioning: String,
    },
}

/// Channels that exchange data over shared-memory pipes with workers on this host.
pub struct PipeChannels {
    grpc: DefaultChannelResolver,
}

impl PipeChannels {
    pub fn new() -> Self {
        Self {
            grpc: DefaultChannelResolver::default(),
        }
    }
}

impl Default for PipeChannels {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ChannelResolver for PipeChannels {
    async fn get_worker_client_for_url(
        &self,
        url: &url::Url,
    ) -> Result<Box<dyn WorkerChannel>, DataFusionError> {
        let grpc = self.grpc.get_worker_client_for_url(url).await?;
        let authority = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => url.to_string(),
        };
        Ok(Box::new(PipeChannel { grpc, authority }))
    }
}

struct PipeChannel {
    grpc: Box<dyn WorkerChannel>,
    authority: String,
}

#[async_trait]
impl WorkerChannel for PipeChannel {
    async fn coordinator_channel(
        &mut self,
        headers: HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<BoxStream<'static, DfResult<WorkerToCoordinatorMsg>>> {
        self.grpc
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await
    }

    async fn execute_task(
        &mut self,
        headers: HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<Vec<BoxStream<'static, DfResult<RecordBatch>>>> {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(&self.authority))
            .map_err(|e| exchange_error(&self.authority, e))?;
        let connected = std::os::unix::net::UnixStream::connect_addr(&addr);
        let std_stream = match connected {
            Ok(s) => s,
            // No exchange socket: not a slice of this host. Over the network, then.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return self
                    .grpc
                    .execute_task(headers, request, metrics, task_ctx)
                    .await;
            }
            Err(e) => return Err(exchange_error(&self.authority, e)),
        };
        std_stream
            .set_nonblocking(true)
            .map_err(|e| exchange_error(&self.authority, e))?;
        let stream = tokio::net::UnixStream::from_std(std_stream)
            .map_err(|e| exchange_error(&self.authority, e))?;

        let partitions = request.target_partition_start..request.target_partition_end;
        let pipes: Vec<PathBuf> = partitions.clone().map(|_| new_pipe_path()).collect();
        let created = Pipes(pipes.clone());
        for path in &pipes {
            pipe::create(path, EXCHANGE_PIPE).map_err(|e| DataFusionError::External(e.into()))?;
        }
        let head = match request.producer_head {
            ProducerHead::None => Head::None,
            ProducerHead::BroadcastExec { output_partitions } => {
                Head::Broadcast { output_partitions }
            }
            ProducerHead::RepartitionExec { partitioning } => Head::Repartition {
                partitioning: B64.encode(partitioning.encode(task_ctx)?),
            },
        };
        let message = PipeRequest {
            query_id: request.task_key.query_id.to_string(),
            stage_id: request.task_key.stage_id,
            task_number: request.task_key.task_number,
            partition_start: partitions.start,
            partition_end: partitions.end,
            head,
            pipes: pipes.clone(),
        };
        let mut line =
            serde_json::to_vec(&message).map_err(|e| exchange_error(&self.authority, e))?;
        line.push(b'\n');
        let (read, mut write) = stream.into_split();
        write
            .write_all(&line)
            .await
            .map_err(|e| exchange_error(&self.authority, e))?;
        let mut answer = String::new();
        BufReader::new(read)
            .read_line(&mut answer)
            .await
            .map_err(|e| exchange_error(&self.authority, e))?;
        match answer.trim_end() {
            "ok" => {}
            "" => {
                return Err(exchange_error(
                    &self.authority,
                    "the slice closed the exchange socket without an answer",
                ));
            }
            other => {
                return Err(DataFusionError::Execution(
                    other.strip_prefix("error: ").unwrap_or(other).to_string(),
                ));
            }
        }
        let mut streams = Vec::with_capacity(pipes.len());
        for path in &pipes {
            let reader = PipeReader::open(path).map_err(|e| DataFusionError::External(e.into()))?;
            streams.push(read_pipe(reader));
        }
        // Both ends hold what they need: the names can go.
        drop(created);
        Ok(streams)
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> DfResult<GetWorkerInfoResponse> {
        self.grpc.get_worker_info(request).await
    }
}

/// Pipe files that are removed when this goes (made, or handed over).
struct Pipes(Vec<PathBuf>);

impl Drop for Pipes {
    fn drop(&mut self) {
        for p in &self.0 {
            pipe::remove(p);
        }
    }
}

/// A fresh pipe name: random, since slices in PID namespaces share process ids (every
/// slice's worker is PID 2) but not `/dev/shm`.
fn new_pipe_path() -> PathBuf {
    Path::new(PIPE_DIR).join(format!("runink-x-{}", uuid::Uuid::new_v4().simple()))
}

fn exchange_error(authority: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("exchange with slice at {authority}: {e}"))
}

/// Reads `reader` on a thread of its own into a stream.
fn read_pipe(mut reader: PipeReader) -> BoxStream<'static, DfResult<RecordBatch>> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        loop {
            let item = match reader.next_batch() {
                Ok(Some(batch)) => Ok(batch),
                Ok(None) => return,
                Err(e) => Err(DataFusionError::External(e.into())),
            };
            let failed = item.is_err();
            // A consumer that went away drops the reader, which stops the writer.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<DfResult<RecordBatch>>,
) -> BoxStream<'static, DfResult<RecordBatch>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Binds a slice's exchange socket: the abstract name of `addr`, the address its gRPC
/// server listens on. Bound before the slice says it is ready, so no reader finds it
/// missing.
pub fn bind_exchange(addr: std::net::SocketAddr) -> io::Result<std::os::unix::net::UnixListener> {
    let name = socket_name(&addr.to_string());
    let listener = std::os::unix::net::UnixListener::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(&name)?,
    )?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves exchange requests on `listener` for `worker` until the task is dropped.
pub async fn serve_exchange(
    listener: std::os::unix::net::UnixListener,
    worker: Worker,
) -> io::Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let worker = worker.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match run_into_pipes(&worker, &line).await {
                Ok(()) => "ok\n".to_string(),
                Err(e) => format!("error: {}\n", e.to_string().replace('\n', " ")),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// Starts the partitions `line` asks for and a writer thread per pipe.
async fn run_into_pipes(worker: &Worker, line: &str) -> DfResult<()> {
    let request: PipeRequest = serde_json::from_str(line)
        .map_err(|e| DataFusionError::Execution(format!("bad exchange request: {e}")))?;
    let query_id = uuid::Uuid::parse_str(&request.query_id)
        .map_err(|e| DataFusionError::Execution(format!("bad exchange request: {e}")))?;
    let producer_head = match request.head {
        Head::None => ProducerHead::None,
        Head::Broadcast { output_partitions } => ProducerHead::BroadcastExec { output_partitions },
        Head::Repartition { partitioning } => {
            ProducerHead::RepartitionExec {
                partitioning: MaybeEncoded::Encoded(B64.decode(partitioning).map_err(|e| {
                    DataFusionError::Execution(format!("bad exchange request: {e}"))
                })?),
            }
        }
    };
    if request.pipes.len()
        != request
            .partition_end
            .saturating_sub(request.partition_start)
    {
        return Err(DataFusionError::Execution(
            "bad exchange request: one pipe per partition".into(),
        ));
    }
    let (streams, _ctx) = worker
        .execute_task(ExecuteTaskRequest {
            task_key: TaskKey {
                query_id,
                stage_id: request.stage_id,
                task_number: request.task_number,
            },
            target_partition_start: request.partition_start,
            target_partition_end: request.partition_end,
            producer_head,
        })
        .await?;
    let mut writers = Vec::with_capacity(streams.len());
    for (stream, path) in streams.into_iter().zip(&request.pipes) {
        let writer = PipeWriter::open(path, &stream.schema())
            .map_err(|e| DataFusionError::External(e.into()))?;
        writers.push((stream, writer));
    }
    let handle = tokio::runtime::Handle::current();
    for (mut stream, mut writer) in writers {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                match handle.block_on(stream.next()) {
                    Some(Ok(batch)) => {
                        // The reader went away or died: stop pulling.
                        if writer.write(&batch).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        writer.fail(&e.to_string());
                        return;
                    }
                    None => {
                        let _ = writer.finish();
                        return;
                    }
                }
            }
        });
    }
    Ok(())
}
