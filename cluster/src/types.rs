//! Barn's openraft type configuration: which types travel through the Raft log.

use std::io::Cursor;

use crate::state::{Command, Response};

/// A Raft member's id. Stable for the life of a node: it is stored in the log (votes,
/// membership), so it must survive restarts.
pub type NodeId = u64;

/// A Raft member's address book entry (its RPC address).
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// The openraft type configuration of Barn: the log carries typed [`Command`]s and
    /// applying one yields a [`Response`]; snapshots are whole byte buffers.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft log entry of Barn.
pub type Entry = openraft::Entry<TypeConfig>;
/// The id of a log entry: (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote (term, candidate, committed).
pub type Vote = openraft::Vote<NodeId>;
/// The membership as of some log entry.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// What describes a snapshot: the last log entry and membership it contains.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot handed to or received from openraft.
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
/// The error openraft expects from storage; it stops the Raft node.
pub type StorageError = openraft::StorageError<NodeId>;
