//! A 3-node Barn in one process over loopback gRPC: election, replication, the loss of the
//! leader, and a node that comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use runink_cluster::NodeId;
use runink_cluster::grpc::{CALL_PATH, Frame};
use runink_cluster::node::BarnNode;
use runink_cluster::state::{Command, Herd, Response};
use tempfile::TempDir;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

fn put_herd(id: &str) -> Command {
    Command::PutHerd {
        herd: Herd {
            id: id.into(),
            ..Herd::default()
        },
    }
}

async fn start_cluster(dirs: &[TempDir]) -> (Vec<BarnNode>, BTreeMap<NodeId, String>) {
    let mut nodes = Vec::new();
    let mut members = BTreeMap::new();
    for (i, dir) in dirs.iter().enumerate() {
        let id = i as NodeId + 1;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = BarnNode::start(id, dir.path(), listener).await.unwrap();
        members.insert(id, node.addr.to_string());
        nodes.push(node);
    }
    nodes[0].initialize(&members).await.unwrap();
    (nodes, members)
}

/// Waits until `node` sees a leader other than `not`; returns it.
async fn leader_seen_by(node: &BarnNode, not: Option<NodeId>) -> NodeId {
    let metrics = node
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "a leader",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

async fn applied(node: &BarnNode, index: u64) {
    node.raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_survive_the_loss_of_the_leader() {
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut nodes, _members) = start_cluster(&dirs).await;

    let leader = leader_seen_by(&nodes[0], None).await;
    let at = |nodes: &[BarnNode], id: NodeId| nodes.iter().position(|n| n.id == id).unwrap();
    let (index, response) = nodes[at(&nodes, leader)]
        .write(put_herd("finance"))
        .await
        .unwrap();
    assert_eq!(response, Response::Applied);
    for n in &nodes {
        applied(n, index).await;
        assert!(n.read_local(|s| s.herd("finance").is_some()).unwrap());
    }

    // A follower refuses writes and names the leader.
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let refused = follower
        .write(put_herd("nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("forward") || refused.contains("leader"),
        "{refused}"
    );

    // Kill the leader: the two others elect a new one, which commits with their quorum.
    let old = nodes.remove(at(&nodes, leader));
    let old_addr = old.addr;
    old.shutdown().await.unwrap();
    let new_leader = leader_seen_by(&nodes[0], Some(leader)).await;
    assert_ne!(new_leader, leader);
    let (index, response) = nodes[at(&nodes, new_leader)]
        .write(put_herd("risk"))
        .await
        .unwrap();
    assert_eq!(response, Response::Applied);
    for n in &nodes {
        applied(n, index).await;
        assert!(n.read_local(|s| s.herd("risk").is_some()).unwrap());
    }

    // The old leader comes back on its address with its state and catches up.
    let listener = TcpListener::bind(old_addr).await.unwrap();
    let back = BarnNode::start(leader, dirs[leader as usize - 1].path(), listener)
        .await
        .unwrap();
    applied(&back, index).await;
    assert!(
        back.read_local(|s| s.herd("finance").is_some() && s.herd("risk").is_some())
            .unwrap()
    );

    back.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_a_raft_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = BarnNode::start(1, dir.path(), listener).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<Frame, Frame, _>(
            tonic::Request::new(Frame {
                json: b"{\"Append\": 42}".to_vec(),
            }),
            tonic::codegen::http::uri::PathAndQuery::from_static(CALL_PATH),
            tonic_prost::ProstCodec::<Frame, Frame>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("not a Barn Raft message"),
        "{status}"
    );
    node.shutdown().await.unwrap();
}
