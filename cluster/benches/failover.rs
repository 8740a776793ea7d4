//! Barn failover: three nodes in one process over loopback gRPC; the leader is killed and
//! the time until a write commits on the new leader is measured. Goal: ≤ 2 s.
//!
//! `cargo bench -p runink-cluster --bench failover [-- --rounds N]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runink_cluster::NodeId;
use runink_cluster::node::BarnNode;
use runink_cluster::state::{Command, Herd, Response};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

fn put_herd(id: &str) -> Command {
    Command::PutHerd {
        herd: Herd {
            id: id.into(),
            ..Herd::default()
        },
    }
}

async fn round() -> (Duration, Duration) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    let mut members = BTreeMap::new();
    for (i, dir) in dirs.iter().enumerate() {
        let id = i as NodeId + 1;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = BarnNode::start(id, dir.path(), listener).await.unwrap();
        members.insert(id, node.addr.to_string());
        nodes.push(node);
    }
    let started = Instant::now();
    nodes[0].initialize(&members).await.unwrap();
    let leader = wait_leader(&nodes[0], None).await;
    let first_election = started.elapsed();
    let pos = nodes.iter().position(|n| n.id == leader).unwrap();
    assert_eq!(
        nodes[pos].write(put_herd("a")).await.unwrap().1,
        Response::Applied
    );

    let old = nodes.remove(pos);
    let killed = Instant::now();
    old.shutdown().await.unwrap();
    let new_leader = wait_leader(&nodes[0], Some(leader)).await;
    let pos = nodes.iter().position(|n| n.id == new_leader).unwrap();
    assert_eq!(
        nodes[pos].write(put_herd("b")).await.unwrap().1,
        Response::Applied
    );
    let failover = killed.elapsed();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    (first_election, failover)
}

async fn wait_leader(node: &BarnNode, not: Option<NodeId>) -> NodeId {
    node.raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "leader",
        )
        .await
        .unwrap()
        .current_leader
        .unwrap()
}

fn main() {
    let mut rounds = 10usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args[i + 1].parse().expect("--rounds N");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failovers = Vec::new();
    let mut elections = Vec::new();
    for _ in 0..rounds {
        let (election, failover) = runtime.block_on(round());
        elections.push(election);
        failovers.push(failover);
    }
    failovers.sort();
    elections.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = failovers[failovers.len() / 2];
    let max = *failovers.last().unwrap();
    println!(
        "barn failover ({rounds} rounds, 3 nodes, loopback gRPC; election timeout 150-300 ms)"
    );
    println!(
        "  first election + commit: median {:.0} ms",
        ms(elections[elections.len() / 2])
    );
    println!(
        "  leader killed -> write committed on the new leader: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(median),
        ms(failovers[0]),
        ms(max)
    );
    println!(
        "  goal 2000 ms: max/goal = {:.2} ({})",
        ms(max) / 2000.0,
        if max <= Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        }
    );
}
