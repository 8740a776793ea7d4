//! Runink's engine: runs plan fragments on one node.
//!
//! The planner lowers a Scenario to a DataFusion plan that contains Runink's own logical
//! nodes; this crate holds their physical executions and the pieces around them:
//!
//! ```text
//!  SourceTable (csv/json/parquet/arrow, relative URIs) ─► LineageTapExec ─► … DataFusion …
//!      ─► ContractEnforceExec (adds `_violations`) ─► SinkExec (routes valid / invalid /
//!         predicate rows to writers, temp files) ─► run::execute commits or aborts them
//! ```
//!
//! Start at [`run::execute`]: it drives a physical plan to completion with a
//! [`RunContext`] that collects the counters every Runink operator reports, and makes sink
//! output visible only when the whole run succeeded.

pub mod command;
pub mod enforce;
pub mod error;
pub mod isolation;
pub mod lineage;
pub mod pidns;
pub mod pipe;
pub mod run;
pub mod session;
pub mod sink;
pub mod slice;
pub mod source;
pub mod timetext;

pub use error::{EngineError, Result, user_message};
pub use run::{RunContext, RunReport};
