//! File sources: `csv://`, `json://` (NDJSON), `parquet://` and `arrow://` (IPC), each a
//! file or a directory, as a DataFusion table provider.
//!
//! A [`SourceTable`] keeps the URI exactly as the Feature file wrote it (relative paths
//! stay relative, so a compiled DAG moves with its project folder) and resolves it against
//! the working directory only when a scan is planned. The scan itself is DataFusion's
//! `ListingTable`, so projection, limit and Parquet pruning come for free.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

/// Rows read to infer a CSV schema. A CSV header names every column, so a later row can
/// only disagree with a type, which fails the read (naming the source) rather than losing
/// data.
pub const SCHEMA_INFER_ROWS: usize = 10_000;

/// Records read to infer an NDJSON schema: all of them. The reader drops the fields a schema
/// does not name, so a field first seen after a sample would be lost without a word.
pub const JSON_SCHEMA_INFER_RECORDS: usize = usize::MAX;

/// The on-disk formats Runink reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormatKind {
    Csv,
    Json,
    Parquet,
    Arrow,
}

impl FileFormatKind {
    /// The format a URI scheme names (`file://` has none: the extension decides).
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "csv" => Some(Self::Csv),
            "json" | "ndjson" => Some(Self::Json),
            "parquet" => Some(Self::Parquet),
            "arrow" | "ipc" => Some(Self::Arrow),
            _ => None,
        }
    }

    /// The format a file extension suggests.
    pub fn from_extension(path: &str) -> Option<Self> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Self::Csv),
            "json" | "ndjson" | "jsonl" => Some(Self::Json),
            "parquet" => Some(Self::Parquet),
            "arrow" | "ipc" | "feather" => Some(Self::Arrow),
            _ => None,
        }
    }

    /// File extension used for files Runink writes and for listing directories.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "ndjson",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
        }
    }

    /// Name as written in URIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
        }
    }
}

/// A file location as a Feature file writes it: `SCHEME://PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileLocation {
    /// The URI as written.
    pub uri: String,
    /// The format, from the scheme, `format=`, or the extension.
    pub format: FileFormatKind,
    /// The path part, relative paths kept relative.
    pub path: String,
}

impl FileLocation {
    /// Splits `csv://data/x.csv` into format and path. `format` overrides the scheme (for
    /// `file://`). Errors are plain messages; the caller adds the place.
    pub fn parse(uri: &str, format: Option<&str>) -> std::result::Result<Self, String> {
        let (scheme, path) = uri
            .split_once("://")
            .ok_or_else(|| format!("`{uri}` is not a URI: expected SCHEME://PATH"))?;
        if path.is_empty() {
            return Err(format!("`{uri}` has an empty path"));
        }
        let explicit = match format {
            Some(f) => Some(FileFormatKind::from_scheme(f).ok_or_else(|| {
                format!("unknown format `{f}`; expected one of csv, json, parquet, arrow")
            })?),
            None => None,
        };
        let format = match (scheme, explicit) {
            (_, Some(f)) => f,
            ("file", None) => FileFormatKind::from_extension(path).ok_or_else(|| {
                format!("cannot tell the format of `{uri}` from its extension; add format=\"csv|json|parquet|arrow\"")
            })?,
            (s, None) => FileFormatKind::from_scheme(s).ok_or_else(|| {
                format!("scheme `{s}://` is not a file format; expected csv, json, parquet, arrow or file")
            })?,
        };
        Ok(Self {
            uri: uri.to_string(),
            format,
            path: path.to_string(),
        })
    }

    /// The path resolved against `base` (the working directory of the `runi` command).
    pub fn resolve(&self, base: &Path) -> PathBuf {
        let p = Path::new(&self.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    }

    /// Whether the location names a directory (a trailing slash, or an existing dir).
    pub fn is_directory(&self, base: &Path) -> bool {
        self.path.ends_with('/') || self.resolve(base).is_dir()
    }
}

/// A file source as a DataFusion table.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// The relation name the Feature gave the source.
    pub name: String,
    /// Where it reads.
    pub location: FileLocation,
    schema: SchemaRef,
    /// The outcome of [`Self::check_files`] (`Some`: what is wrong), found once per table:
    /// a run plans its scans more than once.
    checked: Arc<std::sync::OnceLock<Option<String>>>,
}

impl SourceTable {
    /// A source whose schema is already known (from a contract or a compiled DAG).
    pub fn new(name: impl Into<String>, location: FileLocation, schema: SchemaRef) -> Self {
        Self {
            name: name.into(),
            location,
            schema,
            checked: Arc::default(),
        }
    }

    /// A source read with the schema it was registered with: a `dataset://` source whose
    /// files do not carry their types (CSV, NDJSON), which inference would guess again from
    /// the text (a decimal as a float, a date as text). Its files are checked as
    /// [`Self::infer`] checks them (a CSV header must name the schema's columns).
    pub fn registered(
        name: impl Into<String>,
        location: FileLocation,
        schema: SchemaRef,
    ) -> Result<Self> {
        let name = name.into();
        let base = current_dir(&name, &location)?;
        table_url(&name, &location, &base)?;
        let table = Self::new(name, location, schema);
        table.check_files()?;
        Ok(table)
    }

    /// A source whose schema is inferred from the data (compile time).
    pub async fn infer(
        name: impl Into<String>,
        location: FileLocation,
        state: &dyn Session,
    ) -> Result<Self> {
        let name = name.into();
        let base = current_dir(&name, &location)?;
        let url = table_url(&name, &location, &base)?;
        if location.format == FileFormatKind::Parquet {
            for file in source_files(&name, &location, "parquet")? {
                parquet_columns(&file).map_err(|m| EngineError::Source {
                    name: name.clone(),
                    uri: location.uri.clone(),
                    message: format!("{}: {m}", file.display()),
                })?;
            }
        }
        // Before DataFusion reads them: a damaged Arrow file made it allocate gigabytes.
        if location.format == FileFormatKind::Arrow {
            check_arrow_files(&name, &location)?;
        }
        let options = listing_options(&location, &base);
        let multiline = location.format == FileFormatKind::Csv
            && options
                .format
                .downcast_ref::<CsvFormat>()
                .is_some_and(|f| f.options().newlines_in_values == Some(true));
        let schema = if multiline {
            // DataFusion infers from newline-split chunks, which cuts such files mid-record;
            // arrow's reader over each whole file does not.
            infer_csv_whole(&name, &location, &base, SCHEMA_INFER_ROWS)?
        } else {
            match options.infer_schema(state, &url).await {
                // Files of one CSV folder that disagree on a column's type (integers in one,
                // decimals or text in another) are one table: the type that holds them all.
                Err(e)
                    if location.format == FileFormatKind::Csv
                        && e.to_string().contains("Fail to merge schema") =>
                {
                    infer_csv_whole(&name, &location, &base, SCHEMA_INFER_ROWS)
                }
                // DataFusion splits text at line breaks outside quotes, and a file whose last
                // line holds a lone quote inside a value (`5'10"`) and no final line break
                // looks unterminated to it; the CSV reader takes that quote as a character.
                Err(e)
                    if location.format == FileFormatKind::Csv
                        && e.to_string().contains("unterminated string") =>
                {
                    infer_csv_whole(&name, &location, &base, SCHEMA_INFER_ROWS)
                }
                inferred => inferred.map_err(EngineError::from),
            }
            .map_err(|e| {
                let e = match e {
                    EngineError::DataFusion(e) => e,
                    other => return other,
                };
                let located = match location.format {
                    FileFormatKind::Json => locate_json_error(&name, &location, None),
                    FileFormatKind::Parquet => parquet_conflict(&name, &location),
                    _ => None,
                };
                match located {
                    Some(message) => EngineError::Source {
                        name: name.clone(),
                        uri: location.uri.clone(),
                        message,
                    },
                    None => source_error(&name, &location, &e),
                }
            })?
        };
        // A later value is read at the type the first rows gave its column, and a date or a
        // time the reader can parse is cut to it without a word (a date and time in a column
        // of dates, nanoseconds in a column of whole seconds): such columns take the type
        // every row of every file supports. Arrow's inference keeps the finest of the
        // temporal types it sees, and text where a value is no time at all.
        let schema = if location.format == FileFormatKind::Csv
            && schema.fields().iter().any(|f| f.data_type().is_temporal())
        {
            // A file that cannot be inferred is left to the scan, which names what is wrong.
            let whole = infer_csv_whole(&name, &location, &base, usize::MAX)
                .unwrap_or_else(|_| Arc::clone(&schema));
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .map(|f| match whole.field_with_name(f.name()) {
                    Ok(w) if f.data_type().is_temporal() => {
                        Arc::new(f.as_ref().clone().with_data_type(w.data_type().clone()))
                    }
                    _ => Arc::clone(f),
                })
                .collect();
            Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                schema.metadata().clone(),
            ))
        } else {
            schema
        };
        // An empty file (or a CSV without a header) has no columns to read or check; it
        // would compile and then fail at run time, or read as nothing.
        if schema.fields().is_empty() {
            return Err(EngineError::Source {
                name,
                uri: location.uri.clone(),
                message: match location.format {
                    FileFormatKind::Csv => {
                        "has no columns: it is empty (a CSV file needs a header row)"
                    }
                    _ => "has no columns: it is empty",
                }
                .into(),
            });
        }
        let table = Self::new(name, location, schema);
        // Files whose headers differ are found when compiling, not only when running.
        table.check_files()?;
        Ok(table)
    }

    /// The checks of the files this source reads that DataFusion does not make (CSV headers,
    /// Parquet footers and columns), run once per table.
    fn check_files(&self) -> Result<()> {
        let outcome = self.checked.get_or_init(|| {
            let checked = match self.location.format {
                FileFormatKind::Csv => self.check_csv_headers(),
                FileFormatKind::Parquet => self.check_parquet_files(),
                FileFormatKind::Arrow => self.check_arrow_files(),
                FileFormatKind::Json => Ok(()),
            };
            checked.err().map(|e| match e {
                EngineError::Source { message, .. } => message,
                other => other.to_string(),
            })
        });
        match outcome {
            None => Ok(()),
            Some(message) => Err(self.error(message.clone())),
        }
    }

    /// Where a CSV value that failed to read is: the file, and its line in that file.
    /// DataFusion reads a large file in byte ranges and arrow counts a value's line from the
    /// start of its range, after the header, so the reader's own message is off; this reads
    /// the files again, from the start, one at a time. `None` for other formats, or when the
    /// files now read without an error. Reads up to the bad value: for error messages only.
    pub fn locate_csv_error(&self) -> Option<String> {
        if self.location.format != FileFormatKind::Csv {
            return None;
        }
        let base = current_dir(&self.name, &self.location).ok()?;
        let multiline = csv_newlines_in_values(&self.location, &base);
        for file in source_files(&self.name, &self.location, "csv").ok()? {
            let reader = arrow::csv::ReaderBuilder::new(Arc::clone(&self.schema))
                .with_header(true)
                .build(std::fs::File::open(&file).ok()?)
                .ok()?;
            for batch in reader {
                let Err(e) = batch else { continue };
                let text = e.to_string();
                let shown = as_given(&file);
                let shown = shown.display();
                // A value that does not parse: arrow counts records after the header from 1.
                if let Some((before, n, after)) = split_number(&text, " at line ") {
                    let line = if multiline {
                        record_line(&file, n)
                    } else {
                        Some(n + 1)
                    };
                    let place = match line {
                        Some(line) => format!("{shown}:{line}"),
                        None => format!("{shown}, row {n} after the header"),
                    };
                    let column = column_named(before, &self.schema);
                    return Some(format!("{place}: {column}{after}"));
                }
                // A row with another number of fields: the CSV parser counts lines from 1.
                if let Some((before, n, after)) = split_number(&text, " for line ") {
                    return Some(format!("{shown}:{n}: {before}{after}"));
                }
                return Some(format!("{shown}: {text}"));
            }
        }
        None
    }

    /// Where a CSV or NDJSON source's bad value is (see [`Self::locate_csv_error`] and
    /// [`locate_json_error`]); `message` is the reader's, naming the field for NDJSON.
    pub fn locate_error(&self, message: &str) -> Option<String> {
        match self.location.format {
            FileFormatKind::Csv => self.locate_csv_error(),
            FileFormatKind::Json => {
                locate_json_error(&self.name, &self.location, Some((&self.schema, message)))
            }
            FileFormatKind::Parquet | FileFormatKind::Arrow => self.locate_binary_error(),
        }
    }

    /// The first file of a Parquet or Arrow source that does not read to its end, with its
    /// reader's error: DataFusion's names no file (`snappy: corrupt input`), which in a
    /// folder of files leaves the bad one to be guessed. Reads the files again: for error
    /// messages only.
    fn locate_binary_error(&self) -> Option<String> {
        let ext = match self.location.format {
            FileFormatKind::Parquet => "parquet",
            _ => "arrow",
        };
        for file in source_files(&self.name, &self.location, ext).ok()? {
            let f = std::fs::File::open(&file).ok()?;
            let failure: Option<String> = match self.location.format {
                FileFormatKind::Parquet => {
                    match datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                        .and_then(|b| b.build())
                    {
                        Ok(reader) => reader.into_iter().find_map(|b| b.err()).map(|e| e.to_string()),
                        Err(e) => Some(e.to_string()),
                    }
                }
                _ => match arrow::ipc::reader::FileReader::try_new(f, None) {
                    Ok(reader) => reader.into_iter().find_map(|b| b.err()).map(|e| e.to_string()),
                    // A stream (its layout was checked before the run).
                    Err(_) => match std::fs::File::open(&file)
                        .map_err(arrow::error::ArrowError::from)
                        .and_then(|f| arrow::ipc::reader::StreamReader::try_new(f, None))
                    {
                        Ok(reader) => reader.into_iter().find_map(|b| b.err()).map(|e| e.to_string()),
                        Err(e) => Some(e.to_string()),
                    },
                },
            };
            if let Some(why) = failure {
                return Some(format!("{}: {why}", as_given(&file).display()));
            }
        }
        None
    }

    /// For NDJSON pointed at other data than it was compiled for (`runi run --input`): every
    /// column of the table must be a field of some record. The reader gives a field no
    /// record has as nulls and drops fields the table does not name, so data with other
    /// field names would be read as rows of nulls without a word. Reads every record.
    pub fn check_json_fields(&self) -> Result<()> {
        let mut found = std::collections::BTreeSet::new();
        let files = source_files(&self.name, &self.location, "")?;
        for file in &files {
            let reader = std::fs::File::open(file)
                .map(std::io::BufReader::new)
                .map_err(|e| self.error(format!("cannot read {}: {e}", file.display())))?;
            let (schema, _) = arrow::json::reader::infer_json_schema_from_seekable(reader, None)
                .map_err(|e| self.error(format!("{}: {e}", file.display())))?;
            found.extend(schema.fields().iter().map(|f| f.name().clone()));
        }
        let missing: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !found.contains(*n))
            .collect();
        if missing.is_empty() || files.is_empty() {
            return Ok(());
        }
        Err(self.error(format!(
            "no record has field{} `{}` (the records' fields: `{}`)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join("`, `"),
            found.into_iter().collect::<Vec<_>>().join("`, `")
        )))
    }

    /// DataFusion reads CSV columns by position and takes the header of one file for all; a
    /// file whose header names other columns, or the same in another order, would put its
    /// values under the wrong names without a word. Each file's header must name the
    /// table's columns in the table's order.
    fn check_csv_headers(&self) -> Result<()> {
        let files = source_files(&self.name, &self.location, "csv")?;
        let bom = std::str::from_utf8(BOM).unwrap_or_default();
        let expected: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().trim_start_matches(bom))
            .collect();
        for file in files {
            let header = csv_header(&file).map_err(|e| {
                self.error(format!("cannot read the header of {}: {e}", file.display()))
            })?;
            if let Some(header) = &header
                && let Some(twice) = header
                    .iter()
                    .enumerate()
                    .find_map(|(i, n)| header[..i].contains(n).then_some(n))
            {
                return Err(self.error(format!(
                    "the header of {} names the column `{twice}` twice (`{}`): every column needs a name of its own",
                    file.display(),
                    header.join(",")
                )));
            }
            if let Some(at) = file_quotes(&file)
                .map_err(|e| self.error(format!("cannot read {}: {e}", file.display())))?
                .unclosed_at
            {
                let line = line_of_offset(&file, at).unwrap_or(0);
                return Err(self.error(format!(
                    "{}:{line}: a quoted value starts here and its closing quote is missing: the rest of the file would be read as part of it",
                    as_given(&file).display()
                )));
            }
            // An empty file has no rows to misplace.
            if let Some(header) = header
                && header != expected
            {
                return Err(self.error(format!(
                    "{} has the columns `{}`, but this source's are `{}`: Runink reads CSV columns by position, so every file needs the same header in the same order",
                    file.display(),
                    header.join(","),
                    expected.join(",")
                )));
            }
        }
        Ok(())
    }

    /// See [`check_arrow_files`].
    fn check_arrow_files(&self) -> Result<()> {
        check_arrow_files(&self.name, &self.location)
    }

    /// Each Parquet file must be one (a footer that fits the file: the Parquet reader
    /// panicked on some broken ones), and every column of the table must be in some file:
    /// DataFusion fills a missing column with nulls, so data that lost a column since
    /// compiling would be read as nulls without a word.
    fn check_parquet_files(&self) -> Result<()> {
        let wanted: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        // Columns no file has so far, and the last file looked at (for the message).
        let mut nowhere: Vec<&str> = wanted.clone();
        let mut last: Option<(PathBuf, Vec<String>)> = None;
        for file in source_files(&self.name, &self.location, "parquet")? {
            let names = parquet_columns(&file)
                .map_err(|m| self.error(format!("{}: {m}", file.display())))?;
            nowhere.retain(|n| !names.iter().any(|have| have == n));
            last = Some((file, names));
        }
        // A column some files lack is schema evolution (older files of a dataset read as
        // null there); a column no file has would be nothing but nulls.
        if let Some((file, names)) = last
            && !nowhere.is_empty()
        {
            return Err(self.error(format!(
                "no file has column{} `{}` any more ({} has `{}`)",
                if nowhere.len() == 1 { "" } else { "s" },
                nowhere.join("`, `"),
                file.display(),
                names.join(",")
            )));
        }
        Ok(())
    }

    fn error(&self, message: String) -> EngineError {
        EngineError::Source {
            name: self.name.clone(),
            uri: self.location.uri.clone(),
            message,
        }
    }

    /// The same source with the columns `pick` chooses read as text (`Utf8`), whatever their
    /// inferred type: a reader never fails on their values, and a contract converts them.
    pub fn with_text_columns(self, pick: impl Fn(&str) -> bool) -> Self {
        let fields: Vec<arrow::datatypes::FieldRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                if pick(f.name()) && f.data_type() != &arrow::datatypes::DataType::Utf8 {
                    Arc::new(
                        f.as_ref()
                            .clone()
                            .with_data_type(arrow::datatypes::DataType::Utf8)
                            .with_nullable(true),
                    )
                } else {
                    Arc::clone(f)
                }
            })
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        Self { schema, ..self }
    }

    fn listing_table(&self) -> Result<ListingTable> {
        let base = current_dir(&self.name, &self.location)?;
        let url = table_url(&self.name, &self.location, &base)?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing_options(&self.location, &base))
            .with_schema(Arc::clone(&self.schema));
        ListingTable::try_new(config).map_err(|e| source_error(&self.name, &self.location, &e))
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.check_files()?;
        let table = self.listing_table()?;
        let plan = table
            .scan(state, projection, filters, limit)
            .await
            .map_err(|e| source_error(&self.name, &self.location, &e))?;
        Ok(without_float_bounds(plan)?)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters are re-applied above the scan; the listing table uses them only to
        // prune (Parquet row groups), which is always safe.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// `plan` (a file scan) without the minimum and maximum statistics of its float columns.
///
/// Parquet writers leave NaN out of a float column's bounds (the format's rule), but
/// DataFusion reads equal bounds without nulls as "every value is this one": a file holding
/// `[NaN, 1.0, 1.0]` was read as three `1.0`s (its scan replaces such a column with a
/// constant), and `max(x)` over it could be answered from the bounds. Without float bounds
/// the values are read; row counts and the bounds of other types still guide the planner.
fn without_float_bounds(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::Statistics;
    use datafusion::common::stats::Precision;
    use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
    use datafusion::datasource::source::DataSourceExec;

    let Some(config) = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    else {
        return Ok(plan);
    };
    // Statistics cover the table's columns: the file's, then any partition columns.
    let table_schema = config.file_source.table_schema().table_schema();
    let floats: Vec<usize> = table_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.data_type().is_floating())
        .map(|(i, _)| i)
        .collect();
    if floats.is_empty() {
        return Ok(plan);
    }
    let clear = |stats: &Statistics| -> Arc<Statistics> {
        let mut stats = stats.clone();
        for &i in &floats {
            if let Some(column) = stats.column_statistics.get_mut(i) {
                column.min_value = Precision::Absent;
                column.max_value = Precision::Absent;
            }
        }
        Arc::new(stats)
    };
    let file_groups = config
        .file_groups
        .iter()
        .map(|group| {
            let files = group
                .iter()
                .cloned()
                .map(|mut file| {
                    file.statistics = file.statistics.as_deref().map(&clear);
                    file
                })
                .collect();
            match group.file_statistics(None) {
                Some(stats) => FileGroup::new(files).with_statistics(clear(stats)),
                None => FileGroup::new(files),
            }
        })
        .collect();
    let table_stats = Arc::unwrap_or_clone(clear(&config.statistics()));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(file_groups)
        .with_statistics(table_stats)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// The top-level column names of a Parquet file, after checking that its footer fits it.
fn parquet_columns(path: &Path) -> std::result::Result<Vec<String>, String> {
    Ok(parquet_fields(path)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The columns of a Parquet file and their Arrow types, from its footer.
fn parquet_fields(
    path: &Path,
) -> std::result::Result<Vec<(String, arrow::datatypes::DataType)>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let broken = |why: &str| format!("not a Parquet file ({why})");
    if size < 12 {
        return Err(broken("too short"));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Err(broken("no PAR1 at its end"));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > size {
        return Err(broken("its footer is longer than the file"));
    }
    let metadata = datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
        &file,
        Default::default(),
    )
    .map_err(|e| broken(&e.to_string()))?;
    Ok(metadata
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

/// Two Parquet files of a source folder that give one column two types, named (DataFusion's
/// merge error names neither file).
fn parquet_conflict(name: &str, location: &FileLocation) -> Option<String> {
    let mut first: std::collections::HashMap<String, (PathBuf, arrow::datatypes::DataType)> =
        std::collections::HashMap::new();
    for file in source_files(name, location, "parquet").ok()? {
        for (column, data_type) in parquet_fields(&file).ok()? {
            match first.get(&column) {
                Some((other, t)) if *t != data_type => {
                    return Some(format!(
                        "the files disagree on column `{column}`: {} has it as {t}, {} as {data_type}; a folder is read as one table, so every file must give a column one type",
                        as_given(other).display(),
                        as_given(&file).display()
                    ));
                }
                Some(_) => {}
                None => {
                    first.insert(column, (file.clone(), data_type));
                }
            }
        }
    }
    None
}

/// Checks an Arrow source's files before DataFusion reads them.
///
/// DataFusion reads every file in the layout, IPC file or IPC stream, it found first, and
/// fails on the others with an error that names no file: a source's files must all be of
/// one layout. And a file that is neither (truncated, or another format) made its reader
/// take four bytes of it for a message length and allocate that much (1.3 GB for a 6 KB
/// file, aborting runi under a memory limit): each file's frame is checked against its size.
fn check_arrow_files(name: &str, location: &FileLocation) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let error = |message: String| EngineError::Source {
        name: name.to_string(),
        uri: location.uri.clone(),
        message,
    };
    let mut first: Option<(PathBuf, &'static str)> = None;
    for file in source_files(name, location, "arrow")? {
        let shown = as_given(&file);
        let shown = shown.display();
        let cannot = |e: std::io::Error| error(format!("cannot read {shown}: {e}"));
        let mut f = std::fs::File::open(&file).map_err(cannot)?;
        let size = f.metadata().map_err(cannot)?.len();
        let mut head = Vec::with_capacity(8);
        (&mut f).take(8).read_to_end(&mut head).map_err(cannot)?;
        if head.is_empty() {
            continue; // an empty file has no layout (and no rows)
        }
        // The IPC file format's magic (arrow and DataFusion keep theirs private).
        let layout = if head.starts_with(b"ARROW1") {
            let mut tail = [0u8; 6];
            let ends = size >= 12
                && f.seek(SeekFrom::End(-6)).is_ok()
                && f.read_exact(&mut tail).is_ok()
                && &tail == b"ARROW1";
            if !ends {
                return Err(error(format!(
                    "{shown} is a damaged Arrow IPC file: it starts like one but does not end with its footer (truncated?)"
                )));
            }
            "IPC file"
        } else {
            // A stream starts with a message: 0xFFFFFFFF and its length, or (before Arrow
            // 0.15) the length alone; the length must fit the file.
            let word = |at: usize| {
                head.get(at..at + 4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let (length, after) = match word(0) {
                Some(-1) => (word(4), 8),
                other => (other, 4),
            };
            let fits = length.is_some_and(|l| l >= 0 && (l as u64) + after <= size);
            if !fits {
                let what = if head.starts_with(b"PAR1") {
                    " (it is a Parquet file: read it with parquet://)".to_string()
                } else {
                    String::new()
                };
                return Err(error(format!(
                    "{shown} is not an Arrow IPC file or stream{what}: its first bytes are not an Arrow message that fits the file (damaged or truncated?)"
                )));
            }
            "IPC stream"
        };
        match &first {
            None => first = Some((file.clone(), layout)),
            Some((seen, seen_layout)) if *seen_layout != layout => {
                return Err(error(format!(
                    "{} is an Arrow {seen_layout} but {} an Arrow {layout}: every file of a source must have one layout (write them all as files or all as streams)",
                    as_given(seen).display(),
                    shown
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The files a source reads: the file itself, or those with extension `ext` in its folder.
fn source_files(name: &str, location: &FileLocation, ext: &str) -> Result<Vec<PathBuf>> {
    let root = location.resolve(&current_dir(name, location)?);
    if !root.is_dir() {
        return Ok(vec![root]);
    }
    let mut files = Vec::new();
    listed_files(&root, ext, &mut files).map_err(|e| EngineError::Source {
        name: name.to_string(),
        uri: location.uri.clone(),
        message: format!("cannot list {}: {e}", root.display()),
    })?;
    Ok(files)
}

/// The files with extension `ext` under `dir`, as a listing of the directory reads them.
fn listed_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // A listing reads Hive-style partition folders (`day=1/`) and skips other folders.
        if path.is_dir() {
            if entry.file_name().to_string_lossy().contains('=') {
                listed_files(&path, ext, out)?;
            }
        } else if ext.is_empty() || path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// The column names of a CSV file's header line (`None`: the file is empty).
fn csv_header(path: &Path) -> std::result::Result<Option<Vec<String>>, String> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    // A header is one line; a quoted name holding a newline is read as the parser reads it.
    std::io::BufReader::new(file)
        .take(HEADER_BYTES_MAX)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    if line.starts_with(BOM) {
        line.drain(..BOM.len());
    }
    let (schema, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .infer_schema(std::io::Cursor::new(line), Some(0))
        .map_err(|e| e.to_string())?;
    Ok(Some(
        schema.fields().iter().map(|f| f.name().clone()).collect(),
    ))
}

/// The schema of a CSV source read record by record from the start of each file (the
/// first `rows` records in all), merged across files by column name. Files that disagree on
/// a column's type are one table of the type that holds both: integers and floats as floats,
/// dates and timestamps as the finest timestamp, anything else as text (as DuckDB reads them).
fn infer_csv_whole(
    name: &str,
    location: &FileLocation,
    base: &Path,
    rows: usize,
) -> Result<SchemaRef> {
    let error = |message: String| EngineError::Source {
        name: name.to_string(),
        uri: location.uri.clone(),
        message,
    };
    let root = location.resolve(base);
    let files = if root.is_dir() {
        source_files(name, location, "csv")?
    } else {
        vec![root]
    };
    let mut merged: Vec<arrow::datatypes::Field> = Vec::new();
    let mut left = rows;
    for file in files {
        if left == 0 {
            break;
        }
        let reader = std::fs::File::open(&file)
            .map(std::io::BufReader::new)
            .map_err(|e| error(format!("cannot read {}: {e}", file.display())))?;
        let (schema, read) = arrow::csv::reader::Format::default()
            .with_header(true)
            .infer_schema(reader, Some(left))
            .map_err(|e| error(format!("{}: {e}", as_given(&file).display())))?;
        left = left.saturating_sub(read);
        for f in schema.fields() {
            match merged.iter_mut().find(|m| m.name() == f.name()) {
                Some(m) => {
                    let t = widen(m.data_type(), f.data_type());
                    *m = m.clone().with_data_type(t).with_nullable(true);
                }
                None => merged.push(f.as_ref().clone()),
            }
        }
    }
    return Ok(Arc::new(arrow::datatypes::Schema::new(merged)));

    fn widen(a: &DataType, b: &DataType) -> DataType {
        use arrow::datatypes::TimeUnit;
        let rank = |u: &TimeUnit| match u {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 1,
            TimeUnit::Microsecond => 2,
            TimeUnit::Nanosecond => 3,
        };
        match (a, b) {
            _ if a == b => a.clone(),
            (DataType::Null, t) | (t, DataType::Null) => t.clone(),
            (DataType::Int64 | DataType::Float64, DataType::Int64 | DataType::Float64) => {
                DataType::Float64
            }
            (DataType::Timestamp(u, None), DataType::Timestamp(v, None)) => {
                DataType::Timestamp(if rank(u) >= rank(v) { *u } else { *v }, None)
            }
            (DataType::Date32, DataType::Timestamp(u, None))
            | (DataType::Timestamp(u, None), DataType::Date32) => DataType::Timestamp(*u, None),
            _ => DataType::Utf8,
        }
    }
}

/// Whether a CSV source's files hold a line break inside a quoted value (RFC 4180 allows
/// it). Reads every byte; a file that cannot be read answers no (the scan reports it).
fn csv_newlines_in_values(location: &FileLocation, base: &Path) -> bool {
    let root = location.resolve(base);
    let files = if root.is_dir() {
        let mut files = Vec::new();
        if listed_files(&root, "csv", &mut files).is_err() {
            return false;
        }
        files
    } else {
        vec![root]
    };
    files
        .iter()
        .any(|f| file_has_quoted_newline(f).unwrap_or(false))
}

/// What [`scan_quotes`] found in a CSV file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Quotes {
    /// A line break inside a quoted value (RFC 4180 allows it).
    newline_inside: bool,
    /// The line of a quote that opens a value and is never closed: the reader would take
    /// the rest of the file for that one value.
    unclosed_at: Option<u64>,
}

/// Whether a CSV file holds a line break inside a quoted value.
fn file_has_quoted_newline(path: &Path) -> std::io::Result<bool> {
    Ok(file_quotes(path)?.newline_inside)
}

/// [`scan_quotes`], remembered per file version (path, size, modification time) for the
/// life of the process: a run checks when compiling and again when scanning.
fn file_quotes(path: &Path) -> std::io::Result<Quotes> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Version = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: OnceLock<Mutex<HashMap<Version, Quotes>>> = OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let version = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let seen = SEEN.get_or_init(Default::default);
    if let Some(&answer) = seen
        .lock()
        .ok()
        .and_then(|m| m.get(&version).copied())
        .as_ref()
    {
        return Ok(answer);
    }
    let answer = scan_quotes(std::fs::File::open(path)?)?;
    if let Ok(mut m) = seen.lock() {
        m.insert(version, answer);
    }
    Ok(answer)
}

/// Reads CSV text to its end following quotes as the reader does (comma-separated, `"`
/// quotes, `""` a quote inside one): a quote opens a value only where a value starts (at
/// the start of a line or after a comma); elsewhere it is an ordinary character (`5'10"`).
/// One `memchr` pass where there are no quotes.
fn scan_quotes(mut text: impl std::io::Read) -> std::io::Result<Quotes> {
    let mut block = vec![0u8; 1 << 20];
    let mut found = Quotes::default();
    // Absolute offsets: where the current value starts (outside quotes), where the open
    // quote is (inside one), and of the block.
    let mut value_start: u64 = 0;
    let mut open_quote: Option<u64> = None;
    // Inside quotes, the block ended on a quote: a doubled quote or the closing one.
    let mut quote_pending = false;
    let mut base: u64 = 0;
    loop {
        let n = text.read(&mut block)?;
        if n == 0 {
            break;
        }
        let b = &block[..n];
        let mut i = 0;
        if quote_pending {
            quote_pending = false;
            if b[0] == b'"' {
                i = 1;
            } else {
                open_quote = None;
            }
        }
        while i < n {
            if open_quote.is_some() {
                let Some(at) = memchr::memchr(b'"', &b[i..]) else {
                    found.newline_inside |= memchr::memchr2(b'\n', b'\r', &b[i..]).is_some();
                    i = n;
                    continue;
                };
                found.newline_inside |= memchr::memchr2(b'\n', b'\r', &b[i..i + at]).is_some();
                let q = i + at;
                match b.get(q + 1) {
                    Some(b'"') => i = q + 2,
                    Some(_) => {
                        open_quote = None;
                        i = q + 1;
                    }
                    None => {
                        quote_pending = true;
                        i = n;
                    }
                }
            } else {
                let Some(at) = memchr::memchr3(b'"', b',', b'\n', &b[i..]) else {
                    i = n;
                    continue;
                };
                let q = i + at;
                let here = base + q as u64;
                match b[q] {
                    b'"' if here == value_start => open_quote = Some(here),
                    b'"' => {}
                    _ => value_start = here + 1,
                }
                i = q + 1;
            }
        }
        base += n as u64;
    }
    if !quote_pending && let Some(at) = open_quote {
        found.unclosed_at = Some(at);
    }
    Ok(found)
}

/// The 1-based line of byte `offset` of `path`.
fn line_of_offset(path: &Path, offset: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let mut lines = 1;
    let mut file = std::fs::File::open(path)?.take(offset);
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &block[..n]).count() as u64;
    }
}

/// A UTF-8 byte order mark, which some tools write before the header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Longest header line read when checking a CSV file's columns.
const HEADER_BYTES_MAX: u64 = 1 << 20;

fn current_dir(name: &str, location: &FileLocation) -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| EngineError::Source {
        name: name.to_string(),
        uri: location.uri.clone(),
        message: format!("cannot read the working directory: {e}"),
    })
}

fn table_url(name: &str, location: &FileLocation, base: &Path) -> Result<ListingTableUrl> {
    let path = location.resolve(base);
    if !path.exists() {
        return Err(EngineError::Source {
            name: name.to_string(),
            uri: location.uri.clone(),
            message: format!("no such file or directory: {}", path.display()),
        });
    }
    let mut text = path.to_string_lossy().into_owned();
    if path.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    ListingTableUrl::parse(&text).map_err(|e| source_error(name, location, &e))
}

fn listing_options(location: &FileLocation, base: &Path) -> ListingOptions {
    let format: Arc<dyn FileFormat> = match location.format {
        FileFormatKind::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(true)
                .with_schema_infer_max_rec(SCHEMA_INFER_ROWS)
                // Split at line ends, a file with a line break inside a quoted value would
                // be cut mid-record; such files are read whole (not in parallel ranges).
                .with_newlines_in_values(csv_newlines_in_values(location, base)),
        ),
        FileFormatKind::Json => {
            Arc::new(JsonFormat::default().with_schema_infer_max_rec(JSON_SCHEMA_INFER_RECORDS))
        }
        FileFormatKind::Parquet => Arc::new(ParquetFormat::default()),
        FileFormatKind::Arrow => Arc::new(ArrowFormat),
    };
    // A single file is read whatever its extension; a directory lists the files of the
    // format's usual extension.
    let extension = if location.resolve(base).is_dir() {
        match location.format {
            FileFormatKind::Json => String::new(),
            other => format!(".{}", other.extension()),
        }
    } else {
        String::new()
    };
    ListingOptions::new(format).with_file_extension(extension)
}

fn source_error(
    name: &str,
    location: &FileLocation,
    e: &datafusion::error::DataFusionError,
) -> EngineError {
    let mut message = crate::user_message(e);
    // DataFusion names the file by its object-store path, which has lost its leading `/`
    // (`tmp/x/ragged.csv` reads as relative): name it as the user would, `file:line` when
    // a line is given.
    if let Some(rest) = message.strip_prefix("Error when processing CSV file ")
        && let Some((path, detail)) = rest.split_once(": ")
    {
        let file = as_given(&Path::new("/").join(path));
        message = match split_number(detail, " at line ") {
            Some((before, line, "")) => format!("{}:{line}: {before}", file.display()),
            _ => format!("{}: {detail}", file.display()),
        };
    }
    // DataFusion's advice for an empty folder ("… or declare an explicit schema") names
    // something a Feature file cannot do.
    if message.contains("declare an explicit schema") {
        message = format!(
            "no .{} files to read in {}: a source's schema is inferred from its files, so the folder needs at least one",
            location.format.extension(),
            location.uri
        );
    }
    EngineError::Source {
        name: name.to_string(),
        uri: location.uri.clone(),
        message,
    }
}

/// `file` as messages show it: relative to the working directory when it lies under it.
fn as_given(file: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| file.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf())
}

/// `text` split around the number after `marker`: (before the marker, the number, after it).
fn split_number<'a>(text: &'a str, marker: &str) -> Option<(&'a str, u64, &'a str)> {
    let at = text.find(marker)?;
    let rest = &text[at + marker.len()..];
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let n = rest[..digits].parse().ok()?;
    Some((&text[..at], n, &rest[digits..]))
}

/// Arrow's "… for column 1" as the column's name: "… for column `amount`".
fn column_named(text: &str, schema: &SchemaRef) -> String {
    let text = text
        .strip_prefix("Parser error: ")
        .unwrap_or(text)
        .to_string();
    match split_number(&text, " for column ") {
        Some((before, i, after)) => {
            match usize::try_from(i).ok().and_then(|i| schema.fields().get(i)) {
                Some(f) => format!("{before} for column `{}`{after}", f.name()),
                None => text.clone(),
            }
        }
        None => text,
    }
}

/// Where an NDJSON source's reader failed: the first line that is not JSON (file, line and
/// column), or, given the source's schema and the reader's message (which names the field,
/// `whilst decoding field 'amount'`, but not the line), the first record whose value of that
/// field has another JSON type than the column. Reads the files line by line, for error
/// messages only; `None` when nothing is found.
fn locate_json_error(
    name: &str,
    location: &FileLocation,
    decoding: Option<(&SchemaRef, &str)>,
) -> Option<String> {
    use std::io::BufRead;
    let field = decoding.and_then(|(schema, message)| {
        let (_, rest) = message.split_once("whilst decoding field '")?;
        let field = &rest[..rest.find('\'')?];
        schema
            .field_with_name(field)
            .ok()
            .map(|f| (f.name().clone(), f.data_type().clone()))
    });
    for file in source_files(name, location, "").ok()? {
        let shown = as_given(&file);
        let shown = shown.display();
        let reader = std::io::BufReader::new(std::fs::File::open(&file).ok()?);
        // The first record whose field has the column's JSON type, and the first that has not.
        let mut fits: Option<(usize, String, &str)> = None;
        let mut misfits: Option<(usize, String, &str)> = None;
        // Where inside the first misfit (an object or a list) the value that does not fit is.
        let mut inner_misfit: Option<(String, serde_json::Value, arrow::datatypes::DataType)> =
            None;
        // The field's first value, and the first of another JSON type than that one.
        let mut first_kind: Option<(usize, String, &str)> = None;
        let mut other_kind: Option<(usize, String, &str)> = None;
        let mut kinds: std::collections::HashMap<String, (usize, String, &str)> =
            std::collections::HashMap::new();
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.ok()?;
            let n = i + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: serde_json::Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => {
                    let what = e.to_string();
                    let what = what.split(" at line ").next().unwrap_or(&what);
                    return Some(format!(
                        "{shown}:{n}:{}: not valid JSON: {what}",
                        e.column()
                    ));
                }
            };
            let Some(record) = value.as_object() else {
                return Some(format!(
                    "{shown}:{n}: the line holds {}, not a JSON object: each line of an NDJSON file is one record, `{{\"column\": value, …}}`",
                    json_kind(&value)
                ));
            };
            // Inference fails on a field holding an object or a list in one record and
            // something else in another, at the top or inside a list or an object: the first
            // such pair is the place.
            if decoding.is_none() {
                let mut conflict = None;
                for (name, v) in record.iter() {
                    visit_json(name, v, &mut |path, v| {
                        let kind = json_kind(v);
                        match kinds.get(path) {
                            None => {
                                kinds.insert(path.to_string(), (n, short_json(v), kind));
                                true
                            }
                            Some(first)
                                if first.2 != kind
                                    && [first.2, kind]
                                        .iter()
                                        .any(|k| *k == "an object" || *k == "a list") =>
                            {
                                conflict = Some(format!(
                                    "field `{path}` holds values of two JSON types: {} at {shown}:{} ({}) and {kind} at {shown}:{n} ({}); a field must hold one type in every record (or null){}",
                                    first.2,
                                    first.0,
                                    first.1,
                                    short_json(v),
                                    if path.contains("[]") {
                                        ", and the items of a list one type"
                                    } else {
                                        ""
                                    }
                                ));
                                false
                            }
                            Some(_) => true,
                        }
                    });
                    if conflict.is_some() {
                        return conflict;
                    }
                }
            }
            // The reader's message names no field: the first value of another type than its
            // column's is the place.
            if field.is_none()
                && let Some((schema, _)) = decoding
                && let Some((f, v)) = schema.fields().iter().find_map(|f| {
                    record
                        .get(f.name())
                        .filter(|v| !json_fits(v, f.data_type()))
                        .map(|v| (f, v))
                })
            {
                return Some(format!(
                    "{shown}:{n}: field `{}` is {} ({}), but the source reads it as {}",
                    f.name(),
                    short_json(v),
                    json_kind(v),
                    f.data_type()
                ));
            }
            if let Some((field, data_type)) = &field
                && let Some(v) = value.get(field).filter(|v| !v.is_null())
            {
                let seen = (n, short_json(v), json_kind(v));
                match &first_kind {
                    None => first_kind = Some(seen.clone()),
                    Some(first) if first.2 != seen.2 && other_kind.is_none() => {
                        other_kind = Some(seen.clone());
                    }
                    Some(_) => {}
                }
                if json_fits(v, data_type) {
                    fits.get_or_insert(seen);
                } else if misfits.is_none() {
                    inner_misfit = json_misfit(field, v, data_type);
                    misfits = Some(seen);
                }
                if let (Some(bad), Some(good)) = (&misfits, &fits) {
                    // Two objects or two lists: the value inside that differs is the place.
                    if bad.2 == good.2
                        && let Some((path, v, t)) = &inner_misfit
                        && path != field
                    {
                        return Some(format!(
                            "{shown}:{}: field `{path}` is {} ({}), but the source reads it as {t} (as at {shown}:{}: {})",
                            bad.0,
                            short_json(v),
                            json_kind(v),
                            good.0,
                            good.1
                        ));
                    }
                    return Some(mixed_types(&shown, field, data_type, bad, good));
                }
            }
        }
        if let (Some((field, data_type)), Some(bad)) = (&field, &misfits) {
            // No record fits the type inference chose (a number and a boolean both read as
            // text): the two kinds are the place.
            if let (Some(first), Some(other)) = (&first_kind, &other_kind) {
                return Some(format!(
                    "field `{field}` holds values of two JSON types: {} at {shown}:{} ({}) and {} at {shown}:{} ({}), which the source reads as {data_type}; a field must hold one type in every record (or null)",
                    first.2, first.0, first.1, other.2, other.0, other.1
                ));
            }
            return Some(format!(
                "{shown}:{}: field `{field}` is {} ({}), but the source reads it as {data_type}",
                bad.0, bad.1, bad.2
            ));
        }
    }
    None
}

/// Calls `each(path, value)` for `v` (at `path`) and every non-null value inside it: list
/// items at `path[]`, object members at `path.member`. Stops when `each` returns false;
/// returns false then.
fn visit_json(
    path: &str,
    v: &serde_json::Value,
    each: &mut dyn FnMut(&str, &serde_json::Value) -> bool,
) -> bool {
    use serde_json::Value as V;
    if v.is_null() {
        return true;
    }
    if !each(path, v) {
        return false;
    }
    match v {
        V::Array(items) => {
            let inner = format!("{path}[]");
            items.iter().all(|i| visit_json(&inner, i, each))
        }
        V::Object(members) => members
            .iter()
            .all(|(k, m)| visit_json(&format!("{path}.{k}"), m, each)),
        _ => true,
    }
}

/// Where in `v` (at `path`), which does not fit a column of `t`, the value that does not
/// fit is: inside lists (`path[]`) and objects (`path.member`), else `v` itself. `None` when
/// `v` fits.
fn json_misfit(
    path: &str,
    v: &serde_json::Value,
    t: &arrow::datatypes::DataType,
) -> Option<(String, serde_json::Value, arrow::datatypes::DataType)> {
    use arrow::datatypes::DataType as T;
    use serde_json::Value as V;
    if json_fits(v, t) {
        return None;
    }
    let inner = match (v, t) {
        (V::Array(items), T::List(f) | T::LargeList(f)) => {
            let path = format!("{path}[]");
            items
                .iter()
                .find_map(|i| json_misfit(&path, i, f.data_type()))
        }
        (V::Object(o), T::Struct(fields)) => fields.iter().find_map(|f| {
            o.get(f.name())
                .and_then(|m| json_misfit(&format!("{path}.{}", f.name()), m, f.data_type()))
        }),
        _ => None,
    };
    inner.or_else(|| Some((path.to_string(), v.clone(), t.clone())))
}

/// Whether arrow's JSON reader takes `v` for a column of `t` (a rough check, for placing
/// its errors: numbers for numbers, text for text, …).
fn json_fits(v: &serde_json::Value, t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType as T;
    use serde_json::Value as V;
    match (v, t) {
        (V::Null, _) => true,
        (V::String(_), T::Utf8 | T::LargeUtf8 | T::Utf8View) => true,
        (_, T::Utf8 | T::LargeUtf8 | T::Utf8View) => false,
        (V::Number(n), t) if t.is_integer() => n.is_i64() || n.is_u64(),
        (V::Number(_), t) if t.is_floating() || matches!(t, T::Decimal128(..)) => true,
        (V::Bool(_), T::Boolean) => true,
        (_, T::Boolean) => false,
        (_, t) if t.is_numeric() => false,
        // Items and fields too: a list of numbers where inference read text (another
        // record's list held a string) is the value the reader fails on.
        (V::Array(items), T::List(f) | T::LargeList(f)) => {
            items.iter().all(|i| json_fits(i, f.data_type()))
        }
        (_, T::List(_) | T::LargeList(_)) => false,
        (V::Object(o), T::Struct(fields)) => fields
            .iter()
            .all(|f| o.get(f.name()).is_none_or(|v| json_fits(v, f.data_type()))),
        (_, T::Struct(_)) => false,
        _ => true,
    }
}

/// A field whose records hold values of two JSON types: inference chose one (text, when
/// any record has text), and the reader fails on the other.
fn mixed_types(
    shown: &std::path::Display<'_>,
    field: &str,
    data_type: &arrow::datatypes::DataType,
    bad: &(usize, String, &str),
    good: &(usize, String, &str),
) -> String {
    format!(
        "field `{field}` holds values of two JSON types: {} at {shown}:{} ({}) and {} at {shown}:{} ({}); the source reads it as {data_type}, so every record must hold {} (or null)",
        bad.2, bad.0, bad.1, good.2, good.0, good.1, good.2
    )
}

fn short_json(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        text.chars().take(40).collect::<String>() + "…"
    } else {
        text
    }
}

/// A JSON value's type, as messages name it ("a number", "text", …).
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The line on which row `n` (counted from 1 after the header) of a CSV file starts, in a
/// file whose quoted values may hold line breaks (a doubled quote inside a value toggles the
/// quoting twice, so it needs no special case). For error messages only: reads the file up
/// to that row.
fn record_line(path: &Path, n: u64) -> Option<u64> {
    use std::io::Read;
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut buf = [0u8; 64 * 1024];
    let (mut line, mut record, mut quoted) = (1u64, 0u64, false);
    loop {
        let read = reader.read(&mut buf).ok()?;
        if read == 0 {
            return None;
        }
        for &b in &buf[..read] {
            match b {
                b'"' => quoted = !quoted,
                b'\n' => {
                    line += 1;
                    if !quoted {
                        record += 1;
                        if record == n {
                            return Some(line);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its text `step` bytes at a time, so values and quotes straddle blocks.
    struct Trickle<'a> {
        text: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.text.len());
            buf[..n].copy_from_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Ok(n)
        }
    }

    fn quotes(text: &str) -> Quotes {
        let whole = scan_quotes(text.as_bytes()).expect("scan");
        for step in [1, 2, 3] {
            let trickled = scan_quotes(Trickle {
                text: text.as_bytes(),
                step,
            })
            .expect("scan");
            assert_eq!(trickled, whole, "{text:?} read {step} bytes at a time");
        }
        whole
    }

    #[test]
    fn a_quote_that_never_closes_is_found_where_it_opens() {
        let text = "id,name\n1,a\n2,\"oops\n3,c\n";
        assert_eq!(quotes(text).unclosed_at, Some(14));
        assert_eq!(&text[14..15], "\"");
        // Not in the last column: the same.
        assert_eq!(quotes("a,b\n\"x,1\n").unclosed_at, Some(4));
    }

    #[test]
    fn closed_doubled_and_ordinary_quotes_are_no_error() {
        for text in [
            "id,h\n1,5'10\"\n2,6'\n",
            "a,b\n\"x \"\"y\"\" z\",1\n",
            "a,b\n\"\"\"\",1\n",
            "a,b\n\"\",\"\"\n",
            "a,b\nx\"y,\"z\"\r\n",
            "a,b\n\"ab\"c\"d,1\n",
            "",
            "a\n\"\"",
        ] {
            assert_eq!(quotes(text).unclosed_at, None, "{text:?}");
        }
    }

    #[test]
    fn line_breaks_inside_quotes_are_found() {
        assert!(quotes("a,b\n\"x\ny\",1\n").newline_inside);
        assert!(quotes("a,b\n\"x\r\ny\",1\n").newline_inside);
        assert!(!quotes("a,b\n\"x y\",1\nq\"\n,2\n").newline_inside);
    }
}
