//! The house rule of ../shared/STYLE.md: internal dependencies go one way.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// crate → the internal crates it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("runink-contracts", &[]),
    ("runink-dsl", &[]),
    ("runink-engine", &["runink-contracts"]),
    (
        "runink-planner",
        &["runink-dsl", "runink-engine", "runink-contracts"],
    ),
    (
        "runink-flight",
        &["runink-planner", "runink-engine", "runink-contracts"],
    ),
    ("runink-cluster", &["runink-planner", "runink-contracts"]),
    (
        "runi",
        &[
            "runink-contracts",
            "runink-dsl",
            "runink-engine",
            "runink-planner",
            "runink-flight",
            "runink-cluster",
        ],
    ),
];

#[test]
fn internal_dependencies_follow_the_table() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::support::repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut checked = 0;
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some(ok) = allowed.get(name) else {
            panic!("crate `{name}` is not in the dependency table of STYLE.md; add it to ALLOWED");
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if members.contains(dep_name) && dep["kind"].is_null() {
                assert!(
                    ok.contains(dep_name),
                    "`{name}` must not depend on `{dep_name}` (STYLE.md)"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "expected the workspace crates, saw {checked}");
}
