//! Barn's Raft network between nodes: openraft's three RPCs over tonic gRPC.
//!
//! One gRPC method, `/runink.barn.Raft/Call`, carries every Raft RPC: the request and the
//! answer are JSON documents (openraft's own serde forms of `AppendEntriesRequest`,
//! `VoteRequest`, `InstallSnapshotRequest` and their results) in the single `bytes` field
//! of a protobuf message, so there is no `.proto` file to compile and no protoc to install.
//!
//! ```text
//!  node A: Raft ── GrpcNetwork::new_client(B) ── GrpcClient ──► HTTP/2 ──► RaftService (B)
//!                                                                           └─ Raft::append_entries / vote / install_snapshot
//! ```
//!
//! A peer that cannot be reached is `Unreachable` (openraft backs off); a call that takes
//! longer than openraft's deadline for it is a `Timeout`; an error the peer's Raft answered
//! with is a `RemoteError`. Requests that do not decode are refused with `InvalidArgument`.

use std::convert::Infallible;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::transport::{Channel, Endpoint};

use crate::types::{NodeId, TypeConfig};

/// The gRPC service name.
pub const SERVICE: &str = "runink.barn.Raft";
/// The path of the one method.
pub const CALL_PATH: &str = "/runink.barn.Raft/Call";
/// The largest Raft message either way. tonic's default (4 MiB) is below a snapshot chunk
/// or a long append once JSON-encoded; a message over the limit could never be delivered
/// and a lagging follower would never catch up.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// How long connecting to a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The protobuf message both ways: a JSON document.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Frame {
    #[prost(bytes = "vec", tag = "1")]
    pub json: Vec<u8>,
}

/// A Raft RPC as it travels.
#[derive(Serialize, Deserialize)]
enum Call {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer of the peer's Raft.
#[derive(Serialize, Deserialize)]
enum Reply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

/// The server side: hands each call to the local Raft.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft<TypeConfig>,
}

impl RaftService {
    pub fn new(raft: Raft<TypeConfig>) -> Self {
        Self { raft }
    }

    async fn handle(&self, frame: Frame) -> Result<Frame, tonic::Status> {
        let call: Call = serde_json::from_slice(&frame.json).map_err(|e| {
            tonic::Status::invalid_argument(format!("not a Barn Raft message: {e}"))
        })?;
        let reply = match call {
            Call::Append(rpc) => Reply::Append(self.raft.append_entries(rpc).await),
            Call::Vote(rpc) => Reply::Vote(self.raft.vote(rpc).await),
            Call::Snapshot(rpc) => Reply::Snapshot(self.raft.install_snapshot(rpc).await),
        };
        let json = serde_json::to_vec(&reply)
            .map_err(|e| tonic::Status::internal(format!("cannot encode the answer: {e}")))?;
        Ok(Frame { json })
    }
}

impl tonic::server::NamedService for RaftService {
    const NAME: &'static str = SERVICE;
}

/// The one unary method, in the shape tonic's server expects.
struct CallMethod(RaftService);

impl Service<tonic::Request<Frame>> for CallMethod {
    type Response = tonic::Response<Frame>;
    type Error = tonic::Status;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Frame>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            service
                .handle(request.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for RaftService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CALL_PATH {
            let status = tonic::Status::unimplemented(format!(
                "{} is not a method of {SERVICE}",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let method = CallMethod(self.clone());
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<Frame, Frame>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// Makes a [`GrpcClient`] per peer; peers are `BasicNode`s whose `addr` is `HOST:PORT`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcNetwork;

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = GrpcClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let channel = Endpoint::from_shared(format!("http://{}", node.addr))
            .map(|e| e.connect_timeout(CONNECT_TIMEOUT).connect_lazy())
            .map_err(|e| format!("bad address `{}` of node {target}: {e}", node.addr));
        GrpcClient { target, channel }
    }
}

/// The client side of one peer.
pub struct GrpcClient {
    target: NodeId,
    channel: Result<Channel, String>,
}

impl GrpcClient {
    async fn call<E>(
        &mut self,
        call: Call,
        action: openraft::RPCTypes,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<NodeId, BasicNode, E>>
    where
        E: std::error::Error,
    {
        let channel = self
            .channel
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&AnyError::error(e))))?
            .clone();
        let json = serde_json::to_vec(&call)
            .map_err(|e| RPCError::Network(NetworkError::new(&AnyError::new(&e))))?;
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let send = async {
            grpc.ready()
                .await
                .map_err(|e| RPCError::Unreachable(Unreachable::new(&AnyError::error(e))))?;
            grpc.unary(
                tonic::Request::new(Frame { json }),
                http::uri::PathAndQuery::from_static(CALL_PATH),
                tonic_prost::ProstCodec::<Frame, Frame>::default(),
            )
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
                    RPCError::Unreachable(Unreachable::new(&AnyError::error(status.message())))
                }
                _ => RPCError::Network(NetworkError::new(&AnyError::error(format!(
                    "{}: {}",
                    status.code(),
                    status.message()
                )))),
            })
        };
        let ttl = option.hard_ttl();
        let response = match tokio::time::timeout(ttl, send).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout: ttl,
                }));
            }
        };
        serde_json::from_slice(&response.into_inner().json).map_err(|e| {
            RPCError::Network(NetworkError::new(&AnyError::error(format!(
                "node {} answered something that is not a Barn Raft reply: {e}",
                self.target
            ))))
        })
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&AnyError::error(format!(
            "node {} answered another kind of RPC",
            self.target
        ))))
    }
}

impl RaftNetwork<TypeConfig> for GrpcClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(
                Call::Append(rpc),
                openraft::RPCTypes::AppendEntries,
                &option,
            )
            .await?
        {
            Reply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .call(
                Call::Snapshot(rpc),
                openraft::RPCTypes::InstallSnapshot,
                &option,
            )
            .await?
        {
            Reply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(Call::Vote(rpc), openraft::RPCTypes::Vote, &option)
            .await?
        {
            Reply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }
}
