//! Barn: Runink's Raft-replicated state store.
//!
//! Barn holds everything Runink knows that must survive a process and be shared by a
//! cluster: herds, datasets, contract versions, compiled DAGs, runs with their counters,
//! lineage edges and the audit log. It is built on openraft 0.9 (consensus) and RocksDB
//! (storage):
//!
//! ```text
//!  proposer ─► Raft::client_write(Command)
//!                  │ openraft: replicate, commit
//!                  ▼
//!  LogStore (store.rs)            RocksDB cf `logs` + `meta`: entries, vote, committed,
//!                  │              last purged; fsynced before acknowledged
//!                  ▼ committed
//!  StateMachineStore (store.rs)   StateMachineData::apply (state.rs), in memory;
//!                                 snapshots in RocksDB cf `sm`
//! ```
//!
//! Where to start: [`Barn`] (the embedded single-node Barn `runi` opens in a state
//! directory), [`state`] for what Barn stores and the [`Command`]s that change it, [`store`]
//! for how it lands on disk ([`open`] returns the two halves openraft needs), [`types`] for
//! the openraft type configuration.
//!
//! A cluster member is a [`node::BarnNode`]: the same stores and state machine, with
//! [`grpc`] as openraft's network (tonic gRPC). Not here yet: `runi server` (a node with the
//! control-plane API), the scheduler and the agent. `runi` opens the embedded Barn for herds,
//! runs, datasets and lineage.

pub mod barn;
pub mod error;
pub mod grpc;
pub mod herd;
pub mod network;
pub mod node;
pub mod state;
pub mod store;
pub mod types;

pub use barn::Barn;
pub use error::{BarnError, Result};
pub use herd::parse_herd;
pub use state::{Command, Rejection, Response, StateMachineData};
pub use store::{LogStore, StateMachineStore, open};
pub use types::{NodeId, TypeConfig};
