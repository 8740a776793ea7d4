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
