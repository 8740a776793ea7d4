//! Errors to messages and exit codes, in one place.

use std::process::ExitCode;

use crate::cli::OutputFormat;

/// A failure with the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: a file that does not parse, load or compile. Exit 2.
    Input(anyhow::Error),
    /// The run failed. Exit 1.
    Run(anyhow::Error),
    /// Interrupted (Ctrl-C, SIGTERM). Exit 130.
    Interrupted,
    /// A `runi run` interrupted: nothing of it was committed. Exit 130.
    RunInterrupted,
}

impl Failure {
    pub fn input(e: impl Into<anyhow::Error>) -> Self {
        Self::Input(e.into())
    }

    pub fn run(e: impl Into<anyhow::Error>) -> Self {
        Self::Run(e.into())
    }
}

pub type CmdResult = Result<(), Failure>;

/// Prints the failure (no backtrace: these are a user's errors, not bugs) and picks the
/// exit code. With `-o json` or `-o yaml` the failure is also printed on stdout, as an
/// object a program can read where it reads a success (`status`, `exit_code`, `error`):
/// a script that parses `runi run -o json` gets a document either way.
pub fn report(result: CmdResult, output: OutputFormat) -> ExitCode {
    let (status, code, message) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Input(e)) => ("invalid", 2, render(&e)),
        Err(Failure::Run(e)) => ("failed", 1, render(&e)),
        Err(Failure::Interrupted) => ("interrupted", 130, "error: interrupted".to_string()),
        Err(Failure::RunInterrupted) => (
            "interrupted",
            130,
            "error: interrupted; nothing of this run was committed".to_string(),
        ),
    };
    eprintln!("{message}");
    if matches!(output, OutputFormat::Json | OutputFormat::Yaml) {
        let failure = FailureDoc {
            status,
            exit_code: code,
            error: message.strip_prefix("error: ").unwrap_or(&message),
        };
        // Best effort: the message is on stderr already, and the exit code says the rest.
        let _ = crate::output::print_value(output, &failure);
    }
    ExitCode::from(code)
}

/// A failure as `-o json|yaml` prints it.
#[derive(serde::Serialize)]
struct FailureDoc<'a> {
    /// `invalid` (bad input, exit 2), `failed` (exit 1) or `interrupted` (exit 130).
    status: &'static str,
    exit_code: u8,
    /// The message printed on stderr, without its leading `error: `.
    error: &'a str,
}

fn render(e: &anyhow::Error) -> String {
    let top = e.to_string();
    let mut text = prefix(&top);
    let mut last = top;
    for cause in e.chain().skip(1) {
        let line = cause.to_string();
        // Library errors often repeat their source's text; say each thing once.
        if !last.contains(&line) && !line.contains(&last) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        last = line;
    }
    text
}

fn prefix(message: &str) -> String {
    message
        .lines()
        .map(|l| {
            // Indented lines continue the one above (a program's stderr, say).
            if l.contains(": error: ") || l.contains(": warning: ") || l.starts_with("    ") {
                l.to_string()
            } else {
                format!("error: {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM (`timeout`, systemd, `docker
/// stop`). The handlers are installed when this is called, not when it is first polled, so
/// a signal in between is not missed; from then on those signals no longer kill the
/// process outright, so the command can end cleanly (slices stopped, cgroups removed).
pub fn interruption() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut signals = [SignalKind::interrupt(), SignalKind::terminate()].map(|k| signal(k).ok());
    async move {
        let [int, term] = &mut signals;
        tokio::select! {
            Some(_) = async { int.as_mut()?.recv().await } => {}
            Some(_) = async { term.as_mut()?.recv().await } => {}
            // (No handler could be installed: never interrupted.)
            else => std::future::pending::<()>().await,
        }
    }
}
