//! The embedded Barn: a one-member Raft group in a state directory.
//!
//! With no server configured, `runi` opens Barn in `$RUNINK_HOME` (default `.runink/`): the
//! same openraft code path as a cluster — every change is a [`Command`] written through
//! `client_write`, committed, applied — with one voter. Reads that must be current go
//! through [`Barn::read`], which confirms leadership first (a linearizable read).
//!
//! Two processes on one directory: RocksDB's `LOCK` file lets only one open it; the other
//! retries for [`OPEN_WAIT`] and then fails with [`BarnError::Open`] naming the directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};

use crate::error::{BarnError, Result};
use crate::network::SingleNode;
use crate::state::{Command, Response, StateMachineData};
use crate::store::{StateMachineStore, open};
use crate::types::{NodeId, TypeConfig};

/// The id of the embedded Barn's only member.
pub const EMBEDDED_NODE_ID: NodeId = 1;
/// How long opening waits for another process to release the directory.
pub const OPEN_WAIT: Duration = Duration::from_secs(3);
/// Pause between attempts while another process holds the directory.
const OPEN_RETRY: Duration = Duration::from_millis(100);
/// How long a fresh or restarted node may take to lead (it only has to elect itself).
pub const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Log entries kept after a snapshot; snapshots are taken every this many entries.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 5_000;

/// Barn's Raft timing, the same for the embedded node and a cluster: heartbeats every
/// 50 ms, an election after 150–300 ms without one (so a dead leader is replaced in well
/// under a second), a snapshot every [`SNAPSHOT_EVERY_ENTRIES`].
pub fn raft_config() -> std::result::Result<Config, openraft::ConfigError> {
    Config {
        cluster_name: "runink-barn".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
    .validate()
}

/// An open embedded Barn.
pub struct Barn {
    raft: Raft<TypeConfig>,
    state: StateMachineStore,
    dir: PathBuf,
}

impl std::fmt::Debug for Barn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barn").field("dir", &self.dir).finish()
    }
}

/// A Raft failure of the Barn in `dir`, saying what was being done.
pub(crate) fn raft_error(dir: &Path, what: &str, e: impl std::fmt::Display) -> BarnError {
    BarnError::Raft {
        path: dir.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// RocksDB's words for "another process has the LOCK file" (not any error mentioning a
/// block or a path that happens to contain "lock").
fn held_by_another(message: &str) -> bool {
    message.contains("/LOCK") || message.contains("lock hold by current process")
}

impl Barn {
    /// Whether there may be an embedded Barn at `dir`: anything at that path (which
    /// [`Barn::open`] then opens, or refuses with a clear error when it is not a Barn). Where
    /// nothing is, there is surely none: commands that only read use this to answer
    /// "nothing recorded" without creating one.
    pub fn exists(dir: &Path) -> bool {
        dir.symlink_metadata().is_ok()
    }

    /// Opens (creating if needed) the embedded Barn in `dir` and waits until it leads;
    /// waits up to [`OPEN_WAIT`] for another process to release the directory.
    pub async fn open(dir: &Path) -> Result<Barn> {
        Self::open_waiting(dir, OPEN_WAIT).await
    }

    /// [`Barn::open`], waiting up to `wait` for another process to release the directory.
    pub async fn open_waiting(dir: &Path, wait: Duration) -> Result<Barn> {
        std::fs::create_dir_all(dir).map_err(|e| BarnError::Open {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let started = Instant::now();
        let (log, state) = loop {
            match open(dir) {
                Ok(stores) => break stores,
                // Another `runi` holds the directory: wait a little, then say so.
                Err(BarnError::Open { message, .. })
                    if held_by_another(&message) && started.elapsed() < wait =>
                {
                    tokio::time::sleep(OPEN_RETRY).await;
                }
                Err(BarnError::Open { path, message }) if held_by_another(&message) => {
                    return Err(BarnError::Open {
                        path,
                        message: format!(
                            "another runi process is using it (waited {:.1}s): {message}",
                            wait.as_secs_f64()
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        let config = raft_config().map_err(|e| raft_error(dir, "bad Raft configuration", e))?;
        let raft = Raft::new(
            EMBEDDED_NODE_ID,
            Arc::new(config),
            SingleNode,
            log,
            state.clone(),
        )
        .await
        .map_err(|e| raft_error(dir, "cannot start Raft", e))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_error(dir, "cannot read membership", e))?;
        if !initialized {
            raft.initialize(BTreeMap::from([(
                EMBEDDED_NODE_ID,
                BasicNode::new("embedded"),
            )]))
            .await
            .map_err(|e| raft_error(dir, "cannot initialize", e))?;
        }
        raft.wait(Some(LEADER_WAIT))
            .current_leader(EMBEDDED_NODE_ID, "the embedded Barn leads")
            .await
            .map_err(|e| raft_error(dir, "no leader", e))?;
        Ok(Barn {
            raft,
            state,
            dir: dir.to_path_buf(),
        })
    }

    /// Proposes a command; returns once it is committed and applied.
    pub async fn write(&self, command: Command) -> Result<Response> {
        let written = self
            .raft
            .client_write(command)
            .await
            .map_err(|e| raft_error(&self.dir, "write", e))?;
        Ok(written.data)
    }

    /// A linearizable read of the state.
    pub async fn read<T>(&self, read: impl FnOnce(&StateMachineData) -> T) -> Result<T> {
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| raft_error(&self.dir, "read", e))?;
        self.state.read(read)
    }

    /// Stops Raft and releases the directory.
    pub async fn shutdown(self) -> Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| raft_error(&self.dir, "shutdown", e))
    }
}
