//! The TPC-H harness shared by `benches/tpch.rs` (speed) and `tests/tpch.rs` (answers):
//! data from the `tpchgen` generators written as Parquet, the 22 queries, the engines that
//! run them, and a comparison of answers that tolerates float rounding.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use runink_engine::session::{SessionLimits, runtime_env, session_config};
use runink_engine::slice::{Isolation, SlicePool};
use runink_engine::source::{FileLocation, SourceTable};
use runink_planner::slices::{Exchange, SliceOptions, SliceWorkers, distributed_context};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The eight TPC-H tables, one Parquet file each.
pub const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Generates the tables at scale factor `sf` into `dir` (one `TABLE.parquet` each), unless
/// a previous run finished doing so (`dir/.complete`). Concurrent callers (tests in parallel
/// processes) wait for one another on `dir/.lock`.
pub fn generate(dir: &Path, sf: f64) -> Result<(), BoxError> {
    let done = dir.join(".complete");
    std::fs::create_dir_all(dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    lock.lock()?;
    if done.exists() {
        return Ok(());
    }
    let write = |name: &str, batches: &mut dyn RecordBatchReader| {
        let tmp = dir.join(format!("{name}.parquet.tmp"));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let schema = batches.schema();
        let mut w = ArrowWriter::try_new(std::fs::File::create(&tmp)?, schema, Some(props))?;
        for b in batches {
            w.write(&b?)?;
        }
        w.close()?;
        std::fs::rename(&tmp, dir.join(format!("{name}.parquet")))?;
        Ok::<_, BoxError>(())
    };
    let tables: [(&str, Box<dyn RecordBatchReader>); 8] = [
        (
            "customer",
            Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
        ),
        (
            "lineitem",
            Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        ),
        (
            "nation",
            Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
        ),
        (
            "orders",
            Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
        ),
        (
            "part",
            Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
        ),
        (
            "partsupp",
            Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
        ),
        (
            "region",
            Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
        ),
        (
            "supplier",
            Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
        ),
    ];
    for (name, mut batches) in tables {
        write(name, batches.as_mut())?;
    }
    std::fs::write(done, format!("sf={sf}\n"))?;
    Ok(())
}

/// The repository root (cargo sets `CARGO_MANIFEST_DIR` when it runs a test or bench; the
/// compile-time value is the fallback, and may name another clone sharing the target dir).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The directory of the query files (`q1.sql` … `q22.sql`).
pub fn query_dir() -> PathBuf {
    repo().join("benches/tpch/queries")
}

/// Query `n`'s statements (q15 creates and drops a view around its query).
pub fn query(n: usize) -> Result<Vec<String>, BoxError> {
    let text = std::fs::read_to_string(query_dir().join(format!("q{n}.sql")))?;
    Ok(text
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// Plain DataFusion over the Parquet files: the baseline Runink is measured against.
pub async fn datafusion_context(dir: &Path, partitions: usize) -> Result<SessionContext, BoxError> {
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    for t in TABLES {
        let path = dir.join(format!("{t}.parquet"));
        ctx.register_parquet(
            t,
            path.to_str().ok_or("path")?,
            ParquetReadOptions::default(),
        )
        .await?;
    }
    Ok(ctx)
}

/// Runink in one process: Runink's session (bounded fair-spill memory pool, its batch
/// size) and its own `parquet://` sources, as `runi sql` and `runi run` use them.
pub async fn runink_context(dir: &Path, partitions: usize) -> Result<SessionContext, BoxError> {
    let limits = SessionLimits {
        target_partitions: partitions,
        ..SessionLimits::default()
    };
    let ctx = SessionContext::new_with_config_rt(session_config(&limits), runtime_env(&limits)?);
    register_sources(&ctx, dir).await?;
    Ok(ctx)
}

/// Runink split into slice processes: `slices` runs stage tasks, this process the head
/// stage; the same session settings and sources as [`runink_context`].
#[allow(dead_code)] // the benchmark calls `sliced_context_with`; tests/tpch.rs calls this
pub async fn sliced_context(
    dir: &Path,
    partitions: usize,
    slices: &SlicePool,
    scan_bytes_per_task: Option<usize>,
    exchange: Exchange,
) -> Result<SessionContext, BoxError> {
    let options = SliceOptions {
        scan_bytes_per_task,
        broadcast_joins: false,
        exchange,
    };
    sliced_context_with(dir, partitions, slices, &options).await
}

/// [`sliced_context`] with every split option given.
pub async fn sliced_context_with(
    dir: &Path,
    partitions: usize,
    slices: &SlicePool,
    options: &SliceOptions,
) -> Result<SessionContext, BoxError> {
    let limits = SessionLimits {
        target_partitions: partitions,
        ..SessionLimits::default()
    };
    let ctx = distributed_context(
        session_config(&limits),
        runtime_env(&limits)?,
        SliceWorkers::new(&slices.urls())?.with_pipe_tag(slices.pipe_tag()),
        options,
    )?;
    register_sources(&ctx, dir).await?;
    Ok(ctx)
}

/// Starts `count` `runi slice` processes (with `extra` arguments, e.g. `--namespaces`).
pub fn launch_slices(
    count: usize,
    extra: &[&str],
    isolation: &Isolation,
) -> Result<SlicePool, BoxError> {
    let mut args = vec!["slice".to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    Ok(SlicePool::launch(
        Path::new(env!("CARGO_BIN_EXE_runi")),
        &args,
        "tpch",
        count,
        isolation,
    )?)
}

async fn register_sources(ctx: &SessionContext, dir: &Path) -> Result<(), BoxError> {
    for t in TABLES {
        let uri = format!("parquet://{}", dir.join(format!("{t}.parquet")).display());
        let location = FileLocation::parse(&uri, None)?;
        let table = SourceTable::infer(t, location, &ctx.state()).await?;
        ctx.register_table(t, Arc::new(table))?;
    }
    Ok(())
}

/// Runs a query's statements; the answer is the last statement that returns rows.
pub async fn run(
    ctx: &SessionContext,
    statements: &[String],
) -> Result<Vec<RecordBatch>, BoxError> {
    let mut answer = Vec::new();
    for s in statements {
        let batches = ctx.sql(s).await?.collect().await?;
        let lower = s.trim_start().to_ascii_lowercase();
        if !lower.starts_with("create") && !lower.starts_with("drop") {
            answer = batches;
        }
    }
    Ok(answer)
}

/// An answer as rows of text cells (dates ISO, numbers as printed by Arrow).
pub fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, BoxError> {
    let options = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(out)
}

/// Reads an answer DuckDB wrote (`duckdb_run.py`): rows of text cells, header dropped.
/// Every column is read as text, so the comparison sees what DuckDB printed.
pub fn read_csv_rows(path: &Path) -> Result<Vec<Vec<String>>, BoxError> {
    let file = std::fs::File::open(path)?;
    let (inferred, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .infer_schema(std::fs::File::open(path)?, Some(0))?;
    let schema = Arc::new(arrow::datatypes::Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| arrow::datatypes::Field::new(f.name(), arrow::datatypes::DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    rows(&batches)
}

/// Whether two answers agree: same row count and, row by row in the order given, every cell
/// equal — numbers within 1e-5 relative or 1e-6 absolute (DuckDB averages decimals as
/// doubles, DataFusion as decimals of 6 places). Rows whose ORDER BY keys tie may come in
/// either order: [`compare_unordered`] tells such an answer apart from a wrong one.
pub fn compare(name: &str, ours: &[Vec<String>], theirs: &[Vec<String>]) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "{name}: {} rows, expected {}",
            ours.len(),
            theirs.len()
        ));
    }
    compare_rows(name, ours, theirs)
}

/// [`compare`] for answers whose row order is not fully determined.
pub fn compare_unordered(
    name: &str,
    ours: &[Vec<String>],
    theirs: &[Vec<String>],
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "{name}: {} rows, expected {}",
            ours.len(),
            theirs.len()
        ));
    }
    let mut a = ours.to_vec();
    let mut b = theirs.to_vec();
    a.sort();
    b.sort();
    compare_rows(name, &a, &b)
}

fn compare_rows(name: &str, a: &[Vec<String>], b: &[Vec<String>]) -> Result<(), String> {
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        if ra.len() != rb.len() {
            return Err(format!(
                "{name}: row {i} has {} cells, expected {}",
                ra.len(),
                rb.len()
            ));
        }
        for (j, (x, y)) in ra.iter().zip(rb).enumerate() {
            if !cell_eq(x, y) {
                return Err(format!("{name}: row {i} column {j}: `{x}`, expected `{y}`"));
            }
        }
    }
    Ok(())
}

fn cell_eq(x: &str, y: &str) -> bool {
    if x == y || x.trim() == y.trim() {
        return true;
    }
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(a), Ok(b)) => {
            let diff = (a - b).abs();
            diff <= 1e-6 || diff <= 1e-5 * a.abs().max(b.abs())
        }
        _ => false,
    }
}
