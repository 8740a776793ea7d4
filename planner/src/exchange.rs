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
use runink_engine::slice::{PIPE_DIR, PIPE_TAG_ENV, pipe_prefix};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The ring of one exchange pipe: 4 slots of 512 KiB (an 8 K-row batch of a wide table is
/// split across slots). A shuffle between T producer and T consumer tasks of P partitions
/// holds T × T × P of them at once: 2 MiB each, 16–32 MiB per shuffle with two slices.
const EXCHANGE_PIPE: PipeConfig = PipeConfig {
    slots: 4,
    slot_bytes: 512 << 10,
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
    /// Put in every pipe's name: the slice pool removes what carries its tag when it ends.
    tag: Arc<str>,
}

impl PipeChannels {
    /// Channels whose pipes carry `tag` (the slice pool's, `SlicePool::pipe_tag`).
    pub fn new(tag: &str) -> Self {
        Self {
            grpc: DefaultChannelResolver::default(),
            tag: tag.into(),
        }
    }

    /// Channels for a slice: the tag its pool gave it (or `untagged`).
    pub fn for_slice() -> Self {
        Self::new(&std::env::var(PIPE_TAG_ENV).unwrap_or_else(|_| "untagged".into()))
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
        Ok(Box::new(PipeChannel {
            grpc,
            authority,
            tag: Arc::clone(&self.tag),
        }))
    }
}

struct PipeChannel {
    grpc: Box<dyn WorkerChannel>,
    authority: String,
    tag: Arc<str>,
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
        let pipes: Vec<PathBuf> = partitions
            .clone()
            .map(|_| new_pipe_path(&self.tag))
            .collect();
        let created = Pipes(pipes.clone());
        // Made here, not on a blocking thread (allocating a 2 MiB tmpfs file takes well under
        // a millisecond): a query dropped meanwhile then removes exactly what was made, where
        // a blocking thread could still make a file after the guard had cleaned up.
        let made = pipes
            .iter()
            .try_for_each(|path| pipe::create(path, EXCHANGE_PIPE));
        if let Err(e) = made {
            // No room for rings (a small /dev/shm): this task's output comes over gRPC.
            tracing::warn!(slice = %self.authority, error = %e, "exchange over gRPC instead of pipes");
            drop(created);
            return self
                .grpc
                .execute_task(headers, request, metrics, task_ctx)
                .await;
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
                return Err(exchange_error(
                    &self.authority,
                    other.strip_prefix("error: ").unwrap_or(other),
                ));
            }
        }
        let readers = pipes
            .iter()
            .map(|path| PipeReader::open(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| exchange_error(&self.authority, e))?;
        let streams = readers.into_iter().map(read_pipe).collect();
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

/// A fresh pipe name with `tag`: random, since slices in PID namespaces share process ids
/// (every slice's worker is PID 2) but not `/dev/shm`.
fn new_pipe_path(tag: &str) -> PathBuf {
    Path::new(PIPE_DIR).join(format!(
        "{}{}",
        pipe_prefix(tag),
        uuid::Uuid::new_v4().simple()
    ))
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
    let mut rx = rx;
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
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: this request's reader gets no answer and fails;
                // later ones may succeed. The socket stays served.
                tracing::warn!(error = %e, "exchange socket: cannot accept");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
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
    let pipes = request.pipes;
    let schemas: Vec<_> = streams.iter().map(|s| s.schema()).collect();
    let opened = tokio::task::spawn_blocking(move || {
        pipes
            .iter()
            .zip(&schemas)
            .map(|(path, schema)| PipeWriter::open(path, schema))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| DataFusionError::External(e.into()))?
    .map_err(|e| DataFusionError::External(e.into()))?;
    let writers = streams.into_iter().zip(opened);
    let handle = tokio::runtime::Handle::current();
    for (mut stream, mut writer) in writers {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                match handle.block_on(stream.next()) {
                    Some(Ok(batch)) => {
                        // The reader went away or died (then failing tells no one), or the
                        // batch could not be written: either way, stop pulling, and pass
                        // the reason on rather than a bare "stopped before the end".
                        if let Err(e) = writer.write(&batch) {
                            writer.fail(&e.to_string());
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        writer.fail(&runink_engine::user_message(&e));
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
