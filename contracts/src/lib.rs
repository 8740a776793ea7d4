//! Runink data contracts: read a contract, map it to Arrow, hash it, and enforce it on record batches.
//!
//! A [`Contract`] is a versioned list of typed [`Field`]s with rules (required,
//! unique, valid values, ranges, patterns, lengths) and protection metadata
//! (classification, mask, access). It comes from text the caller hands in —
//! this crate does no I/O:
//!
//! - [`Contract::load`] picks the form by file name: [`odcs`] reads the native
//!   ODCS v3.1 YAML, [`go`] imports the seed project's Go structs.
//! - [`Contract::arrow_schema`] is the Arrow schema conforming data has.
//! - [`Contract::hash`] identifies what a contract enforces (see [`hash`]);
//!   the same contract in either form has the same hash.
//! - [`Checker`] enforces a contract on record batches with Arrow kernels and
//!   returns violations as values ([`CheckOutcome`]), never as errors.
//!
//! Start with [`Contract::load`], then [`Checker::new`] and [`Checker::check`].
//!
//! ```
//! # use runink_contracts::{Contract, Checker};
//! let yaml = "id: t\nversion: 1.0.0\nschema:\n  - name: t\n    properties:\n      - name: n\n        logicalType: integer\n        required: true\n";
//! let contract = Contract::load("t.yaml", yaml)?;
//! assert_eq!(contract.arrow_schema().field(0).name(), "n");
//! let checker = Checker::new(&contract, &contract.arrow_schema())?;
//! # drop(checker);
//! # Ok::<(), runink_contracts::ContractError>(())
//! ```

mod check;
pub mod diff;
mod error;
pub mod go;
pub mod hash;
mod model;
pub mod odcs;
mod pattern;
mod seen;
mod timestamp;
mod types;

pub use check::{CheckOutcome, Checker, violations_data_type, violations_field};
pub use diff::{Change, ContractDiff, diff};
pub use error::{ContractError, Result};
pub use model::{Contract, Field, RuleRef, SourceFormat, rule};
pub use types::type_name;
