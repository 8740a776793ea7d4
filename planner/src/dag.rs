//! The compiled DAG file: what `runi compile` writes and `runi run --dag` executes.
//!
//! A JSON document (versioned by `format` + `version`) with the metadata a person or a
//! scheduler reads — feature, scenario, herd, contract id/version/hash, sources, steps,
//! sinks, lineage, resources — and the logical plan itself as `datafusion-proto` bytes
//! (base64), with Runink's nodes encoded by [`RuninkCodec`]. Field order is fixed and no
//! field holds a hash map or a time, so the same input compiles to the same bytes.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
};
use runink_engine::sink::SinkSpec;
use serde::{Deserialize, Serialize};

use crate::codec::RuninkCodec;
use crate::lineage::{ColumnLineage, Edge};
use crate::{PlanError, Result};

/// The value of `format` in every DAG file.
pub const DAG_FORMAT: &str = "runink-dag";
/// The DAG file version this build writes and reads.
pub const DAG_VERSION: u32 = 2;
/// Largest DAG file `runi run --dag` reads (a plan is kilobytes; this bounds bad input).
pub const DAG_BYTES_MAX: u64 = 256 << 20;

/// Everything in a DAG file except the plan bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DagMeta {
    pub feature: FeatureMeta,
    pub scenario: String,
    pub herd: Option<String>,
    pub contract: Option<ContractMeta>,
    pub sources: Vec<SourceMeta>,
    pub steps: Vec<StepMeta>,
    pub sinks: Vec<SinkMeta>,
    pub lineage: LineageMeta,
    pub resources: Resources,
    /// How the plan splits into stages whose tasks run in slice processes, as planned at
    /// compile time on the compiling machine; `None`: nothing to split (the run stays in
    /// the `runi run` process), or not planned (`--dry-run`).
    #[serde(default)]
    pub slices: Option<SliceGraph>,
}

/// A plan's stages and the exchanges between them (SPEC §8). Stage 0 is the head: one task
/// in the `runi run` process, which writes the sinks; every other stage's tasks run in
/// slice processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceGraph {
    /// The slice processes it was planned for.
    pub slices: usize,
    /// Head first, then each stage before the stages it reads.
    pub stages: Vec<StageMeta>,
}

/// One stage of a [`SliceGraph`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageMeta {
    pub stage: usize,
    /// Its tasks (each a slice's share of the stage).
    pub tasks: usize,
    /// The stage that reads its output; `None` for the head.
    pub feeds: Option<usize>,
    /// How its output reaches that stage's tasks: `shuffle` (hash-partitioned among them),
    /// `coalesce` (all into one), `broadcast` (each reads all); `None` for the head.
    pub exchange: Option<String>,
    /// The stages it reads, in plan order.
    pub reads: Vec<usize>,
    /// The operators it runs, top down (a stage it reads shows as its exchange operator).
    pub operators: Vec<String>,
}

/// The Feature a DAG came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureMeta {
    pub name: String,
    pub file: String,
}

/// A contract as bound at compile time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContractMeta {
    pub id: String,
    pub version: String,
    pub hash: String,
    pub file: String,
    /// Where it is enforced: `scenario`, or `source:NAME` / `step:NAME`.
    pub at: String,
}

/// A column of a schema, for people reading the DAG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// A source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceMeta {
    pub name: String,
    pub uri: String,
    pub format: String,
    pub schema: Vec<ColumnMeta>,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMeta {
    pub name: String,
    pub kind: String,
    pub inputs: Vec<String>,
}

/// A sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkMeta {
    #[serde(flatten)]
    pub spec: SinkSpec,
    pub with: Option<String>,
}

/// Lineage known at compile time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct LineageMeta {
    pub edges: Vec<Edge>,
    pub columns: Vec<ColumnLineage>,
}

/// Resources the Scenario asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Resources {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DagFile {
    format: String,
    version: u32,
    runink: String,
    datafusion: String,
    #[serde(flatten)]
    meta: DagMeta,
    plan: PlanBlob,
    /// SHA-256 of the versions, the metadata (as serialized) and the plan's bytes: a file edited or
    /// damaged after `runi compile` wrote it is refused rather than run with rules or
    /// sources other than the ones its metadata (and the run's record) name.
    #[serde(default)]
    checksum: String,
}

fn checksum(meta: &DagMeta, plan_bytes: &[u8], versions: [&str; 2]) -> Result<String> {
    use sha2::{Digest, Sha256};
    let meta = serde_json::to_vec(meta).map_err(|e| PlanError::Dag {
        path: "(memory)".into(),
        message: e.to_string(),
    })?;
    let mut h = Sha256::new();
    for v in versions {
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.update((meta.len() as u64).to_le_bytes());
    h.update(&meta);
    h.update(plan_bytes);
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[derive(Serialize, Deserialize)]
struct PlanBlob {
    encoding: String,
    base64: String,
}

/// Serializes a compiled Scenario.
pub fn encode(meta: &DagMeta, plan: &LogicalPlan) -> Result<Vec<u8>> {
    let bytes = logical_plan_to_bytes_with_extension_codec(plan, &RuninkCodec)?;
    let file = DagFile {
        format: DAG_FORMAT.into(),
        version: DAG_VERSION,
        runink: env!("CARGO_PKG_VERSION").into(),
        datafusion: datafusion::DATAFUSION_VERSION.into(),
        meta: meta.clone(),
        plan: PlanBlob {
            encoding: "datafusion-proto".into(),
            base64: B64.encode(&bytes),
        },
        checksum: checksum(
            meta,
            &bytes,
            [env!("CARGO_PKG_VERSION"), datafusion::DATAFUSION_VERSION],
        )?,
    };
    let mut out = serde_json::to_vec_pretty(&file).map_err(|e| PlanError::Dag {
        path: "(memory)".into(),
        message: e.to_string(),
    })?;
    out.push(b'\n');
    Ok(out)
}

/// Reads a DAG file's metadata and plan. `path` is for messages only.
pub fn decode(path: &str, bytes: &[u8], ctx: &SessionContext) -> Result<(DagMeta, LogicalPlan)> {
    let bad = |message: String| PlanError::Dag {
        path: path.to_string(),
        message,
    };
    let file: DagFile = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "not a Runink DAG file (line {}, column {}: {e})",
            e.line(),
            e.column()
        ))
    })?;
    // A key this runi does not know is dropped when the file is read, so the checksum
    // (over what was read) cannot see it: name it instead of running without it.
    if let (Ok(written), Ok(read)) = (
        serde_json::from_slice::<serde_json::Value>(bytes),
        serde_json::to_value(&file),
    ) && let Some(key) = unknown_key(&written, &read, "")
    {
        return Err(bad(format!(
            "unknown key `{key}`: the file was changed after `runi compile` wrote it, or written by another runi; compile the Scenario again"
        )));
    }
    if file.format != DAG_FORMAT {
        return Err(bad(format!(
            "format is `{}`, expected `{DAG_FORMAT}`",
            file.format
        )));
    }
    if file.version != DAG_VERSION {
        return Err(bad(format!(
            "version {} is not supported by this runi (reads version {DAG_VERSION}); recompile the Scenario",
            file.version
        )));
    }
    if file.plan.encoding != "datafusion-proto" {
        return Err(bad(format!(
            "plan encoding `{}` is not supported",
            file.plan.encoding
        )));
    }
    let plan_bytes = B64
        .decode(file.plan.base64.as_bytes())
        .map_err(|e| bad(format!("plan is not valid base64: {e}")))?;
    if checksum(&file.meta, &plan_bytes, [&file.runink, &file.datafusion])? != file.checksum {
        return Err(bad(
            "its checksum does not match its contents: the file was changed after `runi compile` wrote it, or written by another build of runi; compile the Scenario again".into(),
        ));
    }
    let plan =
        logical_plan_from_bytes_with_extension_codec(&plan_bytes, &ctx.task_ctx(), &RuninkCodec)
            .map_err(|e| {
                bad(format!(
                    "plan does not decode: {}",
                    runink_engine::user_message(&e)
                ))
            })?;
    Ok((file.meta, plan))
}

/// The first key of `written` (a DAG file as parsed) that `read` (the file as this runi
/// read it, serialized again) lacks, as a path (`sources[0].name`).
fn unknown_key(written: &serde_json::Value, read: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => w.iter().find_map(|(key, value)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match r.get(key) {
                None => Some(path),
                Some(known) => unknown_key(value, known, &path),
            }
        }),
        (Value::Array(w), Value::Array(r)) => w
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (value, known))| unknown_key(value, known, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Reads a DAG file from disk.
pub fn read(path: &Path, ctx: &SessionContext) -> Result<(DagMeta, LogicalPlan)> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| PlanError::Io {
        path: shown.clone(),
        message: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > DAG_BYTES_MAX {
        return Err(PlanError::Dag {
            path: shown,
            message: format!("{len} bytes is larger than the {DAG_BYTES_MAX}-byte limit"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode(&shown, &bytes, ctx)
}
