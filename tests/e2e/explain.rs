//! `EXPLAIN` golden tests: Runink's nodes are visible in the plans.

use crate::support::Project;

#[test]
fn explain_shows_enforcement_lineage_and_sinks() {
    let p = Project::fixture("orders");
    let out = p
        .runi(&[
            "compile",
            "--scenario",
            "orders.feature",
            "--name",
            "Built-ins",
            "--explain",
        ])
        .ok()
        .stdout;
    let (logical, physical) = out.split_once("== physical plan ==").unwrap();
    insta::assert_snapshot!("explain_builtins_logical", logical);
    for node in [
        "SinkExec: arrow://out/valid.arrow when=valid mode=Overwrite, csv://out/rejected.csv when=invalid mode=Overwrite",
        "ContractEnforceExec: contract=orders@0.3.0",
        "mode=Annotate at=select",
        "LineageTapExec: step=select",
        "ExternalCommandExec: step=passthrough exec=\"cat\"",
        "LineageTapExec: source=orders",
    ] {
        assert!(
            physical.contains(node),
            "physical plan lacks `{node}`:\n{physical}"
        );
    }
}

#[test]
fn explain_of_the_example() {
    let p = Project::example(1_000);
    let out = p
        .runi(&[
            "compile",
            "--scenario",
            "trades.feature",
            "--explain",
            "--dry-run",
        ])
        .ok()
        .stdout;
    let (logical, rest) = out.split_once("== optimized logical plan ==").unwrap();
    insta::assert_snapshot!("explain_trades_logical", logical);
    // Lineage taps pass statistics through, so DataFusion still broadcasts the small
    // reference table instead of hash-repartitioning every trade (a 1.8x slowdown once).
    let (_, physical) = rest.split_once("== physical plan ==").unwrap();
    assert!(
        physical.contains("HashJoinExec: mode=CollectLeft"),
        "{physical}"
    );
    assert!(
        !physical.contains("RepartitionExec: partitioning=Hash"),
        "{physical}"
    );
}

#[test]
fn explain_shows_the_stages_a_run_splits_the_example_into() {
    // 100 000 trades: several MiB, so a run here splits the scan into tasks.
    let p = Project::example(100_000);
    let out = p
        .runi(&[
            "compile",
            "--scenario",
            "trades.feature",
            "--explain",
            "--dry-run",
        ])
        .ok()
        .stdout;
    let (_, stages) = out.split_once("== stages (").expect("a stages section");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        assert!(stages.contains("one stage"), "{stages}");
        return;
    }
    // The head stage holds the sinks and `unique` enforcement (one stream); the trades are
    // read, tapped and joined with the broadcast instruments in tasks of another stage.
    let (head, rest) = stages.split_once("Stage 2").expect("stage 2");
    assert!(
        head.contains("DistributedExec") && head.contains("SinkExec"),
        "{stages}"
    );
    assert!(head.contains("ContractEnforceExec"), "{stages}");
    assert!(rest.contains("LineageTapExec: source=trades"), "{stages}");
    assert!(rest.contains("NetworkBroadcastExec"), "{stages}");
    assert!(rest.contains("tasks=2"), "{stages}");

    // A herd that allows one slice: the split `runi run` would make there, none.
    let herd = p
        .read("herd.toml")
        .replacen("slices_max = 16", "slices_max = 1", 1);
    p.write("herd.toml", &herd);
    p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
    let out = p
        .runi(&[
            "compile",
            "--scenario",
            "trades.feature",
            "--explain",
            "--dry-run",
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("== stages (1 slice, as `runi run` splits it here) ==\none stage"),
        "{out}"
    );
}
