//! TPC-H at a tiny scale factor (0.01): all 22 queries through Runink in one process,
//! every answer checked against DuckDB's answer on the same data (`tests/data/tpch-sf0.01/`,
//! made by `benches/tpch/duckdb_run.py`). Speed is the benchmark's job (`benches/tpch.rs`).

#[path = "../benches/tpch/harness.rs"]
#[allow(dead_code)] // the DataFusion baseline is the benchmark's
mod harness;

use std::path::PathBuf;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_in_one_process_match_duckdb() {
    let dir = data_dir();
    harness::generate(&dir, SF).expect("generate");
    let ctx = harness::runink_context(&dir, 2).await.expect("context");
    let mut wrong = Vec::new();
    for n in 1..=22 {
        let statements = harness::query(n).expect("query");
        let answer = harness::run(&ctx, &statements)
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
