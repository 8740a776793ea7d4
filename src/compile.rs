//! `runi compile`: a Scenario to a DAG file.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionContext;
use datafusion_distributed::{DistributedExec, display_plan_ascii};
use runink_engine::run::RunContext;
use runink_engine::session::SessionLimits;
use runink_planner::slices::{SliceOptions, SliceWorkers, distributed_run_context, slice_graph};
use runink_planner::{CompileOptions, Compiled, dag};

use crate::cli::{CompileArgs, Global, OutputFormat, ScenarioArgs};
use crate::exit::{CmdResult, Failure};

/// Where each registered dataset is now, as `HERD/NAME` → `FORMAT://PATH`.
pub async fn dataset_locations(
    global: &Global,
) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    Ok(registered_datasets(global).await?.0)
}

/// Each registered dataset's location (`HERD/NAME` → `FORMAT://PATH`) and the schema it was
/// registered with (where that record reads as one).
async fn registered_datasets(
    global: &Global,
) -> Result<
    (
        std::collections::BTreeMap<String, String>,
        std::collections::BTreeMap<String, arrow::datatypes::SchemaRef>,
    ),
    Failure,
> {
    crate::barn::read_once(global, |state| {
        let mut locations = std::collections::BTreeMap::new();
        let mut schemas = std::collections::BTreeMap::new();
        for d in state.herds().flat_map(|h| state.datasets(&h.id)) {
            // The registered format wins over the URI's scheme (`file://` has none).
            let path = d
                .location
                .split_once("://")
                .map_or(d.location.as_str(), |(_, p)| p);
            let key = format!("{}/{}", d.herd, d.name);
            if let Ok(schema) = serde_json::from_str::<arrow::datatypes::Schema>(&d.schema_json) {
                schemas.insert(key.clone(), std::sync::Arc::new(schema));
            }
            locations.insert(key, format!("{}://{path}", d.format));
        }
        (locations, schemas)
    })
    .await
}

/// Compiles the Scenario the arguments name.
pub async fn compile_scenario(
    global: &Global,
    args: &ScenarioArgs,
) -> Result<(SessionContext, Compiled), Failure> {
    let Some(feature_file) = args.scenario.clone() else {
        return Err(Failure::input(anyhow!("--scenario FILE is required")));
    };
    let ctx = runink_planner::new_context(
        &SessionLimits::default(),
        Arc::new(RunContext::new("compile")),
    )
    .map_err(Failure::run)?;
    // `dataset://HERD/NAME` sources name datasets registered in Barn; open it only then.
    let mentions_datasets = std::fs::read_to_string(&feature_file)
        .map(|t| t.contains("dataset://"))
        .unwrap_or(false);
    let (datasets, dataset_schemas) = if mentions_datasets {
        registered_datasets(global).await?
    } else {
        Default::default()
    };
    let options = CompileOptions {
        feature_file,
        scenario: args.name.clone(),
        contract_file: args.contract.clone(),
        herd: global.herd.clone(),
        datasets,
        dataset_schemas,
    };
    let compiled = runink_planner::compile(&ctx, &options)
        .await
        .map_err(Failure::input)?;
    check_requires(&options.feature_file, &compiled.meta)?;
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    Ok((ctx, compiled))
}

/// `@requires(cpu=, memory=)` must be quantities a slice can be given (the herd file's
/// spelling: `500m`, `0.5`, `2`; `512Mi`, `2Gi`), named at the tag when they are not.
fn check_requires(feature_file: &std::path::Path, meta: &dag::DagMeta) -> Result<(), Failure> {
    let problem = match (&meta.resources.cpu, &meta.resources.memory) {
        (Some(cpu), _) if runink_cluster::herd::parse_cpu_millis(cpu).is_none_or(|m| m == 0) => {
            format!("@requires(cpu=\"{cpu}\") is not a CPU quantity like 1, 0.5 or 500m")
        }
        (_, Some(memory)) if runink_cluster::herd::parse_bytes(memory).is_none() => {
            format!("@requires(memory=\"{memory}\") is not a quantity like 512Mi or 2Gi")
        }
        _ => return Ok(()),
    };
    let file = feature_file.display().to_string();
    let text = std::fs::read_to_string(feature_file).unwrap_or_default();
    let (doc, _) = runink_dsl::parse(&file, &text);
    let span = doc
        .feature
        .iter()
        .flat_map(|f| &f.scenarios)
        .find(|s| s.name == meta.scenario)
        .and_then(|s| s.requires.as_ref())
        .map_or(runink_dsl::Span::new(1, 1), |r| r.span);
    Err(Failure::input(runink_planner::PlanError::at(
        &file, span, problem,
    )))
}

pub async fn compile(global: &Global, args: &CompileArgs) -> CmdResult {
    if args.out.is_none() && !args.dry_run && !args.explain {
        return Err(Failure::input(anyhow!(
            "--out FILE is required (or --dry-run to only check, --explain to print the plans)"
        )));
    }
    let (ctx, mut compiled) = compile_scenario(global, &args.scenario).await?;
    // The split is planned once, for `--explain` and the DAG's slice graph both.
    let split = if args.explain || (args.out.is_some() && !args.dry_run) {
        let quotas = herd_quotas(global, &compiled.meta).await?;
        Some(
            planned_split(&compiled, &quotas)
                .await
                .map_err(Failure::input)?,
        )
    } else {
        None
    };
    if args.explain
        && let Some(split) = &split
    {
        print!(
            "{}",
            explain(&ctx, &compiled, split)
                .await
                .map_err(Failure::input)?
        );
    }
    if args.dry_run {
        // What `--out` would write must serialize.
        dag::encode(&compiled.meta, &compiled.plan).map_err(Failure::run)?;
        if !args.explain {
            match global.output {
                OutputFormat::Json | OutputFormat::Yaml => crate::output::print_value(
                    global.output,
                    &serde_json::json!({
                        "ok": true,
                        "scenario": compiled.meta.scenario,
                        "sources": compiled.meta.sources.len(),
                        "steps": compiled.meta.steps.len(),
                        "sinks": compiled.meta.sinks.len(),
                        "warnings": compiled.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                    }),
                )?,
                _ => eprintln!(
                    "ok: Scenario `{}` compiles ({} sources, {} steps, {} sinks)",
                    compiled.meta.scenario,
                    compiled.meta.sources.len(),
                    compiled.meta.steps.len(),
                    compiled.meta.sinks.len()
                ),
            }
        }
        return Ok(());
    }
    if let Some(out) = &args.out {
        // A typo must not replace the Feature or contract file with the DAG.
        let same = |input: &std::path::Path| {
            matches!(
                (std::fs::canonicalize(out), std::fs::canonicalize(input)),
                (Ok(a), Ok(b)) if a == b
            )
        };
        let bound = compiled
            .meta
            .contract
            .as_ref()
            .map(|c| std::path::PathBuf::from(&c.file));
        let inputs = args.scenario.scenario.iter().chain(&args.scenario.contract);
        if let Some(input) = inputs.chain(&bound).find(|i| same(i)) {
            return Err(Failure::input(anyhow!(
                "--out {} is the input file {}: write the DAG elsewhere (e.g. dags/NAME.dag)",
                out.display(),
                input.display()
            )));
        }
        // Nor any other file that is not a DAG: a source, a `sql_file=`, someone's notes.
        if let Some(what) = not_a_dag(out) {
            return Err(Failure::input(anyhow!(
                "--out {} exists and is {what}, not a DAG file: write the DAG elsewhere (e.g. dags/NAME.dag), or remove the file first",
                out.display()
            )));
        }
        // Nor into a source's folder, whose files the Scenario reads (the DAG would be read
        // as data next time).
        if let Some(source) = compiled.meta.sources.iter().find(|s| {
            s.uri
                .split_once("://")
                .filter(|(scheme, _)| *scheme != "dataset")
                .and_then(|(_, path)| std::fs::canonicalize(path).ok())
                .is_some_and(|dir| dir.is_dir() && real_path(out).starts_with(&dir))
        }) {
            return Err(Failure::input(anyhow!(
                "--out {} is inside the folder of source `{}` ({}), whose files the Scenario reads: write the DAG elsewhere (e.g. dags/NAME.dag)",
                out.display(),
                source.name,
                source.uri
            )));
        }
        if let Some((count, split)) = &split {
            compiled.meta.slices = slice_graph(split, *count);
        }
        let bytes = dag::encode(&compiled.meta, &compiled.plan).map_err(Failure::run)?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))
                .map_err(Failure::input)?;
        }
        // Written beside and renamed into place: an interrupted compile leaves the DAG that
        // was there (or none), never part of one.
        let file_name = out.file_name().unwrap_or_default().to_string_lossy();
        let temp = out.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        std::fs::write(&temp, &bytes)
            .and_then(|()| std::fs::rename(&temp, out))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&temp);
            })
            .with_context(|| format!("cannot write {}", out.display()))
            .map_err(Failure::input)?;
        match global.output {
            OutputFormat::Json | OutputFormat::Yaml => crate::output::print_value(
                global.output,
                &serde_json::json!({ "dag": out.display().to_string(), "bytes": bytes.len(), "scenario": compiled.meta.scenario }),
            )?,
            _ => eprintln!("wrote {} ({} bytes)", out.display(), bytes.len()),
        }
    }
    Ok(())
}

/// `path` made absolute with its links resolved, as far as it exists (the rest appended).
fn real_path(path: &std::path::Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return absolute,
        }
    }
}

/// What `path` is, when it exists and is not a DAG file `--out` may replace: its first bytes
/// are read, not the whole file (it may be a large source).
fn not_a_dag(path: &std::path::Path) -> Option<&'static str> {
    use std::io::Read;
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        return Some("a directory");
    }
    if meta.len() == 0 {
        return None;
    }
    let mut head = Vec::with_capacity(256);
    let read = std::fs::File::open(path).and_then(|f| f.take(256).read_to_end(&mut head));
    let text = String::from_utf8_lossy(&head);
    let dag = read.is_ok()
        && text.trim_start().starts_with('{')
        && text.contains(&format!(
            "\"format\": \"{}\"",
            runink_planner::dag::DAG_FORMAT
        ));
    (!dag).then_some("another file")
}

/// The plans, as `--explain` prints them: the compiled logical plan, the optimized one,
/// the physical plan, and its stages as a run on this machine would split them.
pub async fn explain(
    ctx: &SessionContext,
    compiled: &Compiled,
    split: &(usize, Arc<dyn ExecutionPlan>),
) -> anyhow::Result<String> {
    let state = ctx.state();
    let optimized = state.optimize(&compiled.plan)?;
    let physical = state.create_physical_plan(&compiled.plan).await?;
    let repeated = runink_planner::shared::repeated_relations(&compiled.plan)?;
    let spooled = if repeated.is_empty() {
        String::new()
    } else {
        format!(
            "\n== computed once ==\nread more than once, so `runi run` computes them first, once, into its spool, and the plans above read that: {}\n",
            repeated.join(", ")
        )
    };
    Ok(format!(
        "== logical plan ==\n{}\n\n== optimized logical plan ==\n{}\n\n== physical plan ==\n{}\n{}{spooled}",
        compiled.plan.display_indent(),
        optimized.display_indent(),
        displayable(physical.as_ref()).indent(false),
        stages(split)
    ))
}

/// The plan split into stages as `runi run --slices auto` would split it on this machine
/// without herd quotas, and the slices that is for: planned against stand-in slices,
/// nothing is started.
/// The quotas of the herd the Scenario runs in, as registered in Barn; none when the
/// herd or the state directory does not exist yet (compiling creates no state).
async fn herd_quotas(
    global: &Global,
    meta: &dag::DagMeta,
) -> Result<runink_cluster::state::ResourceQuotas, Failure> {
    if !global.home.exists() {
        return Ok(Default::default());
    }
    let herd = global
        .herd
        .clone()
        .or_else(|| meta.herd.clone())
        .unwrap_or_else(|| crate::record::DEFAULT_HERD.to_string());
    crate::barn::read_once(global, |s| {
        s.herd(&herd)
            .map(|h| h.resource_quotas.clone())
            .unwrap_or_default()
    })
    .await
}

async fn planned_split(
    compiled: &Compiled,
    quotas: &runink_cluster::state::ResourceQuotas,
) -> anyhow::Result<(usize, Arc<dyn ExecutionPlan>)> {
    let budget = crate::slices::Budget::for_plan(quotas, &compiled.meta.resources);
    let count = budget.auto().unwrap_or(1);
    let urls: Vec<String> = (0..count)
        .map(|i| format!("http://slice-{i}.invalid:1"))
        .collect();
    let ctx = distributed_run_context(
        &SessionLimits::default(),
        Arc::new(RunContext::new("explain")),
        SliceWorkers::new(&urls)?,
        &SliceOptions::for_runs(),
    )?;
    Ok((
        count,
        ctx.state().create_physical_plan(&compiled.plan).await?,
    ))
}

/// The stages and slices of the plan as `runi run --slices auto` would split it here.
fn stages((count, plan): &(usize, Arc<dyn ExecutionPlan>)) -> String {
    let slices = if *count == 1 { "slice" } else { "slices" };
    let head = format!("== stages ({count} {slices}, as `runi run` splits it here) ==\n");
    if plan.is::<DistributedExec>() {
        format!("{head}{}\n", display_plan_ascii(plan.as_ref(), false))
    } else {
        format!("{head}one stage: nothing to split, the run stays in the `runi run` process\n")
    }
}
