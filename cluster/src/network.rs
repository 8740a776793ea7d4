//! Raft networks. Today only [`SingleNode`]: the embedded Barn is a one-member group, which
//! never sends an RPC; the gRPC network for a cluster comes with `runi server`.

use openraft::AnyError;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::types::{NodeId, TypeConfig};

/// The network of a one-member group: there is no peer to reach, so every RPC is
/// `Unreachable` (openraft never sends one while it is the only voter).
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleNode;

impl RaftNetworkFactory<TypeConfig> for SingleNode {
    type Network = SingleNode;

    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> Self::Network {
        SingleNode
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(
        "a single-node Barn has no peers",
    )))
}

impl RaftNetwork<TypeConfig> for SingleNode {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(unreachable())
    }
}
