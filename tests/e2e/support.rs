//! Running `runi` in a throw-away project folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The repository root: cargo and nextest set `CARGO_MANIFEST_DIR` when they run a test,
/// which stays right when a shared target directory holds a binary built in another clone
/// (the compile-time value would name that clone).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A project folder in a temp dir.
pub struct Project {
    pub dir: TempDir,
}

/// What a command did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success, showing stderr when it did not succeed.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    /// Asserts failure with `code`, no panic, and a message containing each of `needles`.
    pub fn fails(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}; stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "panicked:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("stack backtrace"),
            "backtrace:\n{}",
            self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks `{n}`:\n{}",
                self.stderr
            );
        }
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Project {
    /// An empty project.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of `tests/fixtures/NAME`.
    pub fn fixture(name: &str) -> Self {
        let p = Self::empty();
        copy_dir(&repo().join("tests/fixtures").join(name), p.path());
        if p.path().join("herd.toml").exists() {
            p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
        }
        p
    }

    /// The bundled example with freshly generated data (`rows` trades).
    pub fn example(rows: usize) -> Self {
        let p = Self::empty();
        let src = repo().join("examples/trades");
        std::fs::copy(src.join("trades.feature"), p.path().join("trades.feature")).unwrap();
        std::fs::copy(src.join("herd.toml"), p.path().join("herd.toml")).unwrap();
        p.runi(&["herd", "apply", "-f", "herd.toml"]).ok();
        copy_dir(&src.join("contracts"), &p.path().join("contracts"));
        let status = Command::new(env!("CARGO_BIN_EXE_gen-trades"))
            .args(["--rows", &rows.to_string(), "--out", "data"])
            .current_dir(p.path())
            .status()
            .unwrap();
        assert!(status.success());
        p
    }

    /// Runs leave nothing in the state directory's spool (which a spooling run created).
    pub fn assert_spool_empty(&self) {
        let spool = self.path().join(".runink/spool");
        let left: Vec<_> = std::fs::read_dir(&spool)
            .unwrap_or_else(|e| panic!("{}: {e}", spool.display()))
            .collect();
        assert!(left.is_empty(), "left in {}: {left:?}", spool.display());
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the project.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    /// Writes a Parquet file into the project, with Arrow's writer (statistics on, as
    /// every Parquet writer has them): one row group of these columns.
    pub fn write_parquet(&self, name: &str, columns: Vec<(&str, arrow::array::ArrayRef)>) {
        let batch = arrow::array::RecordBatch::try_from_iter(columns).unwrap();
        let file = std::fs::File::create(self.path().join(name)).unwrap();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    /// Runs `runi ARGS` in the project folder.
    pub fn runi(&self, args: &[&str]) -> Output {
        self.runi_in(".", args)
    }

    /// Runs `runi ARGS` in a folder of the project.
    /// `runi run --scenario FEATURE --slices SLICES -o json`, asserted to succeed: its
    /// summary.
    pub fn run_json(&self, feature: &str, slices: &str) -> serde_json::Value {
        self.runi(&[
            "run",
            "--scenario",
            feature,
            "--slices",
            slices,
            "-o",
            "json",
        ])
        .ok()
        .json()
    }

    pub fn runi_in(&self, dir: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_runi"))
            .args(args)
            .current_dir(self.path().join(dir))
            .env_remove("RUNINK_HERD")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `runi ARGS` with `input` on its stdin.
    pub fn runi_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_runi"))
            .args(args)
            .current_dir(self.path())
            .env_remove("RUNINK_HERD")
            .env("RUST_BACKTRACE", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file under the project folder, relative, sorted.
    pub fn files(&self, under: &str) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.path().join(under);
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

/// Runs a DataFusion check on a current-thread runtime of its own.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The Arrow type of `column` in a Parquet file or directory.
pub fn parquet_column_type(path: &Path, column: &str) -> String {
    block_on(async {
        use datafusion::prelude::*;
        let ctx = SessionContext::new();
        ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let df = ctx.table("t").await.unwrap();
        df.schema()
            .field_with_unqualified_name(column)
            .unwrap()
            .data_type()
            .to_string()
    })
}

/// The Parquet logical type of `column` as the file's own schema has it (not the Arrow
/// schema runi stores beside it, which Arrow readers prefer): what other readers see.
pub fn parquet_logical_type(path: &Path, column: &str) -> String {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "parquet"))
            .unwrap()
    } else {
        path.to_path_buf()
    };
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let c = schema
        .columns()
        .iter()
        .find(|c| c.name() == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    format!("{:?}", c.logical_type_ref())
}

/// Rows in Parquet / Arrow / NDJSON / CSV output, counted with DataFusion.
pub fn count_rows(path: &Path, sql_filter: Option<&str>) -> u64 {
    block_on(async {
        use datafusion::datasource::file_format::options::{ArrowReadOptions, JsonReadOptions};
        use datafusion::prelude::*;
        let ctx = SessionContext::new();
        let p = path.to_str().unwrap();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() || ext == "parquet" {
            ctx.register_parquet("t", p, ParquetReadOptions::default())
                .await
                .unwrap();
        } else if ext == "csv" {
            ctx.register_csv("t", p, CsvReadOptions::new())
                .await
                .unwrap();
        } else if ext == "arrow" {
            ctx.register_arrow("t", p, ArrowReadOptions::default())
                .await
                .unwrap();
        } else {
            ctx.register_json(
                "t",
                p,
                JsonReadOptions::default().file_extension(&format!(".{ext}")),
            )
            .await
            .unwrap();
        }
        let sql = match sql_filter {
            Some(f) => format!("SELECT count(*) FROM t WHERE {f}"),
            None => "SELECT count(*) FROM t".to_string(),
        };
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let col = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        col.value(0) as u64
    })
}
