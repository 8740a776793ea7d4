//! Benchmark harness (not a timed test): the shared-memory pipe between two processes.
//!
//! 1. **Throughput**: batches of 64 K rows (int64, float64, utf8) written by a child process
//!    and read by this one, vs. a single-thread `memcpy` of the same bytes measured in the
//!    same run — target ratio (pipe / memcpy throughput) ≥ 0.5. The memcpy moves each batch
//!    into the next slot of a buffer as large as the pipe's ring, as the pipe does; the
//!    cache-hot copy into one batch-sized buffer is printed for reference.
//! 2. **Per-batch overhead**: 1-row batches through the pipe, in µs per batch.
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

fn main() -> Result<(), BoxError> {
    if let Ok(spec) = std::env::var(ROLE) {
        return writer_child(&spec);
    }
    let mut batches = 200usize;
    let mut tiny = 100_000usize;
    let mut iterations = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batches" => batches = args.next().ok_or("--batches N")?.parse()?,
            "--tiny" => tiny = args.next().ok_or("--tiny N")?.parse()?,
            "--iterations" => iterations = args.next().ok_or("--iterations K")?.parse()?,
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
    let ring_slots = ring.slots as usize * ring.slot_bytes / bytes_per_batch;
    let mut memcpy = Vec::new();
    let mut hot = Vec::new();
    let mut piped = Vec::new();
    let mut per_batch = Vec::new();
    for i in 0..iterations {
        memcpy.push(memcpy_rate(&big, batches, ring_slots));
        hot.push(memcpy_rate(&big, batches, 1));
        piped.push(pipe_rate(&dir, i, batches, 64 * 1024, bytes_per_batch)?);
        let start = Instant::now();
        let n = run_pipe(&dir, &format!("tiny-{i}"), tiny, 1)?;
        per_batch.push(start.elapsed() / n.max(1) as u32);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (m, p) = (median(&mut memcpy), median(&mut piped));
    println!(
        "memcpy, one thread, cache-hot (one {:.1} MiB buffer)   median {:>8.2} GiB/s",
        bytes_per_batch as f64 / (1 << 20) as f64,
        median(&mut hot)
    );
    println!(
        "memcpy, one thread, through a ring-sized buffer  median {:>8.2} GiB/s",
        m
    );
    println!(
        "shared-memory pipe, two processes                median {:>8.2} GiB/s",
        p
    );
    println!(
        "ratio pipe / memcpy (ring-sized)  {:.2} (target >= 0.5)",
        p / m
    );
    per_batch.sort();
    println!(
        "per 1-row batch through the pipe                  median {:>8.2} µs",
        per_batch[per_batch.len() / 2].as_secs_f64() * 1e6
    );
    Ok(())
}

/// GiB/s of copying `batches` times the batch's bytes, one after the other, into the slots
/// of a buffer as large as the pipe's ring (so both move the same bytes through the same
/// amount of memory; a cache-hot copy into one reused buffer is also printed).
fn memcpy_rate(batch: &RecordBatch, batches: usize, ring_slots: usize) -> f64 {
    let buffers: Vec<arrow::buffer::Buffer> = batch
        .columns()
        .iter()
        .flat_map(|c| c.to_data().buffers().to_vec())
        .collect();
    let parts: Vec<&[u8]> = buffers.iter().map(|b| b.as_slice()).collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut target = vec![0u8; total * ring_slots];
    let start = Instant::now();
    for i in 0..batches {
        let mut at = (i % ring_slots) * total;
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

/// Batches read through a fresh pipe from a child writing `batches` batches of `rows`.
fn run_pipe(dir: &Path, name: &str, batches: usize, rows: usize) -> Result<usize, BoxError> {
    let path = dir.join(name);
    pipe::create(&path, PipeConfig::default())?;
    let mut child = spawn_writer(&path, batches, rows)?;
    let mut reader = PipeReader::open(&path)?;
    let mut n = 0;
    while let Some(b) = reader.next_batch()? {
        n += 1;
        drop(b);
    }
    wait_ok(&mut child)?;
    pipe::remove(&path);
    Ok(n)
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
