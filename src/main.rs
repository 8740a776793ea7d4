//! `runi`, Runink's command line.
//!
//! This crate is the only one that prints, reads the environment, installs logging and
//! uses `anyhow`. Commands live one per module; [`exit`] turns errors into messages and
//! exit codes in one place: 2 for bad input (a Feature, contract or DAG file that does not
//! load or compile), 1 for a run that failed, 130 for an interrupted run.

mod cli;
mod compile;
mod contract;
mod exit;
mod herd;
mod output;
mod run;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            cli::Command::Compile(args) => compile::compile(&cli.global, args).await,
            cli::Command::Run(args) => run::run(&cli.global, args).await,
            cli::Command::Contract(args) => contract::contract(&cli.global, args),
            cli::Command::Herd(args) => herd::herd(&cli.global, args).await,
        }
    });
    // Blocking tasks (an `exec=` program's reader) must not keep the process alive forever.
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    exit::report(result)
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
