//! Session settings shared by compile and run: a bounded memory pool and the batch size.

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;

use crate::Result;

/// Default memory pool for one run when neither the Scenario (`@requires(memory=)`) nor
/// the caller sets one. Operators that can spill do so past this; the others fail with a
/// "resources exhausted" error instead of growing without bound.
pub const MEMORY_POOL_BYTES_DEFAULT: usize = 2 << 30;

/// Rows per record batch on the data path.
pub const BATCH_ROWS: usize = 8192;

/// How a local session is sized.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Upper bound of DataFusion's memory pool.
    pub memory_pool_bytes: usize,
    /// Partitions DataFusion plans with (parallelism inside the one process).
    pub target_partitions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            memory_pool_bytes: MEMORY_POOL_BYTES_DEFAULT,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// DataFusion configuration for Runink sessions.
pub fn session_config(limits: &SessionLimits) -> SessionConfig {
    SessionConfig::new()
        .with_batch_size(BATCH_ROWS)
        .with_target_partitions(limits.target_partitions.max(1))
        .with_information_schema(true)
}

/// A runtime whose memory pool is bounded ("fair spill": every spilling operator gets
/// its share, so one join cannot starve a sort).
pub fn runtime_env(limits: &SessionLimits) -> Result<Arc<RuntimeEnv>> {
    let pool = Arc::new(FairSpillPool::new(limits.memory_pool_bytes));
    let env = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()?;
    Ok(env)
}
