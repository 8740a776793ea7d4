//! SPEC §3 journey 1 in embedded mode: `herd init` → `compile` → `run` → `status` → `sql` →
//! `lineage`, each a separate `runi` process on one state directory; plus what happens to a
//! run killed with SIGKILL, contract drift, and the errors of this journey.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Project, count_rows, repo};

/// `runi herd init finance` in an empty folder, and its sample run once.
fn finance_project() -> (Project, String) {
    let p = Project::empty();
    p.runi(&["herd", "init", "finance"]).ok();
    p.runi(&[
        "compile",
        "--scenario",
        "features/sample.feature",
        "--out",
        "dags/sample.dag",
    ])
    .ok();
    let run = p
        .runi(&["run", "--dag", "dags/sample.dag", "-o", "json"])
        .ok();
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    (p, run_id)
}

#[test]
fn the_embedded_journey_records_runs_datasets_and_lineage() {
    let (p, run_id) = finance_project();

    // status: the run as Barn recorded it, with exact counters.
    let runs = p.runi(&["status", "-o", "json"]).ok().json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["id"], run_id.as_str());
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["herd"], "finance");
    assert_eq!(run["job"], "Sample / Validate customers");
    assert_eq!(run["contract"]["id"], "customer");
    assert_eq!(run["contract"]["version"], "1.0.0");
    assert!(
        run["contract"]["hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(!run["actor"].as_str().unwrap().is_empty());
    let c = &run["counters"];
    assert_eq!(c["sources"][0]["name"], "customers");
    assert_eq!(c["sources"][0]["rows"], 6);
    assert_eq!(c["steps"][0]["rows"], 5);
    assert_eq!(c["contracts"][0]["valid"], 2);
    assert_eq!(c["contracts"][0]["rejected"], 3);
    let per_rule = &c["contracts"][0]["rejected_per_rule"];
    assert_eq!(per_rule["credit_limit:minimum"], 1);
    assert_eq!(per_rule["email:required"], 1);
    assert_eq!(per_rule["status:valid_values"], 1);
    assert_eq!(c["sinks"][0]["rows"], 2);
    assert_eq!(c["sinks"][1]["rows"], 3);

    // One run by a prefix of its id, as a table.
    let shown = p.runi(&["status", "--runid", &run_id[..13]]).ok();
    assert!(shown.stdout.contains("succeeded"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("status:valid_values"),
        "{}",
        shown.stdout
    );

    // sql: the sink registered the `customers` dataset.
    let count = p
        .runi(&[
            "sql",
            "--herd",
            "finance",
            "-o",
            "json",
            "SELECT count(*) AS n FROM customers",
        ])
        .ok()
        .json();
    assert_eq!(count[0]["n"], 2);
    // The same query split into stages across two slice processes.
    let sliced = p
        .runi(&[
            "sql",
            "--herd",
            "finance",
            "--slices",
            "2",
            "-o",
            "csv",
            "SELECT customer_id, count(*) AS n FROM customers GROUP BY customer_id ORDER BY 1",
        ])
        .ok();
    assert_eq!(sliced.stdout, "customer_id,n\nC0001,1\nC0002,1\n");
    // Several statements at once, and a `;` before a comment ends a statement.
    let two = p
        .runi(&["sql", "-o", "csv", "SELECT 1 AS a; SELECT 'x;y' AS b"])
        .ok();
    // (CSV tables apart by a blank line.)
    assert_eq!(two.stdout, "a\n1\n\nb\nx;y\n");
    let script = p
        .runi_stdin(
            &["sql", "-o", "csv"],
            "SELECT count(*) AS n FROM customers; -- all of them\nSELECT 2 AS m;\n",
        )
        .ok();
    assert_eq!(script.stdout, "n\n2\n\nm\n2\n");
    let csv = p
        .runi(&[
            "sql",
            "-o",
            "csv",
            "SELECT customer_id FROM customers ORDER BY customer_id",
        ])
        .ok();
    assert_eq!(csv.stdout, "customer_id\nC0001\nC0002\n");

    // The shell reads statements from stdin when it is not a terminal.
    let shell = p.runi_stdin(
        &["sql"],
        "\\d\nSELECT count(*) AS n\n  FROM customers\n WHERE credit_limit > 0;\n\\q\n",
    );
    let shell = shell.ok();
    assert!(shell.stdout.contains("customers"), "{}", shell.stdout);
    assert!(shell.stdout.contains("| 2 |"), "{}", shell.stdout);

    // lineage: OpenLineage events that validate against the spec.
    let events = p
        .runi(&["lineage", "--runid", &run_id, "-o", "openlineage"])
        .ok();
    let events: Vec<Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventType"], "START");
    assert_eq!(events[1]["eventType"], "COMPLETE");
    for e in &events {
        assert_eq!(e["run"]["runId"], run_id.as_str());
        validate_openlineage(e);
    }
    // The validation can fail: a broken run id, a facet without its producer.
    let mut bad = events[0].clone();
    bad["run"]["runId"] = Value::String("run-1".into());
    bad["inputs"][0]["facets"]["schema"]
        .as_object_mut()
        .unwrap()
        .remove("_producer");
    let errors = openlineage_errors(&bad);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("runId") || e.contains("uuid")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("_producer")),
        "{errors:#?}"
    );
    let output = events[1]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "customers")
        .expect("the customers dataset is an output");
    assert_eq!(output["namespace"], "runink://finance");
    let email = &output["facets"]["columnLineage"]["fields"]["email"]["inputFields"];
    assert_eq!(email[0]["field"], "email");
    assert!(
        email[0]["name"]
            .as_str()
            .unwrap()
            .ends_with("data/customers.csv")
    );

    let by_dataset = p
        .runi(&["lineage", "--dataset", "finance.customers", "-o", "json"])
        .ok()
        .json();
    assert_eq!(by_dataset["runs"][0]["id"], run_id.as_str());
    let dot = p.runi(&["lineage", "--runid", &run_id, "-o", "dot"]).ok();
    assert!(dot.stdout.starts_with("digraph lineage {"));
    assert!(
        dot.stdout
            .contains("\"source:customers.email\" -> \"dataset:finance.customers.email\"")
    );

    // SVG through Graphviz when it is installed, a clear error when it is not.
    let svg = p.runi(&["lineage", "--runid", &run_id, "-o", "svg"]);
    if svg.code == 0 {
        assert!(svg.stdout.contains("<svg"), "{}", svg.stdout);
    } else {
        svg.fails(1, &["needs Graphviz's `dot`"]);
    }

    // contract list: the version the run registered, and the dataset that uses it.
    let contracts = p.runi(&["contract", "list", "-o", "json"]).ok().json();
    assert_eq!(contracts[0]["id"], "customer");
    assert_eq!(contracts[0]["datasets"][0], "finance.customers");

    // A Scenario reads the dataset back by name.
    p.write(
        "features/top.feature",
        r#"@feature(name="Top", herd="finance")
Feature: Top customers
  Scenario: Copy
    @source("dataset://finance/customers")
    @sink("csv://out/top.csv")
    Given customers
"#,
    );
    let top = p
        .runi(&["run", "--scenario", "features/top.feature", "-o", "json"])
        .ok()
        .json();
    assert_eq!(top["sinks"][0]["rows"], 2);
    assert_eq!(count_rows(&p.path().join("out/top.csv"), None), 2);
    let lineage = p
        .runi(&["lineage", "--dataset", "finance.customers", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        lineage["runs"].as_array().unwrap().len(),
        2,
        "upstream and downstream runs"
    );

    // A compiled DAG reads the dataset where it is when the DAG runs: registered again
    // elsewhere (with one valid customer), the old files are not read.
    p.runi(&[
        "compile",
        "--scenario",
        "features/top.feature",
        "--out",
        "dags/top.dag",
    ])
    .ok();
    let sample = p.read("features/sample.feature");
    p.write(
        "features/again.feature",
        &sample.replace("out/customers/", "out/customers_v2/"),
    );
    let csv = p.read("data/customers.csv");
    let mut lines = csv.lines();
    let one = format!("{}\n{}\n", lines.next().unwrap(), lines.next().unwrap());
    p.write("data/one.csv", &one);
    p.runi(&[
        "run",
        "--scenario",
        "features/again.feature",
        "--input",
        "customers=csv://data/one.csv",
    ])
    .ok();
    let again = p
        .runi(&["run", "--dag", "dags/top.dag", "-o", "json"])
        .ok()
        .json();
    assert_eq!(again["sources"][0]["rows"], 1, "{again}");
    std::fs::remove_dir_all(p.path().join("out/customers")).unwrap();
    p.runi(&["run", "--dag", "dags/top.dag"]).ok();
}

/// Validates one event against OpenLineage's RunEvent and its facets against their
/// schemas, offline (see tests/data/openlineage/README.md for the versions).
fn validate_openlineage(event: &Value) {
    let errors = openlineage_errors(event);
    assert!(
        errors.is_empty(),
        "not valid OpenLineage: {errors:#?}\n{event:#}"
    );
}

fn openlineage_errors(event: &Value) -> Vec<String> {
    let mut all = Vec::new();
    let dir = repo().join("tests/data/openlineage");
    let load = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let core = load("OpenLineage-2-0-7.json");
    // The facet schemas name the core spec by the versions they were published with.
    let aliased = |id: &str| {
        let mut c = core.clone();
        c["$id"] = Value::String(id.to_string());
        c
    };
    let registry = jsonschema::Registry::new()
        .add(
            "https://openlineage.io/spec/2-0-7/OpenLineage.json",
            core.clone(),
        )
        .unwrap()
        .add(
            "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json",
            load("SchemaDatasetFacet-1-0-0.json"),
        )
        .unwrap()
        .add(
            "https://openlineage.io/spec/facets/1-1-0/ColumnLineageDatasetFacet.json",
            load("ColumnLineageDatasetFacet-1-1-0.json"),
        )
        .unwrap()
        .add(
            "https://openlineage.io/spec/2-0-2/OpenLineage.json",
            aliased("https://openlineage.io/spec/2-0-2/OpenLineage.json"),
        )
        .unwrap()
        .add(
            "https://openlineage.io/spec/1-0-2/OpenLineage.json",
            aliased("https://openlineage.io/spec/1-0-2/OpenLineage.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let check = |schema: Value, instance: &Value, what: &str| {
        let validator = jsonschema::options()
            .with_registry(&registry)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        validator
            .iter_errors(instance)
            .map(|e| format!("{what}: {e} at {}", e.instance_path()))
            .collect::<Vec<_>>()
    };
    all.extend(check(
        serde_json::json!({"$ref": "https://openlineage.io/spec/2-0-7/OpenLineage.json#/$defs/RunEvent"}),
        event,
        "the RunEvent",
    ));
    for dataset in event["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(event["outputs"].as_array().unwrap())
    {
        let facets = &dataset["facets"];
        all.extend(check(
            serde_json::json!({"$ref": "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"}),
            &facets["schema"],
            "the schema facet",
        ));
        if let Some(columns) = facets.get("columnLineage") {
            all.extend(check(
                serde_json::json!({"$ref": "https://openlineage.io/spec/facets/1-1-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"}),
                columns,
                "the column lineage facet",
            ));
        }
    }
    all
}

/// The orders fixture with a Scenario whose `exec=` step, once real rows arrive, writes its
/// pid to `running.pid` and blocks; compiled to `hang.dag`.
fn hanging_project() -> Project {
    hanging_project_with("    @sink(\"parquet://out/hung/\")\n")
}

/// The same, with `rest` (steps and sinks) after the `stuck` step.
fn hanging_project_with(rest: &str) -> Project {
    let p = Project::fixture("orders");
    // An exec step that answers the compile-time probe and then, with real rows, says it
    // is running (its pid) and blocks.
    p.write(
        "hang.sh",
        "#!/bin/sh\ntmp=$(mktemp)\ncat > \"$tmp\"\nif [ \"$(wc -c < \"$tmp\")\" -gt 1200 ]; then\n  echo $$ > running.pid.tmp && mv running.pid.tmp running.pid\n  exec sleep 600\nfi\ncat \"$tmp\"\n",
    );
    p.write(
        "hang.feature",
        &format!(
            "@feature(name=\"Hang\", herd=\"shop\")\nFeature: Hang\n  Scenario: Hang\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"stuck\", exec=\"sh hang.sh\")\n{rest}    Given orders\n"
        ),
    );
    p.runi(&["compile", "--scenario", "hang.feature", "--out", "hang.dag"])
        .ok();
    p
}

fn spawn_run(p: &Project) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_runi"))
        .args(["run", "--dag", "hang.dag"])
        .current_dir(p.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_run_interrupted_with_ctrl_c_is_recorded_as_cancelled() {
    interrupted_with("-INT");
}

/// `timeout`, systemd and `docker stop` send SIGTERM: the same clean cancel as Ctrl-C.
#[test]
fn a_run_stopped_with_sigterm_is_recorded_as_cancelled() {
    interrupted_with("-TERM");
}

/// Interrupted while a relation read twice is being computed once into the run's spool:
/// cancelled the same way, and the spool goes with the run.
#[test]
fn a_run_interrupted_while_spooling_is_cancelled_and_leaves_no_spool() {
    let p = hanging_project_with(
        "    @step(name=\"big\", sql=\"SELECT * FROM stuck WHERE amount > 10\")\n    @sink(\"parquet://out/all/\", from=\"stuck\")\n    @sink(\"parquet://out/big/\", from=\"big\")\n",
    );
    interrupted(&p, "-INT");
    p.assert_spool_empty();
}

fn interrupted_with(signal: &str) {
    interrupted(&hanging_project(), signal);
}

fn interrupted(p: &Project, signal: &str) {
    let mut child = spawn_run(p);
    let step_pid = wait_for_file(&p.path().join("running.pid"));
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    // Cancelling stopped the step's program (it was blocked, writing nothing).
    let still_running = running(step_pid.trim());
    let _ = Command::new("kill").args(["-9", step_pid.trim()]).status();
    assert_eq!(status.code(), Some(130));
    assert!(
        !still_running,
        "the exec= program outlived the cancelled run"
    );
    let runs = p.runi(&["status", "-o", "json"]).ok().json();
    assert_eq!(runs[0]["state"], "cancelled", "{runs:#}");
    assert!(
        p.files("out").is_empty(),
        "nothing of a cancelled run is visible"
    );
}

#[test]
fn a_run_killed_with_sigkill_is_recorded_as_failed() {
    let p = hanging_project();
    let mut child = spawn_run(&p);
    let pid_file = p.path().join("running.pid");
    let step_pid = wait_for_file(&pid_file);

    let listed = p.runi(&["status", "-o", "json"]).ok().json();
    assert_eq!(listed[0]["state"], "running", "{listed:#}");

    child.kill().unwrap();
    child.wait().unwrap();
    // The exec= program dies with the run (SIGKILL runs no clean-up: the kernel's parent-death
    // signal does it), even though it was blocked in a slice.
    let gone = wait_until(|| !running(step_pid.trim()));
    let _ = Command::new("kill").args(["-9", step_pid.trim()]).status();
    assert!(gone, "the exec= program outlived a run killed with SIGKILL");

    let after = p.runi(&["status", "-o", "json"]).ok().json();
    assert_eq!(after[0]["state"], "failed", "{after:#}");
    assert!(
        after[0]["error"].as_str().unwrap().starts_with("lost:"),
        "{after:#}"
    );
    assert!(
        p.files("out").is_empty(),
        "no output of a killed run is visible"
    );
    // The store is readable and takes new work.
    p.runi(&["herd", "list"]).ok();
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
    ])
    .ok();
}

/// Whether a process exists and is not a zombie.
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// Whether `condition` came true within a minute (looked at every 20 ms).
fn wait_until(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// Waits for a file another process writes (its content), failing after a minute.
fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn contract_drift_follows_the_herd_policy() {
    let (p, _) = finance_project();
    let before = count_rows(&p.path().join("out/customers"), None);
    // A new contract version: the dataset is registered with 1.0.0.
    let contract = p
        .read("contracts/customer.yaml")
        .replace("version: 1.0.0", "version: 1.1.0");
    assert!(contract.contains("1.1.0"));
    p.write("contracts/customer.yaml", &contract);
    p.write(
        "data/customers.csv",
        &(p.read("data/customers.csv") + "C0099,new@example.com,active,10\n"),
    );

    p.runi(&["run", "--scenario", "features/sample.feature"])
        .fails(
            2,
            &[
                "contract drift",
                "finance.customers",
                "customer@1.0.0",
                "customer@1.1.0",
                "nothing was run or written",
            ],
        );
    assert_eq!(count_rows(&p.path().join("out/customers"), None), before);

    // A herd that allows drift: the run goes on, says so, and the dataset moves on.
    let herd = p
        .read("herd.toml")
        .replace("block_on_drift = true", "block_on_drift = false");
    p.write("herd.toml", &herd);
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    let allowed = p
        .runi(&["run", "--scenario", "features/sample.feature"])
        .ok();
    assert!(
        allowed.stderr.contains("warning: contract drift"),
        "{}",
        allowed.stderr
    );
    let datasets = p.runi(&["contract", "list", "-o", "json"]).ok().json();
    let v11 = datasets
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["version"] == "1.1.0")
        .unwrap();
    assert_eq!(v11["datasets"][0], "finance.customers");
    assert_eq!(v11["registered"], true);

    // Edited without a new version: the run warns, and `contract list` shows the hash it
    // enforced (and the dataset under it) beside the registered text.
    let edited = p.read("contracts/customer.yaml");
    assert!(edited.contains("minimum: 0"), "{edited}");
    p.write(
        "contracts/customer.yaml",
        &edited.replacen("minimum: 0", "minimum: 1", 1),
    );
    let run = p
        .runi(&["run", "--scenario", "features/sample.feature", "-o", "json"])
        .ok();
    let used = run.json()["contract"]["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let listed = p.runi(&["contract", "list", "-o", "json"]).ok().json();
    let rows: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["version"] == "1.1.0")
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    let row = rows
        .iter()
        .find(|c| c["hash"] == used.as_str())
        .expect("used hash listed");
    assert_eq!(row["registered"], false, "{listed}");
    assert_eq!(row["runs"], 1, "{listed}");
    assert_eq!(row["datasets"][0], "finance.customers", "{listed}");
}

#[test]
fn journey_errors_name_what_is_wrong() {
    let (p, _) = finance_project();
    // A Scenario in a herd nobody registered.
    p.write(
        "features/other.feature",
        &p.read("features/sample.feature")
            .replace("herd=\"finance\"", "herd=\"ghost\""),
    );
    p.runi(&["run", "--scenario", "features/other.feature"])
        .fails(2, &["unknown herd `ghost`", "runi herd init ghost"]);
    p.runi(&["sql", "--herd", "finance", "SELECT * FROM nope"])
        .fails(
            2,
            &[
                "unknown dataset `nope` in herd `finance`",
                "datasets: customers",
            ],
        );
    p.runi(&["sql", "--herd", "ghost", "SELECT 1"])
        .fails(2, &["unknown herd `ghost`"]);
    p.runi(&["sql", "SELEC 1"]).fails(2, &["error"]);
    // Read-only: no tables created, nothing written.
    p.runi(&["sql", "CREATE TABLE t AS SELECT 1"])
        .fails(2, &["not supported"]);
    p.runi(&["sql", "COPY customers TO 'x.csv'"])
        .fails(2, &["error"]);
    assert!(!p.path().join("x.csv").exists());
    // A bad dataset name is a compile error at its place.
    p.write(
        "features/badname.feature",
        &p.read("features/sample.feature")
            .replace("dataset=\"customers\"", "dataset=\"sales.daily\""),
    );
    p.runi(&[
        "compile",
        "--scenario",
        "features/badname.feature",
        "--dry-run",
    ])
    .fails(2, &["features/badname.feature:", "cannot name a dataset"]);
    p.runi(&["status", "--runid", "ffffffff"])
        .fails(2, &["no run `ffffffff`"]);
    p.runi(&["lineage", "--dataset", "finance.nope"])
        .fails(2, &["unknown dataset `nope` in herd `finance`"]);
    p.runi(&["lineage", "--dataset", "nodot"])
        .fails(2, &["HERD.NAME"]);
    p.runi(&["status", "-o", "csv"]).fails(2, &["-o csv"]);
    p.write(
        "features/missing.feature",
        "@feature(name=\"M\", herd=\"finance\")\nFeature: M\n  Scenario: M\n    @source(\"dataset://finance/nope\")\n    @sink(\"csv://out/m.csv\")\n    Given x\n",
    );
    p.runi(&[
        "compile",
        "--scenario",
        "features/missing.feature",
        "--dry-run",
    ])
    .fails(
        2,
        &[
            "features/missing.feature:4:",
            "unknown dataset `nope` in herd `finance`",
        ],
    );
}

#[test]
fn a_scenario_without_a_herd_runs_in_the_default_herd() {
    let p = Project::fixture("orders");
    let feature = p.read("orders.feature").replace(", herd=\"shop\"", "");
    p.write("noherd.feature", &feature);
    p.runi(&[
        "run",
        "--scenario",
        "noherd.feature",
        "--name",
        "Route orders",
    ])
    .ok();
    let runs = p.runi(&["status", "-o", "json"]).ok().json();
    assert_eq!(runs[0]["herd"], "default");
    let herds = p.runi(&["herd", "list", "-o", "json"]).ok().json();
    assert!(
        herds
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == "default")
    );
}

#[test]
fn a_run_whose_output_pipe_closes_is_recorded_and_leaves_no_lock() {
    // `runi run … | head -0`: the summary meets a closed pipe after the run is recorded.
    let p = Project::fixture("orders");
    p.runi(&["herd", "init", "shop"]).ok();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runi"))
        .args([
            "run",
            "--scenario",
            "orders.feature",
            "--name",
            "Route orders",
        ])
        .current_dir(p.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait().unwrap();
    let runs = p.runi(&["status", "-o", "json"]).ok().json();
    assert_eq!(runs[0]["state"], "succeeded", "{runs}");
    let locks: Vec<_> = std::fs::read_dir(p.path().join(".runink/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
}

/// Commands that only read leave no Barn behind where there was none: `runi status` typed
/// in the wrong folder must not make a `.runink/` there. The first run makes it.
#[test]
fn reading_commands_make_no_barn() {
    let p = Project::empty();
    p.write("d.csv", "a,b\n1,2\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://d.csv\")\n    @sink(\"json://out/x.ndjson\")\n",
    );
    p.runi(&["status"]).ok();
    assert_eq!(p.runi(&["status", "-o", "json"]).ok().json(), json!([]));
    assert_eq!(
        p.runi(&["herd", "list", "-o", "json"]).ok().json(),
        json!([])
    );
    p.runi(&["herd", "show", "finance"])
        .fails(2, &["no herd named `finance`"]);
    p.runi(&["contract", "list"]).ok();
    p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .ok();
    assert!(
        !p.path().join(".runink").exists(),
        "a reading command made a Barn"
    );
    p.runi(&["run", "--scenario", "f.feature"]).ok();
    assert!(p.path().join(".runink").exists());
    assert_eq!(
        p.runi(&["status", "-o", "json"]).ok().json()[0]["state"],
        "succeeded"
    );
}

/// A signal while the Scenario still compiles (here: while an `exec=` step's schema probe
/// runs) cancels the run as one during execution does, also when the shell started runi
/// with SIGINT ignored (`runi run … &` in a script): exit 130, a failure document with
/// `-o json`, nothing recorded or written.
#[test]
fn a_run_interrupted_while_it_compiles_is_cancelled() {
    let p = Project::fixture("orders");
    // The probe says it runs (its pid), then waits on a FIFO the test writes to once the
    // signal is sent.
    p.write(
        "probe.sh",
        "#!/bin/sh\ntmp=$(mktemp)\ncat > \"$tmp\"\necho $$ > probing.pid.tmp && mv probing.pid.tmp probing.pid\nread line < gate.fifo\ncat \"$tmp\"\n",
    );
    p.write(
        "probe.feature",
        "Feature: Probe\n  Scenario: Probe\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"probed\", exec=\"sh probe.sh\")\n    @sink(\"parquet://out/probed/\")\n",
    );
    let made = Command::new("mkfifo")
        .arg(p.path().join("gate.fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    // Started the way a script's `runi run … &` is: with SIGINT ignored.
    let child = Command::new("sh")
        .args([
            "-c",
            &format!(
                "trap '' INT; exec {} run --scenario probe.feature -o json",
                env!("CARGO_BIN_EXE_runi")
            ),
        ])
        .current_dir(p.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&p.path().join("probing.pid"));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    std::fs::write(p.path().join("gate.fifo"), "go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["status"], "interrupted", "{doc}");
    assert!(p.files("out").is_empty(), "nothing of it is visible");
    assert_eq!(p.runi(&["status", "-o", "json"]).ok().json(), json!([]));
}
