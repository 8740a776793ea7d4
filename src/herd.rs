//! `runi herd init|apply|list|show|delete`: herds in the embedded Barn (`--home`,
//! `$RUNINK_HOME`, default `.runink/` in the working directory).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use runink_cluster::parse_herd;
use runink_cluster::state::{Command, Herd};

use crate::barn::{read_once, write};

use crate::cli::{Global, HerdArgs, HerdCommand, OutputFormat};
use crate::exit::{CmdResult, Failure};
use crate::output::print_value;

/// The files `herd init` writes; `{{HERD}}` becomes the herd's id.
const SCAFFOLD: &[(&str, &str)] = &[
    (
        "features/sample.feature",
        include_str!("scaffold/sample.feature"),
    ),
    (
        "contracts/customer.yaml",
        include_str!("scaffold/customer.yaml"),
    ),
    ("data/customers.csv", include_str!("scaffold/customers.csv")),
];
const HERD_TEMPLATE: &str = include_str!("scaffold/herd.toml");
const FOLDERS: &[&str] = &["features", "contracts", "golden", "dags", "data"];

pub async fn herd(global: &Global, args: &HerdArgs) -> CmdResult {
    match &args.command {
        HerdCommand::Init { name, file, dir } => {
            init(global, name, file.as_deref(), dir.as_deref()).await
        }
        HerdCommand::Apply { file } => {
            let herd = read_herd_file(file)?;
            let id = herd.id.clone();
            write(global, Command::PutHerd { herd }).await?;
            say(global, &format!("herd `{id}` applied"));
            Ok(())
        }
        HerdCommand::List => {
            let herds: Vec<Herd> = read_once(global, |d| d.herds().cloned().collect()).await?;
            match global.output {
                OutputFormat::Table => {
                    println!(
                        "{:<20} {:>10} {:>10} {:>12}  description",
                        "herd", "slices", "cpu", "memory"
                    );
                    for h in &herds {
                        let q = &h.resource_quotas;
                        println!(
                            "{:<20} {:>10} {:>10} {:>12}  {}",
                            h.id,
                            q.slices_max.map_or("-".into(), |v| v.to_string()),
                            q.cpu_millis.map_or("-".into(), |v| format!("{v}m")),
                            q.memory_bytes.map_or("-".into(), human_bytes),
                            h.description
                        );
                    }
                }
                format => print_value(format, &herds)?,
            }
            Ok(())
        }
        HerdCommand::Show { name } => {
            let (herd, known) = read_once(global, |d| {
                (
                    d.herd(name).cloned(),
                    d.herds().map(|h| h.id.clone()).collect::<Vec<_>>(),
                )
            })
            .await?;
            let herd = herd.ok_or_else(|| Failure::input(unknown(name, &known)))?;
            match global.output {
                OutputFormat::Json => print_value(OutputFormat::Json, &herd)?,
                _ => print_value(OutputFormat::Yaml, &herd)?,
            }
            Ok(())
        }
        HerdCommand::Delete { name } => {
            write(global, Command::DeleteHerd { id: name.clone() }).await?;
            say(global, &format!("herd `{name}` deleted"));
            Ok(())
        }
    }
}

async fn init(global: &Global, name: &str, file: Option<&Path>, dir: Option<&Path>) -> CmdResult {
    let herd = match file {
        Some(f) => {
            let herd = read_herd_file(f)?;
            if herd.id != name {
                return Err(Failure::input(anyhow!(
                    "{}: the herd file's id is `{}`, not `{name}`",
                    f.display(),
                    herd.id
                )));
            }
            herd
        }
        None => {
            if !runink_cluster::herd::valid_name(name) {
                return Err(Failure::input(anyhow!(
                    "`{name}` cannot name a herd: use lowercase letters, digits, `_` and `-`, starting with a letter"
                )));
            }
            parse_herd("herd.toml", &HERD_TEMPLATE.replace("{{HERD}}", name))
                .map_err(Failure::run)?
        }
    };
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // A project folder that already has a herd.toml keeps it, and the herd registered is the
    // one it describes (the template's defaults would silently reset it); checked before
    // anything is written.
    let existing = dir.join("herd.toml");
    let herd = if existing.exists() {
        let kept_herd = read_herd_file(&existing)?;
        if kept_herd.id != name {
            return Err(Failure::input(anyhow!(
                "{}: the existing herd file's id is `{}`, not `{name}`; run `runi herd init {}` \
                 there, or choose another --dir",
                existing.display(),
                kept_herd.id,
                kept_herd.id
            )));
        }
        match file {
            Some(f) if herd != kept_herd => {
                return Err(Failure::input(anyhow!(
                    "{} differs from the project's existing {}: apply it with `runi herd apply -f {}`, \
                     or remove the existing file first",
                    f.display(),
                    existing.display(),
                    f.display()
                )));
            }
            _ => kept_herd,
        }
    } else {
        herd
    };
    let mut written = Vec::new();
    let mut kept = Vec::new();
    for folder in FOLDERS {
        std::fs::create_dir_all(dir.join(folder))
            .with_context(|| format!("cannot create {}", dir.join(folder).display()))
            .map_err(Failure::run)?;
    }
    let herd_text = match file {
        Some(f) => std::fs::read_to_string(f).map_err(Failure::run)?,
        None => HERD_TEMPLATE.replace("{{HERD}}", name),
    };
    let mut files: Vec<(&str, String)> = vec![("herd.toml", herd_text)];
    files.extend(
        SCAFFOLD
            .iter()
            .map(|(p, t)| (*p, t.replace("{{HERD}}", name))),
    );
    for (path, text) in files {
        let target = dir.join(path);
        if target.exists() {
            kept.push(target.display().to_string());
            continue;
        }
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))
            .map_err(Failure::run)?;
        written.push(target.display().to_string());
    }
    // The project is used from its folder, whose `.runink/` is the default state
    // directory there: register the herd in it unless a state directory was chosen.
    let home = match (dir.as_path(), global.home.as_path()) {
        (d, h) if d != Path::new(".") && h == Path::new(crate::cli::DEFAULT_HOME) => {
            d.join(crate::cli::DEFAULT_HOME)
        }
        _ => global.home.clone(),
    };
    let in_project = Global {
        home: home.clone(),
        ..global.clone()
    };
    write(&in_project, Command::PutHerd { herd }).await?;
    if global.output == OutputFormat::Table {
        println!("herd `{name}` registered in {}", home.display());
        for w in &written {
            println!("  wrote {w}");
        }
        for k in &kept {
            println!("  kept  {k} (exists)");
        }
        // A state directory given here must be given there too (as a path that holds from
        // the project folder).
        let home_arg = if global.home == Path::new(crate::cli::DEFAULT_HOME) {
            String::new()
        } else {
            let shown = std::path::absolute(&home).unwrap_or_else(|_| home.clone());
            format!(" --home {}", shown.display())
        };
        println!(
            "next: runi run --scenario features/sample.feature{home_arg}   (from {})",
            dir.display()
        );
    } else {
        print_value(
            global.output,
            &serde_json::json!({ "herd": name, "home": home.display().to_string(), "written": written, "kept": kept }),
        )?;
    }
    Ok(())
}

fn read_herd_file(file: &Path) -> Result<Herd, Failure> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Failure::input)?;
    parse_herd(&file.display().to_string(), &text).map_err(Failure::input)
}

fn unknown(name: &str, known: &[String]) -> anyhow::Error {
    if known.is_empty() {
        anyhow!(
            "no herd named `{name}`: no herd is registered (runi herd init NAME, or runi herd apply -f herd.toml)"
        )
    } else {
        anyhow!("no herd named `{name}` (herds: {})", known.join(", "))
    }
}

fn say(global: &Global, text: &str) {
    if global.output == OutputFormat::Table {
        println!("{text}");
    } else {
        println!("{}", serde_json::json!({ "ok": true, "message": text }));
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if b >= *size && b.is_multiple_of(*size) {
            return format!("{}{unit}", b / size);
        }
    }
    b.to_string()
}
