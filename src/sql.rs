//! `runi sql`: DataFusion SQL over a herd's datasets, one query or an interactive shell.
//!
//! Each dataset registered in the herd (by a sink with `dataset=NAME`) is a table named
//! after it, read where its last successful run wrote it, with its registered schema.
//! Barn is read once at the start and closed, so a long shell session does not hold it.
//!
//! With `--slices N`, queries are split into stages whose tasks run in N `runi slice`
//! processes (no more than the herd's `slices_max`), each in its own cgroup with an equal
//! share of the herd's CPU and memory quota, and in new namespaces. Where the host cannot
//! isolate them they run unisolated, and `runi sql` says so once on stderr.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use datafusion::prelude::SessionContext;
use runink_cluster::state::{Dataset, ResourceQuotas};
use runink_engine::session::{SessionLimits, runtime_env, session_config};
use runink_engine::slice::SlicePool;
use runink_engine::source::{FileLocation, SourceTable};
use runink_planner::slices::{SliceOptions, SliceWorkers, distributed_context};

use crate::barn;
use crate::cli::{Global, OutputFormat, SqlArgs};
use crate::exit::{CmdResult, Failure};
use crate::slices::{self, Budget};

/// The datasets of one herd, as tables of a DataFusion session.
struct Catalog {
    herd: String,
    datasets: Vec<Dataset>,
    ctx: SessionContext,
    /// The slice processes queries run in, if any (they end with the catalog).
    slices: Option<std::sync::Mutex<SlicePool>>,
    /// Whether a statement's result was printed already (CSV tables after it are set apart).
    printed: std::sync::atomic::AtomicBool,
}

pub async fn sql(global: &Global, args: &SqlArgs) -> CmdResult {
    // A signal while a statement runs (or slices start) ends the command cleanly: the
    // catalog is dropped, which stops its slices and removes their cgroups. (At the
    // interactive prompt, Ctrl-C is a key the line editor reads: it drops the line.)
    let interrupted = crate::exit::interruption();
    let work = async {
        let catalog = open_catalog(global, args.slices).await?;
        match &args.query {
            Some(query) => run_query(&catalog, query, global.output).await,
            None if std::io::stdin().is_terminal() => repl(global, &catalog).await,
            None => script(&catalog, global.output).await,
        }
    };
    tokio::select! {
        result = work => result,
        () = interrupted => Err(Failure::Interrupted),
    }
}

async fn open_catalog(global: &Global, slices: usize) -> Result<Catalog, Failure> {
    let wanted = global.herd.clone();
    let (herd, datasets, quotas) = barn::read_once(global, |s| {
        let herds: Vec<String> = s.herds().map(|h| h.id.clone()).collect();
        let herd = match &wanted {
            Some(h) if herds.contains(h) => h.clone(),
            Some(h) => {
                return Err(anyhow!(
                    "unknown herd `{h}` ({})",
                    if herds.is_empty() {
                        "no herd is registered".to_string()
                    } else {
                        format!("herds: {}", herds.join(", "))
                    }
                ));
            }
            None => match herds.as_slice() {
                [one] => one.clone(),
                [] => return Err(anyhow!("no herd is registered: run a pipeline first")),
                many => {
                    return Err(anyhow!("give --herd (herds: {})", many.join(", ")));
                }
            },
        };
        let datasets = s.datasets(&herd).cloned().collect::<Vec<_>>();
        let quotas = s
            .herd(&herd)
            .map(|h| h.resource_quotas.clone())
            .unwrap_or_default();
        Ok((herd, datasets, quotas))
    })
    .await?
    .map_err(Failure::input)?;
    let (ctx, slices) = if slices == 0 {
        (SessionContext::new(), None)
    } else {
        let (ctx, pool) = sliced_session(&herd, slices, &quotas)?;
        (ctx, Some(std::sync::Mutex::new(pool)))
    };
    // Datasets are tables of the default schema and, qualified, of a schema named after the
    // herd (`finance.trades_silver`), as a user writes them from `dataset://finance/…`, and
    // fully qualified in the catalog `runink` (`runink.finance.trades_silver`, SPEC §2).
    let herd_schema = Arc::new(datafusion::catalog::MemorySchemaProvider::new());
    // (A herd named like the default schema already has its datasets there.)
    if let Some(catalog) = ctx.catalog("datafusion").filter(|_| herd != "public") {
        catalog
            .register_schema(&herd, Arc::clone(&herd_schema) as _)
            .map_err(|e| Failure::run(anyhow!("herd `{herd}`: {e}")))?;
    }
    let runink = Arc::new(datafusion::catalog::MemoryCatalogProvider::new());
    datafusion::catalog::CatalogProvider::register_schema(
        runink.as_ref(),
        &herd,
        Arc::clone(&herd_schema) as _,
    )
    .map_err(|e| Failure::run(anyhow!("herd `{herd}`: {e}")))?;
    ctx.register_catalog("runink", runink);
    for d in &datasets {
        let location = FileLocation::parse(&d.location, Some(&d.format))
            .map_err(|m| Failure::run(anyhow!("dataset `{}.{}`: {m}", d.herd, d.name)))?;
        let table = match serde_json::from_str::<Schema>(&d.schema_json) {
            Ok(schema) => SourceTable::new(d.name.clone(), location, Arc::new(schema)),
            Err(_) => SourceTable::infer(d.name.clone(), location, &ctx.state())
                .await
                .map_err(|e| Failure::run(anyhow!("dataset `{}.{}`: {e}", d.herd, d.name)))?,
        };
        let table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(table);
        ctx.register_table(
            datafusion::common::TableReference::bare(d.name.as_str()),
            Arc::clone(&table),
        )
        .and_then(|_| {
            datafusion::catalog::SchemaProvider::register_table(
                herd_schema.as_ref(),
                d.name.clone(),
                table,
            )
        })
        .map_err(|e| Failure::run(anyhow!("dataset `{}`: {e}", d.name)))?;
    }
    Ok(Catalog {
        herd,
        datasets,
        ctx,
        slices,
        printed: Default::default(),
    })
}

/// Starts the slices (at most the herd's `slices_max`, each with its share of the herd's
/// quota) and a session that runs stages on them.
fn sliced_session(
    herd: &str,
    wanted: usize,
    quotas: &ResourceQuotas,
) -> Result<(SessionContext, SlicePool), Failure> {
    let budget = Budget::new(quotas, None, None);
    let count = budget.count(herd, wanted, "run without --slices")?;
    let pool = slices::launch(herd, &format!("sql-{herd}"), count, &budget)?;
    let session = SessionLimits::default();
    let runtime = runtime_env(&session).map_err(|e| Failure::run(anyhow!("{e}")))?;
    let workers = SliceWorkers::new(&pool.urls())
        .map_err(|e| Failure::run(anyhow!("{e}")))?
        .with_pipe_tag(pool.pipe_tag());
    let ctx = distributed_context(
        session_config(&session),
        runtime,
        workers,
        &SliceOptions::for_queries(),
    )
    .map_err(|e| Failure::run(anyhow!("{e}")))?;
    Ok((ctx, pool))
}

/// `runi sql` reads data; it does not create tables, write files or change settings.
fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Whether `e` is the query's own computation failing (a division by zero, an overflow, a
/// cast of a value that does not convert), not a dataset's files failing to read.
fn computing(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    match e.find_root() {
        DataFusionError::ArrowError(a, _) => matches!(
            a.as_ref(),
            ArrowError::DivideByZero
                | ArrowError::ArithmeticOverflow(_)
                | ArrowError::CastError(_)
                | ArrowError::ComputeError(_)
        ),
        _ => false,
    }
}

/// Plans and runs one statement; its errors are the user's (exit 2), except failures
/// while reading data (exit 1).
async fn execute(
    catalog: &Catalog,
    statement: datafusion::sql::parser::Statement,
) -> Result<(Arc<Schema>, Vec<RecordBatch>), Failure> {
    let plan = catalog
        .ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(|e| Failure::input(plan_error(catalog, &e)))?;
    read_only()
        .verify_plan(&plan)
        .map_err(|e| Failure::input(anyhow!("{}", runink_engine::user_message(&e))))?;
    let read = datasets_read(catalog, &plan);
    let df = catalog
        .ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| Failure::input(plan_error(catalog, &e)))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| {
        // A reader's error (a damaged file) names neither the dataset nor its place: say
        // which datasets the statement read.
        let mut message = runink_engine::user_message(&e);
        if !read.is_empty()
            && !computing(&e)
            && !read.iter().any(|(name, _)| message.contains(name.as_str()))
        {
            let shown: Vec<String> = read
                .iter()
                .map(|(name, location)| format!("`{name}` at {location}"))
                .collect();
            message = format!("{message} (reading dataset {})", shown.join(", "));
        }
        match &catalog.slices {
            Some(pool) => Failure::run(anyhow!(
                "{}",
                slices::failure_message(
                    &mut pool.lock().unwrap_or_else(|p| p.into_inner()),
                    message
                )
            )),
            None => Failure::run(anyhow!("{message}")),
        }
    })?;
    Ok((schema, batches))
}

/// The datasets `plan` scans, with their locations, in plan order.
fn datasets_read(
    catalog: &Catalog,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Vec<(String, String)> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut read: Vec<(String, String)> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.table();
            if let Some(d) = catalog.datasets.iter().find(|d| d.name == table)
                && !read.iter().any(|(n, _)| *n == d.name)
            {
                read.push((d.name.clone(), d.location.clone()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    read
}

/// DataFusion's planning errors, with an unknown table said in Runink's words.
fn plan_error(catalog: &Catalog, e: &datafusion::error::DataFusionError) -> anyhow::Error {
    let message = runink_engine::user_message(e);
    if let Some(rest) = message.split("table '").nth(1)
        && let Some(name) = rest.split('\'').next()
        && message.contains("not found")
    {
        let full = name;
        let name = name.rsplit('.').next().unwrap_or(name);
        let known: Vec<&str> = catalog.datasets.iter().map(|d| d.name.as_str()).collect();
        let full = full.strip_prefix("datafusion.").unwrap_or(full);
        if full != name && known.contains(&name) {
            return anyhow!(
                "unknown table `{full}`: this session queries herd `{}`, whose dataset is `{name}` \
                 (or `{}.{name}`); another herd's datasets need --herd",
                catalog.herd,
                catalog.herd
            );
        }
        return anyhow!(
            "unknown dataset `{name}` in herd `{}` ({})",
            catalog.herd,
            if known.is_empty() {
                "it has no datasets yet: a sink with dataset=NAME registers one".to_string()
            } else {
                format!("datasets: {}", known.join(", "))
            }
        );
    }
    anyhow!("{message}")
}

/// Runs every statement of `text` in order (DataFusion's parser splits them, so `;` inside
/// quotes or comments is not an end), printing each result; stops at the first error.
async fn run_query(catalog: &Catalog, text: &str, format: OutputFormat) -> CmdResult {
    runink_planner::sqldepth::check_sql(text).map_err(|m| Failure::input(anyhow!("{m}")))?;
    let statements = datafusion::sql::parser::DFParser::parse_sql(text)
        .map_err(|e| Failure::input(anyhow!("{}", runink_engine::user_message(&e))))?;
    if statements.is_empty() {
        return Err(Failure::input(anyhow!("no SQL statement in `{text}`")));
    }
    for statement in statements {
        let (schema, batches) = execute(catalog, statement).await?;
        // Several CSV tables are told apart by a blank line (JSON arrays and YAML documents
        // are already one per statement, each on its own line).
        let printed_before = catalog
            .printed
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        if printed_before && format == OutputFormat::Csv {
            println!();
        }
        print_batches(format, &schema, &batches).map_err(Failure::run)?;
    }
    Ok(())
}

fn print_batches(
    format: OutputFormat,
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", String::from_utf8(json_rows(batches)?)?),
        OutputFormat::Yaml => {
            // Decimals as their digits (text): read back as JSON numbers they would become
            // floats and lose digits.
            let batches = batches
                .iter()
                .map(decimals_as_text)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rows: serde_json::Value = serde_json::from_slice(&json_rows(&batches)?)?;
            print!("{}", crate::output::to_yaml(&rows)?);
        }
        OutputFormat::Csv => {
            // Checked before the header goes out: CSV cannot hold nested values.
            if let Some(f) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
                anyhow::bail!(
                    "column `{}` is {}, which CSV cannot hold; use -o json or -o yaml",
                    f.name(),
                    runink_contracts::type_name(f.data_type())
                );
            }
            let stdout = std::io::stdout();
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(stdout.lock());
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(Arc::clone(schema)))?;
            }
            for b in batches {
                writer.write(b)?;
            }
        }
        OutputFormat::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if batches.is_empty() {
                println!(
                    "{}",
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                        Arc::clone(schema)
                    )])?
                );
            } else {
                println!("{}", arrow::util::pretty::pretty_format_batches(batches)?);
            }
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        other => anyhow::bail!(
            "-o {} is not a format of `runi sql` (table, json, yaml, csv)",
            other.name()
        ),
    }
    Ok(())
}

/// `batch` with its decimal columns cast to text (their exact digits).
fn decimals_as_text(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field};
    let decimal = |t: &DataType| {
        matches!(
            t,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| decimal(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if decimal(f.data_type()) {
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            columns.push(arrow::compute::cast(c, &DataType::Utf8)?);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(c));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The rows as a JSON array of objects (`[]` for none); a null is written as `null`, not
/// left out.
fn json_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(&mut out);
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    if out.is_empty() {
        out.extend_from_slice(b"[]");
    }
    Ok(out)
}

/// `\d`: the herd's datasets; `\d NAME` (or `HERD.NAME`): one dataset's columns; an
/// error for a dataset the herd does not have.
fn describe(catalog: &Catalog, arg: Option<&str>) -> Result<String, String> {
    let arg = arg.map(|a| a.strip_prefix(&format!("{}.", catalog.herd)).unwrap_or(a));
    Ok(match arg {
        None => {
            let mut out = format!("datasets of herd `{}`\n", catalog.herd);
            for d in &catalog.datasets {
                let contract = d
                    .contract
                    .as_ref()
                    .map(|c| format!("{}@{}", c.id, c.version))
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "  {:<24} {:<8} {:<16} {}\n",
                    d.name, d.format, contract, d.location
                ));
            }
            if catalog.datasets.is_empty() {
                out.push_str(
                    "  (none: a sink with dataset=NAME registers one when its run succeeds)\n",
                );
            }
            out
        }
        Some(name) => match catalog.datasets.iter().find(|d| d.name == name) {
            None => return Err(format!("no dataset `{name}` in herd `{}`", catalog.herd)),
            Some(d) => {
                let mut out = format!(
                    "dataset `{}.{}` ({} at {})\n",
                    d.herd, d.name, d.format, d.location
                );
                if let Ok(schema) = serde_json::from_str::<Schema>(&d.schema_json) {
                    for f in schema.fields() {
                        out.push_str(&format!(
                            "  {:<24} {:<24} {}\n",
                            f.name(),
                            f.data_type().to_string(),
                            if f.is_nullable() { "null" } else { "not null" }
                        ));
                    }
                }
                out
            }
        },
    })
}

const HELP: &str = "statements end with `;` and may span lines\n  \\d          list datasets\n  \\d NAME     a dataset's columns\n  \\?          this help\n  \\q          quit\n";

/// What one line of input asks for.
enum Input {
    /// A complete statement.
    Statement(String),
    Meta(String),
    /// More lines are needed.
    Pending,
}

/// Collects lines into statements: a backslash command is a line of its own; a statement
/// ends at a `;` at the end of a line.
#[derive(Default)]
struct Lines {
    buffer: String,
}

impl Lines {
    fn push(&mut self, line: &str) -> Input {
        let trimmed = line.trim();
        if self.buffer.trim().is_empty() && trimmed.starts_with('\\') {
            return Input::Meta(trimmed.to_string());
        }
        if !self.buffer.is_empty() {
            self.buffer.push('\n');
        }
        self.buffer.push_str(line);
        // A statement ends with `;` at the end of a line, before any `-- comment`.
        let code = trimmed
            .rfind("--")
            .map_or(trimmed, |i| trimmed[..i].trim_end());
        if code.ends_with(';') {
            let statement = std::mem::take(&mut self.buffer);
            if statement.trim().trim_matches(';').trim().is_empty() {
                return Input::Pending;
            }
            return Input::Statement(statement);
        }
        Input::Pending
    }

    fn rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        (!rest.trim().trim_matches(';').trim().is_empty()).then_some(rest)
    }
}

/// Whether a meta command ends the session.
fn meta(catalog: &Catalog, command: &str) -> Result<bool, String> {
    let mut parts = command.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("\\q"), _) => Ok(true),
        (Some("\\d"), name) => {
            print!("{}", describe(catalog, name)?);
            Ok(false)
        }
        (Some("\\?"), _) => {
            print!("{HELP}");
            Ok(false)
        }
        (Some(other), _) => Err(format!("unknown command `{other}` (\\? lists them)")),
        (None, _) => Ok(false),
    }
}

/// Statements from a pipe: run in order; the first failure stops (exit non-zero).
async fn script(catalog: &Catalog, format: OutputFormat) -> CmdResult {
    let mut lines = Lines::default();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read stdin").map_err(Failure::input)?;
        match lines.push(&line) {
            Input::Statement(s) => run_query(catalog, &s, format).await?,
            Input::Meta(m) => {
                if meta(catalog, &m).map_err(|e| Failure::input(anyhow!("stdin:{}: {e}", n + 1)))? {
                    return Ok(());
                }
            }
            Input::Pending => {}
        }
    }
    if let Some(rest) = lines.rest() {
        run_query(catalog, &rest, format).await?;
    }
    Ok(())
}

/// The interactive shell: line editing, history in `$RUNINK_HOME/sql_history`.
async fn repl(global: &Global, catalog: &Catalog) -> CmdResult {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .context("cannot open the terminal")
        .map_err(Failure::run)?;
    let history = global.home.join("sql_history");
    let _ = editor.load_history(&history);
    println!(
        "runi sql — herd `{}`, {} dataset(s). End statements with `;`. \\d lists datasets, \\? helps, \\q quits.",
        catalog.herd,
        catalog.datasets.len()
    );
    let mut lines = Lines::default();
    loop {
        let prompt = if lines.buffer.is_empty() {
            format!("{}> ", catalog.herd)
        } else {
            format!("{}-> ", " ".repeat(catalog.herd.len().saturating_sub(1)))
        };
        match editor.readline(&prompt) {
            Ok(line) => match lines.push(&line) {
                Input::Statement(s) => {
                    let _ = editor.add_history_entry(s.trim());
                    if let Err(e) = run_query(catalog, &s, global.output).await {
                        report_inline(e);
                    }
                }
                Input::Meta(m) => {
                    let _ = editor.add_history_entry(&m);
                    match meta(catalog, &m) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
                Input::Pending => {}
            },
            // Ctrl-C drops the statement being typed; Ctrl-D ends the session.
            Err(ReadlineError::Interrupted) => lines.buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::run(anyhow!("terminal: {e}"))),
        }
    }
    if let Err(e) = editor.save_history(&history) {
        tracing::debug!("history not saved: {e}");
    }
    Ok(())
}

fn report_inline(e: Failure) {
    match e {
        Failure::Input(e) | Failure::Run(e) => eprintln!("error: {e:#}"),
        Failure::Interrupted | Failure::RunInterrupted => eprintln!("interrupted"),
    }
}
