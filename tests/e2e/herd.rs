//! Herds in the embedded Barn: `runi herd init|apply|list|show|delete`.

use crate::support::{Project, repo};

#[test]
fn init_scaffolds_a_project_whose_sample_runs() {
    let p = Project::empty();
    let out = p.runi(&["herd", "init", "finance"]).ok();
    assert!(
        out.stdout.contains("herd `finance` registered"),
        "{}",
        out.stdout
    );
    for f in [
        "herd.toml",
        "features/sample.feature",
        "contracts/customer.yaml",
        "data/customers.csv",
    ] {
        assert!(p.path().join(f).is_file(), "{f} missing");
    }
    for d in ["golden", "dags"] {
        assert!(p.path().join(d).is_dir(), "{d} missing");
    }
    let run = p
        .runi(&["run", "--scenario", "features/sample.feature", "-o", "json"])
        .ok()
        .json();
    assert_eq!(run["herd"], "finance");
    assert_eq!(run["contracts"][0]["valid"], 2);
    assert_eq!(run["contracts"][0]["rejected"], 3);
    // Datasets are tables under their own name and under the herd's.
    let rows = p
        .runi(&[
            "sql",
            "SELECT count(*) AS n FROM finance.customers",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(rows[0]["n"], 2, "{rows}");
    // And in the catalog `runink`, schema = herd (SPEC §2).
    let rows = p
        .runi(&[
            "sql",
            "SELECT count(*) AS n FROM runink.finance.customers",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(rows[0]["n"], 2, "{rows}");
    p.runi(&["sql", "SELECT * FROM other.customers"])
        .fails(2, &["unknown table `other.customers`", "herd `finance`"]);
    let checked = p
        .runi(&[
            "compile",
            "--scenario",
            "features/sample.feature",
            "--dry-run",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(checked["ok"], true, "{checked}");

    // A second init keeps what is there, and registers the herd its herd.toml describes
    // (not the template's defaults over an edited file).
    let edited = std::fs::read_to_string(p.path().join("herd.toml"))
        .unwrap()
        .replacen("slices_max = 8", "slices_max = 3", 1);
    assert!(edited.contains("slices_max = 3"), "{edited}");
    p.write("herd.toml", &edited);
    let again = p.runi(&["herd", "init", "finance"]).ok();
    assert!(again.stdout.contains("kept"), "{}", again.stdout);
    let show = p
        .runi(&["herd", "show", "finance", "-o", "json"])
        .ok()
        .json();
    assert_eq!(show["resource_quotas"]["slices_max"], 3, "{show}");
    // A kept herd.toml of another herd is an error, not a silent mismatch.
    p.runi(&["herd", "init", "risk"])
        .fails(2, &["herd.toml", "`finance`, not `risk`"]);
}

#[test]
fn init_with_dir_registers_the_herd_where_the_project_runs() {
    let p = Project::empty();
    p.runi(&["herd", "init", "risk", "--dir", "proj"]).ok();
    // From the project folder, as `herd init` says: its `.runink/` knows the herd.
    let run = p
        .runi_in(
            "proj",
            &["run", "--scenario", "features/sample.feature", "-o", "json"],
        )
        .ok()
        .json();
    assert_eq!(run["herd"], "risk");
    p.runi_in("proj", &["sql", "SELECT count(*) FROM customers"])
        .ok();
    // An explicit state directory is respected.
    p.runi(&["--home", "state", "herd", "init", "ops", "--dir", "ops"])
        .ok();
    let herds = p
        .runi(&["--home", "state", "herd", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(herds[0]["id"], "ops");
}

#[test]
fn server_mode_is_refused_clearly() {
    let p = Project::empty();
    p.runi(&["--server", "http://localhost:7070", "status"])
        .fails(2, &["--server", "not built yet", "embedded Barn"]);
}

#[test]
fn herds_survive_across_processes_and_can_be_changed_and_deleted() {
    let p = Project::empty();
    let herd_file = repo().join("examples/trades/herd.toml");
    p.runi(&["herd", "apply", "-f", herd_file.to_str().unwrap()])
        .ok();
    let list = p.runi(&["herd", "list", "-o", "json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let show = p
        .runi(&["herd", "show", "finance", "-o", "json"])
        .ok()
        .json();
    assert_eq!(show["resource_quotas"]["cpu_millis"], 4000);
    assert_eq!(show["resource_quotas"]["memory_bytes"], 8u64 << 30);
    assert_eq!(
        show["masking_policies"]["field_level_overrides"]["trader_email"],
        "hash"
    );

    p.write("herd.toml", "[herd]\nid = \"finance\"\ndescription = \"smaller\"\n[herd.resource_quotas]\nslices_max = 2\n");
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    let show = p
        .runi(&["herd", "show", "finance", "-o", "json"])
        .ok()
        .json();
    assert_eq!(show["description"], "smaller");
    assert_eq!(show["resource_quotas"]["slices_max"], 2);

    p.runi(&["herd", "delete", "finance"]).ok();
    p.runi(&["herd", "show", "finance"])
        .fails(2, &["no herd named `finance`"]);
    p.runi(&["herd", "delete", "finance"])
        .fails(2, &["unknown herd `finance`"]);
}

#[test]
fn bad_herd_files_and_names() {
    let p = Project::empty();
    p.write(
        "h.toml",
        "[herd]\nid = \"finance\"\n[herd.resource_quotas]\ncpu_limit = \"lots\"\n",
    );
    p.runi(&["herd", "apply", "-f", "h.toml"])
        .fails(2, &["h.toml:4:13:", "cpu_limit `lots`"]);
    p.write(
        "h3.toml",
        "[herd]\nid = \"finance\"\n[herd.resource_quotas]\nisolation = \"maybe\"\n",
    );
    p.runi(&["herd", "apply", "-f", "h3.toml"]).fails(
        2,
        &[
            "h3.toml:4:13:",
            "isolation `maybe` is not \"required\" or \"best_effort\"",
        ],
    );
    p.write(
        "h4.toml",
        "[herd]\nid = \"finance\"\n[herd.resource_quotas]\nslices_max = 0\n",
    );
    p.runi(&["herd", "apply", "-f", "h4.toml"]).fails(
        2,
        &["h4.toml:4:14:", "slices_max = 0 would let no Scenario run"],
    );
    p.write("h2.toml", "[herd\nid = 1\n");
    p.runi(&["herd", "apply", "-f", "h2.toml"])
        .fails(2, &["h2.toml:1:"]);
    p.runi(&["herd", "init", "Bad Name"])
        .fails(2, &["cannot name a herd"]);
    p.runi(&["herd", "apply", "-f", "missing.toml"])
        .fails(2, &["missing.toml"]);
}

#[test]
fn a_state_directory_that_is_not_barn_fails_clearly() {
    let p = Project::empty();
    p.write(".runink/CURRENT", "garbage\n");
    p.runi(&["herd", "list"]).fails(1, &[".runink"]);
    let q = Project::empty();
    q.write("notadir", "x");
    q.runi(&["--home", "notadir", "herd", "list"])
        .fails(1, &["notadir"]);
}

#[test]
fn a_deleted_herds_runs_can_still_be_listed_by_its_name() {
    let p = Project::fixture("orders");
    p.runi(&["herd", "init", "shop"]).ok();
    p.runi(&[
        "run",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
    ])
    .ok();
    p.runi(&["herd", "delete", "shop"]).ok();
    let runs = p
        .runi(&["--herd", "shop", "status", "-o", "json"])
        .ok()
        .json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    p.runi(&["--herd", "nosuch", "status"])
        .fails(2, &["unknown herd `nosuch`"]);
}

/// A dataset is registered with the schema its files have: Parquet strings are read as
/// views, but sinks write plain strings, and `runi sql` over an Arrow dataset failed on
/// every text column ("expected Utf8View but found Utf8").
#[test]
fn datasets_are_registered_with_the_schema_their_files_have() {
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    let p = Project::empty();
    p.runi(&["herd", "init", "finance"]).ok();
    p.write_parquet(
        "people.parquet",
        vec![
            ("id", Arc::new(Int64Array::from(vec![2, 1]))),
            ("name", Arc::new(StringArray::from(vec![Some("Zoë"), None]))),
        ],
    );
    p.write(
        "people.feature",
        r#"@feature(name="People", herd="finance")
Feature: People
  Scenario: Copy
    @source("parquet://people.parquet", name="people")
    @sink("arrow://out/people_arrow/", dataset="people_arrow")
    @sink("arrow://out/people.arrow", dataset="people_file")
    @sink("parquet://out/people_parquet/", dataset="people_parquet")
    @sink("csv://out/none.csv", when="id > 100", dataset="people_none")
    Given people
"#,
    );
    p.runi(&["run", "--scenario", "people.feature"]).ok();
    // A CSV sink that got no rows still writes its header: the empty dataset reads back.
    assert_eq!(p.read("out/none.csv"), "id,name\n");
    p.write(
        "none.feature",
        r#"@feature(name="None", herd="finance")
Feature: None
  Scenario: Read the empty one
    @source("dataset://finance/people_none", name="none")
    @sink("parquet://out/none.parquet")
    Given nobody
"#,
    );
    let run = p
        .runi(&["run", "--scenario", "none.feature", "-o", "json"])
        .ok()
        .json();
    assert_eq!(run["sinks"][0]["rows"], 0, "{run}");
    // Its columns keep the types it was registered with (inference from a header alone
    // would say "null" for each).
    let written = p.path().join("out/none.parquet");
    assert_eq!(crate::support::parquet_column_type(&written, "id"), "Int64");
    let name = crate::support::parquet_column_type(&written, "name");
    assert!(matches!(name.as_str(), "Utf8" | "Utf8View"), "{name}");
    for table in ["people_arrow", "people_file", "people_parquet"] {
        let rows = p
            .runi(&[
                "sql",
                &format!("SELECT id, name FROM {table} ORDER BY id"),
                "-o",
                "json",
            ])
            .ok()
            .json();
        assert_eq!(rows[1]["name"], "Zoë", "{table}: {rows}");
        assert_eq!(rows.as_array().map(Vec::len), Some(2), "{table}: {rows}");
        // A null is written as one, not left out of the row.
        assert_eq!(
            rows[0].get("name"),
            Some(&serde_json::Value::Null),
            "{rows}"
        );
    }
    // A damaged file names the dataset it belongs to.
    p.write("out/people.arrow", "ARROW1 this is not an Arrow file");
    p.runi(&["sql", "SELECT name FROM people_file"])
        .fails(1, &["people_file"]);
    // The query's own arithmetic failing is not blamed on reading a dataset.
    let out = p
        .runi(&["sql", "SELECT sum(100 / (id - id)) FROM people_parquet"])
        .fails(1, &["Divide by zero"]);
    assert!(!out.stderr.contains("reading dataset"), "{}", out.stderr);
    // YAML keeps a decimal's digits.
    let yaml = p
        .runi(&[
            "sql",
            "SELECT CAST('1234567890123456789.01' AS DECIMAL(38,2)) AS e",
            "-o",
            "yaml",
        ])
        .ok();
    assert!(
        yaml.stdout.contains("1234567890123456789.01"),
        "{}",
        yaml.stdout
    );
    // Piped statements stop at the first error, `\d` of an unknown dataset included.
    p.runi_stdin(
        &["sql"],
        "\\d finance.people_arrow\n\\d nosuch\nSELECT 3;\n",
    )
    .fails(2, &["stdin:2:", "no dataset `nosuch`"]);
}

/// `runi sql --slices 2` runs its queries in the slices (each in its herd's cgroup), not in
/// its own process: a dataset of a few MiB is split into tasks on both, the answers equal
/// those of one process, and an interrupted query ends cleanly, leaving no cgroup behind.
#[test]
fn sql_on_slices_runs_its_stages_in_the_slices() {
    let p = Project::empty();
    p.runi(&["herd", "init", "finance"]).ok();
    let mut csv = String::from("id,name,grp\n");
    for i in 0..300_000u64 {
        csv.push_str(&format!("{i},n{},{}\n", (i * 7919) % 1_000_003, i % 7));
    }
    p.write("data/big.csv", &csv);
    p.write(
        "features/big.feature",
        "@feature(name=\"F\", herd=\"finance\")\nFeature: F\n  Scenario: S\n    @source(\"csv://data/big.csv\", name=\"big\")\n    @sink(\"parquet://out/big/\", dataset=\"big\")\n",
    );
    p.runi(&["run", "--scenario", "features/big.feature"]).ok();
    let query = "SELECT grp, count(DISTINCT name) AS names, sum(id) AS ids FROM big GROUP BY grp ORDER BY grp";
    let here = p.runi(&["sql", "-o", "csv", query]).ok().stdout;
    let sliced = p
        .runi(&["sql", "--slices", "2", "-o", "csv", query])
        .ok()
        .stdout;
    assert_eq!(sliced, here);
    assert_eq!(here.lines().count(), 8, "{here}");
    let analyzed = p
        .runi(&["sql", "--slices", "2", &format!("EXPLAIN ANALYZE {query}")])
        .ok()
        .stdout;
    assert!(analyzed.contains("DistributedExec"), "{analyzed}");
    assert!(analyzed.contains("tasks=2"), "{analyzed}");
}

/// A CSV or NDJSON dataset read back through `dataset://` had its types guessed again from
/// the text: a decimal came back as a float (99999999999999999999.999999999999999999 as
/// 1e20), dates and timestamps of NDJSON as text, zoned timestamps without their zone.
#[test]
fn text_datasets_are_read_with_the_types_they_were_registered_with() {
    let p = Project::empty();
    p.runi(&["herd", "init", "finance"]).ok();
    p.write("in.csv", "k\n1\n2\n");
    p.write(
        "w.feature",
        r#"@feature(name="W", herd="finance")
Feature: W
  Scenario: Write
    @source("csv://in.csv", name="i")
    @step(name="t", sql="""
      SELECT k,
        CAST('99999999999999999999.999999999999999999' AS DECIMAL(38, 18)) AS amount,
        CAST('2024-02-29' AS DATE) AS day,
        arrow_cast(CAST('2024-01-01T10:00:00' AS TIMESTAMP), 'Timestamp(Microsecond, Some("+02:00"))') AS at
      FROM i
    """)
    @sink("csv://out/t.csv", dataset="tcsv")
    @sink("json://out/t.ndjson", dataset="tjson")
    Given rows
"#,
    );
    p.runi(&["run", "--scenario", "w.feature"]).ok();
    for dataset in ["tcsv", "tjson"] {
        p.write(
            "r.feature",
            &format!(
                "@feature(name=\"R\", herd=\"finance\")\nFeature: R\n  Scenario: Read\n    @source(\"dataset://finance/{dataset}\", name=\"d\")\n    @sink(\"parquet://out/{dataset}.parquet\")\n    Given it\n"
            ),
        );
        p.runi(&["run", "--scenario", "r.feature"]).ok();
        let written = p.path().join(format!("out/{dataset}.parquet"));
        let column = |c: &str| crate::support::parquet_column_type(&written, c);
        assert_eq!(column("amount"), "Decimal128(38, 18)", "{dataset}");
        assert_eq!(column("day"), "Date32", "{dataset}");
        assert_eq!(column("at"), "Timestamp(µs, \"+02:00\")", "{dataset}");
    }
}

/// Isolation is per slice: a run of a herd that requires it but stays in the `runi run`
/// process says so, naming why.
#[test]
fn a_run_in_process_of_a_herd_that_requires_isolation_says_so() {
    let p = Project::empty();
    p.write(
        "h.toml",
        "[herd]\nid = \"strict\"\n[herd.resource_quotas]\nisolation = \"required\"\n",
    );
    p.runi(&["herd", "apply", "-f", "h.toml"]).ok();
    p.write("d.csv", "a,b\n1,2\n");
    p.write(
        "f.feature",
        "@feature(name=\"F\", herd=\"strict\")\nFeature: F\n  Scenario: S\n    @source(\"csv://d.csv\")\n    @sink(\"json://out/x.ndjson\")\n",
    );
    let out = p
        .runi(&["run", "--scenario", "f.feature", "--slices", "inprocess"])
        .ok();
    assert!(
        out.stderr.contains(
            "herd `strict` requires isolation, but this run runs in the `runi run` process"
        ) && out.stderr.contains("(--slices inprocess)"),
        "{}",
        out.stderr
    );
    // A herd that does not require it runs in process without a word about isolation.
    p.write("g.toml", "[herd]\nid = \"easy\"\n");
    p.runi(&["herd", "apply", "-f", "g.toml"]).ok();
    let out = p
        .runi(&[
            "--herd",
            "easy",
            "run",
            "--scenario",
            "f.feature",
            "--slices",
            "inprocess",
        ])
        .ok();
    assert!(!out.stderr.contains("isolation"), "{}", out.stderr);
}
