//! Errors to messages and exit codes, in one place.

use std::process::ExitCode;

/// A failure with the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: a file that does not parse, load or compile. Exit 2.
    Input(anyhow::Error),
    /// The run failed. Exit 1.
    Run(anyhow::Error),
    /// Interrupted (Ctrl-C). Exit 130.
    Interrupted,
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
/// exit code.
pub fn report(result: CmdResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("{}", render(&e));
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("{}", render(&e));
            ExitCode::from(1)
        }
        Err(Failure::Interrupted) => {
            eprintln!("error: interrupted; nothing of this run was committed");
            ExitCode::from(130)
        }
    }
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
            if l.contains(": error: ") || l.contains(": warning: ") {
                l.to_string()
            } else {
                format!("error: {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
