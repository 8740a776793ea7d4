//! The bundled example (examples/trades) end to end.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Project, count_rows, parquet_column_type};

fn expected(p: &Project) -> Value {
    serde_json::from_str(&p.read("data/expected.json")).unwrap()
}

/// The run's counts, without what differs between runs (id, time, contract file).
fn counts(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("run_id");
    o.remove("elapsed_ms");
    o.remove("slices");
    if let Some(c) = o.get_mut("contract").and_then(Value::as_object_mut) {
        c.remove("file");
    }
    v
}

fn rows_of(list: &Value, key: &str, name: &str) -> u64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn example_counts_match_the_generator() {
    let p = Project::example(100_000);
    let run = p
        .runi(&["run", "--scenario", "trades.feature", "-o", "json"])
        .ok()
        .json();
    let want = expected(&p);

    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["herd"], "finance");
    assert_eq!(run["contract"]["id"], "trade");
    assert_eq!(rows_of(&run["sources"], "name", "trades"), 100_000);
    assert_eq!(rows_of(&run["sources"], "name", "instruments"), 24);
    assert_eq!(rows_of(&run["steps"], "name", "enriched"), 100_000);

    let contract = &run["contracts"][0];
    assert_eq!(contract["at"], "enriched");
    assert_eq!(contract["rows"], 100_000);
    assert_eq!(contract["valid"], want["valid"]);
    assert_eq!(contract["rejected"], want["rejected"]);
    assert_eq!(contract["rejected_per_rule"], want["rejected_per_rule"]);
    assert_eq!(want["valid"], 95_500);

    // Sinks: what the report says is what is on disk.
    let silver = rows_of(&run["sinks"], "uri", "parquet://out/trades_silver/");
    let rejected = rows_of(&run["sinks"], "uri", "json://out/rejected.ndjson");
    let large = rows_of(&run["sinks"], "uri", "csv://out/large_trades.csv");
    assert_eq!(silver, 95_500);
    assert_eq!(rejected, 4_500);
    assert_eq!(
        count_rows(&p.path().join("out/trades_silver"), None),
        silver
    );
    assert_eq!(
        count_rows(&p.path().join("out/large_trades.csv"), None),
        large
    );
    assert_eq!(
        count_rows(
            &p.path().join("out/trades_silver"),
            Some("quantity * price > 5000000")
        ),
        large
    );
    assert!(large > 0);
    // Valid output has the contract's types: the CSV's timestamps are timestamps now.
    let silver_dir = p.path().join("out/trades_silver");
    assert_eq!(
        parquet_column_type(&silver_dir, "traded_at"),
        "Timestamp(µs)"
    );
    assert_eq!(parquet_column_type(&silver_dir, "quantity"), "Int64");

    // Every rejected row carries exactly the one rule it breaks, with its column.
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let text = p.read("out/rejected.ndjson");
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let v = row["_violations"].as_array().unwrap();
        assert_eq!(v.len(), 1, "{line}");
        assert!(!v[0]["message"].as_str().unwrap().is_empty());
        *tally
            .entry(format!(
                "{}:{}",
                v[0]["column"].as_str().unwrap(),
                v[0]["rule"].as_str().unwrap()
            ))
            .or_default() += 1;
    }
    assert_eq!(
        serde_json::to_value(&tally).unwrap(),
        want["rejected_per_rule"]
    );

    // Nothing temporary is left next to the outputs.
    for f in p.files("out") {
        assert!(!f.contains("runink-"), "left behind: {f}");
    }
}

#[test]
fn yaml_and_go_contracts_give_identical_results() {
    let p = Project::example(20_000);
    let yaml = p
        .runi(&["run", "--scenario", "trades.feature", "-o", "json"])
        .ok();
    let yaml_rejected = sorted_lines(&p.read("out/rejected.ndjson"));
    let go = p
        .runi(&[
            "run",
            "--scenario",
            "trades.feature",
            "--contract",
            "contracts/trade.go",
            "-o",
            "json",
        ])
        .ok();
    let go_rejected = sorted_lines(&p.read("out/rejected.ndjson"));
    assert_eq!(counts(yaml.json()), counts(go.json()));
    assert_eq!(yaml_rejected, go_rejected);
    assert_eq!(yaml_rejected.len(), 900);

    let h1 = p
        .runi(&["contract", "hash", "contracts/trade.yaml"])
        .ok()
        .stdout;
    let h2 = p
        .runi(&["contract", "hash", "contracts/trade.go"])
        .ok()
        .stdout;
    assert_eq!(h1, h2);
    assert!(h1.starts_with("sha256:"));
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn compiled_dag_is_deterministic_portable_and_runs() {
    let p = Project::example(5_000);
    p.runi(&[
        "compile",
        "--scenario",
        "trades.feature",
        "--out",
        "dags/a.dag",
    ])
    .ok();
    p.runi(&[
        "compile",
        "--scenario",
        "trades.feature",
        "--out",
        "dags/b.dag",
    ])
    .ok();
    let a = std::fs::read(p.path().join("dags/a.dag")).unwrap();
    assert_eq!(a, std::fs::read(p.path().join("dags/b.dag")).unwrap());

    // Relative paths stay relative: the same project elsewhere compiles to the same bytes.
    let q = Project::example(5_000);
    q.runi(&["compile", "--scenario", "trades.feature", "--out", "c.dag"])
        .ok();
    assert_eq!(a, std::fs::read(q.path().join("c.dag")).unwrap());

    let dag: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(dag["format"], "runink-dag");
    assert_eq!(dag["scenario"], "Validate and enrich trades");
    assert_eq!(dag["contract"]["hash"].as_str().unwrap().len(), 71);
    assert!(
        dag["lineage"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["column"] == "sector"
                && c["sources"][0]["relation"] == "instruments"
                && c["sources"][0]["column"] == "sector")
    );

    let from_scenario = p
        .runi(&["run", "--scenario", "trades.feature", "-o", "json"])
        .ok()
        .json();
    let from_dag = p
        .runi(&["run", "--dag", "dags/a.dag", "-o", "json"])
        .ok()
        .json();
    let mut a = counts(from_scenario);
    let mut b = counts(from_dag);
    a.as_object_mut().unwrap().remove("contract");
    b.as_object_mut().unwrap().remove("contract");
    assert_eq!(a, b);
}
