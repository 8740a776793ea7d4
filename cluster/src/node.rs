//! A member of a multi-node Barn: the RocksDB stores, openraft with the gRPC network, and
//! the gRPC server peers call. `runi server` will be built on this; today the 3-node tests
//! and the failover benchmark use it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{BasicNode, Raft};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::barn::{raft_config, raft_error};
use crate::error::{BarnError, Result};
use crate::grpc::{GrpcNetwork, RaftService};
use crate::state::{Command, Response, StateMachineData};
use crate::store::{StateMachineStore, open};
use crate::types::{NodeId, TypeConfig};

/// A running Barn node.
pub struct BarnNode {
    pub id: NodeId,
    pub addr: SocketAddr,
    raft: Raft<TypeConfig>,
    state: StateMachineStore,
    dir: PathBuf,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BarnNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarnNode")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish()
    }
}

impl BarnNode {
    /// Opens the stores in `dir`, starts Raft and serves peers on `listener`.
    pub async fn start(id: NodeId, dir: &Path, listener: TcpListener) -> Result<BarnNode> {
        let addr = listener.local_addr().map_err(|e| BarnError::Open {
            path: dir.to_path_buf(),
            message: format!("listener: {e}"),
        })?;
        std::fs::create_dir_all(dir).map_err(|e| BarnError::Open {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let (log, state) = open(dir)?;
        let config = raft_config().map_err(|e| raft_error(dir, "bad Raft configuration", e))?;
        let raft = Raft::new(id, Arc::new(config), GrpcNetwork, log, state.clone())
            .await
            .map_err(|e| raft_error(dir, "cannot start Raft", e))?;
        let (stop_server, stopped) = oneshot::channel::<()>();
        let service = RaftService::new(raft.clone());
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(service, incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("Barn node {id}: gRPC server ended: {e}");
            }
        });
        Ok(BarnNode {
            id,
            addr,
            raft,
            state,
            dir: dir.to_path_buf(),
            stop_server: Some(stop_server),
            server: Some(server),
        })
    }

    /// Makes a new cluster of `members` (id → `HOST:PORT`); call on one node only.
    pub async fn initialize(&self, members: &BTreeMap<NodeId, String>) -> Result<()> {
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| raft_error(&self.dir, "cannot initialize", e))
    }

    /// The Raft handle (metrics, waits).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Proposes a command; only the leader accepts (others answer with a forward error
    /// naming the leader). Returns the log index it was committed at and the answer.
    pub async fn write(&self, command: Command) -> Result<(u64, Response)> {
        let written = self
            .raft
            .client_write(command)
            .await
            .map_err(|e| raft_error(&self.dir, "write", e))?;
        Ok((written.log_id.index, written.data))
    }

    /// A read of the state as applied on this node (not linearizable on a follower).
    pub fn read_local<T>(&self, read: impl FnOnce(&StateMachineData) -> T) -> Result<T> {
        self.state.read(read)
    }

    /// Stops serving peers at once (open connections are dropped, as when a node dies),
    /// then stops Raft.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.raft
            .shutdown()
            .await
            .map_err(|e| raft_error(&self.dir, "shutdown", e))
    }
}
