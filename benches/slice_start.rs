//! Benchmark harness (not a timed test): how long a slice takes to start — from spawning
//! `runi slice` to its ready line (exec, Tokio runtime, listening socket), plain and with its
//! isolation (its own cgroup with memory/CPU/pids limits, new mount, UTS and IPC
//! namespaces). Target ≤ 20 ms.
//!
//! ```text
//! cargo bench --bench slice_start -- [--iterations N]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use runink_engine::isolation::SliceLimits;
use runink_engine::slice::{Isolation, SlicePool};

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let mut iterations = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--iterations" {
            iterations = args.next().ok_or("--iterations N")?.parse()?;
        }
    }
    let runi = Path::new(env!("CARGO_BIN_EXE_runi"));
    let isolated = Isolation {
        limits: Some(SliceLimits {
            memory_bytes: Some(1 << 30),
            cpu_millis: Some(1000),
            max_processes: Some(256),
        }),
        allow_unisolated: false,
    };
    let plain_args = vec!["slice".to_string()];
    let ns_args: Vec<String> = ["slice", "--namespaces", "require"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut plain = Vec::new();
    let mut full = Vec::new();
    for _ in 0..iterations {
        plain.push(start(runi, &plain_args, &Isolation::default())?);
        full.push(start(runi, &ns_args, &isolated)?);
    }
    report("plain (exec + runtime + listen)", &mut plain);
    report("isolated (+ cgroup + namespaces)", &mut full);
    println!("target: <= 20 ms");
    Ok(())
}

fn start(program: &Path, args: &[String], isolation: &Isolation) -> Result<Duration, BoxError> {
    let t0 = Instant::now();
    let pool = SlicePool::launch(program, args, "bench", 1, isolation)?;
    let elapsed = t0.elapsed();
    if !pool.warnings().is_empty() {
        return Err(format!("not isolated: {:?}", pool.warnings()).into());
    }
    drop(pool);
    Ok(elapsed)
}

fn report(what: &str, v: &mut [Duration]) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what:<36} median {:>6.2} ms   p90 {:>6.2} ms   max {:>6.2} ms   ({} starts)",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1]),
        v.len()
    );
}
