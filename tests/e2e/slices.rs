//! `runi run` with its stages split across slice processes (`--slices`).

use serde_json::Value;

use crate::support::{Project, count_rows};

/// A run's report without what differs between runs.
fn counts(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for key in ["run_id", "elapsed_ms", "slices"] {
        o.remove(key);
    }
    v
}

#[test]
fn the_example_split_across_two_slices_counts_and_writes_like_one_process() {
    let p = Project::example(100_000);
    let split = p
        .runi(&[
            "run",
            "--scenario",
            "trades.feature",
            "--slices",
            "2",
            "-o",
            "json",
        ])
        .ok()
        .json();
    // The input is split into tasks that ran in the two slices, not here.
    assert_eq!(split["slices"], 2, "{split:#}");
    let silver_split = count_rows(&p.path().join("out/trades_silver"), None);
    let rejected_split = count_rows(&p.path().join("out/rejected.ndjson"), None);
    let flagged_split = count_rows(
        &p.path().join("out/rejected.ndjson"),
        Some("array_length(_violations) > 1"),
    );

    let local = p
        .runi(&[
            "run",
            "--scenario",
            "trades.feature",
            "--slices",
            "inprocess",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(local["slices"], 0);
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
