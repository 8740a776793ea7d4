//! The crate's one error type: bad contract text, a schema that cannot meet a contract, or a broken invariant.

/// `Result` with [`ContractError`] as the default error.
pub type Result<T, E = ContractError> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// A row that breaks a contract is *not* an error: it is a value in
/// [`CheckOutcome`](crate::CheckOutcome). Errors are for contracts that cannot be
/// read and for inputs that can never satisfy a contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The contract text is malformed: bad YAML, bad Go, an unknown type, a bad rule.
    /// `line` and `column` are 1-based and point at the best known location.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    /// An input schema cannot be checked against the contract, e.g. a contract
    /// column is missing or its input type cannot be cast to the contract type.
    #[error("contract `{contract}`: {message}")]
    Schema { contract: String, message: String },
    /// A broken invariant of this crate or of its caller (e.g. a batch that
    /// does not have the schema the checker was built for).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ContractError {
    pub(crate) fn syntax(file: &str, line: u32, column: u32, message: impl Into<String>) -> Self {
        ContractError::Syntax {
            file: file.to_string(),
            // Locations are 1-based; a 0 would mean a bug in a locator, so clamp
            // rather than print a location editors cannot jump to.
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
        }
    }

    pub(crate) fn schema(contract: &str, message: impl Into<String>) -> Self {
        ContractError::Schema {
            contract: contract.to_string(),
            message: message.into(),
        }
    }
}

impl From<arrow::error::ArrowError> for ContractError {
    /// Arrow errors only reach us from kernels run on data the checker already
    /// validated, so they are internal errors.
    fn from(e: arrow::error::ArrowError) -> Self {
        ContractError::Internal(format!("arrow: {e}"))
    }
}
