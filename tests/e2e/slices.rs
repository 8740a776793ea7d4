//! `runi run` with its stages split across slice processes (`--slices`).

use serde_json::Value;

use crate::support::{Project, count_rows};

/// A run's report without what differs between runs.
fn counts(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for key in ["run_id", "elapsed_ms", "slices", "stages"] {
        o.remove(key);
    }
    v
}

#[test]
fn the_example_split_across_two_slices_counts_and_writes_like_one_process() {
    let p = Project::example(100_000);
    p.runi(&[
        "compile",
        "--scenario",
        "trades.feature",
        "--out",
        "dags/trades.dag",
    ])
    .ok();
    let dag: Value =
        serde_json::from_slice(&std::fs::read(p.path().join("dags/trades.dag")).unwrap()).unwrap();
    let split = p
        .runi(&[
            "run",
            "--dag",
            "dags/trades.dag",
            "--slices",
            "2",
            "-o",
            "json",
        ])
        .ok()
        .json();
    // The input is split into tasks that ran in the two slices, not here.
    assert_eq!(split["slices"], 2, "{split:#}");
    // The report names the stages: the head here (enforcement, sinks), the trades read and
    // joined in two tasks, the instruments read once and broadcast to both.
    let stages = split["stages"].as_array().expect("stages in the report");
    let ops = |s: &Value| -> Vec<String> {
        s["operators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(stages.len(), 3, "{split:#}");
    assert_eq!(stages[0]["stage"], 0);
    assert_eq!(stages[0]["tasks"], 1);
    assert_eq!(stages[0]["feeds"], Value::Null);
    assert!(ops(&stages[0]).contains(&"ContractEnforceExec".to_string()));
    assert_eq!(ops(&stages[0])[0], "SinkExec");
    let trades = stages
        .iter()
        .find(|s| ops(s).contains(&"HashJoinExec".to_string()))
        .expect("a stage joins the trades");
    assert_eq!(trades["tasks"], 2, "{split:#}");
    assert_eq!(trades["feeds"], 0);
    assert_eq!(trades["exchange"], "coalesce");
    let broadcast = stages
        .iter()
        .find(|s| s["exchange"] == "broadcast")
        .expect("a broadcast stage");
    assert_eq!(broadcast["feeds"], trades["stage"]);
    assert_eq!(
        trades["reads"],
        Value::Array(vec![broadcast["stage"].clone()])
    );
    assert_eq!(
        stages[0]["reads"],
        Value::Array(vec![trades["stage"].clone()])
    );
    // The DAG file carries the same graph, as compiled for this machine's cores.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) == 2 {
        assert_eq!(dag["slices"]["slices"], 2, "{dag:#}");
        assert_eq!(&dag["slices"]["stages"], &split["stages"]);
    }
    let silver_split = count_rows(&p.path().join("out/trades_silver"), None);
    let rejected_split = count_rows(&p.path().join("out/rejected.ndjson"), None);
    let flagged_split = count_rows(
        &p.path().join("out/rejected.ndjson"),
        Some("array_length(_violations) > 1"),
    );

    let local = p.run_json("trades.feature", "inprocess");
    assert_eq!(local["slices"], 0);
    assert_eq!(local.get("stages"), Some(&Value::Null), "{local:#}");
    // Taps that ran in slices, and enforcement here, count the same as in one process;
    // `unique` saw every row (200 duplicate trade ids in the generated data).
    assert_eq!(counts(split.clone()), counts(local));
    assert_eq!(
        split["contracts"][0]["rejected_per_rule"]["trade_id:unique"],
        200
    );
    assert_eq!(split["sources"][0]["rows"], 100_000);
    assert_eq!(silver_split, 95_500);
    assert_eq!(
        silver_split,
        count_rows(&p.path().join("out/trades_silver"), None)
    );
    assert_eq!(rejected_split, 4_500);
    assert_eq!(
        flagged_split,
        count_rows(
            &p.path().join("out/rejected.ndjson"),
            Some("array_length(_violations) > 1"),
        )
    );
}

#[test]
fn a_bad_slices_value_is_refused() {
    let p = Project::empty();
    for (value, needle) in [
        ("0", "give `inprocess`"),
        (
            "many",
            "`many` is not `auto`, `inprocess` or a number of slices",
        ),
    ] {
        p.runi(&["run", "--scenario", "x.feature", "--slices", value])
            .fails(2, &[needle]);
    }
}

#[test]
fn a_herd_whose_quota_fits_fewer_slices_gets_fewer() {
    let p = Project::example(100_000);
    // The example's Scenario asks for 1 CPU per slice (@requires); a herd of 1 CPU fits one
    // slice, so the run cannot split and stays in this process.
    p.write(
        "herd.toml",
        &p.read("herd.toml")
            .replace("cpu_limit = \"4000m\"", "cpu_limit = \"1000m\""),
    );
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    let out = p.runi(&[
        "run",
        "--scenario",
        "trades.feature",
        "--slices",
        "3",
        "-o",
        "json",
    ]);
    let run = out.ok();
    assert!(
        run.stderr.contains("fits 1 slice(s)"),
        "stderr: {}",
        run.stderr
    );
    assert_eq!(run.json()["slices"], 0);

    // A quota that fits no slice of what @requires asks is an error, also with `auto`.
    p.write(
        "herd.toml",
        &p.read("herd.toml")
            .replace("cpu_limit = \"1000m\"", "cpu_limit = \"500m\""),
    );
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    p.runi(&["run", "--scenario", "trades.feature"]).fails(
        2,
        &[
            "fits no slice",
            "@requires(cpu=) asks 1 core(s) per slice, the herd's cpu_limit is 0.5",
            "lower @requires",
        ],
    );
    p.runi(&[
        "run",
        "--scenario",
        "trades.feature",
        "--slices",
        "inprocess",
    ])
    .ok();
}

#[test]
fn a_slice_killed_mid_run_fails_the_run_by_name_and_nothing_is_committed() {
    let p = Project::example(100_000);
    // Before it reads its input, an `exec=` step kills the slice it runs in, or, if it runs
    // in the `runi run` process, that process's slices (`runi slice --name ...`). When
    // compile probes the step, neither is there and nothing dies.
    let kill = "for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n != $$ ] || continue; \
                grep -qs -- --name $p/cmdline || continue; \
                if [ $n = $PPID ] || [ $(cut -d' ' -f4 $p/stat) = $PPID ]; then kill -9 $n; fi; \
                done; exec cat";
    let feature = p.read("trades.feature").replace(
        "    @sink(\"parquet://out/trades_silver/\"",
        &format!(
            "    @step(name=\"passed\", exec=\"{kill}\")\n    @sink(\"parquet://out/trades_silver/\""
        ),
    );
    p.write("killed.feature", &feature);
    p.runi(&["run", "--scenario", "killed.feature", "--slices", "2"])
        .fails(1, &["slice `run-", "signal 9"]);
    assert!(p.files("out").is_empty(), "left: {:?}", p.files("out"));
}

/// Inputs that travel to slices in unusual shapes: an Arrow IPC *stream* file (DataFusion's
/// protobuf decodes every Arrow scan as the file format) and a CSV row holding a 1 MB value
/// (larger than a shared-memory pipe's slot).
#[test]
fn arrow_stream_files_and_rows_larger_than_a_pipe_slot_run_on_slices() {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let p = Project::empty();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(p.path().join("events.arrow")).unwrap();
    let mut w = StreamWriter::try_new(file, &schema).unwrap();
    // 4 MB: more than a scan task's share, so its byte ranges go to several tasks.
    for b in 0..5i64 {
        let ids: Vec<i64> = (b * 40_000..(b + 1) * 40_000).collect();
        let notes: Vec<String> = ids.iter().map(|i| format!("event {i:0>12}")).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(notes)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
    }
    w.finish().unwrap();
    // 3 MB of CSV, so the scan splits into tasks; row 1500 carries a 1 MB note.
    let mut csv = String::from("id,note\n");
    for i in 0..3000 {
        let note = if i == 1500 {
            "x".repeat(1 << 20)
        } else {
            format!("{i:0>600}")
        };
        csv.push_str(&format!("{},{note}\n", 10_000 + i));
    }
    p.write("more.csv", &csv);
    p.write(
        "mixed.feature",
        r#"@feature(name="Mixed")
Feature: Mixed
  Scenario: Both
    @source("arrow://events.arrow", name="events")
    @source("csv://more.csv", name="more")
    @step(name="all_rows", sql="SELECT id, length(note) AS len FROM events UNION ALL SELECT id, length(note) AS len FROM more")
    @sink("csv://out/all.csv")
    Given the input
"#,
    );
    let run = p.run_json("mixed.feature", "2");
    assert_eq!(run["slices"], 2, "{run:#}");
    assert_eq!(count_rows(&p.path().join("out/all.csv"), None), 203_000);
    assert_eq!(
        count_rows(&p.path().join("out/all.csv"), Some("len = 1048576")),
        1
    );
}

#[test]
fn global_limits_sorts_and_windows_give_one_answer_on_slices() {
    // A file of a few MiB, scanned as one partition, that the distributed planner splits into
    // tasks; `top` and `ranked` need all of it at once (a sort with LIMIT, a window without
    // PARTITION BY). With the source also read by another step, each task once ran them
    // on its share: 3 rows per task, row numbers restarting in each.
    let p = Project::empty();
    let mut csv = String::from("order_id,qty,note\n");
    for i in 0..100_000u64 {
        // A line break in a quoted value keeps DataFusion from reading the file in ranges.
        let note = if i == 5 {
            "\"two\nlines\""
        } else {
            "some padding to make the file a few MiB"
        };
        csv.push_str(&format!("{i},{},{note}\n", i % 7));
    }
    p.write("orders.csv", &csv);
    p.write(
        "l.feature",
        "Feature: l\n  Scenario: l\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"a\", sql=\"SELECT order_id FROM orders WHERE qty > 3\")\n    @step(name=\"top\", sql=\"SELECT order_id FROM orders ORDER BY order_id DESC LIMIT 3\")\n    @step(name=\"ranked\", sql=\"SELECT order_id, row_number() OVER (ORDER BY order_id) AS rn FROM orders\")\n    @step(name=\"page\", sql=\"SELECT order_id FROM orders LIMIT 5 OFFSET 10\")\n    @sink(\"csv://out/a.csv\", from=\"a\")\n    @sink(\"csv://out/top.csv\", from=\"top\")\n    @sink(\"csv://out/ranked.csv\", from=\"ranked\")\n    @sink(\"csv://out/page.csv\", from=\"page\")\n",
    );
    for slices in ["2", "inprocess"] {
        let _ = std::fs::remove_dir_all(p.path().join("out"));
        p.runi(&["run", "--scenario", "l.feature", "--slices", slices])
            .ok();
        assert_eq!(
            p.read("out/top.csv"),
            "order_id\n99999\n99998\n99997\n",
            "{slices}"
        );
        let ranked = p.read("out/ranked.csv");
        let mut rns: Vec<u64> = ranked
            .lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap().1.parse().unwrap())
            .collect();
        rns.sort_unstable();
        assert_eq!(rns, (1..=100_000).collect::<Vec<u64>>(), "{slices}");
        assert_eq!(p.read("out/page.csv").lines().count(), 6, "{slices}");
    }
}
