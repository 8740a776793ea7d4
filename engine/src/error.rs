//! The engine's error type and the one place that turns DataFusion errors into user text.

use datafusion::error::DataFusionError;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What can go wrong while running a plan fragment. Every variant names the place: the
/// source, step or sink and the file it was reading or writing.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A source could not be found, listed or read.
    #[error("source `{name}` ({uri}): {message}")]
    Source {
        name: String,
        uri: String,
        message: String,
    },
    /// A sink could not be written or committed.
    #[error("sink `{uri}`: {message}")]
    Sink { uri: String, message: String },
    /// A step failed (for `exec=` steps: the program's exit status and stderr).
    #[error("step `{step}`: {message}")]
    Step { step: String, message: String },
    /// A shared-memory pipe between slices could not be set up, or its other end failed.
    #[error("pipe `{pipe}`: {message}")]
    Pipe { pipe: String, message: String },
    /// A slice process could not start, or ended during the run.
    #[error("slice `{slice}`: {message}")]
    Slice { slice: String, message: String },
    /// The contract cannot be applied to the data it is bound to.
    #[error(transparent)]
    Contract(#[from] runink_contracts::ContractError),
    /// An error from DataFusion itself.
    #[error("{}", user_message(.0))]
    DataFusion(#[from] DataFusionError),
    /// A broken invariant inside the engine: a bug, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<EngineError> for DataFusionError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// Renders a DataFusion error for a person: Runink's own errors (wrapped as `External`)
/// come out as they were written, shared/context wrappers are peeled, and DataFusion's
/// "External error: " style prefixes are dropped.
pub fn user_message(e: &DataFusionError) -> String {
    match e {
        DataFusionError::External(inner) => {
            if let Some(engine) = inner.downcast_ref::<EngineError>() {
                return engine.to_string();
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return user_message(df);
            }
            inner.to_string()
        }
        DataFusionError::Context(ctx, inner) => format!("{ctx}: {}", user_message(inner)),
        DataFusionError::Shared(inner) => user_message(inner),
        DataFusionError::ArrowError(inner, _) => format!("{inner}"),
        // Its Display asks the user to file a DataFusion bug, which misleads when the cause is
        // a bad input file (an `.arrow` source holding garbage).
        DataFusionError::Internal(message) => message.clone(),
        DataFusionError::Diagnostic(_, inner) => user_message(inner),
        // Its Display is the parser error's Debug text (`ParserError("Expected: …")`).
        DataFusionError::SQL(inner, _) => match inner.as_ref() {
            datafusion::sql::sqlparser::parser::ParserError::ParserError(m)
            | datafusion::sql::sqlparser::parser::ParserError::TokenizerError(m) => {
                format!("SQL syntax: {m}")
            }
            other => other.to_string(),
        },
        DataFusionError::Collection(errs) => match errs.first() {
            Some(first) => user_message(first),
            None => e.to_string(),
        },
        other => {
            let text = other.to_string();
            text.split_once(": ")
                .filter(|(prefix, _)| prefix.ends_with("error") || prefix.ends_with("Error"))
                .map(|(_, rest)| rest.to_string())
                .unwrap_or(text)
        }
    }
}
