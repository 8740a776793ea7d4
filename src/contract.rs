//! `runi contract validate|hash|diff|list`.

use anyhow::{Context, anyhow};
use runink_contracts::Contract;

use crate::cli::{ContractArgs, ContractCommand, Global, OutputFormat};
use crate::exit::{CmdResult, Failure};

pub async fn contract(global: &Global, args: &ContractArgs) -> CmdResult {
    match &args.command {
        ContractCommand::List => list(global).await,
        ContractCommand::Validate { files } => {
            let mut failed = Vec::new();
            let mut results = Vec::new();
            for file in files {
                match load(file) {
                    Ok(c) => {
                        if global.output == OutputFormat::Table {
                            println!(
                                "{}: ok — contract `{}` version {} ({} fields, {} rules) {}",
                                file.display(),
                                c.id,
                                c.version,
                                c.fields.len(),
                                c.rules().len(),
                                c.hash()
                            );
                        }
                        results.push(serde_json::json!({
                            "file": file.display().to_string(), "ok": true, "id": c.id,
                            "version": c.version, "fields": c.fields.len(), "hash": c.hash(),
                        }));
                    }
                    Err(e) => {
                        failed.push(format!("{e:#}"));
                        results.push(serde_json::json!({
                            "file": file.display().to_string(), "ok": false, "error": format!("{e:#}"),
                        }));
                    }
                }
            }
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&results).map_err(Failure::run)?
                ),
                OutputFormat::Yaml => {
                    print!(
                        "{}",
                        crate::output::to_yaml(&results).map_err(Failure::run)?
                    )
                }
                _ => {}
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Failure::input(anyhow!("{}", failed.join("\n"))))
            }
        }
        ContractCommand::Diff { old, new } => {
            let (a, b) = (
                load(old).map_err(Failure::input)?,
                load(new).map_err(Failure::input)?,
            );
            let d = runink_contracts::diff(&a, &b);
            match global.output {
                OutputFormat::Table
                | OutputFormat::Csv
                | OutputFormat::Openlineage
                | OutputFormat::Dot
                | OutputFormat::Svg => {
                    println!(
                        "{} {} -> {} {}: {} changes",
                        a.id,
                        a.version,
                        b.id,
                        b.version,
                        d.changes.len()
                    );
                    for c in &d.changes {
                        let tag = if c.breaking { "BREAKING" } else { "ok" };
                        println!("  {tag:<8}  {}", c.message);
                    }
                }
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "old": {"id": a.id, "version": a.version, "hash": a.hash()},
                        "new": {"id": b.id, "version": b.version, "hash": b.hash()},
                        "breaking": d.is_breaking(),
                        "changes": d.changes,
                    }))
                    .map_err(Failure::run)?
                ),
                OutputFormat::Yaml => print!(
                    "{}",
                    crate::output::to_yaml(&serde_json::json!({
                        "breaking": d.is_breaking(), "changes": d.changes,
                    }))
                    .map_err(Failure::run)?
                ),
            }
            if d.is_breaking() {
                let n = d.changes.iter().filter(|c| c.breaking).count();
                return Err(Failure::run(anyhow!(
                    "{n} breaking change(s) from {} to {}",
                    old.display(),
                    new.display()
                )));
            }
            Ok(())
        }
        ContractCommand::Hash { files } => {
            for file in files {
                let c = load(file).map_err(Failure::input)?;
                if files.len() == 1 {
                    println!("{}", c.hash());
                } else {
                    println!("{}  {}", c.hash(), file.display());
                }
            }
            Ok(())
        }
    }
}

fn load(file: &std::path::Path) -> anyhow::Result<Contract> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(Contract::load(&file.display().to_string(), &text)?)
}

/// `runi contract list`: the contract versions runs registered, with the datasets that are
/// registered with each; `--herd` keeps the versions that herd's datasets and runs use.
async fn list(global: &Global) -> CmdResult {
    #[derive(serde::Serialize)]
    struct Row {
        id: String,
        version: String,
        hash: String,
        /// Whether this is the text registered for the version: a contract edited without a
        /// new version keeps the first text registered, while runs record (and datasets are
        /// written under) the hash they enforced.
        registered: bool,
        herds: Vec<String>,
        datasets: Vec<String>,
        runs: usize,
    }
    let herd = global.herd.clone();
    let (rows, known) = crate::barn::read_once(global, |s| {
        use runink_cluster::state::ContractRef;
        let key = |r: &ContractRef| (r.id.clone(), r.version.clone(), r.hash.clone());
        let registered: std::collections::BTreeSet<(String, String, String)> = s
            .contracts()
            .map(|c| (c.id.clone(), c.version.clone(), c.hash.clone()))
            .collect();
        // Every (contract, version, hash) registered or used by a run or a dataset.
        let mut keys = registered.clone();
        keys.extend(s.runs().filter_map(|r| r.contract.as_ref().map(key)));
        keys.extend(
            s.herds()
                .flat_map(|h| s.datasets(&h.id))
                .filter_map(|d| d.contract.as_ref().map(key)),
        );
        let rows: Vec<Row> = keys
            .into_iter()
            .map(|(id, version, hash)| {
                let same = |r: &Option<ContractRef>| {
                    r.as_ref()
                        .is_some_and(|r| r.id == id && r.version == version && r.hash == hash)
                };
                let runs: Vec<_> = s.runs().filter(|r| same(&r.contract)).collect();
                let mut herds: Vec<String> = runs.iter().map(|r| r.herd.clone()).collect();
                let datasets: Vec<String> = s
                    .herds()
                    .flat_map(|h| s.datasets(&h.id))
                    .filter(|d| same(&d.contract))
                    .map(|d| format!("{}.{}", d.herd, d.name))
                    .collect();
                herds.extend(
                    datasets
                        .iter()
                        .filter_map(|d| d.split('.').next().map(str::to_string)),
                );
                herds.sort();
                herds.dedup();
                Row {
                    registered: registered.contains(&(id.clone(), version.clone(), hash.clone())),
                    id,
                    version,
                    hash,
                    herds,
                    datasets,
                    runs: runs.len(),
                }
            })
            .filter(|r| herd.as_ref().is_none_or(|h| r.herds.contains(h)))
            .collect();
        (rows, s.herd(herd.as_deref().unwrap_or_default()).is_some())
    })
    .await?;
    if let Some(h) = &herd
        && !known
    {
        return Err(Failure::input(anyhow!("unknown herd `{h}`")));
    }
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(Failure::run)?
        ),
        OutputFormat::Yaml => print!("{}", crate::output::to_yaml(&rows).map_err(Failure::run)?),
        _ => {
            println!(
                "{:<24} {:<10} {:<20} {:>5}  datasets",
                "contract", "version", "hash", "runs"
            );
            for r in &rows {
                let short: String = r.hash.chars().take(19).collect();
                println!(
                    "{:<24} {:<10} {:<20} {:>5}  {}{}",
                    r.id,
                    r.version,
                    short,
                    r.runs,
                    if r.datasets.is_empty() {
                        "-".to_string()
                    } else {
                        r.datasets.join(", ")
                    },
                    if r.registered {
                        ""
                    } else {
                        "  (edited without a new version: not the registered text)"
                    }
                );
            }
        }
    }
    Ok(())
}
