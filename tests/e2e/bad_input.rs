//! Bad input of every class: a clear message naming the place, a non-zero exit, no panic.

use crate::support::Project;

const FEATURE_HEAD: &str = "Feature: Bad\n  Scenario: S\n";

fn orders_with(feature: &str) -> Project {
    let p = Project::fixture("orders");
    p.write("bad.feature", feature);
    p
}

#[test]
fn malformed_feature_file() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv, name=\"orders\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:3:"]);
}

#[test]
fn unknown_tag() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @frobnicate(x=1)\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:5: error:", "unknown tag `@frobnicate`"]);
}

#[test]
fn step_naming_an_unknown_relation() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"joined\", sql=\"SELECT * FROM orders JOIN nosuch USING (order_id)\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &[
                "bad.feature:4:",
                "step `joined`",
                "nosuch",
                "known relations: orders",
            ],
        );
}

#[test]
fn sink_reading_an_unknown_relation() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @sink(\"json://out/x.ndjson\", from=\"ghost\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "unknown relation `ghost`"]);
}

#[test]
fn a_sql_syntax_error_is_placed_where_it_was_written() {
    // Line 6 column 11 of the file holds `FORM`; the SQL parser counts from the SQL's start
    // (its line 2), after the triple-quoted string lost its indentation.
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"bad\", sql=\"\"\"\n        SELECT *\n          FORM orders\n    \"\"\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    let out = p
        .runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &["bad.feature:6:11:", "step `bad`", "SQL syntax", "FORM"],
        );
    assert!(!out.stderr.contains("Line: 2"), "{}", out.stderr);
    // In a sql_file, the place is the file's own line and column.
    p.write("q.sql", "SELECT *\nFROM orders WHERE 1 = = 2\n");
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"bad\", sql_file=\"q.sql\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["q.sql:2:23:", "step `bad`", "SQL syntax"]);
    // SQL that ends too early is placed at its end; a byte-order mark is not SQL.
    p.write("q.sql", "\u{feff}SELECT *\nFROM orders WHERE amount >\n");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["q.sql:2:26:", "found: EOF"]);
}

#[test]
fn malformed_contract_yaml() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @sink(\"json://out/x.ndjson\")\n    Given the contract: broken.yaml\n"
    ));
    p.write("broken.yaml", "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nschema:\n  - name: x\n    properties: [\n      {name: a\n");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["broken.yaml:"]);
    p.runi(&["contract", "validate", "broken.yaml"])
        .fails(2, &["broken.yaml:"]);
}

#[test]
fn go_contract_with_an_unknown_type() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write(
        "orders.go",
        "package c\n\n// @contract_version:\"1.0.0\"\ntype Order struct {\n\tOrderID string `json:\"order_id\"`\n\tAmount  Money  `json:\"amount\"`\n}\n",
    );
    p.runi(&[
        "compile",
        "--scenario",
        "bad.feature",
        "--contract",
        "orders.go",
        "--dry-run",
    ])
    .fails(2, &["orders.go:6:", "Money"]);
}

#[test]
fn csv_with_ragged_rows() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://ragged.csv\", name=\"ragged\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("ragged.csv", "a,b\n1,2\n3,4,5\n6,7\n");
    let out = p.runi(&["run", "--scenario", "bad.feature"]);
    let code = out.code;
    assert_ne!(code, 0);
    out.fails(code, &["ragged", "csv://ragged.csv"]);
    assert!(!p.path().join("out/x.ndjson").exists());
}

/// A quote opened in the last column and never closed made the reader take the rest of
/// the file for one value: the run succeeded with 11 of 1000 rows.
#[test]
fn csv_with_a_quote_that_never_closes() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://data/unclosed.csv\", name=\"rows\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    let mut csv = String::from("id,name\n");
    for i in 1..=1000 {
        if i == 10 {
            csv.push_str("10,\"oops10\n");
        } else {
            csv.push_str(&format!("{i},n{i}\n"));
        }
    }
    p.write("data/unclosed.csv", &csv);
    p.runi(&["run", "--scenario", "bad.feature"])
        .fails(2, &["data/unclosed.csv:11:", "closing quote is missing"]);
    assert!(!p.path().join("out/x.ndjson").exists());
}

/// A lone quote inside a value on a last line without a line break (`5'10"`) is a character,
/// as the CSV reader takes it; DataFusion's line splitter took it for an unterminated
/// string and the Scenario did not compile.
#[test]
fn a_quote_inside_a_value_on_the_last_line_is_a_character() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://data/h.csv\", name=\"h\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("data/h.csv", "id,h\n1,6'\n2,5'10\"");
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "bad.feature", "--slices", slices])
            .ok();
        let out = p.read("out/x.ndjson");
        assert!(out.contains(r#""h":"5'10\"""#), "{slices}: {out}");
    }
}

#[test]
fn missing_input_file() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://data/nope.csv\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["run", "--scenario", "bad.feature"]).fails(
        2,
        &[
            "bad.feature:3:13:",
            "source `nope`",
            "no such file or directory",
        ],
    );
}

#[test]
fn invalid_sink_without_contract() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @sink(\"json://out/x.ndjson\", when=\"invalid\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "needs a contract"]);
}

#[test]
fn contract_that_does_not_fit_the_data() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(sql=\"SELECT order_id FROM input\")\n    @sink(\"json://out/x.ndjson\")\n    Given the contract: orders.yaml\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:5:", "customer"]);
}

#[test]
fn exec_program_failing_at_compile() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(exec=\"exit 7\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "exited with status 7"]);
}

#[test]
fn several_scenarios_need_a_name() {
    let p = Project::fixture("orders");
    p.runi(&["compile", "--scenario", "orders.feature", "--dry-run"])
        .fails(2, &["orders.feature:", "--name", "`Route orders`"]);
    p.runi(&[
        "compile",
        "--scenario",
        "orders.feature",
        "--name",
        "Nope",
        "--dry-run",
    ])
    .fails(2, &["no Scenario named `Nope`"]);
}

#[test]
fn bad_dag_files() {
    let p = Project::empty();
    p.write("garbage.dag", "{ not json");
    p.runi(&["run", "--dag", "garbage.dag"])
        .fails(2, &["garbage.dag", "not a Runink DAG file"]);
    p.write("future.dag", "{\"format\":\"runink-dag\",\"version\":99}");
    p.runi(&["run", "--dag", "future.dag"])
        .fails(2, &["future.dag"]);
    p.runi(&["run", "--dag", "missing.dag"])
        .fails(2, &["missing.dag"]);
}

#[test]
fn a_dag_file_changed_after_compiling_is_refused() {
    let p = Project::fixture("orders");
    p.runi(&[
        "compile",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
        "--out",
        "o.dag",
    ])
    .ok();
    let dag = p.read("o.dag");
    // Metadata the run would record (no sources), and one character of the plan.
    let no_sources = {
        let mut v: serde_json::Value = serde_json::from_str(&dag).unwrap();
        v["sources"] = serde_json::json!([]);
        serde_json::to_string_pretty(&v).unwrap()
    };
    let base64 = {
        let v: serde_json::Value = serde_json::from_str(&dag).unwrap();
        v["plan"]["base64"].as_str().unwrap().to_string()
    };
    let at = base64.len() / 2;
    let flipped = if &base64[at..=at] == "A" { "B" } else { "A" };
    let damaged = dag.replace(
        &base64,
        &format!("{}{flipped}{}", &base64[..at], &base64[at + 1..]),
    );
    let other_version = dag.replacen("\"runink\": \"", "\"runink\": \"9", 1);
    assert_ne!(other_version, dag);
    // Keys this runi does not know, which reading would otherwise drop unseen.
    let with_key = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&dag).unwrap();
        edit(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    };
    for (name, text, key) in [
        (
            "top.dag",
            with_key(&|v| v["retries"] = serde_json::json!(3)),
            "`retries`",
        ),
        (
            "nested.dag",
            with_key(&|v| v["sources"][0]["filter"] = serde_json::json!("x > 1")),
            "`sources[0].filter`",
        ),
    ] {
        p.write(name, &text);
        p.runi(&["run", "--dag", name])
            .fails(2, &[name, "unknown key", key]);
    }
    for (name, text) in [
        ("edited.dag", no_sources),
        ("damaged.dag", damaged),
        ("version.dag", other_version),
    ] {
        p.write(name, &text);
        p.runi(&["run", "--dag", name])
            .fails(2, &[name, "changed after `runi compile` wrote it"]);
    }
    assert_eq!(p.files("out"), Vec::<String>::new());
    p.runi(&["run", "--dag", "o.dag"]).ok();
}

#[test]
fn missing_feature_file_and_flags() {
    let p = Project::empty();
    p.runi(&["compile", "--scenario", "nope.feature", "--dry-run"])
        .fails(2, &["nope.feature"]);
    p.runi(&["compile", "--scenario", "nope.feature"])
        .fails(2, &["--out"]);
    p.runi(&["run"]).fails(2, &["--dag", "--scenario"]);
}

#[test]
fn corrupt_parquet_and_json_sources() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"parquet://broken.parquet\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("broken.parquet", "PAR1 this is not really parquet");
    p.runi(&["run", "--scenario", "bad.feature"])
        .fails(2, &["bad.feature:3:13:", "source `broken`"]);
    // A footer length past the file's start (the Parquet reader panicked on this one).
    p.write("broken.parquet", "PAR1garbagegarbagePAR1");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["source `broken`", "not a Parquet file"]);

    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"json://rows.ndjson\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("rows.ndjson", "{\"a\": 1}\n{\"a\": \n");
    let out = p.runi(&["run", "--scenario", "bad.feature"]);
    let code = out.code;
    assert_ne!(code, 0);
    out.fails(code, &["rows"]);
    assert!(!p.path().join("out/x.ndjson").exists());
}

#[test]
fn tampered_dag_plan() {
    let p = Project::fixture("orders");
    p.runi(&[
        "compile",
        "--scenario",
        "orders.feature",
        "--name",
        "Route orders",
        "--out",
        "o.dag",
    ])
    .ok();
    let mut dag: serde_json::Value = serde_json::from_str(&p.read("o.dag")).unwrap();
    dag["plan"]["base64"] = serde_json::Value::String("AAAA".into());
    p.write("bad-plan.dag", &dag.to_string());
    p.runi(&["run", "--dag", "bad-plan.dag"])
        .fails(2, &["bad-plan.dag", "changed after `runi compile`"]);
    dag["plan"]["base64"] = serde_json::Value::String("***".into());
    p.write("bad-b64.dag", &dag.to_string());
    p.runi(&["run", "--dag", "bad-b64.dag"])
        .fails(2, &["bad-b64.dag", "base64"]);
}

#[test]
fn a_very_long_sql_expression_is_refused_not_a_crash() {
    // DataFusion names and plans a left-deep `1 + 1 + …` recursively, in time that grows
    // with the square of the depth: 8 000 terms overflowed the stack, 20 000 ran for minutes.
    let terms = vec!["1"; 20_000].join(" + ");
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"long\", sql=\"SELECT {terms} AS x FROM orders\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "more than 1000 levels"]);
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    p.runi(&["sql", "--herd", "shop", &format!("SELECT {terms}")])
        .fails(2, &["more than 1000 levels"]);
}

#[test]
fn a_sink_over_a_source_is_refused() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://in/orders.csv\", name=\"orders\")\n    @sink(\"parquet://./in/\")\n"
    ));
    std::fs::create_dir_all(p.path().join("in")).unwrap();
    std::fs::copy(p.path().join("orders.csv"), p.path().join("in/orders.csv")).unwrap();
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &["bad.feature:4:", "overlaps source `orders`", "write over"],
        );
    assert!(p.path().join("in/orders.csv").is_file());

    // Nor through `--input` at run time.
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @sink(\"csv://out/x.csv\")\n"
        ),
    );
    p.write("out/x.csv", &p.read("orders.csv"));
    p.runi(&["compile", "--scenario", "bad.feature", "--out", "bad.dag"])
        .ok();
    p.runi(&[
        "run",
        "--dag",
        "bad.dag",
        "--input",
        "orders=csv://./out/x.csv",
    ])
    .fails(2, &["--input orders=csv://./out/x.csv", "overlaps sink"]);
    assert_eq!(p.read("out/x.csv"), p.read("orders.csv"));
}

#[test]
fn a_sink_condition_that_is_not_boolean_fails_at_compile() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @sink(\"csv://out/x.csv\", when=\"amount\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "when=\"amount\" is not a boolean"]);
}

#[test]
fn a_bad_row_past_schema_inference_names_its_source() {
    // Inference reads the first rows; a ragged row far below them fails while reading.
    let mut csv = String::from("a,b\n");
    for i in 0..30_000 {
        csv.push_str(&format!("{i},{i}\n"));
    }
    csv.push_str("1,2,3\n");
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://late.csv\", name=\"late\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("late.csv", &csv);
    p.runi(&["run", "--scenario", "bad.feature", "--slices", "inprocess"])
        .fails(
            1,
            &[
                "source `late`",
                "late.csv:30002:",
                "incorrect number of fields",
            ],
        );
    assert!(!p.path().join("out/x.ndjson").exists());
}

#[test]
fn a_value_that_does_not_read_is_placed_at_its_file_and_line() {
    // Over 10 MiB, DataFusion reads the file in byte ranges, and arrow counts the bad
    // value's line from its range's start (and after the header): 96 847 for line 550 002.
    let mut csv = String::from("id,amount,note\n");
    for i in 0..600_000u64 {
        if i == 550_000 {
            csv.push_str("550000,oops,x\n");
        } else {
            csv.push_str(&format!("{i},{},some padding text here\n", i * 2));
        }
    }
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://big.csv\", name=\"big\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("big.csv", &csv);
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "bad.feature", "--slices", slices])
            .fails(
                1,
                &[
                    "source `big`",
                    "big.csv:550002:",
                    "'oops'",
                    "for column `amount`",
                ],
            );
    }
    assert!(!p.path().join("out/x.ndjson").exists());

    // With a line break in a quoted value (row 5 spans lines 7 and 8), rows and lines differ.
    let mut csv = String::from("id,amount,note\n");
    for i in 0..300_000u64 {
        match i {
            5 => csv.push_str("5,5,\"multi\nline\"\n"),
            250_000 => csv.push_str("250000,oops,x\n"),
            _ => csv.push_str(&format!("{i},{i},t{i}\n")),
        }
    }
    p.write("big.csv", &csv);
    p.runi(&["run", "--scenario", "bad.feature", "--slices", "inprocess"])
        .fails(1, &["big.csv:250003:", "'oops'", "for column `amount`"]);
}

#[test]
fn csv_files_whose_headers_differ_are_refused_not_read_by_position() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://people/\", name=\"people\")\n    @sink(\"csv://out/people.csv\")\n"
    ));
    p.write("people/a.csv", "id,first,last\n1,Ada,Lovelace\n");
    p.write("people/b.csv", "id,last,first\n2,Hopper,Grace\n");
    // Found when compiling, and (for files changed since) when running.
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &["source `people`", "b.csv has the columns `id,last,first`"],
        );
    p.write("people/b.csv", "id,first,last\n2,Grace,Hopper\n");
    p.runi(&[
        "compile",
        "--scenario",
        "bad.feature",
        "--out",
        "people.dag",
    ])
    .ok();
    p.write("people/b.csv", "id,last,first\n2,Hopper,Grace\n");
    p.runi(&["run", "--dag", "people.dag"]).fails(
        1,
        &[
            "source `people`",
            "b.csv has the columns `id,last,first`",
            "`id,first,last`",
        ],
    );
    assert!(!p.path().join("out/people.csv").exists());
    // The same header in every file (one with a byte order mark) reads.
    p.write("people/b.csv", "\u{feff}id,first,last\n2,Grace,Hopper\n");
    p.runi(&["run", "--scenario", "bad.feature"]).ok();
    assert_eq!(p.read("out/people.csv").lines().count(), 3);
}

#[test]
fn built_in_steps_that_do_not_plan_name_their_line() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(\"Select\", columns=\"order_id, order_id\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "step `select`", "unique"]);
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(\"Filter\", where=\"amount\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &[
                "bad.feature:4:",
                "where=\"amount\" is not a boolean expression",
            ],
        );
}

#[test]
fn a_csv_sink_for_nested_columns_fails_at_compile() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"nested\", sql=\"SELECT order_id, named_struct('a', amount) AS s FROM orders\")\n    @sink(\"csv://out/x.csv\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:5:", "CSV sink cannot hold column `s`"]);
}

#[test]
fn sources_without_columns_fail_at_compile() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://blank.csv\", name=\"blank\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write("blank.csv", "\n");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:3:", "source `blank`", "has no columns"]);
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"arrow://empty.arrow\", name=\"empty\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    p.write("empty.arrow", "");
    let out = p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"]);
    let code = out.code;
    assert_ne!(code, 0, "{}", out.stderr);
    out.fails(code, &["bad.feature:3:", "source `empty`"]);
}

#[test]
fn a_parquet_file_that_lost_a_column_since_compiling_is_refused_not_read_as_nulls() {
    use datafusion::prelude::SessionContext;
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"parquet://items.parquet\", name=\"items\")\n    @sink(\"csv://out/items.csv\")\n"
    ));
    let write = |sql: &str| {
        let path = p.path().join("items.parquet");
        crate::support::block_on(async {
            let ctx = SessionContext::new();
            ctx.sql(sql)
                .await
                .unwrap()
                .write_parquet(path.to_str().unwrap(), Default::default(), None)
                .await
                .unwrap();
        });
    };
    write("SELECT 1 AS id, 'pen' AS name, 2.5 AS price");
    p.runi(&["compile", "--scenario", "bad.feature", "--out", "items.dag"])
        .ok();
    std::fs::remove_file(p.path().join("items.parquet")).unwrap();
    write("SELECT 2 AS id");
    p.runi(&["run", "--dag", "items.dag"]).fails(
        1,
        &[
            "source `items`",
            "no file has columns `name`, `price` any more",
        ],
    );
    assert!(!p.path().join("out/items.csv").exists());
}

/// An Arrow source's files must share one layout: DataFusion reads them all the way it read
/// the first, and its error named no file.
#[test]
fn an_arrow_directory_mixing_files_and_streams_is_refused_naming_both() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use datafusion::arrow::ipc::writer::{FileWriter, StreamWriter};
    use std::sync::Arc;

    let p = Project::fixture("orders");
    std::fs::create_dir_all(p.path().join("ipc")).unwrap();
    let batch = RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
    )])
    .unwrap();
    let file = std::fs::File::create(p.path().join("ipc/a.arrow")).unwrap();
    let mut w = FileWriter::try_new(file, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    let stream = std::fs::File::create(p.path().join("ipc/b.arrow")).unwrap();
    let mut w = StreamWriter::try_new(stream, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"arrow://ipc/\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    p.runi(&[
        "compile",
        "--scenario",
        "bad.feature",
        "--dry-run",
        "--herd",
        "shop",
    ])
    .fails(
        2,
        &[
            "bad.feature:3:13:",
            "ipc/a.arrow is an Arrow IPC file but",
            "ipc/b.arrow an Arrow IPC stream",
        ],
    );
}

#[test]
fn sinks_and_sources_overlapping_through_links_or_absolute_paths_are_refused() {
    let p = Project::fixture("orders");
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    std::os::unix::fs::symlink("out", p.path().join("outlink")).unwrap();
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    std::fs::copy(p.path().join("orders.csv"), p.path().join("data/src.csv")).unwrap();
    std::os::unix::fs::symlink("data", p.path().join("dl")).unwrap();
    let absolute = p.path().canonicalize().unwrap().join("out/abs.csv");
    let cases = [
        (
            format!(
                "@sink(\"csv://{}\")\n    @sink(\"csv://out/abs.csv\")",
                absolute.display()
            ),
            "overlaps another sink's",
        ),
        (
            "@sink(\"csv://outlink/x.csv\")\n    @sink(\"csv://out/x.csv\")".to_string(),
            "overlaps another sink's",
        ),
        (
            "@sink(\"csv://dl/src.csv\")".to_string(),
            "overlaps source `src`",
        ),
    ];
    for (sinks, needle) in cases {
        p.write(
            "links.feature",
            &format!(
                "Feature: L\n  Scenario: L\n    @source(\"csv://data/src.csv\", name=\"src\")\n    {sinks}\n"
            ),
        );
        p.runi(&["compile", "--scenario", "links.feature", "--dry-run"])
            .fails(2, &["links.feature:", needle]);
        p.runi(&["run", "--scenario", "links.feature"])
            .fails(2, &[needle]);
    }
    assert_eq!(p.read("data/src.csv"), p.read("orders.csv"));
    assert_eq!(p.files("out"), Vec::<String>::new());
}

#[test]
fn compile_out_onto_its_own_input_is_refused() {
    let p = Project::fixture("orders");
    let feature = p.read("orders.feature");
    for out in ["orders.feature", "./orders.yaml"] {
        p.runi(&[
            "compile",
            "--scenario",
            "orders.feature",
            "--name",
            "Route orders",
            "--out",
            out,
        ])
        .fails(2, &["is the input file"]);
    }
    assert_eq!(p.read("orders.feature"), feature);
    assert!(p.read("orders.yaml").contains("orders"));
}

#[test]
fn an_ndjson_input_without_the_compiled_fields_is_refused() {
    let p = Project::fixture("orders");
    p.write(
        "other.ndjson",
        "{\"idx\":1,\"customer\":\"a\"}\n{\"idx\":2,\"customer\":\"b\"}\n",
    );
    p.write(
        "in.feature",
        "Feature: I\n  Scenario: I\n    @source(\"csv://orders.csv\", name=\"orders\")\n    @sink(\"json://out/o.ndjson\")\n",
    );
    p.runi(&[
        "run",
        "--scenario",
        "in.feature",
        "--input",
        "orders=json://other.ndjson",
    ])
    .fails(
        2,
        &[
            "--input orders=json://other.ndjson",
            "no record has fields `order_id`, `status`, `amount`, `placed_at`",
        ],
    );
    assert_eq!(p.files("out"), Vec::<String>::new());
    // The same fields (any order, some records sparse) read.
    p.write(
        "same.ndjson",
        "{\"customer\":\"a\",\"order_id\":\"X1\",\"status\":\"NEW\",\"amount\":1.5,\"placed_at\":\"2026-01-01T10:00:00\"}\n{\"order_id\":\"X2\"}\n",
    );
    let run = p
        .runi(&[
            "run",
            "--scenario",
            "in.feature",
            "--input",
            "orders=json://same.ndjson",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(p.read("out/o.ndjson").lines().count(), 2);
    // The run's lineage names what it read, not what was compiled.
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let lineage = p.runi(&["lineage", "--runid", &run_id, "-o", "json"]).ok();
    assert!(lineage.stdout.contains("same.ndjson"), "{}", lineage.stdout);
    assert!(!lineage.stdout.contains("orders.csv"), "{}", lineage.stdout);
}

#[test]
fn requires_values_that_are_not_quantities_are_refused() {
    let p = Project::fixture("orders");
    for (requires, needle) in [
        (
            "cpu=\"abc\"",
            "@requires(cpu=\"abc\") is not a CPU quantity",
        ),
        ("cpu=\"0\"", "@requires(cpu=\"0\") is not a CPU quantity"),
        (
            "memory=\"lots\"",
            "@requires(memory=\"lots\") is not a quantity",
        ),
    ] {
        p.write(
            "req.feature",
            &format!(
                "Feature: R\n  Scenario: R\n    @source(\"csv://orders.csv\", name=\"o\")\n    @sink(\"json://out/o.ndjson\")\n    @requires({requires})\n"
            ),
        );
        p.runi(&["run", "--scenario", "req.feature"])
            .fails(2, &["req.feature:5:5:", needle]);
        p.runi(&["compile", "--scenario", "req.feature", "--dry-run"])
            .fails(2, &["req.feature:5:5:", needle]);
    }
    assert_eq!(p.files("out"), Vec::<String>::new());
}

#[test]
fn a_csv_header_naming_a_column_twice_is_refused() {
    let p = Project::fixture("orders");
    p.write("twice.csv", "id,id,\n1,2,3\n");
    p.write(
        "twice.feature",
        "Feature: T\n  Scenario: T\n    @source(\"csv://twice.csv\", name=\"t\")\n    @sink(\"json://out/t.ndjson\")\n",
    );
    p.runi(&["compile", "--scenario", "twice.feature", "--dry-run"])
        .fails(2, &["twice.feature:3:", "names the column `id` twice"]);
}

#[test]
fn ndjson_errors_name_the_file_and_line() {
    // A line that is not JSON: found at compile time (inference), placed in the file.
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"json://j.ndjson\", name=\"j\")\n    @sink(\"csv://out/x.csv\")\n"
    ));
    p.write(
        "j.ndjson",
        "{\"id\": 1, \"amount\": 2}\n{\"id\": 2, \"amount\": 3\n{\"id\": 3, \"amount\": 4}\n",
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["source `j`", "j.ndjson:2:21: not valid JSON"]);
    // A line that is JSON but not a record; a field that is a number, then an object.
    p.write("j.ndjson", "{\"id\": 1}\n[1, 2]\n");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["j.ndjson:2: the line holds a list, not a JSON object"]);
    p.write("j.ndjson", "{\"x\": 1}\n{\"x\": {\"a\": 1}}\n");
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &["field `x` holds values of two JSON types: a number at j.ndjson:1 (1) and an object at j.ndjson:2"],
        );
    // A field holding numbers and, once, text: inference reads it as text and the reader
    // fails on the first number; the message names both records.
    let mut text = String::new();
    for i in 0..5_000 {
        text.push_str(&format!("{{\"id\": {i}, \"amount\": {}}}\n", i * 2));
    }
    text.push_str("{\"id\": 5000, \"amount\": \"oops\"}\n");
    p.write("j.ndjson", &text);
    p.runi(&["run", "--scenario", "bad.feature"]).fails(
        1,
        &[
            "source `j`",
            "field `amount` holds values of two JSON types",
            "a number at j.ndjson:1 (0)",
            "text at j.ndjson:5001 (\"oops\")",
        ],
    );
    assert!(!p.path().join("out/x.csv").exists());
}

#[test]
fn a_step_failing_at_run_time_is_named() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\", name=\"orders\")\n    @step(name=\"ratio\", sql=\"SELECT 1 / (length(order_id) - 4) AS r FROM orders\")\n    @step(name=\"after\", sql=\"SELECT * FROM ratio\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    for slices in ["inprocess", "2"] {
        p.runi(&["run", "--scenario", "bad.feature", "--slices", slices])
            .fails(1, &["step `ratio`: Divide by zero"]);
    }
    assert!(!p.path().join("out/x.ndjson").exists());
}

#[test]
fn explain_and_table_functions_in_a_step_are_refused_at_their_place() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"e\", sql=\"EXPLAIN SELECT * FROM orders\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "step `e`", "EXPLAIN"]);
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"g\", sql=\"SELECT value FROM generate_series(1, 3)\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    let out = p
        .runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(
            2,
            &[
                "bad.feature:4:",
                "step `g`",
                "table function `generate_series",
                "unnest(range(",
            ],
        );
    assert!(!out.stderr.contains(".cargo"), "{}", out.stderr);
    // The suggested form runs.
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"g\", sql=\"SELECT unnest(range(1, 4)) AS value\")\n    @sink(\"csv://out/x.csv\")\n"
        ),
    );
    p.runi(&["run", "--scenario", "bad.feature"]).ok();
    assert_eq!(p.read("out/x.csv"), "value\n1\n2\n3\n");
}

#[test]
fn compile_out_does_not_overwrite_a_file_that_is_not_a_dag() {
    let p = Project::fixture("orders");
    let before = p.read("orders.csv");
    p.write("q.sql", "SELECT * FROM orders\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://orders.csv\")\n    @step(name=\"q\", sql_file=\"q.sql\")\n    @sink(\"csv://out/x.csv\")\n",
    );
    for out in ["orders.csv", "q.sql"] {
        p.runi(&["compile", "--scenario", "f.feature", "--out", out])
            .fails(2, &[&format!("--out {out} exists"), "not a DAG file"]);
    }
    assert_eq!(p.read("orders.csv"), before);
    assert_eq!(p.read("q.sql"), "SELECT * FROM orders\n");
    // Nor is a DAG written into a source's folder, where it would be read as data.
    std::fs::create_dir_all(p.path().join("jdir")).expect("mkdir");
    p.write("jdir/a.ndjson", "{\"id\":1}\n");
    p.write(
        "j.feature",
        "Feature: F\n  Scenario: S\n    @source(\"json://jdir/\", name=\"j\")\n    @sink(\"csv://out/j.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "j.feature", "--out", "jdir/j.dag"])
        .fails(2, &["inside the folder of source `j`"]);
    assert_eq!(p.files("jdir"), vec!["a.ndjson".to_string()]);
    // A DAG file is replaced, as before.
    p.runi(&["compile", "--scenario", "f.feature", "--out", "f.dag"])
        .ok();
    p.runi(&["compile", "--scenario", "f.feature", "--out", "f.dag"])
        .ok();
}

#[test]
fn a_folder_sink_over_a_file_fails_before_any_sink_commits() {
    let p = Project::fixture("orders");
    p.write("o/afile", "x\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://orders.csv\")\n    @sink(\"csv://o/first.csv\")\n    @sink(\"json://o/log.ndjson\", mode=\"append\")\n    @sink(\"parquet://o/afile/\")\n",
    );
    for _ in 0..2 {
        p.runi(&["run", "--scenario", "f.feature"])
            .fails(1, &["parquet://o/afile/", "is a file, not a folder"]);
    }
    assert_eq!(p.files("o"), vec!["afile".to_string()]);
    assert_eq!(p.read("o/afile"), "x\n");
}

#[test]
fn step_arguments_of_the_wrong_kind_are_errors() {
    for (args, needle) in [
        ("\"Filter\", where=true", "`where=` takes text"),
        (
            "\"Select\", columns=[order_id, [amount]]",
            "`columns=` takes column names",
        ),
        ("\"Dedupe\", keys=[true]", "`keys=` takes column names"),
    ] {
        let p = orders_with(&format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step({args})\n    @sink(\"json://out/x.ndjson\")\n"
        ));
        p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
            .fails(2, &["bad.feature:4:", needle]);
    }
}

#[test]
fn a_source_name_taken_from_its_file_says_how_to_name_it() {
    let p = Project::fixture("orders");
    p.write("data/2024.csv", "id\n1\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://data/2024.csv\")\n    @sink(\"csv://out/x.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .fails(
            2,
            &["f.feature:3:", "`2024`, taken from the file name", "name="],
        );
}

#[test]
fn a_sink_route_in_capitals_gets_a_hint() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @sink(\"json://out/x.ndjson\", when=\"VALID\")\n"
    ));
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:4:", "did you mean when=\"valid\""]);
}

#[test]
fn source_folder_errors_name_the_files() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path().join("pq")).expect("mkdir");
    p.write_parquet(
        "pq/a.parquet",
        vec![(
            "id",
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])),
        )],
    );
    p.write_parquet(
        "pq/b.parquet",
        vec![(
            "id",
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["x"])),
        )],
    );
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"parquet://pq/\", name=\"t\")\n    @sink(\"csv://out/x.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .fails(2, &["column `id`", "pq/a.parquet", "pq/b.parquet"]);
    std::fs::create_dir_all(p.path().join("empty")).expect("mkdir");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://empty/\", name=\"t\")\n    @sink(\"csv://out/x.csv\")\n",
    );
    let out = p
        .runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .fails(2, &["no .csv files to read"]);
    assert!(!out.stderr.contains("explicit schema"), "{}", out.stderr);
    // A ragged CSV: the file as the user names it, with its line.
    p.write("ragged.csv", "a,b\n1,2\n3,4,5\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://ragged.csv\", name=\"t\")\n    @sink(\"csv://out/x.csv\")\n",
    );
    p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .fails(2, &["ragged.csv:3: "]);
}

#[test]
fn ndjson_fields_of_two_types_name_both_records() {
    let p = Project::empty();
    p.write("n.ndjson", "{\"a\":1}\n{\"a\":true}\n");
    p.write("l.ndjson", "{\"a\":[1,2]}\n{\"a\":[1.5,\"x\"]}\n");
    p.write(
        "items.ndjson",
        "{\"l\":[1,2]}\n{\"l\":[1,2,{\"deep\":\"y\"}]}\n",
    );
    p.write("members.ndjson", "{\"s\":{\"a\":1}}\n{\"s\":{\"a\":[1]}}\n");
    for (file, code, needles) in [
        (
            "n.ndjson",
            1,
            &["a number at n.ndjson:1", "a boolean at n.ndjson:2"][..],
        ),
        ("l.ndjson", 1, &["l.ndjson:1: field `a` is [1,2]"][..]),
        // Inside a list and inside an object, the place is named by its path (a list
        // holding numbers and objects fails inference: bad input, exit 2).
        (
            "items.ndjson",
            2,
            &[
                "field `l[]` holds values of two JSON types: a number at items.ndjson:1 (1) and an object at items.ndjson:2",
            ][..],
        ),
        (
            "members.ndjson",
            1,
            &[
                "members.ndjson:1: field `s.a` is 1 (a number), but the source reads it as List(Int64) (as at members.ndjson:2",
            ][..],
        ),
    ] {
        p.write(
            "f.feature",
            &format!(
                "Feature: F\n  Scenario: S\n    @source(\"json://{file}\", name=\"t\")\n    @sink(\"json://out/x.ndjson\")\n"
            ),
        );
        p.runi(&["run", "--scenario", "f.feature"])
            .fails(code, needles);
    }
}

#[test]
fn an_exec_programs_stderr_is_shown_as_its_own() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(exec=\"sh -c 'echo first >&2; echo second >&2; exit 3'\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    let out = p
        .runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["exited with status 3", "\n    first\n    second"]);
    assert!(!out.stderr.contains("error: second"), "{}", out.stderr);
}

/// With `-o json` a failure is a JSON document on stdout too (a script reading stdout gets
/// one either way), and with `-o yaml` a YAML one; stderr keeps the message.
#[test]
fn failures_are_documents_on_stdout_with_o_json() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://missing.csv\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    let out = p
        .runi(&["run", "--scenario", "bad.feature", "-o", "json"])
        .fails(2, &["missing.csv"]);
    let doc = out.json();
    assert_eq!(doc["status"], "invalid", "{doc}");
    assert_eq!(doc["exit_code"], 2, "{doc}");
    let error = doc["error"].as_str().unwrap_or_default();
    assert!(error.contains("missing.csv"), "{doc}");
    assert!(!error.starts_with("error: "), "{doc}");

    // A run that fails while running: exit 1, `failed`, here as YAML.
    let p = Project::empty();
    p.write("n.ndjson", "{\"a\":1}\n{\"a\":true}\n");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"json://n.ndjson\", name=\"t\")\n    @sink(\"json://out/x.ndjson\")\n",
    );
    let out = p
        .runi(&["run", "--scenario", "f.feature", "-o", "yaml"])
        .fails(1, &["a boolean at n.ndjson:2"]);
    assert!(out.stdout.contains("status: \"failed\""), "{}", out.stdout);
    assert!(out.stdout.contains("exit_code: 1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("a boolean at n.ndjson:2"),
        "{}",
        out.stdout
    );

    // Table output keeps stdout for results: nothing there.
    let out = p
        .runi(&["run", "--scenario", "f.feature"])
        .fails(1, &["a boolean at n.ndjson:2"]);
    assert_eq!(out.stdout, "");
}

/// A damaged Arrow file is refused at once, named: its reader once took four bytes of it
/// for a message length and allocated that much (1.3 GB for a 6 KB file).
#[test]
fn a_damaged_arrow_file_is_named_not_allocated() {
    use std::sync::Arc;
    let p = Project::empty();
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(arrow::array::Int64Array::from_iter_values(
            0..1000,
        ))],
    )
    .expect("batch");
    let mut bytes = Vec::new();
    {
        let mut w = arrow::ipc::writer::FileWriter::try_new(&mut bytes, &schema).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
    }
    std::fs::write(p.path().join("trunc.arrow"), &bytes[..bytes.len() / 2]).expect("write");
    std::fs::write(p.path().join("pq.arrow"), b"PAR1 not really arrow PAR1").expect("write");
    std::fs::write(
        p.path().join("junk.arrow"),
        b"\xff\xff\xff\xff\x00\x00\x00\x7f and more",
    )
    .expect("write");
    for (file, needle) in [
        ("trunc.arrow", "trunc.arrow is a damaged Arrow IPC file"),
        ("pq.arrow", "it is a Parquet file"),
        (
            "junk.arrow",
            "junk.arrow is not an Arrow IPC file or stream",
        ),
    ] {
        p.write(
            "f.feature",
            &format!(
                "Feature: F\n  Scenario: S\n    @source(\"arrow://{file}\", name=\"x\")\n    @sink(\"json://out/x.ndjson\")\n"
            ),
        );
        p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
            .fails(2, &[needle]);
    }
}

/// Appending to an NDJSON file: a column must keep its JSON type, or the file (a dataset)
/// could no longer be read.
#[test]
fn an_ndjson_append_that_changes_a_type_is_refused() {
    let p = Project::empty();
    p.write("a.csv", "id,amount\n1,10\n");
    p.write(
        "a.feature",
        "Feature: F\n  Scenario: S\n    @source(\"csv://a.csv\", name=\"a\")\n    @sink(\"json://out/h.ndjson\", mode=\"append\")\n",
    );
    p.runi(&["run", "--scenario", "a.feature"]).ok();
    p.write("a.csv", "id,amount\n2,big\n");
    p.runi(&["run", "--scenario", "a.feature"]).fails(
        1,
        &[
            "out/h.ndjson:1 holds `amount` as a number",
            "writes it as text",
        ],
    );
    assert_eq!(p.read("out/h.ndjson"), "{\"id\":1,\"amount\":10}\n");
    // A run without the column, or with only nulls in it (no type to infer), would make
    // the file lose it or mix types.
    p.write("a.csv", "id\n4\n");
    p.runi(&["run", "--scenario", "a.feature"])
        .fails(1, &["holds `amount`, which this run does not write"]);
    p.write("a.csv", "id,amount\n5,\n");
    p.runi(&["run", "--scenario", "a.feature"])
        .fails(1, &["holds values of `amount`", "all null"]);
    // The same types append.
    p.write("a.csv", "id,amount\n3,30\n");
    p.runi(&["run", "--scenario", "a.feature"]).ok();
    assert_eq!(p.read("out/h.ndjson").lines().count(), 2);
}

/// A file of a Parquet folder that does not read at run time is named (the reader's own
/// error names no file).
#[test]
fn a_damaged_file_in_a_parquet_folder_is_named_at_run_time() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path().join("pq")).expect("mkdir");
    for name in ["pq/a.parquet", "pq/b.parquet"] {
        p.write_parquet(
            name,
            vec![(
                "id",
                std::sync::Arc::new(arrow::array::Int64Array::from_iter_values(0..10_000)) as _,
            )],
        );
    }
    // The first page's header damaged; the footer (read at compile time) intact.
    let path = p.path().join("pq/b.parquet");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[4..40].fill(0xff);
    std::fs::write(&path, bytes).expect("write");
    p.write(
        "f.feature",
        "Feature: F\n  Scenario: S\n    @source(\"parquet://pq/\", name=\"t\")\n    @sink(\"json://out/x.ndjson\")\n",
    );
    p.runi(&["compile", "--scenario", "f.feature", "--dry-run"])
        .ok();
    p.runi(&["run", "--scenario", "f.feature", "--slices", "inprocess"])
        .fails(1, &["source `t`", "pq/b.parquet: "]);
}

#[test]
fn status_limit_must_be_at_least_one() {
    let p = Project::empty();
    p.runi(&["status", "--limit", "0"])
        .fails(2, &["--limit", "0"]);
}

/// A planning error (not a syntax error) is placed where the SQL has it too: an unknown
/// column in a `sql_file` at the file's line and column, and in a step at the Feature's.
#[test]
fn an_unknown_column_is_placed_where_it_was_written() {
    let p = orders_with(&format!(
        "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"q\", sql_file=\"q.sql\")\n    @sink(\"json://out/x.ndjson\")\n"
    ));
    p.write(
        "q.sql",
        "SELECT order_id,\n       amount_typo\nFROM orders\n",
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["q.sql:2:8:", "step `q`", "amount_typo"]);
    p.write(
        "bad.feature",
        &format!(
            "{FEATURE_HEAD}    @source(\"csv://orders.csv\")\n    @step(name=\"q\", sql=\"\"\"\n        SELECT order_id,\n               amount_typo\n        FROM orders\n    \"\"\")\n    @sink(\"json://out/x.ndjson\")\n"
        ),
    );
    p.runi(&["compile", "--scenario", "bad.feature", "--dry-run"])
        .fails(2, &["bad.feature:6:16:", "step `q`", "amount_typo"]);
}
