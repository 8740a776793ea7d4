//! `runi`, Runink's command line.
//!
//! This crate is the only one that prints, reads the environment, installs logging and
//! uses `anyhow`. Commands live one per module; [`exit`] turns errors into messages and
//! exit codes in one place: 2 for bad input (a Feature, contract or DAG file that does not
//! load or compile), 1 for a run that failed, 130 for an interrupted run.

/// `print!` and `println!` for this crate: like std's, but a closed stdout (`runi status |
/// head`) ends the process quietly by SIGPIPE (status 141 in a shell), as other Unix tools
/// do, instead of panicking.
macro_rules! print {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

mod barn;
mod cli;
mod compile;
mod contract;
mod exit;
mod herd;
mod lineage;
mod output;
mod record;
mod run;
mod slice;
mod slices;
mod sql;
mod status;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.global.verbose);
    // A slice isolates itself while it is still one thread (namespaces need that).
    if let cli::Command::Slice(args) = &cli.command
        && let Err(code) = slice::prepare(args)
    {
        return code;
    }
    // DataFusion names, formats and plans expressions recursively, and some of those walks
    // (an expression's display name) are not guarded: a step with a long `a + b + …` chain
    // overflowed the 8 MiB main stack and aborted. The command runs on a thread whose stack
    // is large; the kernel commits only the pages a deep plan touches.
    match std::thread::Builder::new()
        .name("runi".into())
        .stack_size(COMMAND_STACK_BYTES)
        .spawn(move || command(cli))
    {
        Ok(thread) => thread.join().unwrap_or_else(|_| {
            eprintln!("error: runi stopped on an internal error (a panic; see above)");
            std::process::ExitCode::from(101)
        }),
        Err(e) => {
            eprintln!("error: cannot start runi's command thread: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Stack of the thread that parses, plans and runs a command (virtual; touched pages only).
const COMMAND_STACK_BYTES: usize = 256 << 20;

/// Stack of the async runtime's worker threads, which also plan (slice tasks, `exec=` feeds).
const WORKER_STACK_BYTES: usize = 64 << 20;

fn command(cli: cli::Cli) -> std::process::ExitCode {
    let output = cli.global.output;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `runi slice --threads N` sizes its runtime (measured on TPC-H SF 1 with two slices on two
    // cores: one thread each was slower, 1.38 vs 1.24-1.30 of one process, so slices keep
    // one per core unless told).
    if let cli::Command::Slice(args) = &cli.command
        && let Some(threads) = args.threads
    {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        check_output(&cli)?;
        if let Some(server) = &cli.global.server {
            return Err(exit::Failure::input(anyhow::anyhow!(
                "--server {server} (or RUNINK_SERVER): `runi server` is not built yet, so there is \
                 no server to talk to; without it, runi uses the embedded Barn in --home ({})",
                cli.global.home.display()
            )));
        }
        match &cli.command {
            cli::Command::Compile(args) => compile::compile(&cli.global, args).await,
            cli::Command::Run(args) => run::run(&cli.global, args).await,
            cli::Command::Contract(args) => contract::contract(&cli.global, args).await,
            cli::Command::Herd(args) => herd::herd(&cli.global, args).await,
            cli::Command::Status(args) => status::status(&cli.global, args).await,
            cli::Command::Sql(args) => sql::sql(&cli.global, args).await,
            cli::Command::Lineage(args) => lineage::lineage(&cli.global, args).await,
            cli::Command::Slice(args) => slice::slice(args).await,
        }
    });
    // Blocking tasks (an `exec=` program's reader) must not keep the process alive forever.
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    exit::report(result, output)
}

fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        // Ended by SIGPIPE, not `exit`: `exit` runs C++ static destructors while RocksDB's
        // background threads (the embedded Barn) still run, which aborted now and then
        // ("terminate called without an active exception"). Barn's writes are durable (WAL)
        // when made.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            runink_engine::pidns::die_by(nix::sys::signal::Signal::SIGPIPE);
            std::process::exit(141);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `-o csv` is for `runi sql`, `-o openlineage|dot` for `runi lineage`.
fn check_output(cli: &cli::Cli) -> exit::CmdResult {
    use cli::{Command, OutputFormat};
    let format = cli.global.output;
    let fits = match format {
        OutputFormat::Table | OutputFormat::Json | OutputFormat::Yaml => true,
        OutputFormat::Csv => matches!(cli.command, Command::Sql(_)),
        OutputFormat::Openlineage | OutputFormat::Dot | OutputFormat::Svg => {
            matches!(cli.command, Command::Lineage(_))
        }
    };
    if fits {
        Ok(())
    } else {
        Err(exit::Failure::input(anyhow::anyhow!(
            "-o {} is not an output format of this command (table, json, yaml{})",
            format.name(),
            match cli.command {
                Command::Sql(_) => ", csv",
                Command::Lineage(_) => ", openlineage, dot, svg",
                _ => "",
            }
        )))
    }
}

/// How long exiting waits for blocking tasks still running.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .try_init();
}
