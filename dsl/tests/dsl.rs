//! End-to-end tests of the Feature DSL: text in, typed tree and diagnostics out.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use runink_dsl::*;

const EXAMPLE: &str = r#"@feature(name="Trade lifecycle", herd="finance")
Feature: Trade lifecycle processing
  Trades are validated against the contract and enriched.

  Scenario: Validate and enrich trades
    @module(layer="silver", domain="trading")
    @source("csv://data/trades.csv", name="trades")
    @source("parquet://data/instruments/", name="instruments")
    @step(name="enriched", sql="SELECT t.*, i.sector FROM trades t JOIN instruments i USING (symbol)")
    @step("Dedupe", keys="trade_id")
    @sink("parquet://out/trades/", dataset="trades_silver")
    @sink("json://out/rejected.ndjson", when="invalid")
    @requires(cpu="1", memory="512Mi")
    Given the contract: contracts/trade.yaml
    When trades arrive
    Then invalid trades go to the rejected file
"#;

fn sp(line: u32, column: u32) -> Span {
    Span::new(line, column)
}

fn spanned(value: &str, line: u32, column: u32) -> Spanned<String> {
    Spanned::new(value.to_owned(), sp(line, column))
}

/// Parses text expected to be clean and returns its Feature.
fn feature(text: &str) -> Feature {
    let (doc, diags) = parse("t.feature", text);
    assert!(
        diags.is_empty(),
        "unexpected diagnostics:\n{}",
        render_diags(&diags)
    );
    doc.feature.expect("a feature")
}

/// Parses text expected to hold one clean Scenario and returns it.
fn scenario(body: &str) -> Scenario {
    let text = format!("Feature: F\n  Scenario: S\n{body}");
    let mut f = feature(&text);
    assert_eq!(f.scenarios.len(), 1);
    f.scenarios.remove(0)
}

fn render_diags(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn diagnostics(text: &str) -> String {
    render_diags(&parse("t.feature", text).1)
}

#[test]
fn example_parses_into_the_typed_tree() {
    let f = feature(EXAMPLE);
    assert_eq!(f.name, "Trade lifecycle processing");
    assert_eq!(
        f.description,
        "Trades are validated against the contract and enriched."
    );
    assert_eq!(f.span, sp(2, 1));
    assert_eq!(f.display_name.as_deref(), Some("Trade lifecycle"));
    assert_eq!(f.herd, Some(spanned("finance", 1, 39)));
    assert!(f.meta.is_empty());
    assert_eq!(f.tags.len(), 1);
    assert_eq!(f.tags[0].name, "feature");
    assert_eq!(f.tags[0].span, sp(1, 1));
    assert_eq!(f.scenarios.len(), 1);

    let s = &f.scenarios[0];
    assert_eq!(s.name, "Validate and enrich trades");
    assert_eq!(s.description, "");
    assert_eq!(s.span, sp(5, 3));
    assert_eq!(
        s.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        [
            "module", "source", "source", "step", "step", "sink", "sink", "requires"
        ]
    );
    assert_eq!(
        s.module,
        [
            ("layer".to_owned(), "silver".to_owned()),
            ("domain".to_owned(), "trading".to_owned())
        ]
    );
    assert_eq!(
        s.sources,
        [
            Source {
                uri: spanned("csv://data/trades.csv", 7, 13),
                name: Some(spanned("trades", 7, 43)),
                format: None,
                contract: None,
                watch: false,
                span: sp(7, 5),
            },
            Source {
                uri: spanned("parquet://data/instruments/", 8, 13),
                name: Some(spanned("instruments", 8, 49)),
                format: None,
                contract: None,
                watch: false,
                span: sp(8, 5),
            },
        ]
    );
    assert_eq!(
        s.steps,
        [
            Step {
                name: Some(spanned("enriched", 9, 16)),
                kind: StepKind::Sql(
                    "SELECT t.*, i.sector FROM trades t JOIN instruments i USING (symbol)"
                        .to_owned()
                ),
                from: vec![],
                contract: None,
                span: sp(9, 5),
                body_span: sp(9, 32),
            },
            Step {
                name: None,
                kind: StepKind::Builtin {
                    name: "Dedupe".to_owned(),
                    args: vec![("keys".to_owned(), Value::Str("trade_id".to_owned()))],
                },
                from: vec![],
                contract: None,
                span: sp(10, 5),
                body_span: sp(10, 11),
            },
        ]
    );
    assert_eq!(
        s.sinks,
        [
            Sink {
                uri: spanned("parquet://out/trades/", 11, 11),
                format: None,
                from: None,
                when: When::Valid,
                with: None,
                mode: SinkMode::Overwrite,
                dataset: Some(spanned("trades_silver", 11, 44)),
                span: sp(11, 5),
            },
            Sink {
                uri: spanned("json://out/rejected.ndjson", 12, 11),
                format: None,
                from: None,
                when: When::Invalid,
                with: None,
                mode: SinkMode::Overwrite,
                dataset: None,
                span: sp(12, 5),
            },
        ]
    );
    assert_eq!(
        s.requires,
        Some(Requires {
            cpu: Some("1".to_owned()),
            memory: Some("512Mi".to_owned()),
            span: sp(13, 5),
        })
    );
    assert_eq!(s.contract, Some(spanned("contracts/trade.yaml", 14, 25)));
    assert_eq!(
        s.prose,
        [
            spanned("Given the contract: contracts/trade.yaml", 14, 5),
            spanned("When trades arrive", 15, 5),
            spanned("Then invalid trades go to the rejected file", 16, 5),
        ]
    );
    assert_eq!(s.window, None);
    assert_eq!(s.affinity, None);
    assert_eq!(s.herd, None);
    assert_eq!(s.golden, None);
    assert!(s.meta.is_empty() && s.asserts.is_empty() && s.emits.is_empty());
}

#[test]
fn crlf_text_parses_like_lf_text() {
    let crlf = EXAMPLE.replace('\n', "\r\n");
    assert_eq!(feature(&crlf), feature(EXAMPLE));
}

#[test]
fn argument_lists_continue_over_lines() {
    let s = scenario(
        r#"    @source("csv://a.csv")
    @step(
      name = "enriched",   # a comment inside the list
      sql = """
        SELECT *
          FROM a
        WHERE x = "y" AND z = 'w'
      """,
    ) @sink("csv://out.csv")
"#,
    );
    assert_eq!(s.steps.len(), 1);
    assert_eq!(s.steps[0].name, Some(spanned("enriched", 5, 14)));
    assert_eq!(
        s.steps[0].kind,
        StepKind::Sql("SELECT *\n  FROM a\nWHERE x = \"y\" AND z = 'w'".to_owned())
    );
    assert_eq!(s.steps[0].span, sp(4, 5));
    assert_eq!(s.sinks.len(), 1);
    assert_eq!(s.sinks[0].span, sp(11, 7));
}

#[test]
fn single_quoted_strings_and_escapes() {
    let s = scenario(
        r#"    @step(sql='SELECT "a b" FROM t WHERE c = \'x\'', name="tab\tand\nnewline \"q\" \\")
"#,
    );
    assert_eq!(
        s.steps[0].kind,
        StepKind::Sql(r#"SELECT "a b" FROM t WHERE c = 'x'"#.to_owned())
    );
    assert_eq!(
        s.steps[0].name.as_ref().map(|n| n.value.as_str()),
        Some("tab\tand\nnewline \"q\" \\")
    );
}

#[test]
fn value_kinds() {
    let s = scenario(
        r#"    @meta(n=16, f=1.5, neg=-3, d=5m, ms=250ms, mix=1h30m, yes=true, no=false, word=Dedupe, path=contracts/a.yaml, l=[a, "b", 3, [4]], s="x")
"#,
    );
    let args = &s.tags[0].args;
    let values: Vec<&Value> = args.iter().map(|a| &a.value).collect();
    assert_eq!(
        values,
        [
            &Value::Number("16".into()),
            &Value::Number("1.5".into()),
            &Value::Number("-3".into()),
            &Value::Duration {
                text: "5m".into(),
                millis: 300_000
            },
            &Value::Duration {
                text: "250ms".into(),
                millis: 250
            },
            &Value::Duration {
                text: "1h30m".into(),
                millis: 5_400_000
            },
            &Value::Bool(true),
            &Value::Bool(false),
            &Value::Ident("Dedupe".into()),
            &Value::Ident("contracts/a.yaml".into()),
            &Value::List(vec![
                Value::Ident("a".into()),
                Value::Str("b".into()),
                Value::Number("3".into()),
                Value::List(vec![Value::Number("4".into())]),
            ]),
            &Value::Str("x".into()),
        ]
    );
    assert_eq!(s.meta[10], ("l".to_owned(), "a, b, 3, 4".to_owned()));
    assert_eq!(s.meta[6], ("yes".to_owned(), "true".to_owned()));
    assert_eq!(args[0].span, sp(3, 11));
    assert_eq!(args[0].value_span, sp(3, 13));
}

#[test]
fn value_helpers() {
    assert_eq!(Value::Str("a".into()).as_str(), Some("a"));
    assert_eq!(Value::Ident("a".into()).as_str(), Some("a"));
    assert_eq!(Value::Number("1".into()).as_str(), None);
    assert_eq!(Value::Str("5m".into()).as_duration_ms(), Some(300_000));
    assert_eq!(Value::Str("soon".into()).as_duration_ms(), None);
    assert_eq!(Value::Bool(false).to_text(), "false");
}

#[test]
fn several_tags_on_one_line_and_comments() {
    let s = scenario(
        "    # a comment line\n    @source(\"csv://a.csv\") @sink(\"csv://b.csv\", mode=append) # trailing\n    When it runs # trailing comment\n",
    );
    assert_eq!(s.sources.len(), 1);
    assert_eq!(s.sinks[0].mode, SinkMode::Append);
    assert_eq!(s.prose, [spanned("When it runs", 5, 5)]);
}

#[test]
fn tags_above_a_scenario_belong_to_it_and_body_tags_to_the_body() {
    let f = feature(
        r#"Feature: F
  Description line one.

  Line three.

  @herd(first)
  Scenario: A
    A's description.
    @source("csv://a.csv")
    Given something

    @sink("csv://a_out.csv")

  @herd(second)
  @meta(owner="me")
  Scenario: B
    @source("csv://b.csv")
    @sink("csv://b_out.csv")
"#,
    );
    assert_eq!(f.description, "Description line one.\n\nLine three.");
    let [a, b] = &f.scenarios[..] else {
        panic!("two scenarios")
    };
    assert_eq!(a.herd, Some(spanned("first", 6, 9)));
    assert_eq!(a.description, "A's description.");
    assert_eq!(a.sources.len(), 1);
    assert_eq!(a.sinks.len(), 1, "the deeper-indented sink stays in A");
    assert_eq!(b.herd, Some(spanned("second", 14, 9)));
    assert_eq!(b.meta, [("owner".to_owned(), "me".to_owned())]);
    assert_eq!(b.sources[0].uri.value, "csv://b.csv");
    assert_eq!(b.sinks[0].uri.value, "csv://b_out.csv");
}

#[test]
fn flat_files_attach_trailing_tags_to_the_last_scenario() {
    let f = feature(
        "Feature: F\nScenario: A\n@source(\"csv://a\")\n@sink(\"csv://b\")\nScenario: B\nWhen x\n@sink(\"csv://c\")\n",
    );
    assert!(
        f.scenarios[0].sources.is_empty(),
        "same indentation as `Scenario: B`: B's tags"
    );
    assert_eq!(f.scenarios[1].sources.len(), 1);
    assert_eq!(f.scenarios[1].sinks.len(), 2);
}

#[test]
fn feature_level_tags() {
    let f = feature(
        "@herd(finance) @meta(owner=\"desk\", tier=1)\n@feature(name=\"Shown\", team=\"risk\")\nFeature: F\n",
    );
    assert_eq!(f.herd, Some(spanned("finance", 1, 7)));
    assert_eq!(f.display_name.as_deref(), Some("Shown"));
    assert_eq!(
        f.meta,
        [
            ("owner".to_owned(), "desk".to_owned()),
            ("tier".to_owned(), "1".to_owned()),
            ("team".to_owned(), "risk".to_owned()),
        ]
    );
    assert_eq!(f.tags.len(), 3);
}

#[test]
fn source_sink_and_step_options() {
    let s = scenario(
        r#"    @source("json://in/", name="events", format="ndjson", contract="c.yaml", watch=true)
    @source(dataset://finance/trades)
    @step("filter", where="amount > 0", name="positive", from="events, trades", contract="c2.yaml")
    @step("Select", columns=[a, b], from=[positive])
    @step(sql_file="steps/x.sql")
    @step(exec="python3 enrich.py", name="py")
    @sink("flight://host:1/x", from="py", when="amount > 10", with="role=R", mode=overwrite, dataset=big)
"#,
    );
    let src = &s.sources[0];
    assert_eq!(src.name, Some(spanned("events", 3, 32)));
    assert_eq!(src.format.as_deref(), Some("ndjson"));
    assert_eq!(
        src.contract.as_ref().map(|c| c.value.as_str()),
        Some("c.yaml")
    );
    assert!(src.watch);
    assert_eq!(s.sources[1].uri.value, "dataset://finance/trades");
    assert_eq!(s.sources[1].name, None);

    assert_eq!(
        s.steps[0].kind,
        StepKind::Builtin {
            name: "Filter".into(),
            args: vec![("where".into(), Value::Str("amount > 0".into()))]
        }
    );
    let from: Vec<&str> = s.steps[0].from.iter().map(|f| f.value.as_str()).collect();
    assert_eq!(from, ["events", "trades"]);
    assert_eq!(
        s.steps[0].contract.as_ref().map(|c| c.value.as_str()),
        Some("c2.yaml")
    );
    assert_eq!(s.steps[1].from[0].value, "positive");
    assert_eq!(s.steps[2].kind, StepKind::SqlFile("steps/x.sql".into()));
    assert_eq!(s.steps[3].kind, StepKind::Exec("python3 enrich.py".into()));

    let sink = &s.sinks[0];
    assert_eq!(sink.from.as_ref().map(|f| f.value.as_str()), Some("py"));
    assert_eq!(sink.when, When::Predicate("amount > 10".into()));
    assert_eq!(sink.with.as_deref(), Some("role=R"));
    assert_eq!(sink.mode, SinkMode::Overwrite);
    assert_eq!(sink.dataset.as_ref().map(|d| d.value.as_str()), Some("big"));
}

#[test]
fn scenario_settings() {
    let s = scenario(
        r#"    @window(sliding="10m", every=2m, on=ts, watermark="30s")
    @affinity(label="gpu", colocate_with="db")
    @golden(input="tests/in.csv", expected="tests/out.csv")
    @assert("count(*) > 0") @emits("json://events.ndjson")
    @contract(contracts/x.yaml)
    @herd(h) @module(layer=gold)
"#,
    );
    assert_eq!(
        s.window,
        Some(Window {
            kind: WindowKind::Sliding {
                size: Value::Duration {
                    text: "10m".into(),
                    millis: 600_000
                },
                every: Value::Duration {
                    text: "2m".into(),
                    millis: 120_000
                },
            },
            on: Some("ts".into()),
            watermark: Some(Value::Duration {
                text: "30s".into(),
                millis: 30_000
            }),
            span: sp(3, 5),
        })
    );
    let affinity = s.affinity.as_ref().expect("affinity");
    assert_eq!(affinity.label.as_deref(), Some("gpu"));
    assert_eq!(affinity.colocate_with.as_deref(), Some("db"));
    let golden = s.golden.as_ref().expect("golden");
    assert_eq!(golden.input, "tests/in.csv");
    assert_eq!(golden.expected.as_deref(), Some("tests/out.csv"));
    assert_eq!(s.asserts, [spanned("count(*) > 0", 6, 13)]);
    assert_eq!(s.emits, [spanned("json://events.ndjson", 6, 36)]);
    assert_eq!(s.contract, Some(spanned("contracts/x.yaml", 7, 15)));
    assert_eq!(s.herd, Some(spanned("h", 8, 11)));
    assert_eq!(s.module, [("layer".to_owned(), "gold".to_owned())]);

    let tumbling = scenario("    @window(tumbling=5m)\n");
    assert!(matches!(
        tumbling.window.map(|w| w.kind),
        Some(WindowKind::Tumbling {
            size: Value::Duration {
                millis: 300_000,
                ..
            }
        })
    ));
    let session = scenario("    @window(session=\"15m\")\n");
    assert!(matches!(
        session.window.map(|w| w.kind),
        Some(WindowKind::Session {
            gap: Value::Duration {
                millis: 900_000,
                ..
            }
        })
    ));
}

#[test]
fn given_the_contract_is_case_insensitive_and_may_be_quoted() {
    let s = scenario("    Given THE Contract: \"my contracts/t.yaml\"  # why\n");
    assert_eq!(s.contract, Some(spanned("my contracts/t.yaml", 3, 26)));
}

#[test]
fn a_second_contract_binding_is_an_error() {
    assert_eq!(
        diagnostics(
            "Feature: F\n  Scenario: S\n    @contract(\"a.yaml\")\n    Given the contract: b.yaml\n"
        ),
        "t.feature:4:25: error: Scenario `S` binds a contract twice; the first binding is at 3:15"
    );
}

#[test]
fn diagnostics_display_and_has_errors() {
    let (doc, diags) = parse("x.feature", "");
    assert_eq!(doc.feature, None);
    assert!(has_errors(&diags));
    assert_eq!(
        diags[0].to_string(),
        "x.feature:1:1: error: missing `Feature:` line; a feature file needs `Feature: NAME`"
    );
    let (_, diags) = parse(
        "x.feature",
        "Feature: F\n  Scenario: S\n    @meta(re=\"\\d+\")\n",
    );
    assert!(!has_errors(&diags));
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(
        render_diags(&diags),
        "x.feature:3:15: warning: unknown escape `\\d` kept as written; write `\\\\` for a backslash"
    );
}

#[test]
fn structural_errors() {
    assert_eq!(
        diagnostics("Some text\nFeature: F\nFeature: G\n  Scenario:\n@herd(x)\n"),
        [
            "t.feature:1:1: error: text outside any Feature; a feature file starts with tags and a `Feature: NAME` line",
            "t.feature:3:1: error: a file holds one Feature; the first `Feature:` is at 2:1",
            "t.feature:4:3: error: `Scenario:` needs a name, e.g. `Scenario: Validate trades`",
            "t.feature:5:1: error: this tag is attached to nothing: no `Feature:` or `Scenario:` line follows",
        ]
        .join("\n")
    );
    assert_eq!(
        diagnostics("Feature: F\n  Desc\n  @source(\"csv://a\")\n  When x\n  Background:\n"),
        [
            "t.feature:3:3: error: this tag is attached to nothing: no `Feature:` or `Scenario:` line follows",
            "t.feature:4:3: error: `When` line outside a Scenario; steps belong under a `Scenario:` line",
            "t.feature:5:3: error: `Background:` is not supported in Runink features; write each case as its own `Scenario:` with its tags",
        ]
        .join("\n")
    );
}

#[test]
fn scenarios_before_the_feature_are_reported_and_dropped() {
    let (doc, diags) = parse("t.feature", "Scenario: S\n  @bogus\nFeature: F\n");
    assert_eq!(doc.feature.map(|f| f.scenarios.len()), Some(0));
    assert_eq!(
        render_diags(&diags),
        [
            "t.feature:1:1: error: `Scenario:` outside a Feature; add a `Feature: NAME` line above it",
            "t.feature:2:3: error: unknown tag `@bogus`; expected one of: @feature, @herd, @meta, @module, @source, @step, @sink, @contract, @requires, @affinity, @window, @golden, @assert, @emits",
        ]
        .join("\n")
    );
}

#[test]
fn list_nesting_is_capped() {
    let deep = format!(
        "Feature: F\n  Scenario: S\n    @meta(x={}{})\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(
        diagnostics(&deep),
        format!(
            "t.feature:3:{}: error: lists nest deeper than 32 levels",
            13 + MAX_LIST_DEPTH
        )
    );
}

#[test]
fn huge_inputs_stay_bounded() {
    let long_line = format!(
        "Feature: F\n  Scenario: S\n    @meta(k=\"{}\")\n",
        "x".repeat(1 << 20)
    );
    let s = feature(&long_line).scenarios.remove(0);
    assert_eq!(s.meta[0].1.len(), 1 << 20);

    let many_errors = format!(
        "Feature: F\n  Scenario: S\n{}",
        "    @bogus\n".repeat(10_000)
    );
    let (_, diags) = parse("t.feature", &many_errors);
    assert_eq!(diags.len(), 201);
    assert!(diags[200].message.contains("more diagnostics not shown"));

    let many_args = format!(
        "Feature: F\n  Scenario: S\n    @meta({})\n",
        (0..50_000)
            .map(|i| format!("k{i}=1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(feature(&many_args).scenarios[0].meta.len(), 50_000);
}

#[test]
fn the_tree_serializes() {
    // Serialize is part of the API: check it is derived across the whole tree.
    fn assert_serialize<T: serde::Serialize>(_: &T) {}
    let (doc, diags) = parse("t.feature", EXAMPLE);
    assert_serialize(&doc);
    assert_serialize(&diags);
}

// ---- diagnostics snapshots -------------------------------------------------------------

/// Snapshots the diagnostics of `text`, with the numbered text as the snapshot's
/// description so a reviewer can check every line:column against it.
macro_rules! snapshot {
    ($name:literal, $text:expr) => {{
        let text: &str = $text;
        let numbered: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{:>3} | {l}\n", i + 1))
            .collect();
        insta::with_settings!({ description => numbered, omit_expression => true }, {
            insta::assert_snapshot!($name, diagnostics(text));
        });
    }};
}

#[test]
fn snapshot_unknown_tag() {
    snapshot!(
        "unknown_tag",
        "@feature(name=\"F\")\n@sauce(\"x\")\nFeature: F\n  Scenario: S\n    @source(\"csv://a.csv\") @flow(x=1)\n"
    );
}

#[test]
fn snapshot_bad_arguments() {
    snapshot!(
        "bad_arguments",
        r#"Feature: F
  Scenario: S
    @source("csv://a.csv", nme="a", watch="yes")
    @sink("csv://b.csv", mode=upsert)
    @sink("csv://c.csv", mode=append, mode=overwrite)
    @requires(cpu=[1, 2])
    @window(tumbling="five minutes")
    @window(sliding=10m)
    @step(sql="SELECT 1", keys="k")
"#
    );
}

#[test]
fn snapshot_missing_required_builtin_arg() {
    snapshot!(
        "missing_builtin_arg",
        r#"Feature: F
  Scenario: S
    @step("Dedupe")
    @step("Filter", columns="a")
    @step(Select)
    @step("Explode", column="a")
"#
    );
}

#[test]
fn snapshot_unterminated_string() {
    snapshot!(
        "unterminated_string",
        r#"Feature: F
  Scenario: S
    @source("csv://a.csv)
    @sink("csv://b.csv", dataset='b)
    @source("csv://c.csv, name="c")
    @step(sql="""
      SELECT *
"#
    );
}

#[test]
fn snapshot_unclosed_paren() {
    snapshot!(
        "unclosed_paren",
        r#"Feature: F
  Scenario: S
    @source("csv://a.csv", name="a"
    @sink("csv://b.csv")
    @meta(tags=[a, b)
    When it runs
    @step(sql="SELECT 1",
"#
    );
}

#[test]
fn snapshot_bad_uri_scheme() {
    snapshot!(
        "bad_uri_scheme",
        r#"Feature: F
  Scenario: S
    @source("ftp://host/a.csv")
    @source("data/trades.csv")
    @sink("s3://bucket/out/")
    @sink("parquet://")
"#
    );
}

#[test]
fn snapshot_missing_feature() {
    snapshot!(
        "missing_feature",
        "# just a comment\n@herd(finance)\n  Scenario: Orphan\n    When nothing\n"
    );
}

#[test]
fn snapshot_step_with_sql_and_exec() {
    snapshot!(
        "step_sql_and_exec",
        r#"Feature: F
  Scenario: S
    @step(name="x", sql="SELECT 1", exec="./run.sh")
    @step("Dedupe", keys="id", sql="SELECT 2")
    @step(name="nothing")
"#
    );
}

// ---- never panics ----------------------------------------------------------------------

/// Pieces that steer random text into the parser's interesting corners.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("@".to_owned()),
        Just("@source(".to_owned()),
        Just("@step(".to_owned()),
        Just("@sink(\"csv://x\"".to_owned()),
        Just("@window(".to_owned()),
        Just("@meta(".to_owned()),
        Just("@feature(".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just("=".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\"\"\"".to_owned()),
        Just("\\".to_owned()),
        Just("#".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("  ".to_owned()),
        Just("\t".to_owned()),
        Just("Feature:".to_owned()),
        Just("Scenario:".to_owned()),
        Just("Given the contract:".to_owned()),
        Just("When ".to_owned()),
        Just("Then".to_owned()),
        Just("5m".to_owned()),
        Just("99999999999999999999999d".to_owned()),
        Just("-1.5e3".to_owned()),
        Just("true".to_owned()),
        Just("sql=".to_owned()),
        Just("name=".to_owned()),
        Just("csv://".to_owned()),
        Just("é".to_owned()),
        Just("\u{feff}".to_owned()),
        "[a-z]{1,6}",
        "\\PC{0,4}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let (_, diags) = parse("p.feature", &text);
        prop_assert!(diags.len() <= 201);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let (doc, diags) = parse("p.feature", &text);
        prop_assert!(doc.feature.is_some() || has_errors(&diags));
    }

    #[test]
    fn dsl_shaped_text_never_panics(parts in proptest::collection::vec(fragment(), 0..80)) {
        let text = parts.concat();
        let (doc, diags) = parse("p.feature", &text);
        // Every diagnostic points inside the text.
        let lines = u32::try_from(text.split('\n').count()).unwrap();
        for d in &diags {
            prop_assert!(d.span.line >= 1 && d.span.line <= lines, "{d}");
            prop_assert!(d.span.column >= 1, "{d}");
        }
        if doc.feature.is_none() {
            prop_assert!(has_errors(&diags));
        }
    }

    #[test]
    fn spliced_examples_never_panic(parts in proptest::collection::vec(fragment(), 0..20), cut in 0usize..700) {
        // A valid file with junk spliced in or cut short: the realistic kind of broken.
        let cut = EXAMPLE.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(EXAMPLE.len());
        let text = format!("{}{}{}", &EXAMPLE[..cut], parts.concat(), &EXAMPLE[cut..]);
        let (doc, diags) = parse("p.feature", &text);
        prop_assert!(doc.feature.is_some() || has_errors(&diags));
        let _ = parse("p.feature", &EXAMPLE[..cut]);
    }
}
