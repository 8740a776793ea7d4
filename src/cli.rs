//! The command-line grammar (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runink: declare pipelines in Feature files, bind them to data contracts, run them on
/// Apache Arrow and DataFusion.
#[derive(Debug, Parser)]
#[command(name = "runi", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The embedded Barn's state directory when neither `--home` nor `RUNINK_HOME` says.
pub const DEFAULT_HOME: &str = ".runink";

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// The herd (tenant) to act in; overrides the Feature's.
    #[arg(long, global = true, env = "RUNINK_HERD")]
    pub herd: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The embedded Barn's state directory.
    #[arg(
        long,
        global = true,
        env = "RUNINK_HOME",
        default_value = DEFAULT_HOME,
        value_name = "DIR"
    )]
    pub home: PathBuf,
    /// A Runink server to use instead of the embedded Barn (not built yet: `runi` refuses
    /// it rather than silently using local state).
    #[arg(long, global = true, env = "RUNINK_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// More log output (-v info, -vv debug); logs are JSON lines on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed. Every command prints `table`, `json` and `yaml`; `csv` is
/// for `runi sql`, `openlineage`, `dot` and `svg` for `runi lineage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
    Csv,
    Openlineage,
    Dot,
    Svg,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Csv => "csv",
            Self::Openlineage => "openlineage",
            Self::Dot => "dot",
            Self::Svg => "svg",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile a Scenario into a DAG file.
    Compile(CompileArgs),
    /// Run a Scenario or a compiled DAG file.
    Run(RunArgs),
    /// Validate, hash or inspect contracts.
    Contract(ContractArgs),
    /// Create, register and inspect herds (tenants).
    Herd(HerdArgs),
    /// List runs, or show one: state, rows per source, step and sink, rejected per rule.
    Status(StatusArgs),
    /// Query a herd's datasets with SQL; without a query, an interactive shell.
    Sql(SqlArgs),
    /// Export lineage of a dataset or a run (json, openlineage, dot).
    Lineage(LineageArgs),
    /// Internal: one slice process, started by a run (not for direct use).
    #[command(hide = true)]
    Slice(SliceArgs),
}

#[derive(Debug, Args)]
pub struct SliceArgs {
    /// The slice's name (for errors and logs).
    #[arg(long)]
    pub name: String,
    /// Where to listen for plan fragments and exchange requests (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Upper bound of this slice's DataFusion memory pool, in bytes.
    #[arg(long)]
    pub memory: Option<usize>,
    /// Wait for a line on stdin before starting (the parent moves the process into its
    /// cgroup first).
    #[arg(long)]
    pub gated: bool,
    /// New mount, UTS, IPC and PID namespaces: `require` fails the slice where the host does not
    /// allow them, `try` goes on without them (and says so on the ready line).
    #[arg(long, value_enum, default_value_t = NamespaceMode::Off)]
    pub namespaces: NamespaceMode,
    /// Worker threads of its async runtime (default: one per core of the host).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NamespaceMode {
    Off,
    Try,
    Require,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show this run (an id, or a unique prefix of one).
    #[arg(long, value_name = "ID")]
    pub runid: Option<String>,
    /// Show at most this many runs, newest first (1 or more).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; without one, `runi sql` reads statements from the terminal (or stdin).
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,
    /// Split queries into stages that run in N slice processes (each in its own cgroup and
    /// namespaces where the host allows); 0 runs them in this process.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub slices: usize,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LineageArgs {
    /// A dataset, as HERD.NAME.
    #[arg(long, value_name = "HERD.NAME")]
    pub dataset: Option<String>,
    /// A run (an id, or a unique prefix of one).
    #[arg(long, value_name = "ID")]
    pub runid: Option<String>,
}

#[derive(Debug, Args)]
pub struct HerdArgs {
    #[command(subcommand)]
    pub command: HerdCommand,
}

#[derive(Debug, Subcommand)]
pub enum HerdCommand {
    /// Register a herd and scaffold a project folder with a sample pipeline that runs.
    Init {
        /// The herd's id (lowercase letters, digits, `_`, `-`).
        name: String,
        /// A herd file to register instead of the default one (its id must be NAME).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Where to scaffold (default: the working directory). Files that exist are kept.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
    },
    /// Register or update a herd from its file.
    Apply {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// List registered herds.
    List,
    /// Show one herd.
    Show { name: String },
    /// Remove a herd (and its datasets).
    Delete { name: String },
}

/// Which Scenario to compile.
#[derive(Debug, Args, Clone)]
pub struct ScenarioArgs {
    /// The Feature file (`.feature` / `.dsl`).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// The Scenario's name, when the file has several.
    #[arg(long, value_name = "SCENARIO")]
    pub name: Option<String>,
    /// A contract (ODCS YAML or Go struct) overriding the one the Scenario binds.
    #[arg(long, value_name = "FILE")]
    pub contract: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Where to write the DAG file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Check everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the logical and physical plans.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A compiled DAG file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scenario", "name", "contract"])]
    pub dag: Option<PathBuf>,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Read a source from another place: NAME=URI (repeatable).
    #[arg(long = "input", value_name = "NAME=URI")]
    pub inputs: Vec<String>,
    /// Show live progress until the run ends (a bar on a terminal).
    #[arg(long)]
    pub follow: bool,
    /// Where the plan's stages run: `auto` (slice processes, as many as the cores, the
    /// herd's quota and `@requires` allow), a number of slice processes, or `inprocess`
    /// (everything in this process, for debugging).
    #[arg(long, value_name = "auto|N|inprocess", default_value = "auto", value_parser = parse_slices)]
    pub slices: SliceMode,
}

/// Where a run's stages run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceMode {
    Auto,
    InProcess,
    Count(usize),
}

fn parse_slices(text: &str) -> Result<SliceMode, String> {
    match text {
        "auto" => Ok(SliceMode::Auto),
        "inprocess" => Ok(SliceMode::InProcess),
        n => match n.parse::<usize>() {
            Ok(0) => Err("0 slices: give `inprocess` to run in this process".into()),
            Ok(n) => Ok(SliceMode::Count(n)),
            Err(_) => Err(format!(
                "`{n}` is not `auto`, `inprocess` or a number of slices"
            )),
        },
    }
}

#[derive(Debug, Args)]
pub struct ContractArgs {
    #[command(subcommand)]
    pub command: ContractCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Check that contracts load; print what they hold.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print each contract's SHA-256 hash.
    Hash {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the contract versions registered in Barn (by runs), optionally of one herd.
    List,
    /// What changed from OLD to NEW; exit 1 when a change is breaking.
    Diff {
        #[arg(value_name = "OLD")]
        old: PathBuf,
        #[arg(value_name = "NEW")]
        new: PathBuf,
    },
}
