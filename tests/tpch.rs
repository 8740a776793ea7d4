//! TPC-H at a tiny scale factor (0.01): all 22 queries through Runink in one process,
//! every answer checked against DuckDB's answer on the same data (`tests/data/tpch-sf0.01/`,
//! made by `benches/tpch/duckdb_run.py`). Speed is the benchmark's job (`benches/tpch.rs`).

#[path = "../benches/tpch/harness.rs"]
#[allow(dead_code)] // the DataFusion baseline is the benchmark's
mod harness;

use std::path::PathBuf;

use runink_planner::slices::Exchange;

const SF: f64 = 0.01;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tpch-sf{SF}"))
}

fn expected(n: usize) -> Vec<Vec<String>> {
    let path = harness::repo()
        .join("tests/data/tpch-sf0.01")
        .join(format!("q{n}.csv"));
    harness::read_csv_rows(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `queries` in `ctx` and fails, listing every differing answer, unless each equals
/// DuckDB's.
async fn assert_answers_match_duckdb(
    ctx: &datafusion::prelude::SessionContext,
    queries: impl IntoIterator<Item = usize>,
) {
    let mut wrong = Vec::new();
    for n in queries {
        let statements = harness::query(n).expect("query");
        let answer = harness::run(ctx, &statements)
            .await
            .unwrap_or_else(|e| panic!("q{n}: {e}"));
        let rows = harness::rows(&answer).expect("rows");
        if let Err(e) = harness::compare(&format!("q{n}"), &rows, &expected(n)) {
            wrong.push(e);
        }
    }
    assert!(
        wrong.is_empty(),
        "answers differ from DuckDB's:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_in_one_process_match_duckdb() {
    let dir = data_dir();
    harness::generate(&dir, SF).expect("generate");
    let ctx = harness::runink_context(&dir, 2).await.expect("context");
    assert_answers_match_duckdb(&ctx, 1..=22).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_split_into_slice_processes_match_duckdb() {
    let dir = data_dir();
    harness::generate(&dir, SF).expect("generate");
    let slices = harness::launch_slices(2, &[], &Default::default()).expect("slices");
    // Tiny scan tasks, so that even SF 0.01 is split into stages across both slices.
    let ctx = harness::sliced_context(&dir, 2, &slices, Some(1), Exchange::Pipes)
        .await
        .expect("context");
    let plan = ctx
        .sql(&harness::query(3).expect("q3")[0])
        .await
        .expect("plan q3")
        .create_physical_plan()
        .await
        .expect("physical q3");
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        shown.contains("DistributedExec") && shown.contains("Network"),
        "q3 is not split into stages:\n{shown}"
    );
    assert_answers_match_duckdb(&ctx, 1..=22).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_slice_died_fails_and_the_slice_is_named() {
    let dir = data_dir();
    harness::generate(&dir, SF).expect("generate");
    let mut slices = harness::launch_slices(2, &[], &Default::default()).expect("slices");
    let ctx = harness::sliced_context(&dir, 2, &slices, Some(1), Exchange::Pipes)
        .await
        .expect("context");
    let (name, pid) = slices.pids()[0].clone();
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(pid),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    )
    .expect("waitid");
    let err = harness::run(&ctx, &harness::query(3).expect("q3"))
        .await
        .expect_err("a query that needs a dead slice must fail");
    // The coordinator cannot reach the slice (connection refused), it does not hang.
    let text = err.to_string();
    assert!(text.contains("onnect"), "{text}");
    let named = slices.check().expect_err("the pool sees it").to_string();
    assert!(
        named.contains(&format!("slice `{name}`")) && named.contains("SIGKILL"),
        "{named}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_slices_run_in_cgroups_and_namespaces_and_answer_the_same() {
    let dir = data_dir();
    harness::generate(&dir, SF).expect("generate");
    let isolation = runink_engine::slice::Isolation {
        limits: Some(runink_engine::isolation::SliceLimits {
            memory_bytes: Some(1 << 30),
            cpu_millis: Some(1000),
            max_processes: Some(256),
        }),
        allow_unisolated: false,
    };
    let slices = harness::launch_slices(2, &["--namespaces", "require"], &isolation)
        .expect("isolated slices");
    assert!(slices.warnings().is_empty(), "{:?}", slices.warnings());
    let own_uts = std::fs::read_link("/proc/self/ns/uts").expect("uts");
    let own_pid_ns = std::fs::read_link("/proc/self/ns/pid").expect("pid ns");
    for (name, pid) in slices.pids() {
        let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        assert!(
            groups.contains(&format!("runink/{name}-{pid}")),
            "{name}: {groups}"
        );
        let uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).expect("slice uts");
        assert_ne!(uts, own_uts, "{name} shares our UTS namespace");
        // The slice process starts its worker in a new PID namespace (as its init's child).
        let children = std::fs::read_link(format!("/proc/{pid}/ns/pid_for_children"))
            .expect("slice pid_for_children");
        assert_ne!(
            children, own_pid_ns,
            "{name} starts processes in our PID namespace"
        );
    }
    let ctx = harness::sliced_context(&dir, 2, &slices, Some(1), Exchange::Pipes)
        .await
        .expect("context");
    assert_answers_match_duckdb(&ctx, [1, 3, 18]).await;
}

#[test]
fn the_comparison_catches_a_wrong_answer() {
    let right = expected(1);
    assert!(harness::compare("q1", &right, &right).is_ok());
    let mut fewer = right.clone();
    fewer.pop();
    assert!(harness::compare("q1", &fewer, &right).is_err());
    let mut changed = right.clone();
    changed[0][2] = "1.5".into();
    let err = harness::compare("q1", &changed, &right).expect_err("a changed cell");
    assert!(err.contains("q1: row"), "{err}");
}
