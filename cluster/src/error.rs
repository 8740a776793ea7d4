//! Barn's error type and its `Result` alias.

use std::path::PathBuf;

use crate::types::StorageError;

/// Result alias for the cluster crate.
pub type Result<T, E = BarnError> = std::result::Result<T, E>;

/// What can go wrong outside openraft's own calls. Inside the storage traits errors are
/// openraft's [`StorageError`] (openraft stops the node on one rather than let replicas
/// diverge); this type wraps it for callers such as [`crate::open`].
#[derive(Debug, thiserror::Error)]
pub enum BarnError {
    /// RocksDB refused to open the state directory: it is missing and cannot be created, is
    /// not readable, is held by another process (RocksDB's `LOCK` file), or is damaged.
    #[error("cannot open the Barn state directory {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The state directory is a database, but not one in Barn's format (or a newer one).
    #[error("the Barn state directory {path} is not usable: {message}")]
    Format { path: PathBuf, message: String },
    /// A herd file that does not parse or does not describe a valid herd.
    #[error("{file}:{line}:{column}: {message}")]
    Herd {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    /// Raft itself failed (start, election, a write or read that could not complete).
    #[error("Barn at {path}: {message}")]
    Raft { path: PathBuf, message: String },
    /// Reading or writing stored data failed, or what was stored did not decode.
    #[error("Barn storage: {0}")]
    Storage(#[from] StorageError),
}
