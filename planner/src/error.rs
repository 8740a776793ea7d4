//! The planner's error type: compile errors carry file, line and column.

use datafusion::error::DataFusionError;
use runink_dsl::{Diagnostic, Severity, Span};

/// Result alias for the planner.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// What can stop a compile or a DAG load.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Problems in the Feature file, each with its place (parse and compile checks).
    #[error("{}", render(.0))]
    Diagnostics(Vec<Diagnostic>),
    /// A contract that does not load.
    #[error(transparent)]
    Contract(#[from] runink_contracts::ContractError),
    /// A file that cannot be read or written.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// A DAG file that is not one, or of another version.
    #[error("DAG file {path}: {message}")]
    Dag { path: String, message: String },
    /// From the engine (sources, exec probes).
    #[error(transparent)]
    Engine(#[from] runink_engine::EngineError),
    /// Slices that cannot be used (no workers, a bad URL).
    #[error("slices: {0}")]
    Slices(String),
    /// From DataFusion, outside any place in the Feature file.
    #[error("{}", runink_engine::user_message(.0))]
    DataFusion(#[from] DataFusionError),
}

impl PlanError {
    /// An error at a place in a Feature file.
    pub fn at(file: &str, span: Span, message: impl Into<String>) -> Self {
        Self::Diagnostics(vec![Diagnostic {
            file: file.to_string(),
            span,
            severity: Severity::Error,
            message: message.into(),
        }])
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
