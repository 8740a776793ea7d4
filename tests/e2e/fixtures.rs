//! Small fixtures with exact expectations (tests/fixtures/orders).

use serde_json::Value;

use crate::support::{Project, count_rows};

fn rule_counts(run: &Value) -> Value {
    run["contracts"][0]["rejected_per_rule"].clone()
}

#[test]
fn every_rule_routes_rows_exactly() {
    let p = Project::fixture("orders");
    let run = p
        .runi(&[
            "run",
            "--scenario",
            "orders.feature",
            "--name",
            "Route orders",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["contracts"][0]["valid"], 5);
    assert_eq!(run["contracts"][0]["rejected"], 7);
    assert_eq!(
        rule_counts(&run),
        serde_json::json!({
            "amount:maximum": 1, "amount:minimum": 2, "customer:required": 1,
            "order_id:pattern": 1, "order_id:unique": 1, "status:valid_values": 2
        })
    );
    assert_eq!(count_rows(&p.path().join("out/valid"), None), 5);
    assert_eq!(count_rows(&p.path().join("out/big.csv"), None), 3);

    // `_violations` names every failed rule of a row, in contract order.
    let rejected = p.read("out/rejected.ndjson");
    let o012: Value = rejected
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["order_id"] == "O012")
        .unwrap();
    assert_eq!(
        o012["_violations"],
        serde_json::json!([
            {"rule": "valid_values", "column": "status", "message": "value \"BADSTATE\" is not one of [NEW, SHIPPED, CANCELLED]"},
            {"rule": "minimum", "column": "amount", "message": "value -1 is less than minimum 0"}
        ])
    );
    let dup: Vec<Value> = rejected
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["order_id"] == "O002")
        .collect();
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0]["_violations"][0]["rule"], "unique");
    assert_eq!(dup[0]["customer"], "erin");
    // A null column is written as `null`, not left out of the row.
    let o004: Value = rejected
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["order_id"] == "O004")
        .unwrap();
    assert_eq!(o004.get("customer"), Some(&Value::Null), "{o004}");

    // Overwrite replaces what a previous run wrote.
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
    ])
    .ok();
    assert_eq!(count_rows(&p.path().join("out/valid"), None), 5);
    assert_eq!(p.read("out/rejected.ndjson").lines().count(), 7);
}

#[test]
fn built_in_steps_and_exec_programs() {
    let p = Project::fixture("orders");
    let run = p
        .runi(&[
            "run",
            "--scenario",
            "orders.feature",
            "--name",
            "Built-ins",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let steps: Vec<(String, u64)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("filter".to_string(), 11),
            ("dedupe".to_string(), 10),
            ("passthrough".to_string(), 10),
            ("select".to_string(), 10)
        ]
    );
    assert_eq!(run["contracts"][0]["valid"], 4);
    assert_eq!(run["contracts"][0]["rejected"], 6);
    assert_eq!(count_rows(&p.path().join("out/valid.arrow"), None), 4);
    let csv = p.read("out/rejected.csv");
    assert_eq!(
        csv.lines().next().unwrap(),
        "order_id,customer,status,amount,_violations"
    );
    assert_eq!(csv.lines().count(), 7);
    assert!(
        csv.contains("O004,,NEW,7.25,required(customer): null value in required column"),
        "{csv}"
    );
}

#[test]
fn a_failing_exec_step_fails_the_run_and_writes_nothing() {
    let p = Project::fixture("orders");
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Exploding program",
    ])
    .fails(
        1,
        &[
            "step `explode`",
            "`sh explode.sh` exited with status 3",
            "boom: refusing",
        ],
    );
    assert_eq!(p.files("out"), Vec::<String>::new());
    assert!(!p.path().join("out/never").exists());
}

#[test]
fn append_mode_adds_to_earlier_output() {
    let p = Project::fixture("orders");
    for _ in 0..2 {
        p.runi(&["run", "--scenario", "orders.feature", "--name", "Append"])
            .ok();
    }
    assert_eq!(p.read("out/log.ndjson").lines().count(), 20);
    let parts = p.files("out/history");
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(count_rows(&p.path().join("out/history"), None), 20);
}

#[test]
fn input_overrides_read_another_file() {
    let p = Project::fixture("orders");
    p.write(
        "other.csv",
        "order_id,customer,status,amount,placed_at\nO100,x,NEW,1.0,2026-01-01T00:00:00\nO101,y,NEW,-1.0,2026-01-01T00:00:00\n",
    );
    let run = p
        .runi(&[
            "run",
            "--scenario",
            "orders.feature",
            "--name",
            "Route orders",
            "--input",
            "orders=csv://other.csv",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["sources"][0]["rows"], 2);
    assert_eq!(run["contracts"][0]["valid"], 1);
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
        "--input",
        "nosuch=csv://other.csv",
    ])
    .fails(2, &["no source named `nosuch`"]);
}

#[test]
fn contract_validate_and_hash() {
    let p = Project::fixture("orders");
    let out = p.runi(&["contract", "validate", "orders.yaml"]).ok();
    assert!(
        out.stdout.contains("contract `orders` version 0.3.0"),
        "{}",
        out.stdout
    );
    let hash = p.runi(&["contract", "hash", "orders.yaml"]).ok().stdout;
    assert_eq!(hash.trim().len(), "sha256:".len() + 64);
}

#[test]
fn every_source_format_and_sql_files() {
    let p = Project::fixture("orders");
    // Produce Parquet (a directory) and Arrow IPC outputs, then read them back as sources.
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
    ])
    .ok();
    p.runi(&["run", "--scenario", "orders.feature", "--name", "Built-ins"])
        .ok();
    p.write(
        "more.ndjson",
        "{\"order_id\": \"O500\", \"amount\": 1.5}\n{\"order_id\": \"O501\", \"amount\": 2.5}\n",
    );
    p.write("union.sql", "SELECT order_id, amount FROM valid\nUNION ALL SELECT order_id, amount FROM arrowed\nUNION ALL SELECT order_id, amount FROM more\n");
    p.write(
        "formats.feature",
        "Feature: Formats\n  Scenario: Read them all\n    @source(\"parquet://out/valid/\", name=\"valid\")\n    @source(\"arrow://out/valid.arrow\", name=\"arrowed\")\n    @source(\"json://more.ndjson\")\n    @source(\"file://orders.csv\", name=\"plain\")\n    @step(name=\"together\", sql_file=\"union.sql\")\n    @sink(\"json://out/together.ndjson\")\n    @sink(\"parquet://out/plain.parquet\", from=\"plain\")\n",
    );
    let run = p
        .runi(&["run", "--scenario", "formats.feature", "-o", "json"])
        .ok()
        .json();
    let rows = |name: &str| {
        run["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (rows("valid"), rows("arrowed"), rows("more"), rows("plain")),
        (5, 4, 2, 12)
    );
    assert_eq!(p.read("out/together.ndjson").lines().count(), 11);
    assert_eq!(count_rows(&p.path().join("out/plain.parquet"), None), 12);
}

#[test]
fn contract_diff_reports_breaking_changes() {
    let p = Project::fixture("orders");
    p.write(
        "orders2.yaml",
        &p.read("orders.yaml")
            .replace("version: 0.3.0", "version: 0.4.0")
            .replace(
                "validValues: [NEW, SHIPPED, CANCELLED]",
                "validValues: [NEW, SHIPPED]",
            )
            .replace("          maximum: 1000\n", "          maximum: 5000\n"),
    );
    let out = p
        .runi(&["contract", "diff", "orders.yaml", "orders2.yaml"])
        .fails(1, &["breaking change(s)"]);
    assert!(
        out.stdout
            .contains("BREAKING  `status` no longer allows CANCELLED"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok        `amount` maximum 1000 -> 5000"),
        "{}",
        out.stdout
    );
    let same = p
        .runi(&[
            "contract",
            "diff",
            "orders.yaml",
            "orders.yaml",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(same["breaking"], false);
    assert_eq!(same["changes"].as_array().unwrap().len(), 0);
}

#[test]
fn a_source_contract_drops_bad_rows_without_failing_the_run() {
    let p = Project::fixture("orders");
    p.write(
        "src.feature",
        "Feature: S\n  Scenario: S\n    @source(\"csv://orders.csv\", contract=\"orders.yaml\")\n    @sink(\"json://out/ok.ndjson\")\n",
    );
    let run = p
        .runi(&["run", "--scenario", "src.feature", "-o", "json"])
        .ok()
        .json();
    assert_eq!(run["contracts"][0]["at"], "source:orders");
    assert_eq!(run["contracts"][0]["valid"], 5);
    assert_eq!(run["contracts"][0]["rejected"], 7);
    assert_eq!(p.read("out/ok.ndjson").lines().count(), 5);
    // The summary says where the contract checks.
    let text = p.runi(&["run", "--scenario", "src.feature"]).ok().stdout;
    assert!(
        text.lines()
            .next()
            .unwrap_or_default()
            .ends_with("at source `orders`"),
        "{text}"
    );

    // The same contract again as the Scenario's: the 5 rows the source passed are checked
    // twice, but `runi status` counts them valid once.
    p.write(
        "both.feature",
        "Feature: S\n  Scenario: Both\n    @source(\"csv://orders.csv\", contract=\"orders.yaml\")\n    @sink(\"json://out/both.ndjson\")\n    Given the contract: orders.yaml\n",
    );
    p.runi(&["run", "--scenario", "both.feature"]).ok();
    let listed = p.runi(&["status"]).ok().stdout;
    let row: Vec<&str> = listed
        .lines()
        .find(|l| l.ends_with("S / Both"))
        .unwrap_or_else(|| panic!("no row for the run in:\n{listed}"))
        .split_whitespace()
        .collect();
    // run, herd, state, date, time, elapsed, read, valid, rejected, job…
    assert_eq!(&row[6..9], ["12", "5", "7"], "{listed}");

    // A bad amount far below the rows inference reads, added after compiling: one `type`
    // violation, not a reader error that fails the run.
    p.runi(&["compile", "--scenario", "src.feature", "--out", "src.dag"])
        .ok();
    let mut csv = p.read("orders.csv");
    for i in 0..20_000 {
        csv.push_str(&format!("P{i},zed,NEW,1.00,2026-02-01T10:00:00\n"));
    }
    csv.push_str("O999,zed,NEW,lots,2026-02-01T10:00:00\n");
    p.write("orders.csv", &csv);
    let run = p
        .runi(&["run", "--dag", "src.dag", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        run["contracts"][0]["rejected_per_rule"]["amount:type"], 1,
        "{run:#}"
    );
}

#[test]
fn overlapping_sinks_and_reserved_columns_are_compile_errors() {
    let p = Project::fixture("orders");
    p.write(
        "overlap.feature",
        "Feature: O\n  Scenario: O\n    @source(\"csv://orders.csv\")\n    @sink(\"parquet://out/\")\n    @sink(\"json://./out/x.ndjson\")\n",
    );
    p.runi(&["compile", "--scenario", "overlap.feature", "--dry-run"])
        .fails(
            2,
            &["overlap.feature:5:11:", "overlaps another sink's `out/`"],
        );
    p.write("old.ndjson", "{\"a\": 1, \"_violations\": []}\n");
    p.write(
        "reserved.feature",
        "Feature: R\n  Scenario: R\n    @source(\"json://old.ndjson\")\n    @sink(\"json://out/y.ndjson\")\n",
    );
    p.runi(&["compile", "--scenario", "reserved.feature", "--dry-run"])
        .fails(
            2,
            &["reserved.feature:4:", "reserves for contract violations"],
        );
}

/// Sinks that read one relation through different steps, and a self-join: the relation is
/// computed once (its `exec=` program runs once, its source is read and counted once, and
/// `random()` has one value per row in every sink).
#[test]
fn a_relation_read_through_several_branches_is_computed_once() {
    let p = Project::fixture("orders");
    p.write(
        "log.sh",
        "#!/bin/sh\necho run >> invocations.log\nexec cat\n",
    );
    p.write(
        "branches.feature",
        r#"Feature: B
  Scenario: B
    @source("csv://orders.csv", name="orders")
    @step(name="logged", exec="sh log.sh")
    @step(name="r", sql="SELECT order_id, random() AS rnd FROM logged")
    @step(name="s", sql="SELECT a.order_id, a.rnd FROM r a JOIN r b ON a.order_id = b.order_id AND a.rnd = b.rnd")
    @sink("csv://out/r.csv", from="r")
    @sink("csv://out/s.csv", from="s")
"#,
    );
    p.runi(&[
        "compile",
        "--scenario",
        "branches.feature",
        "--out",
        "b.dag",
    ])
    .ok();
    // The compile-time probe ran the program once.
    assert_eq!(p.read("invocations.log").lines().count(), 1);
    let explained = p
        .runi(&["compile", "--scenario", "branches.feature", "--explain"])
        .ok();
    assert!(
        explained.stdout.contains("== computed once ==")
            && explained.stdout.contains(": logged, r"),
        "{}",
        explained.stdout
    );
    for slices in ["inprocess", "2"] {
        std::fs::remove_file(p.path().join("invocations.log")).unwrap();
        let run = p
            .runi(&["run", "--dag", "b.dag", "--slices", slices, "-o", "json"])
            .ok()
            .json();
        assert_eq!(p.read("invocations.log").lines().count(), 1, "{slices}");
        let rows = p.read("orders.csv").lines().count() as u64 - 1;
        assert_eq!(run["sources"][0]["rows"], rows, "{slices}: {run:#}");
        let sorted = |f: &str| {
            let mut lines: Vec<String> = p.read(f).lines().skip(1).map(str::to_string).collect();
            lines.sort();
            lines
        };
        // Every row joins itself: the join saw one `rnd` per row, and so did both sinks.
        assert_eq!(sorted("out/r.csv"), sorted("out/s.csv"), "{slices}");
        assert_eq!(sorted("out/r.csv").len() as u64, rows);
    }
    // The spool (in the state directory) went with the run.
    p.assert_spool_empty();

    // The source is also read directly by another step, next to the repeated step over it:
    // the step runs once and the source counts its rows once.
    p.write(
        "mixed.feature",
        r#"Feature: M
  Scenario: M
    @source("csv://orders.csv", name="orders")
    @step(name="logged", exec="sh log.sh")
    @step(name="big", sql="SELECT order_id FROM logged WHERE amount > 10")
    @step(name="both", sql="SELECT l.order_id FROM logged l JOIN orders o ON l.order_id = o.order_id")
    @sink("csv://out/big.csv", from="big")
    @sink("csv://out/both.csv", from="both")
"#,
    );
    std::fs::remove_file(p.path().join("invocations.log")).unwrap();
    let run = p.run_json("mixed.feature", "inprocess");
    // The compile-time probe, then the run: twice in all.
    assert_eq!(p.read("invocations.log").lines().count(), 2);
    let rows = p.read("orders.csv").lines().count() as u64 - 1;
    assert_eq!(run["sources"][0]["rows"], rows, "{run:#}");

    // A self-join of a step, read by two sinks (the joined step's copies each hold the step
    // twice), and a repeated relation shipped to slices as a scan of its spool file.
    p.write(
        "nested.feature",
        r#"Feature: N
  Scenario: N
    @source("csv://orders.csv", name="orders")
    @step(name="logged", exec="sh log.sh")
    @step(name="r", sql="SELECT order_id, random() AS rnd FROM logged")
    @step(name="j", sql="SELECT x.order_id, x.rnd FROM r x JOIN r y ON x.order_id = y.order_id AND x.rnd = y.rnd")
    @step(name="k", sql="SELECT * FROM j")
    @sink("csv://out/j.csv", from="j")
    @sink("csv://out/k.csv", from="k")
"#,
    );
    for slices in ["inprocess", "2"] {
        std::fs::remove_file(p.path().join("invocations.log")).unwrap();
        p.runi(&["run", "--scenario", "nested.feature", "--slices", slices])
            .ok();
        assert_eq!(p.read("invocations.log").lines().count(), 2, "{slices}");
        assert_eq!(
            p.read("out/j.csv").lines().count() as u64,
            rows + 1,
            "{slices}"
        );
        assert_eq!(
            p.read("out/k.csv").lines().count() as u64,
            rows + 1,
            "{slices}"
        );
    }
}

/// A repeated relation large enough to be split into tasks: its spool file is scanned in
/// slices (datafusion-proto reads it back as an IPC file).
#[test]
fn a_large_repeated_relation_runs_on_slices() {
    let p = Project::fixture("orders");
    let mut csv = String::from("id,g,v\n");
    for i in 0..100_000 {
        csv.push_str(&format!("{i},{},{}.5\n", i % 50, i % 7));
    }
    p.write("big.csv", &csv);
    p.write(
        "s.feature",
        r#"Feature: S
  Scenario: S
    @source("csv://big.csv", name="big")
    @step(name="r", sql="SELECT id, g, v * 2 AS w FROM big")
    @step(name="agg", sql="SELECT g, count(*) AS n FROM r GROUP BY g")
    @sink("parquet://out/r/", from="r")
    @sink("csv://out/agg.csv", from="agg")
"#,
    );
    let run = p.run_json("s.feature", "2");
    assert_eq!(run["slices"], 2, "{run:#}");
    assert_eq!(run["sources"][0]["rows"], 100_000, "{run:#}");
    assert_eq!(count_rows(&p.path().join("out/r"), None), 100_000);
    assert_eq!(p.read("out/agg.csv").lines().count(), 51);
}

/// A pass-through `exec=` step after a UNION of NDJSON and Parquet: at run time DataFusion
/// may hand it string views where compiling saw plain strings; the same values come back.
#[test]
fn an_exec_step_after_a_union_of_formats_runs() {
    use datafusion::prelude::SessionContext;
    let p = Project::fixture("orders");
    p.write(
        "a.ndjson",
        "{\"id\": 1, \"name\": \"ann\"}\n{\"id\": 2, \"name\": \"bo\"}\n",
    );
    let path = p.path().join("b.parquet");
    crate::support::block_on(async {
        let ctx = SessionContext::new();
        ctx.sql("SELECT CAST(3 AS BIGINT) AS id, 'cy' AS name")
            .await
            .unwrap()
            .write_parquet(path.to_str().unwrap(), Default::default(), None)
            .await
            .unwrap();
    });
    p.write(
        "u.feature",
        r#"Feature: U
  Scenario: U
    @source("json://a.ndjson", name="a")
    @source("parquet://b.parquet", name="b")
    @step(name="both", sql="SELECT id, name FROM a UNION ALL SELECT id, name FROM b")
    @step(name="echoed", exec="cat")
    @sink("csv://out/u.csv")
"#,
    );
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "u.feature", "--slices", slices])
            .ok();
        let mut lines: Vec<String> = p.read("out/u.csv").lines().map(str::to_string).collect();
        lines.sort();
        assert_eq!(lines, ["1,ann", "2,bo", "3,cy", "id,name"], "{slices}");
    }
}

/// NDJSON has no header: a field that first appears deep in the file must still be read,
/// not dropped because schema inference stopped at a sample.
#[test]
fn an_ndjson_field_first_seen_late_in_the_file_is_read() {
    let p = Project::fixture("orders");
    let mut events = String::new();
    for id in 0..12_000 {
        if id == 11_500 {
            events.push_str(&format!("{{\"id\":{id},\"note\":\"late\"}}\n"));
        } else {
            events.push_str(&format!("{{\"id\":{id}}}\n"));
        }
    }
    p.write("events.ndjson", &events);
    p.write(
        "late.feature",
        "Feature: Late fields\n  Scenario: S\n    @source(\"json://events.ndjson\")\n    @step(name=\"noted\", sql=\"SELECT id, note FROM events WHERE note IS NOT NULL\")\n    @sink(\"json://out/noted.ndjson\")\n",
    );
    p.runi(&["run", "--scenario", "late.feature", "--herd", "shop"])
        .ok();
    assert_eq!(
        p.read("out/noted.ndjson"),
        "{\"id\":11500,\"note\":\"late\"}\n"
    );
}

#[test]
fn a_sink_that_fails_mid_run_leaves_no_output_of_any_sink() {
    let p = Project::fixture("orders");
    // Each sink is written by a thread of its own; the third fails at `bob` (10 / 0), after
    // the others have written rows.
    let mut csv = p.read("orders.csv");
    for i in 0..50_000 {
        csv.push_str(&format!("P{i},zed{i},NEW,1.00,2026-02-01T10:00:00\n"));
    }
    csv.push_str("P-last,bob,NEW,1.00,2026-02-01T10:00:00\n");
    p.write("orders.csv", &csv);
    p.write(
        "fail.feature",
        "Feature: F\n  Scenario: F\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @sink(\"parquet://out/all/\")\n    @sink(\"json://out/all.ndjson\")\n    @sink(\"csv://out/odd.csv\", when=\"10 / (length(customer) - 3) > 0\")\n",
    );
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "fail.feature", "--slices", slices])
            .fails(1, &["out/odd.csv", "Divide by zero"]);
        // Not even the folder the sinks created for themselves.
        assert!(!p.path().join("out").exists(), "--slices {slices}");
    }
    // The failed run's record says its sink counts were never committed.
    let runs = p.runi(&["status", "-o", "json"]).ok().json();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let shown = p.runi(&["status", "--runid", &id]).ok();
    assert!(
        shown.stdout.contains("discarded: the run did not succeed"),
        "{}",
        shown.stdout
    );
}

#[test]
fn rows_read_count_when_parquet_statistics_could_answer_the_query() {
    let p = Project::fixture("orders");
    p.write(
        "to_parquet.feature",
        "Feature: P\n  Scenario: P\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @sink(\"parquet://out/p/\")\n",
    );
    p.runi(&["run", "--scenario", "to_parquet.feature"]).ok();
    p.write(
        "count.feature",
        "Feature: C\n  Scenario: C\n    @source(\"parquet://out/p/\", name=\"p\")\n    @step(name=\"n\", sql=\"SELECT count(*) AS n, max(amount) AS top FROM p\")\n    @sink(\"json://counted.ndjson\")\n",
    );
    let run = p
        .runi(&["run", "--scenario", "count.feature", "-o", "json"])
        .ok()
        .json();
    // DataFusion would answer from the footer's statistics and read no row; the tap
    // passes them on as estimates, so the rows are read and counted.
    assert_eq!(run["sources"][0]["rows"], 12, "{run:#}");
    assert!(p.read("counted.ndjson").contains("\"n\":12"));
}

#[test]
fn the_summary_names_the_herd_the_run_ran_in() {
    let p = Project::fixture("orders");
    p.write(
        "other.toml",
        "[herd]\nid = \"other\"\ndescription = \"another herd\"\n",
    );
    p.runi(&["herd", "apply", "-f", "other.toml"]).ok();
    p.runi(&[
        "compile",
        "--scenario",
        "orders.feature",
        "--name",
        "Append",
        "--out",
        "a.dag",
    ])
    .ok();
    let run = p
        .runi(&["run", "--dag", "a.dag", "--herd", "other", "-o", "json"])
        .ok()
        .json();
    assert_eq!(run["herd"], "other", "{run:#}");
    let run = p.runi(&["run", "--dag", "a.dag", "-o", "json"]).ok().json();
    assert_eq!(run["herd"], "shop", "{run:#}");
}

#[test]
fn appends_from_csv_and_parquet_sources_stay_one_readable_dataset() {
    let p = Project::fixture("orders");
    let run = |feature: &str, text: &str| {
        p.write(feature, text);
        p.runi(&["run", "--scenario", feature])
    };
    run(
        "copy.feature",
        "Feature: C\n  Scenario: C\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(sql=\"SELECT order_id, customer FROM input\")\n    @sink(\"parquet://data/copy.parquet\")\n",
    )
    .ok();
    // The same two columns, once from CSV (strings) and once from Parquet (string views).
    for (name, source) in [
        ("a", "csv://orders.csv"),
        ("b", "parquet://data/copy.parquet"),
    ] {
        run(
            &format!("{name}.feature"),
            &format!(
                "Feature: A\n  Scenario: A\n    @source(\"{source}\", name=\"o\")\n    @step(sql=\"SELECT order_id, customer FROM input\")\n    @sink(\"parquet://out/ds/\", mode=append)\n    @sink(\"csv://out/log.csv\", mode=append)\n"
            ),
        )
        .ok();
    }
    let read = run(
        "read.feature",
        "Feature: R\n  Scenario: R\n    @source(\"parquet://out/ds/\", name=\"ds\")\n    @sink(\"json://read.ndjson\")\n",
    );
    read.ok();
    assert_eq!(p.read("read.ndjson").lines().count(), 24);
    assert_eq!(p.read("out/log.csv").lines().count(), 25);

    // Other columns: refused before anything is written, naming the file there.
    let before = p.files("out");
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(p.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before_entries = entries();
    run(
        "other.feature",
        "Feature: O\n  Scenario: O\n    @source(\"csv://orders.csv\", name=\"o\")\n    @sink(\"parquet://out/ds/\", mode=append)\n",
    )
    .fails(1, &["mode=append", "out/ds/", "append needs the same columns"]);
    run(
        "other_csv.feature",
        "Feature: O\n  Scenario: O\n    @source(\"csv://orders.csv\", name=\"o\")\n    @sink(\"csv://out/log.csv\", mode=append)\n",
    )
    .fails(1, &["mode=append", "has the header `order_id,customer`"]);
    assert_eq!(p.files("out"), before);
    // No empty temp directory either.
    assert_eq!(entries(), before_entries);
}

#[test]
fn file_sinks_take_their_format_from_format() {
    let p = Project::fixture("orders");
    p.write(
        "file.feature",
        "Feature: F\n  Scenario: F\n    @source(\"csv://orders.csv\", name=\"o\")\n    @sink(\"file://out/orders.txt\")\n",
    );
    p.runi(&["compile", "--scenario", "file.feature", "--dry-run"])
        .fails(2, &["file.feature:4:11:", "format="]);
    p.write(
        "file.feature",
        "Feature: F\n  Scenario: F\n    @source(\"csv://orders.csv\", name=\"o\")\n    @sink(\"file://out/orders.txt\", format=\"csv\")\n    @sink(\"file://out/dir/\", format=\"parquet\")\n",
    );
    p.runi(&["run", "--scenario", "file.feature"]).ok();
    assert_eq!(p.read("out/orders.txt").lines().count(), 13);
    assert_eq!(count_rows(&p.path().join("out/dir"), None), 12);
}

#[test]
fn csv_values_with_line_breaks_inside_quotes_are_read() {
    let p = Project::fixture("orders");
    // Over DataFusion's inference chunk, and over a pipe slot when split across slices.
    let mut csv = String::from("id,note\n");
    for i in 0..3_000 {
        csv.push_str(&format!("{i},\"line one\nline \"\"two\"\", {i}\"\n"));
    }
    p.write("notes.csv", &csv);
    p.write(
        "notes.feature",
        "Feature: N\n  Scenario: N\n    @source(\"csv://notes.csv\", name=\"n\")\n    @sink(\"json://out/notes.ndjson\")\n",
    );
    for slices in ["inprocess", "2"] {
        let run = p.run_json("notes.feature", slices);
        assert_eq!(run["sources"][0]["rows"], 3_000, "{run:#}");
        let out = p.read("out/notes.ndjson");
        assert_eq!(out.lines().count(), 3_000);
        assert!(
            out.contains(r#"{"id":2999,"note":"line one\nline \"two\", 2999"}"#),
            "{}",
            out.lines().last().unwrap_or_default()
        );
    }
}

#[test]
fn ndjson_columns_keep_the_order_of_the_records() {
    let p = Project::fixture("orders");
    p.write(
        "rows.ndjson",
        "{\"id\":1,\"name\":\"a\",\"amount\":1.5,\"cat\":\"x\"}\n{\"id\":2,\"name\":\"b\",\"amount\":2.5,\"cat\":\"y\",\"extra\":true}\n",
    );
    p.write(
        "order.feature",
        "Feature: O\n  Scenario: O\n    @source(\"json://rows.ndjson\", name=\"r\")\n    @sink(\"csv://out/r.csv\")\n",
    );
    p.runi(&["run", "--scenario", "order.feature"]).ok();
    // First seen first (serde_json sorted object keys unless told to keep their order).
    assert_eq!(
        p.read("out/r.csv").lines().next(),
        Some("id,name,amount,cat,extra")
    );
}

#[test]
fn a_steps_order_by_is_the_order_sinks_write() {
    // DataFusion drops a sort that no operator above it asks for; the sinks ask.
    let p = Project::empty();
    let mut csv = String::from("id,amount\n");
    for i in 0..40_000u64 {
        // A fixed shuffle of the ids, and amounts in another order.
        let id = (i * 7_919) % 40_000;
        csv.push_str(&format!("{id},{}\n", (id * 31) % 997));
    }
    p.write("t.csv", &csv);
    p.write(
        "c.yaml",
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - { name: id, logicalType: integer }\n      - { name: amount, logicalType: integer, logicalTypeOptions: { minimum: 10 } }\n",
    );
    p.write(
        "s.feature",
        "Feature: f\n  Scenario: s\n    @source(\"csv://t.csv\", name=\"t\")\n    @step(name=\"sorted\", sql=\"SELECT id, amount FROM t ORDER BY amount DESC, id\")\n    @step(name=\"high\", sql=\"SELECT * FROM sorted WHERE amount > 900\")\n    @sink(\"csv://out/valid.csv\", from=\"sorted\")\n    @sink(\"json://out/invalid.ndjson\", from=\"sorted\", when=\"invalid\")\n    @sink(\"csv://out/high.csv\", from=\"high\")\n    Given the contract: c.yaml\n",
    );
    for slices in ["inprocess", "2"] {
        let _ = std::fs::remove_dir_all(p.path().join("out"));
        // `sorted` is read by a sink and by a step: computed once, counted once, and its
        // sinks still get its order.
        let report = p.run_json("s.feature", slices);
        assert_eq!(report["steps"][0]["name"], "sorted");
        assert_eq!(report["steps"][0]["rows"], 40_000, "{slices}: {report}");
        let valid: Vec<(i64, i64)> = p
            .read("out/valid.csv")
            .lines()
            .skip(1)
            .map(|l| {
                let (id, amount) = l.split_once(',').unwrap();
                (amount.parse().unwrap(), id.parse().unwrap())
            })
            .collect();
        let invalid: Vec<(i64, i64)> = p
            .read("out/invalid.ndjson")
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["amount"].as_i64().unwrap(), v["id"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(valid.len() + invalid.len(), 40_000, "{slices}");
        assert!(
            !invalid.is_empty() && valid.len() > invalid.len(),
            "{slices}"
        );
        for rows in [&valid, &invalid] {
            let mut expected = rows.clone();
            expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            assert!(*rows == expected, "{slices}: rows not in ORDER BY order");
        }
    }
}

#[test]
fn derive_adds_columns_in_turn_and_validate_drops_what_the_contract_rejects() {
    let p = Project::empty();
    let mut csv = String::from("id,amount\n");
    for id in 0..1_000i64 {
        csv.push_str(&format!("{id},{}\n", (id * 37) % 101));
    }
    p.write("t.csv", &csv);
    p.write(
        "c.yaml",
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - { name: id, logicalType: integer }\n      - { name: amount, logicalType: integer, logicalTypeOptions: { minimum: 10 } }\n",
    );
    // `amount` is replaced in place (after `double` read the old value); `triple` reads both.
    p.write(
        "s.feature",
        "Feature: f\n  Scenario: s\n    @source(\"csv://t.csv\", name=\"t\")\n    @step(\"Derive\", double=\"amount * 2\", Amount=\"amount - 5\", triple=\"double + amount\")\n    @step(\"Validate\")\n    @sink(\"csv://out/v.csv\")\n    Given the contract: c.yaml\n",
    );
    let report = p
        .runi(&["run", "--scenario", "s.feature", "-o", "json"])
        .ok()
        .json();
    let expected: Vec<String> = (0..1_000i64)
        .map(|id| (id, (id * 37) % 101))
        .filter(|(_, a)| a - 5 >= 10)
        .map(|(id, a)| format!("{id},{},{},{}", a - 5, a * 2, a * 2 + a - 5))
        .collect();
    let mut written: Vec<String> = p.read("out/v.csv").lines().map(String::from).collect();
    assert_eq!(written.remove(0), "id,amount,double,triple");
    written.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(written, sorted);
    let at_validate = report["contracts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["at"] == "step:validate")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        at_validate["rejected_per_rule"]["amount:minimum"],
        1_000 - expected.len(),
        "{report}"
    );

    // Mistakes name the step and the argument.
    for (step, needles) in [
        ("@step(\"Derive\")", &["Derive needs at least one"][..]),
        (
            "@step(\"Derive\", x=\"nosuch + 1\")",
            &["step `derive`", "x=\"nosuch + 1\"", "nosuch"][..],
        ),
        (
            "@step(\"Filter\", where=\"amount > 1\", keys=\"id\")",
            &["unknown argument `keys` for Filter"][..],
        ),
        ("@step(\"Mask\")", &["`Mask` is not available"][..]),
        (
            "@step(\"Filter\", where=\"count(*) > 1\")",
            &[
                "where=\"count(*) > 1\" uses an aggregate",
                "use a `sql=` step",
            ][..],
        ),
        (
            "@step(\"Derive\", rn=\"row_number() OVER (ORDER BY id)\")",
            &["uses a window function"][..],
        ),
    ] {
        p.write(
            "bad.feature",
            &format!(
                "Feature: f\n  Scenario: s\n    @source(\"csv://t.csv\", name=\"t\")\n    {step}\n    @sink(\"csv://out/v.csv\")\n"
            ),
        );
        let mut all = vec!["bad.feature:4:"];
        all.extend_from_slice(needles);
        p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
            .fails(2, &all);
    }
    p.write(
        "bad.feature",
        "Feature: f\n  Scenario: s\n    @source(\"csv://t.csv\", name=\"t\")\n    @step(\"Validate\")\n    @sink(\"csv://out/v.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "Validate needs a contract"]);
}

#[test]
fn parquet_sinks_keep_second_timestamps_and_csv_invalid_sinks_take_parquet_text() {
    let p = Project::empty();
    p.write(
        "t.csv",
        "id,name,ts\n1,a,2024-01-29T03:09:18\n2,b,2024-01-30T04:10:19\n3,c,2024-01-31T05:11:20\n",
    );
    p.write(
        "w.feature",
        "Feature: w\n  Scenario: w\n    @source(\"csv://t.csv\", name=\"t\")\n    @sink(\"parquet://p/\")\n",
    );
    p.runi(&["run", "--scenario", "w.feature"]).ok();
    // Inferred as seconds; written as milliseconds, a timestamp to every Parquet reader.
    let logical = crate::support::parquet_logical_type(&p.path().join("p"), "ts");
    assert!(logical.contains("Timestamp"), "{logical}");
    assert!(
        logical.contains("MILLIS") || logical.contains("Millis"),
        "{logical}"
    );

    // A Parquet source's text arrives as string views; a CSV sink of rejected rows writes
    // it beside the flattened `_violations`.
    p.write(
        "c.yaml",
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - { name: id, logicalType: integer, logicalTypeOptions: { minimum: 2 } }\n",
    );
    p.write(
        "r.feature",
        "Feature: r\n  Scenario: r\n    @source(\"parquet://p/\", name=\"p\")\n    @sink(\"csv://out/valid.csv\")\n    @sink(\"csv://out/invalid.csv\", when=\"invalid\")\n    Given the contract: c.yaml\n",
    );
    p.runi(&["run", "--scenario", "r.feature"]).ok();
    assert_eq!(
        p.read("out/invalid.csv"),
        "id,name,ts,_violations\n1,a,2024-01-29T03:09:18,minimum(id): value 1 is less than minimum 2\n"
    );
    assert_eq!(p.read("out/valid.csv").lines().count(), 3);
}

#[test]
fn in_and_exists_subqueries_compile_to_a_dag_and_run() {
    let p = Project::empty();
    p.write("orders.csv", "id,cust\n1,a\n2,b\n3,c\n4,a\n5,\n");
    p.write("customers.csv", "cust,country\na,DE\nb,FR\nc,DE\n");
    p.write(
        "s.feature",
        "Feature: s\n  Scenario: s\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @source(\"csv://customers.csv\", name=\"customers\")\n    @step(name=\"de\", sql=\"SELECT id FROM orders WHERE cust IN (SELECT cust FROM customers WHERE country = 'DE') ORDER BY id\")\n    @step(name=\"not_de\", sql=\"SELECT id FROM orders WHERE cust NOT IN (SELECT cust FROM customers WHERE country = 'DE') ORDER BY id\")\n    @step(name=\"ex\", sql=\"SELECT id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.cust = o.cust) ORDER BY id\")\n    @step(name=\"over\", sql=\"SELECT id FROM orders o WHERE id > (SELECT avg(id) FROM orders o2 WHERE o2.cust = o.cust) ORDER BY id\")\n    @sink(\"csv://out/over.csv\", from=\"over\")\n    @sink(\"csv://out/de.csv\", from=\"de\")\n    @sink(\"csv://out/not_de.csv\", from=\"not_de\")\n    @sink(\"csv://out/ex.csv\", from=\"ex\")\n",
    );
    p.runi(&["compile", "--scenario", "s.feature", "--out", "s.dag"])
        .ok();
    p.runi(&["run", "--dag", "s.dag"]).ok();
    assert_eq!(p.read("out/de.csv"), "id\n1\n3\n4\n");
    // SQL's NOT IN: a null `cust` is not known to be outside the list.
    assert_eq!(p.read("out/not_de.csv"), "id\n2\n");
    assert_eq!(p.read("out/ex.csv"), "id\n5\n");
    // A correlated scalar subquery: only customer a has two orders (1 and 4, average 2.5).
    assert_eq!(p.read("out/over.csv"), "id\n4\n");

    p.write(
        "c.feature",
        "Feature: c\n  Scenario: c\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"t\", sql=\"SHOW TABLES\")\n    @sink(\"csv://out/t.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "c.feature", "--dry-run"])
        .fails(2, &["c.feature:4:5:", "step `t`", "not the catalog"]);
}

#[test]
fn codes_a_scenario_contract_calls_text_are_read_as_written() {
    // CSV inference reads `01` and `2.50` as numbers; the contract says text.
    let p = Project::empty();
    p.write("codes.csv", "id,code\n1,01\n2,2.50\n3,07\n");
    p.write(
        "c.yaml",
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - { name: id, logicalType: integer }\n      - { name: code, logicalType: string, enum: [01, 2.50] }\n",
    );
    p.write(
        "s.feature",
        "Feature: s\n  Scenario: s\n    @source(\"csv://codes.csv\", name=\"codes\")\n    @sink(\"csv://out/ok.csv\")\n    @sink(\"json://out/bad.ndjson\", when=\"invalid\")\n    Given the contract: c.yaml\n",
    );
    p.runi(&["run", "--scenario", "s.feature"]).ok();
    assert_eq!(p.read("out/ok.csv"), "id,code\n1,01\n2,2.50\n");
    let bad = p.read("out/bad.ndjson");
    assert!(bad.contains("\"code\":\"07\""), "{bad}");
}

/// A Parquet float column whose bounds leave NaN out (as every Parquet writer does) is read
/// value by value: DataFusion had taken equal bounds for a constant column and read
/// `[NaN, 1.0, 1.0]` as three `1.0`s, so the contract's `maximum` passed the NaN row.
#[test]
fn parquet_floats_with_nan_are_read_as_written() {
    use arrow::array::{Float64Array, Int64Array};
    use std::sync::Arc;

    let p = Project::empty();
    p.write_parquet(
        "n.parquet",
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            ("x", Arc::new(Float64Array::from(vec![f64::NAN, 1.0, 1.0]))),
        ],
    );
    p.write(
        "c.yaml",
        "id: c\nversion: 1.0.0\nschema:\n  - name: n\n    properties:\n      - name: id\n        logicalType: integer\n      - name: x\n        logicalType: number\n        logicalTypeOptions: { minimum: 0, maximum: 10 }\n",
    );
    p.write(
        "n.feature",
        r#"@feature(name="N")
Feature: N
  Scenario: Floats
    @source("parquet://n.parquet", name="n")
    @step(name="s", sql="SELECT id, x, isnan(x) AS is_nan, max(x) OVER () AS top FROM n")
    @sink("json://out/valid.ndjson")
    @sink("json://out/rejected.ndjson", when="invalid")
    Given the contract: c.yaml
"#,
    );
    for slices in ["inprocess", "2"] {
        let run = p.run_json("n.feature", slices);
        assert_eq!(
            rule_counts(&run),
            // NaN is within no bound, lower or upper.
            serde_json::json!({"x:maximum": 1, "x:minimum": 1}),
            "{slices}"
        );
        let rejected = p.read("out/rejected.ndjson");
        assert!(
            rejected.contains("\"id\":1") && rejected.contains("\"is_nan\":true"),
            "{slices}: {rejected}"
        );
        let valid = p.read("out/valid.ndjson");
        assert_eq!(valid.lines().count(), 2, "{slices}: {valid}");
        assert!(!valid.contains("\"is_nan\":true"), "{slices}: {valid}");
    }
}

/// A DAG file holds the whole plan as one protobuf message, about six levels deep per
/// step: a chain of 30 steps (prost's default limit refused 12) runs from its DAG file as
/// from its Feature, in one process and on slices.
#[test]
fn a_long_chain_of_steps_runs_from_its_dag_file() {
    let p = Project::fixture("orders");
    let mut feature =
        String::from("Feature: F\n  Scenario: S\n    @source(\"csv://orders.csv\", name=\"o\")\n");
    for i in 0..30 {
        feature.push_str(&format!(
            "    @step(name=\"s{i}\", sql=\"SELECT * FROM input WHERE amount > {i}\")\n"
        ));
    }
    feature.push_str("    @sink(\"csv://out/chain.csv\")\n");
    p.write("chain.feature", &feature);
    p.runi(&[
        "compile",
        "--scenario",
        "chain.feature",
        "--out",
        "chain.dag",
    ])
    .ok();
    let mut answers = Vec::new();
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--dag", "chain.dag", "--slices", slices])
            .ok();
        answers.push(count_rows(&p.path().join("out/chain.csv"), None));
    }
    let expected = count_rows(&p.path().join("orders.csv"), Some("amount > 29"));
    assert!(expected > 0);
    assert_eq!(answers, vec![expected, expected]);
}

/// Without a contract too, sinks write every column as nullable (the docs' promise), so
/// files of one dataset agree however their run was planned.
#[test]
fn sinks_write_every_column_nullable() {
    let p = Project::fixture("orders");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://orders.csv\", name=\"o\")\n    @step(name=\"c\", sql=\"SELECT 1 AS one, 'x' AS s, coalesce(customer, '') AS c, named_struct('k', 1) AS st FROM o\")\n    @sink(\"parquet://out/p.parquet\")\n    @sink(\"arrow://out/a.arrow\")\n",
    );
    p.runi(&["run", "--scenario", "f.feature"]).ok();
    let parquet = std::fs::File::open(p.path().join("out/p.parquet")).expect("parquet");
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
            .expect("parquet reader");
    let arrow_file = std::fs::File::open(p.path().join("out/a.arrow")).expect("arrow");
    let ipc = arrow::ipc::reader::FileReader::try_new(arrow_file, None).expect("arrow reader");
    for schema in [reader.schema().clone(), ipc.schema()] {
        assert_eq!(schema.fields().len(), 4);
        for f in schema.fields() {
            assert!(f.is_nullable(), "{f:?}");
        }
        // Inside nested types too (an append compares them).
        let arrow::datatypes::DataType::Struct(inner) = schema.field(3).data_type() else {
            panic!("not a struct: {:?}", schema.field(3));
        };
        assert!(inner[0].is_nullable(), "{inner:?}");
    }
}

/// Dictionary-encoded columns failed Arrow sinks ("Dictionary replacement detected") as
/// soon as a second batch brought another dictionary, and made appends of plain and
/// dictionary files refuse each other. Sinks write a dictionary's values.
#[test]
fn dictionary_columns_are_written_as_their_values() {
    let p = Project::fixture("orders");
    let mut csv = String::from("id,cat\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},c{}\n", i % 7 + i / 9000));
    }
    p.write("many.csv", &csv);
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://many.csv\", name=\"m\")\n    @step(name=\"d\", sql=\"SELECT id, arrow_cast(cat, 'Dictionary(Int32, Utf8)') AS cat FROM m\")\n    @sink(\"arrow://out/a.arrow\")\n    @sink(\"arrow://out/folder/\", mode=\"append\")\n",
    );
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "f.feature", "--slices", slices])
            .ok();
    }
    let arrow_file = std::fs::File::open(p.path().join("out/a.arrow")).expect("arrow");
    let ipc = arrow::ipc::reader::FileReader::try_new(arrow_file, None).expect("arrow reader");
    assert_eq!(
        ipc.schema().field(1).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    let rows: usize = ipc.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 20_000);
    let parts = std::fs::read_dir(p.path().join("out/folder"))
        .expect("folder")
        .count();
    assert!(parts >= 2, "{parts} part files after two appends");
}

/// Inference reads the first 10 000 rows; a later timestamp with more fractional digits,
/// or a date and time in a column of dates, was read at the sampled type and cut without
/// a word. Temporal columns take the type every row supports.
#[test]
fn later_times_are_not_cut_to_the_type_of_the_first_rows() {
    let p = Project::fixture("orders");
    let mut csv = String::from("id,at,day\n");
    for i in 0..11_000 {
        csv.push_str(&format!("{i},2024-01-01T00:00:00,2024-01-01\n"));
    }
    csv.push_str("11000,2024-01-01T00:00:00.123456789,2024-01-02T10:30:00\n");
    p.write("late.csv", &csv);
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://late.csv\", name=\"l\")\n    @step(name=\"last\", sql=\"SELECT id, CAST(at AS VARCHAR) AS at, CAST(day AS VARCHAR) AS day FROM l WHERE id = 11000\")\n    @sink(\"json://out/last.ndjson\")\n",
    );
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "f.feature", "--slices", slices])
            .ok();
        let last = p.read("out/last.ndjson");
        assert!(
            last.contains("2024-01-01T00:00:00.123456789") && last.contains("2024-01-02T10:30:00"),
            "{slices}: {last}"
        );
    }
}

/// Files of one CSV folder that disagree on a column's type failed to compile ("Fail to
/// merge schema field"), naming no file; integers in one file and decimals in another are
/// one column of floats, as in DuckDB.
#[test]
fn csv_files_that_disagree_on_a_type_are_read_as_the_type_that_holds_both() {
    let p = Project::fixture("orders");
    p.write("d/1.csv", "a,b,t\n1,x,2024-01-01\n2,y,2024-01-02\n");
    p.write(
        "d/2.csv",
        "a,b,t\n1.5,3,2024-01-03T10:00:00\n2.5,4,2024-01-04T00:00:00.5\n",
    );
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://d/\", name=\"d\")\n    @step(name=\"s\", sql=\"SELECT sum(a) AS a, count(b) AS b, max(t) AS t, arrow_typeof(max(b)) AS bt FROM d\")\n    @sink(\"json://out/x.ndjson\")\n",
    );
    p.runi(&["run", "--scenario", "f.feature"]).ok();
    let out = p.read("out/x.ndjson");
    assert!(out.contains("\"a\":7.0"), "{out}");
    assert!(out.contains("\"b\":4"), "{out}");
    assert!(out.contains("\"t\":\"2024-01-04T00:00:00.500\""), "{out}");
    assert!(out.contains("\"bt\":\"Utf8\""), "{out}");
}
