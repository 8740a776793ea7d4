//! Runink's planner: a Scenario and its contract become one DataFusion `LogicalPlan` with
//! Runink's extension nodes, and that plan becomes a portable DAG file.
//!
//! Start at [`build::compile`]. [`nodes`] holds the logical nodes (contract enforcement,
//! lineage taps, `exec=` steps, sinks), [`physical`] turns them into the engine's
//! operators, [`codec`] serializes them, [`dag`] is the file format and [`lineage`]
//! derives dataset- and column-level lineage from plans.
//!
//! Compilation is deterministic: the same Feature, contract and data schemas give a
//! byte-identical DAG file.

pub mod build;
pub mod codec;
pub mod dag;
pub mod error;
pub mod exchange;
pub mod lineage;
pub mod nodes;
pub mod physical;
pub mod shared;
pub mod slices;
pub mod sqldepth;

pub use build::{CompileOptions, Compiled, compile, locate_source_error, override_sources};
pub use error::{PlanError, Result};
pub use physical::new_context;
