//! Benchmark harness (not a timed test): the shared-memory pipe between two processes.
//!
//! 1. **Throughput**: batches of 64 K rows (int64, float64, utf8) written by a child process
//!    and read by this one, vs. a single-thread `memcpy` of the same bytes measured in the
//!    same run — target ratio (pipe / memcpy throughput) ≥ 0.5. The memcpy moves each batch
//!    into the next slot of a buffer as large as the pipe's ring, as the pipe does; the
//!    cache-hot copy into one batch-sized buffer is printed for reference.
//! 2. **Per-batch overhead**: 1-row batches through the pipe, in µs per batch: the time from
//!    the first batch read to the end, over the `--tiny` − 1 batches after it (start-up —
//!    spawning the writer, tens of milliseconds — is left out); the same for Flight.
//! 3. **Arrow Flight over loopback** on the same batches: a child process serves them with
//!    `DoGet` (arrow-flight + tonic, uncompressed), this one reads them with `FlightClient`.
//!
//! ```text
//! cargo bench --bench pipe -- [--batches N] [--tiny N] [--iterations K]
//! ```
//! The reader drops each batch before reading the next, like a streaming consumer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runink_engine::pipe::{self, PipeConfig, PipeReader, PipeWriter};

type BoxError = Box<dyn std::error::Error>;

const ROLE: &str = "RUNINK_BENCH_PIPE_WRITER";
const FLIGHT_ROLE: &str = "RUNINK_BENCH_FLIGHT_SERVER";

fn main() -> Result<(), BoxError> {
    if let Ok(spec) = std::env::var(ROLE) {
        return writer_child(&spec);
    }
    if let Ok(spec) = std::env::var(FLIGHT_ROLE) {
        return flight::server_child(&spec);
    }
    let mut batches = 200usize;
    let mut tiny = 20_000usize;
    let mut iterations = 5usize;
    let mut with_flight = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batches" => batches = args.next().ok_or("--batches N")?.parse()?,
            "--tiny" => tiny = args.next().ok_or("--tiny N")?.parse()?,
            "--iterations" => iterations = args.next().ok_or("--iterations K")?.parse()?,
            // The pipe and memcpy only, e.g. under `perf record`.
            "--no-flight" => with_flight = false,
            _ => {} // cargo bench passes --bench
        }
    }
    let dir = shm_dir()?;
    let big = batch(0, 64 * 1024);
    let bytes_per_batch = ipc_bytes(&big)?;
    println!(
        "pipe: {batches} batches of {} rows ({:.2} MiB each as IPC), {tiny} 1-row batches, \
         {iterations} iterations, ring: {:?}, in {}",
        big.num_rows(),
        bytes_per_batch as f64 / (1 << 20) as f64,
        PipeConfig::default(),
        dir.display()
    );

    let ring = PipeConfig::default();
    let mut memcpy = Vec::new();
    let mut hot = Vec::new();
    let mut piped = Vec::new();
    let mut per_batch = Vec::new();
    let mut flight_rates = Vec::new();
    let mut flight_tiny = Vec::new();
    for i in 0..iterations {
        if with_flight {
            flight_rates.push(flight::rate(batches, 64 * 1024, bytes_per_batch)?);
            let (n, after_first) = flight::run(tiny, 1)?;
            flight_tiny.push(after_first / n.saturating_sub(1).max(1) as u32);
        }
        memcpy.push(memcpy_rate(
            &big,
            batches,
            ring.slots as usize,
            ring.slot_bytes,
        ));
        hot.push(memcpy_rate(&big, batches, 1, 0));
        piped.push(pipe_rate(&dir, i, batches, 64 * 1024, bytes_per_batch)?);
        let (n, after_first) = run_pipe(&dir, &format!("tiny-{i}"), tiny, 1)?;
        per_batch.push(after_first / n.saturating_sub(1).max(1) as u32);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (m, p) = (median(&mut memcpy), median(&mut piped));
    println!(
        "memcpy, one thread, cache-hot (one {:.1} MiB buffer)   median {:>8.2} GiB/s",
        bytes_per_batch as f64 / (1 << 20) as f64,
        median(&mut hot)
    );
    println!(
        "memcpy, one thread, into the ring's 8 slots      median {:>8.2} GiB/s",
        m
    );
    println!(
        "shared-memory pipe, two processes                median {:>8.2} GiB/s",
        p
    );
    println!(
        "ratio pipe / memcpy (ring's slots)  {:.2} (target >= 0.5)",
        p / m
    );
    per_batch.sort();
    println!(
        "per 1-row batch through the pipe                  median {:>8.2} µs",
        per_batch[per_batch.len() / 2].as_secs_f64() * 1e6
    );
    if !with_flight {
        return Ok(());
    }
    let f = median(&mut flight_rates);
    println!(
        "Arrow Flight DoGet over loopback, two processes  median {:>8.2} GiB/s",
        f
    );
    println!("ratio pipe / Flight               {:.2}", p / f);
    flight_tiny.sort();
    println!(
        "per 1-row batch through Flight                    median {:>8.2} µs",
        flight_tiny[flight_tiny.len() / 2].as_secs_f64() * 1e6
    );
    Ok(())
}

/// GiB/s of copying `batches` times the batch's bytes, one after the other, into `slots`
/// places `spacing` bytes apart — the pipe's slots, so both move the same bytes through the
/// same memory (a cache-hot copy into one place is also printed). The target is touched
/// before the clock starts, as the pipe's slots are pre-faulted.
fn memcpy_rate(batch: &RecordBatch, batches: usize, slots: usize, spacing: usize) -> f64 {
    let buffers: Vec<arrow::buffer::Buffer> = batch
        .columns()
        .iter()
        .flat_map(|c| c.to_data().buffers().to_vec())
        .collect();
    let parts: Vec<&[u8]> = buffers.iter().map(|b| b.as_slice()).collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let spacing = spacing.max(total);
    let mut target = vec![0u8; spacing * slots];
    target.fill(1);
    std::hint::black_box(&mut target);
    let start = Instant::now();
    for i in 0..batches {
        let mut at = (i % slots) * spacing;
        for p in &parts {
            target[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        std::hint::black_box(&mut target);
    }
    gib_per_s(total * batches, start.elapsed())
}

/// GiB/s of IPC bytes through the pipe, from the first batch read to the end.
fn pipe_rate(
    dir: &Path,
    i: usize,
    batches: usize,
    rows: usize,
    bytes_per_batch: usize,
) -> Result<f64, BoxError> {
    let path = dir.join(format!("big-{i}"));
    pipe::create(&path, PipeConfig::default())?;
    let mut child = spawn_writer(&path, batches + 1, rows)?;
    let mut reader = PipeReader::open(&path)?;
    // The first batch includes the child's start-up; time the rest.
    let first = reader.next_batch()?.ok_or("no first batch")?;
    drop(first);
    let start = Instant::now();
    let mut n = 0;
    while let Some(b) = reader.next_batch()? {
        n += 1;
        drop(b);
    }
    let elapsed = start.elapsed();
    wait_ok(&mut child)?;
    pipe::remove(&path);
    if n != batches {
        return Err(format!("read {n} batches, expected {batches}").into());
    }
    Ok(gib_per_s(bytes_per_batch * batches, elapsed))
}

/// Batches read through a fresh pipe from a child writing `batches` batches of `rows`, and
/// the time from the first batch to the end.
fn run_pipe(
    dir: &Path,
    name: &str,
    batches: usize,
    rows: usize,
) -> Result<(usize, Duration), BoxError> {
    let path = dir.join(name);
    pipe::create(&path, PipeConfig::default())?;
    let mut child = spawn_writer(&path, batches, rows)?;
    let mut reader = PipeReader::open(&path)?;
    let first = reader.next_batch()?.ok_or("no first batch")?;
    drop(first);
    let start = Instant::now();
    let mut n = 1;
    while let Some(b) = reader.next_batch()? {
        n += 1;
        drop(b);
    }
    let elapsed = start.elapsed();
    wait_ok(&mut child)?;
    pipe::remove(&path);
    Ok((n, elapsed))
}

fn spawn_writer(path: &Path, batches: usize, rows: usize) -> Result<Child, BoxError> {
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE, format!("{}:{batches}:{rows}", path.display()))
        .spawn()?)
}

fn wait_ok(child: &mut Child) -> Result<(), BoxError> {
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("writer process: {status}").into());
    }
    Ok(())
}

fn writer_child(spec: &str) -> Result<(), BoxError> {
    let mut it = spec.rsplitn(3, ':');
    let rows: usize = it.next().ok_or("rows")?.parse()?;
    let batches: usize = it.next().ok_or("batches")?.parse()?;
    let path = PathBuf::from(it.next().ok_or("path")?);
    let b = batch(0, rows);
    let mut writer = PipeWriter::open(&path, &b.schema())?;
    for _ in 0..batches {
        writer.write(&b)?;
    }
    writer.finish()?;
    Ok(())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Float64, false),
        Field::new("symbol", DataType::Utf8, false),
    ]))
}

fn batch(start: i64, rows: usize) -> RecordBatch {
    let ids = Int64Array::from_iter_values(start..start + rows as i64);
    let prices = Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.25));
    let symbols = StringArray::from_iter_values((0..rows).map(|i| format!("SYM{:04}", i % 5000)));
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(ids), Arc::new(prices), Arc::new(symbols)],
    )
    .expect("bench batch")
}

fn ipc_bytes(batch: &RecordBatch) -> Result<usize, BoxError> {
    let mut encoder = arrow::ipc::writer::StreamEncoder::try_new(&batch.schema())?;
    encoder.encode(batch)?; // the schema message
    Ok(encoder.encode(batch)?.iter().map(|b| b.len()).sum())
}

fn shm_dir() -> Result<PathBuf, BoxError> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("runink-bench-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn gib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / elapsed.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The Arrow Flight comparison: a `DoGet` server in a child process, a client here.
mod flight {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
    use arrow_flight::{
        Action, ActionType, Criteria, Empty, FlightClient, FlightData, FlightDescriptor,
        FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
    };
    use futures::stream::BoxStream;
    use futures::{StreamExt, TryStreamExt};
    use tonic::{Request, Response, Status, Streaming};

    use super::{BoxError, FLIGHT_ROLE, batch, gib_per_s};

    /// GiB/s of IPC bytes over Flight, from the first batch to the end.
    pub fn rate(batches: usize, rows: usize, bytes_per_batch: usize) -> Result<f64, BoxError> {
        let (n, elapsed) = fetch(batches + 1, rows)?;
        if n != batches + 1 {
            return Err(format!("Flight: {n} batches, expected {}", batches + 1).into());
        }
        Ok(gib_per_s(bytes_per_batch * batches, elapsed))
    }

    /// Batches read over Flight from a child serving `batches` batches of `rows`.
    /// Batches read, and the time from the first to the end.
    pub fn run(batches: usize, rows: usize) -> Result<(usize, std::time::Duration), BoxError> {
        fetch(batches, rows)
    }

    /// Starts a server child, reads everything; the time counts from the first batch.
    fn fetch(batches: usize, rows: usize) -> Result<(usize, std::time::Duration), BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(FLIGHT_ROLE, format!("{batches}:{rows}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().ok_or("stdout")?).read_line(&mut line)?;
        let url = line.trim().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(async move {
            let channel = tonic::transport::Endpoint::new(url)?.connect().await?;
            let mut client = FlightClient::new(channel);
            let mut stream = client.do_get(Ticket::new("all")).await?;
            let mut n = 0;
            let first = stream.try_next().await?.ok_or("no first batch")?;
            drop(first);
            n += 1;
            let start = Instant::now();
            while let Some(b) = stream.try_next().await? {
                n += 1;
                drop(b);
            }
            Ok::<_, BoxError>((n, start.elapsed()))
        });
        // Close the client's connection (its task lives in the runtime) before asking the
        // server to end: a graceful shutdown waits for open connections.
        drop(rt);
        drop(child.stdin.take()); // ends the server
        child.wait()?;
        result
    }

    pub fn server_child(spec: &str) -> Result<(), BoxError> {
        let (batches, rows) = spec.split_once(':').ok_or("spec")?;
        let service = Server {
            batches: batches.parse()?,
            rows: rows.parse()?,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("http://{}", listener.local_addr()?);
            let stop = async {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 8];
                let _ = tokio::io::stdin().read(&mut buf).await;
            };
            tonic::transport::Server::builder()
                .add_service(
                    FlightServiceServer::new(service)
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX),
                )
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop,
                )
                .await?;
            Ok::<_, BoxError>(())
        })
    }

    #[derive(Clone)]
    struct Server {
        batches: usize,
        rows: usize,
    }

    type Stream<T> = BoxStream<'static, Result<T, Status>>;

    fn no<T>() -> Result<T, Status> {
        Err(Status::unimplemented("only do_get"))
    }

    #[tonic::async_trait]
    impl FlightService for Server {
        type HandshakeStream = Stream<HandshakeResponse>;
        type ListFlightsStream = Stream<FlightInfo>;
        type DoGetStream = Stream<FlightData>;
        type DoPutStream = Stream<PutResult>;
        type DoActionStream = Stream<arrow_flight::Result>;
        type ListActionsStream = Stream<ActionType>;
        type DoExchangeStream = Stream<FlightData>;

        async fn do_get(
            &self,
            _request: Request<Ticket>,
        ) -> Result<Response<Self::DoGetStream>, Status> {
            let b = batch(0, self.rows);
            let input = futures::stream::iter((0..self.batches).map(move |_| Ok(b.clone())));
            let encoded = FlightDataEncoderBuilder::new()
                .with_max_flight_data_size(usize::MAX)
                .build(input)
                .map_err(|e| Status::internal(e.to_string()));
            Ok(Response::new(encoded.boxed()))
        }
        async fn handshake(
            &self,
            _r: Request<Streaming<HandshakeRequest>>,
        ) -> Result<Response<Self::HandshakeStream>, Status> {
            no()
        }
        async fn list_flights(
            &self,
            _r: Request<Criteria>,
        ) -> Result<Response<Self::ListFlightsStream>, Status> {
            no()
        }
        async fn get_flight_info(
            &self,
            _r: Request<FlightDescriptor>,
        ) -> Result<Response<FlightInfo>, Status> {
            no()
        }
        async fn poll_flight_info(
            &self,
            _r: Request<FlightDescriptor>,
        ) -> Result<Response<PollInfo>, Status> {
            no()
        }
        async fn get_schema(
            &self,
            _r: Request<FlightDescriptor>,
        ) -> Result<Response<SchemaResult>, Status> {
            no()
        }
        async fn do_put(
            &self,
            _r: Request<Streaming<FlightData>>,
        ) -> Result<Response<Self::DoPutStream>, Status> {
            no()
        }
        async fn do_action(
            &self,
            _r: Request<Action>,
        ) -> Result<Response<Self::DoActionStream>, Status> {
            no()
        }
        async fn list_actions(
            &self,
            _r: Request<Empty>,
        ) -> Result<Response<Self::ListActionsStream>, Status> {
            no()
        }
        async fn do_exchange(
            &self,
            _r: Request<Streaming<FlightData>>,
        ) -> Result<Response<Self::DoExchangeStream>, Status> {
            no()
        }
    }
}
