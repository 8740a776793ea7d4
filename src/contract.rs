//! `runi contract validate|hash|diff`.

use anyhow::{Context, anyhow};
use runink_contracts::Contract;

use crate::cli::{ContractArgs, ContractCommand, Global, OutputFormat};
use crate::exit::{CmdResult, Failure};

pub fn contract(global: &Global, args: &ContractArgs) -> CmdResult {
    match &args.command {
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
                OutputFormat::Table => {}
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
                OutputFormat::Table => {
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
