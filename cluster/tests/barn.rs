//! Barn's storage: openraft's conformance suite on the RocksDB store, restarts, the state
//! machine's commands, corrupt data, and a single-node Raft on top of it all.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, Membership, Raft, RaftLogReader,
    RaftSnapshotBuilder, SnapshotPolicy, StorageIOError,
};
use runink_cluster::network::SingleNode;
use runink_cluster::state::{
    AuditEntry, ContractRef, Dataset, EnforcementRows, Herd, LineageEdge, LineageKind, LineageNode,
    RelationRows, ResourceQuotas, RunCounters, RunIo, RunState, SinkRows,
};
use runink_cluster::store::{CF_LOGS, CF_META, CF_SM};
use runink_cluster::types::{Entry, LogId, StorageError, Vote};
use runink_cluster::{
    Barn, BarnError, Command, LogStore, Rejection, Response, StateMachineData, StateMachineStore,
    TypeConfig, open,
};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// openraft's conformance suite

/// Opens a fresh store in its own temp dir; the `TempDir` guard keeps the directory alive
/// for as long as the suite uses the store.
struct TempStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    // The suite runs each case in its own tokio runtime, so this test is not async.
    Suite::test_all(TempStoreBuilder)
}

// ---------------------------------------------------------------------------------------
// Restarts

#[tokio::test]
async fn log_vote_and_snapshot_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let entries = vec![
        membership_entry(1, 1),
        entry(1, 2, put_herd("finance")),
        entry(1, 3, start_run("r1", "finance")),
        entry(2, 4, put_herd("risk")),
        entry(2, 5, Command::DeleteHerd { id: "risk".into() }),
    ];
    let vote = Vote::new_committed(2, 1);
    {
        let (mut log, mut sm) = open(dir.path()).unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        log.save_vote(&vote).await.unwrap();
        log.save_committed(Some(log_id(2, 4))).await.unwrap();
        sm.apply(entries[..3].to_vec()).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));
        log.purge(log_id(1, 2)).await.unwrap();
    }

    let (mut log, mut sm) = open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 4)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    assert_eq!(
        log.try_get_log_entries(0..100).await.unwrap(),
        entries[2..].to_vec()
    );

    // The state machine comes back from the snapshot; openraft re-applies the rest.
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 3)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
    assert_eq!(sm.last_applied().unwrap(), Some(log_id(1, 3)));
    let (herds, run) = sm
        .read(|d| {
            (
                d.herds().map(|h| h.id.clone()).collect::<Vec<_>>(),
                d.run("r1").cloned(),
            )
        })
        .unwrap();
    assert_eq!(herds, ["finance"]);
    assert_eq!(run.unwrap().state, RunState::Pending);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 3)));
}

#[tokio::test]
async fn truncate_removes_the_tail_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = open(dir.path()).unwrap();
        log.blocking_append((1..=6).map(|i| entry(1, i, put_herd(&format!("h{i}")))))
            .await
            .unwrap();
        log.truncate(log_id(1, 4)).await.unwrap();
        // A new leader's entries take the truncated places.
        log.blocking_append([entry(2, 4, put_herd("new"))])
            .await
            .unwrap();
    }
    let (mut log, _sm) = open(dir.path()).unwrap();
    let ids: Vec<LogId> = log
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id)
        .collect();
    assert_eq!(
        ids,
        [log_id(1, 1), log_id(1, 2), log_id(1, 3), log_id(2, 4)]
    );
}

#[test]
fn a_second_open_of_the_same_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    let second = open(dir.path());
    let Err(BarnError::Open { path, message }) = second else {
        panic!("a second open must fail with BarnError::Open");
    };
    assert_eq!(path, dir.path());
    assert!(message.contains("lock"), "{message}");
    drop(first);
    // Released with the stores: the directory opens again.
    open(dir.path()).unwrap();
}

#[test]
fn limited_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut log, _sm) = open(dir.path()).unwrap();
        let total = runink_cluster::store::LOG_READ_ENTRIES_MAX as u64 + 10;
        log.blocking_append((1..=total).map(|i| blank_entry(1, i)))
            .await
            .unwrap();
        let limited = log.limited_get_log_entries(1, total + 1).await.unwrap();
        assert_eq!(limited.len(), runink_cluster::store::LOG_READ_ENTRIES_MAX);
        assert_eq!(limited[0].log_id, log_id(1, 1));
        let all = log.try_get_log_entries(1..=total).await.unwrap();
        assert_eq!(all.len() as u64, total);
    });
}

// ---------------------------------------------------------------------------------------
// The state machine's commands

#[test]
fn every_command_changes_the_state_as_documented() {
    let mut state = StateMachineData::default();

    // Herds.
    assert_eq!(state.apply(&put_herd("finance")), Response::Applied);
    assert_eq!(state.apply(&put_herd("risk")), Response::Applied);
    let mut finance = herd("finance");
    finance.description = "Trading and risk, v2".into();
    assert_eq!(
        state.apply(&Command::PutHerd {
            herd: finance.clone()
        }),
        Response::Applied
    );
    assert_eq!(state.herd("finance"), Some(&finance));
    assert_eq!(
        state.herds().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["finance", "risk"]
    );

    // Datasets belong to a known herd.
    assert_eq!(
        state.apply(&put_dataset("finance", "trades_silver")),
        Response::Applied
    );
    assert_eq!(
        state.apply(&put_dataset("risk", "exposures")),
        Response::Applied
    );
    assert_eq!(
        state.apply(&put_dataset("nobody", "x")),
        rejected(Rejection::UnknownHerd {
            herd: "nobody".into()
        })
    );
    assert_eq!(
        state.dataset("finance", "trades_silver").unwrap().location,
        "parquet://out/trades_silver/"
    );
    assert_eq!(state.datasets("finance").count(), 1);

    // Deleting a herd takes its datasets with it.
    assert_eq!(
        state.apply(&Command::DeleteHerd { id: "risk".into() }),
        Response::Applied
    );
    assert!(state.herd("risk").is_none());
    assert_eq!(state.datasets("risk").count(), 0);
    assert_eq!(
        state.apply(&Command::DeleteHerd { id: "risk".into() }),
        rejected(Rejection::UnknownHerd {
            herd: "risk".into()
        })
    );

    // Contract versions are immutable.
    assert_eq!(
        state.apply(&put_contract("trade", "1.0.0", "aaa")),
        Response::Applied
    );
    assert_eq!(
        state.apply(&put_contract("trade", "1.0.0", "aaa")),
        Response::Applied
    );
    assert_eq!(
        state.apply(&put_contract("trade", "1.1.0", "bbb")),
        Response::Applied
    );
    assert_eq!(
        state.apply(&put_contract("trade", "1.0.0", "ccc")),
        rejected(Rejection::ContractConflict {
            id: "trade".into(),
            version: "1.0.0".into(),
            registered_hash: "aaa".into(),
            hash: "ccc".into(),
        })
    );
    assert_eq!(state.contract("trade", "1.0.0").unwrap().hash, "aaa");
    assert_eq!(
        state
            .contracts()
            .map(|c| c.version.as_str())
            .collect::<Vec<_>>(),
        ["1.0.0", "1.1.0"]
    );

    // DAGs.
    assert_eq!(
        state.apply(&Command::PutDag {
            id: "trades".into(),
            bytes_hash: "ddd".into(),
            file: "dags/trades.dag".into(),
        }),
        Response::Applied
    );
    assert_eq!(state.dag("trades").unwrap().file, "dags/trades.dag");

    // A run's life: pending → running → succeeded, and nothing after that.
    assert_eq!(state.apply(&start_run("r1", "finance")), Response::Applied);
    assert_eq!(
        state.apply(&start_run("r1", "finance")),
        rejected(Rejection::RunExists { run: "r1".into() })
    );
    assert_eq!(
        state.apply(&start_run("r2", "risk")),
        rejected(Rejection::UnknownHerd {
            herd: "risk".into()
        })
    );
    let run = state.run("r1").unwrap();
    assert_eq!(run.state, RunState::Pending);
    assert_eq!(run.actor, "alice");
    assert_eq!(run.started_ms, 1_000);

    assert_eq!(
        state.apply(&update_run("r1", RunState::Running, 2_000)),
        Response::Applied
    );
    assert_eq!(
        state.apply(&update_run("r1", RunState::Pending, 2_500)),
        rejected(Rejection::BadTransition {
            run: "r1".into(),
            from: RunState::Running,
            to: RunState::Pending,
        })
    );
    assert_eq!(
        state.apply(&update_run("r1", RunState::Succeeded, 2_500)),
        rejected(Rejection::BadTransition {
            run: "r1".into(),
            from: RunState::Running,
            to: RunState::Succeeded,
        })
    );
    assert_eq!(state.run("r1").unwrap().heartbeat_ms, 2_000);
    assert_eq!(
        state.apply(&finish_run("r1", RunState::Running, None)),
        rejected(Rejection::BadTransition {
            run: "r1".into(),
            from: RunState::Running,
            to: RunState::Running,
        })
    );
    assert_eq!(
        state.apply(&finish_run("r1", RunState::Succeeded, None)),
        Response::Applied
    );
    let run = state.run("r1").unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.ended_ms, Some(3_000));
    assert_eq!(run.counters, counters());
    assert_eq!(
        run.counters.contracts[0].rejected_per_rule["trade_id:required"],
        3
    );
    assert_eq!(
        state.apply(&finish_run("r1", RunState::Failed, Some("late"))),
        rejected(Rejection::RunFinished {
            run: "r1".into(),
            state: RunState::Succeeded,
        })
    );
    assert_eq!(
        state.apply(&update_run("nope", RunState::Running, 1)),
        rejected(Rejection::UnknownRun { run: "nope".into() })
    );

    // A failed run keeps its reason.
    assert_eq!(state.apply(&start_run("r3", "finance")), Response::Applied);
    assert_eq!(
        state.apply(&finish_run("r3", RunState::Failed, Some("disk full"))),
        Response::Applied
    );
    assert_eq!(state.run("r3").unwrap().error.as_deref(), Some("disk full"));

    // Lineage: all or nothing, duplicates kept once.
    let edges = vec![lineage("r1", None), lineage("r1", Some("trade_id"))];
    assert_eq!(
        state.apply(&Command::AddLineage {
            edges: edges.clone()
        }),
        Response::Applied
    );
    assert_eq!(
        state.apply(&Command::AddLineage {
            edges: edges.clone()
        }),
        Response::Applied
    );
    assert_eq!(
        state.apply(&Command::AddLineage {
            edges: vec![lineage("r3", None), lineage("ghost", None)]
        }),
        rejected(Rejection::UnknownRun {
            run: "ghost".into()
        })
    );
    assert_eq!(state.lineage().count(), 2);

    // Audit entries append in order.
    for (i, allowed) in [(1, true), (2, false)] {
        assert_eq!(
            state.apply(&Command::Audit {
                entry: audit(i, allowed)
            }),
            Response::Applied
        );
    }
    assert_eq!(state.audit(), [audit(1, true), audit(2, false)]);

    // Empty names are rejected, not stored.
    assert_eq!(
        state.apply(&put_herd("")),
        rejected(Rejection::EmptyName {
            what: "herd id".into()
        })
    );
}

#[test]
fn apply_is_deterministic_and_rejections_change_nothing() {
    let commands = vec![
        put_herd("finance"),
        put_dataset("finance", "a"),
        put_contract("trade", "1.0.0", "aaa"),
        start_run("r1", "finance"),
        update_run("r1", RunState::Running, 2),
        Command::AddLineage {
            edges: vec![lineage("r1", Some("x")), lineage("r1", None)],
        },
        finish_run("r1", RunState::Cancelled, None),
        Command::Audit {
            entry: audit(1, false),
        },
    ];
    let replay = |commands: &[Command]| {
        let mut state = StateMachineData::default();
        let responses: Vec<Response> = commands.iter().map(|c| state.apply(c)).collect();
        (state, responses)
    };
    let (a, responses_a) = replay(&commands);
    let (b, responses_b) = replay(&commands);
    assert_eq!(responses_a, responses_b);
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_vec(&a).unwrap(),
        serde_json::to_vec(&b).unwrap()
    );

    let before = a.clone();
    let mut after = a;
    for bad in [
        put_dataset("nobody", "x"),
        start_run("r1", "finance"),
        finish_run("r1", RunState::Succeeded, None),
        put_contract("trade", "1.0.0", "zzz"),
        Command::AddLineage {
            edges: vec![lineage("ghost", None)],
        },
    ] {
        assert!(matches!(after.apply(&bad), Response::Rejected(_)));
    }
    assert_eq!(after, before);
}

#[tokio::test]
async fn the_store_applies_entries_and_snapshots_carry_the_state() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (_log_a, mut sm_a) = open(dir_a.path()).unwrap();
    let responses = sm_a
        .apply([
            membership_entry(1, 1),
            blank_entry(1, 2),
            entry(1, 3, put_herd("finance")),
            entry(1, 4, put_dataset("finance", "trades")),
            entry(1, 5, put_dataset("risk", "x")),
        ])
        .await
        .unwrap();
    assert_eq!(
        responses,
        [
            Response::Applied,
            Response::Applied,
            Response::Applied,
            Response::Applied,
            rejected(Rejection::UnknownHerd {
                herd: "risk".into()
            }),
        ]
    );
    let snapshot = sm_a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 5)));

    let (_log_b, mut sm_b) = open(dir_b.path()).unwrap();
    let mut receiving = sm_b.begin_receiving_snapshot().await.unwrap();
    *receiving = *snapshot.snapshot;
    sm_b.install_snapshot(&snapshot.meta, receiving)
        .await
        .unwrap();
    let state_a = sm_a.read(|d| d.clone()).unwrap();
    let state_b = sm_b.read(|d| d.clone()).unwrap();
    assert_eq!(state_a, state_b);
    assert!(state_b.dataset("finance", "trades").is_some());
    assert_eq!(
        sm_b.applied_state().await.unwrap(),
        sm_a.applied_state().await.unwrap()
    );

    // A snapshot built from older state does not replace the newer one installed meanwhile.
    let dir_c = tempfile::tempdir().unwrap();
    let (_log_c, mut sm_c) = open(dir_c.path()).unwrap();
    let mut stale_builder = sm_c.get_snapshot_builder().await;
    let mut receiving = sm_c.begin_receiving_snapshot().await.unwrap();
    *receiving = std::io::Cursor::new(
        sm_a.get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .snapshot
            .into_inner(),
    );
    sm_c.install_snapshot(&snapshot.meta, receiving)
        .await
        .unwrap();
    let stale = stale_builder.build_snapshot().await.unwrap();
    assert_eq!(stale.meta.last_log_id, None);
    let current = sm_c.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 5)));
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open(dir.path()).unwrap();
    sm.apply([entry(1, 1, put_herd("finance"))]).await.unwrap();
    let meta = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
        .meta;
    for bytes in [
        b"garbage".to_vec(),
        br#"{"format":"runink-barn-snapshot","version":99,"state":{}}"#.to_vec(),
    ] {
        let mut receiving = sm.begin_receiving_snapshot().await.unwrap();
        *receiving = std::io::Cursor::new(bytes);
        let err = sm.install_snapshot(&meta, receiving).await.unwrap_err();
        assert!(err.to_string().contains("snapshot"), "{err}");
    }
    assert!(sm.read(|d| d.herd("finance").is_some()).unwrap());
}

// ---------------------------------------------------------------------------------------
// Corrupt data is an error, never a panic

#[tokio::test]
async fn a_garbage_log_entry_is_an_error() {
    let dir = stored_log(5).await;
    raw_put(
        dir.path(),
        CF_LOGS,
        &3u64.to_be_bytes(),
        b"\x00\xffnot json",
    );
    let (mut log, _sm) = open(dir.path()).unwrap();
    let err = log.try_get_log_entries(1..=5).await.unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
    // Entries around it still read.
    assert_eq!(log.try_get_log_entries(4..=5).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_truncated_last_entry_is_an_error() {
    let dir = stored_log(5).await;
    let whole = raw_get(dir.path(), CF_LOGS, &5u64.to_be_bytes()).unwrap();
    raw_put(
        dir.path(),
        CF_LOGS,
        &5u64.to_be_bytes(),
        &whole[..whole.len() / 2],
    );
    let (mut log, _sm) = open(dir.path()).unwrap();
    let err = log.get_log_state().await.unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
    assert!(log.try_get_log_entries(5..6).await.is_err());
}

#[tokio::test]
async fn an_entry_under_the_wrong_key_is_an_error() {
    let dir = stored_log(5).await;
    let second = raw_get(dir.path(), CF_LOGS, &2u64.to_be_bytes()).unwrap();
    raw_put(dir.path(), CF_LOGS, &4u64.to_be_bytes(), &second);
    let (mut log, _sm) = open(dir.path()).unwrap();
    let err = log.try_get_log_entries(4..5).await.unwrap_err();
    assert!(err.to_string().contains("says it is entry 2"), "{err}");
}

#[tokio::test]
async fn a_log_key_of_the_wrong_length_is_an_error() {
    let dir = stored_log(3).await;
    raw_put(dir.path(), CF_LOGS, b"xyz", b"{}");
    let (mut log, _sm) = open(dir.path()).unwrap();
    let err = log.get_log_state().await.unwrap_err();
    assert!(err.to_string().contains("3 bytes long"), "{err}");
}

#[tokio::test]
async fn a_garbage_vote_or_pointer_is_an_error() {
    let dir = stored_log(3).await;
    raw_put(dir.path(), CF_META, b"vote", b"{\"leader_id\":");
    raw_put(dir.path(), CF_META, b"committed", b"[1,2");
    raw_put(dir.path(), CF_META, b"last_purged", b"7");
    let (mut log, _sm) = open(dir.path()).unwrap();
    assert!(log.read_vote().await.is_err());
    assert!(log.read_committed().await.is_err());
    assert!(log.get_log_state().await.is_err());
}

#[tokio::test]
async fn a_damaged_snapshot_fails_open_with_an_error() {
    let dir = stored_log(3).await;
    {
        let (_log, mut sm) = open(dir.path()).unwrap();
        sm.apply([entry(1, 1, put_herd("finance"))]).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }
    let whole = raw_get(dir.path(), CF_SM, b"snapshot_data").unwrap();
    raw_put(
        dir.path(),
        CF_SM,
        b"snapshot_data",
        &whole[..whole.len() - 3],
    );
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, BarnError::Storage(_)), "{err}");
    assert!(err.to_string().contains("does not decode"), "{err}");

    raw_delete(dir.path(), CF_SM, b"snapshot_data");
    let err = open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("data is missing"), "{err}");

    raw_put(dir.path(), CF_SM, b"snapshot_meta", b"\x01\x02");
    let err = open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
}

#[test]
fn a_directory_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    raw_put(dir.path(), CF_META, b"format", b"runink-barn/999");
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, BarnError::Format { .. }), "{err}");
    assert!(err.to_string().contains("runink-barn/999"), "{err}");

    // A file where the directory should be: an error naming the path.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"hello").unwrap();
    let err = open(&file).unwrap_err();
    assert!(matches!(err, BarnError::Open { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// A single-node Raft on the store: commit, snapshot, purge, restart

#[tokio::test]
async fn a_single_node_raft_commits_compacts_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(
        openraft::Config {
            cluster_name: "barn-test".into(),
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            // Snapshots only when the test asks; keep no log behind a snapshot.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let timeout = Some(Duration::from_secs(10));

    let snapshot_id = {
        let (log, sm) = open(dir.path()).unwrap();
        let raft = Raft::new(1, config.clone(), SingleNode, log, sm.clone())
            .await
            .unwrap();
        raft.initialize(BTreeMap::from([(1, BasicNode::new("127.0.0.1:0"))]))
            .await
            .unwrap();
        raft.wait(timeout)
            .current_leader(1, "single node leads")
            .await
            .unwrap();

        for command in [
            put_herd("finance"),
            start_run("r1", "finance"),
            update_run("r1", RunState::Running, 2_000),
        ] {
            let written = raft.client_write(command).await.unwrap();
            assert_eq!(written.data, Response::Applied);
        }
        let written = raft.client_write(start_run("r1", "finance")).await.unwrap();
        assert_eq!(
            written.data,
            rejected(Rejection::RunExists { run: "r1".into() })
        );

        raft.trigger().snapshot().await.unwrap();
        let metrics = raft
            .wait(timeout)
            .metrics(
                |m| m.snapshot.is_some() && m.purged == m.snapshot,
                "snapshot built and log purged",
            )
            .await
            .unwrap();
        let snapshot_id = metrics.snapshot.unwrap();

        // Written after the snapshot: only the log has it.
        let written = raft
            .client_write(finish_run("r1", RunState::Succeeded, None))
            .await
            .unwrap();
        assert_eq!(written.data, Response::Applied);
        raft.ensure_linearizable().await.unwrap();
        raft.shutdown().await.unwrap();
        snapshot_id
    };

    // Every store handle is gone with the Raft, so the directory opens again.
    let (mut log, sm) = open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(snapshot_id));
    assert_eq!(
        sm.last_applied().unwrap(),
        Some(snapshot_id),
        "the state machine restarts from the snapshot"
    );
    let raft = Raft::new(1, config, SingleNode, log, sm.clone())
        .await
        .unwrap();
    // openraft re-applies the committed entries after the snapshot while it starts.
    raft.wait(timeout)
        .current_leader(1, "leads again")
        .await
        .unwrap();
    raft.ensure_linearizable().await.unwrap();
    let run = sm.read(|d| d.run("r1").cloned()).unwrap().unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    assert!(sm.read(|d| d.herd("finance").is_some()).unwrap());
    raft.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Helpers

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(command),
    }
}

fn blank_entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn membership_entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], ())),
    }
}

fn rejected(rejection: Rejection) -> Response {
    Response::Rejected(rejection)
}

fn herd(id: &str) -> Herd {
    Herd {
        id: id.into(),
        description: format!("the {id} herd"),
        resource_quotas: ResourceQuotas {
            slices_max: Some(16),
            cpu_millis: Some(4_000),
            memory_bytes: Some(8 << 30),
            isolation_required: false,
        },
        ..Herd::default()
    }
}

fn put_herd(id: &str) -> Command {
    Command::PutHerd { herd: herd(id) }
}

fn put_dataset(herd: &str, name: &str) -> Command {
    Command::PutDataset {
        dataset: Dataset {
            herd: herd.into(),
            name: name.into(),
            location: format!("parquet://out/{name}/"),
            format: "parquet".into(),
            schema_json: r#"{"fields":[]}"#.into(),
            contract: Some(contract_ref()),
            produced_by: Some("r0".into()),
            updated_ms: 500,
        },
    }
}

fn contract_ref() -> ContractRef {
    ContractRef {
        id: "trade".into(),
        version: "1.0.0".into(),
        hash: "aaa".into(),
    }
}

fn put_contract(id: &str, version: &str, hash: &str) -> Command {
    Command::PutContract {
        id: id.into(),
        version: version.into(),
        hash: hash.into(),
        text: format!("id: {id}\nversion: {version}\n"),
    }
}

fn start_run(id: &str, herd: &str) -> Command {
    Command::StartRun {
        id: id.into(),
        dag: "trades".into(),
        job: "Trade lifecycle / Validate".into(),
        herd: herd.into(),
        actor: "alice".into(),
        contract: Some(contract_ref()),
        io: RunIo::default(),
        started_ms: 1_000,
    }
}

fn update_run(id: &str, state: RunState, heartbeat_ms: u64) -> Command {
    Command::UpdateRun {
        id: id.into(),
        state,
        heartbeat_ms,
        counters: RunCounters::default(),
    }
}

fn finish_run(id: &str, state: RunState, error: Option<&str>) -> Command {
    Command::FinishRun {
        id: id.into(),
        state,
        ended_ms: 3_000,
        counters: counters(),
        error: error.map(str::to_string),
    }
}

fn counters() -> RunCounters {
    RunCounters {
        sources: vec![RelationRows {
            name: "trades".into(),
            rows: 100,
        }],
        steps: vec![RelationRows {
            name: "enriched".into(),
            rows: 100,
        }],
        contracts: vec![EnforcementRows {
            at: "enriched".into(),
            rows: 100,
            valid: 97,
            rejected: 3,
            rejected_per_rule: BTreeMap::from([("trade_id:required".to_string(), 3)]),
        }],
        sinks: vec![SinkRows {
            uri: "parquet://out/trades/".into(),
            when: "valid".into(),
            from: "enriched".into(),
            rows: 97,
        }],
    }
}

fn lineage(run: &str, column: Option<&str>) -> LineageEdge {
    LineageEdge {
        run_id: run.into(),
        from: LineageNode {
            kind: LineageKind::Source,
            name: "trades".into(),
            column: column.map(str::to_string),
        },
        to: LineageNode {
            kind: LineageKind::Dataset,
            name: "finance.trades_silver".into(),
            column: column.map(str::to_string),
        },
    }
}

fn audit(at_ms: u64, allowed: bool) -> AuditEntry {
    AuditEntry {
        at_ms,
        actor: "bob".into(),
        action: "read:datasets".into(),
        herd: Some("finance".into()),
        target: "finance.trades_silver".into(),
        allowed,
        detail: String::new(),
    }
}

/// A closed Barn directory holding entries 1..=n (term 1), each registering a herd.
async fn stored_log(n: u64) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm) = open(dir.path()).unwrap();
    log.blocking_append((1..=n).map(|i| entry(1, i, put_herd(&format!("h{i}")))))
        .await
        .unwrap();
    log.save_vote(&Vote::new(1, 1)).await.unwrap();
    dir
}

/// Opens Barn's directory with plain RocksDB, bypassing the store, to damage it.
fn raw_db(path: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        path,
        [CF_LOGS, CF_META, CF_SM],
    )
    .unwrap()
}

fn raw_put(path: &Path, family: &str, key: &[u8], value: &[u8]) {
    let db = raw_db(path);
    db.put_cf(db.cf_handle(family).unwrap(), key, value)
        .unwrap();
}

fn raw_get(path: &Path, family: &str, key: &[u8]) -> Option<Vec<u8>> {
    let db = raw_db(path);
    db.get_cf(db.cf_handle(family).unwrap(), key).unwrap()
}

fn raw_delete(path: &Path, family: &str, key: &[u8]) {
    let db = raw_db(path);
    db.delete_cf(db.cf_handle(family).unwrap(), key).unwrap();
}

// ---------------------------------------------------------------------------------------
// The embedded Barn

#[tokio::test]
async fn the_embedded_barn_keeps_what_it_committed_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(".runink");
    let barn = Barn::open(&home).await.unwrap();
    assert_eq!(
        barn.write(put_herd("finance")).await.unwrap(),
        Response::Applied
    );
    assert_eq!(
        barn.write(start_run("r1", "finance")).await.unwrap(),
        Response::Applied
    );
    assert!(barn.read(|d| d.herd("finance").is_some()).await.unwrap());
    barn.shutdown().await.unwrap();

    let barn = Barn::open(&home).await.unwrap();
    assert!(barn.read(|d| d.herd("finance").is_some()).await.unwrap());
    assert_eq!(
        barn.read(|d| d.run("r1").map(|r| r.state)).await.unwrap(),
        Some(RunState::Pending)
    );
    barn.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_barn_on_the_same_directory_waits_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = Barn::open(dir.path()).await.unwrap();
    let second = Barn::open(dir.path()).await;
    let message = second.unwrap_err().to_string();
    assert!(
        message.contains("another runi process is using it"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    // The first is unharmed and still writes.
    assert_eq!(
        first.write(put_herd("finance")).await.unwrap(),
        Response::Applied
    );
    first.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Herd files

mod herd_files {
    use proptest::prelude::*;
    use runink_cluster::parse_herd;
    use runink_cluster::state::{MaskKind, RbacPolicy};

    const SPEC_EXAMPLE: &str = include_str!("../../examples/trades/herd.toml");

    #[test]
    fn the_spec_example_parses() {
        let h = parse_herd("herd.toml", SPEC_EXAMPLE).unwrap();
        assert_eq!(h.id, "finance");
        assert_eq!(h.description, "Trading and risk");
        assert_eq!(h.resource_quotas.slices_max, Some(16));
        assert_eq!(h.resource_quotas.cpu_millis, Some(4000));
        assert_eq!(h.resource_quotas.memory_bytes, Some(8 << 30));
        assert_eq!(
            h.rbac_policies[0],
            RbacPolicy {
                role: "analyst".into(),
                actions: vec!["read:datasets".into(), "read:lineage".into()]
            }
        );
        assert_eq!(h.rbac_policies[1].actions.len(), 4);
        assert_eq!(h.masking_policies.default, Some(MaskKind::Redact));
        assert_eq!(
            h.masking_policies.field_level_overrides.get("trader_email"),
            Some(&MaskKind::Hash)
        );
        assert!(h.default_contract_policy.block_on_drift);
    }

    fn error(text: &str) -> String {
        parse_herd("h.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn bad_herd_files_name_the_place() {
        let e = error("[herd]\nid = \"finance\"\n[herd.resource_quotas\nslices_max = 1\n");
        assert!(e.starts_with("h.toml:3:"), "{e}");
        let e = error("[herd]\nid = \"finance\"\n[herd.resource_quotas]\nslice_max = 16\n");
        assert!(
            e.starts_with("h.toml:4:1:") && e.contains("slice_max"),
            "{e}"
        );
        let e = error("[herd]\nid = \"finance\"\n[herd.resource_quotas]\ncpu_limit = \"four\"\n");
        assert!(
            e.starts_with("h.toml:4:13:") && e.contains("cpu_limit `four`"),
            "{e}"
        );
        let e = error(
            "[herd]\nid = \"finance\"\n[herd.resource_quotas]\nmemory_limit = \"8 bananas\"\n",
        );
        assert!(
            e.starts_with("h.toml:4:16:") && e.contains("memory_limit"),
            "{e}"
        );
        // Values of the wrong TOML type name their key, and the type in words.
        let e = error("[herd]\nid = \"f\"\n[herd.resource_quotas]\nslices_max = -2\n");
        assert!(
            e.starts_with("h.toml:4:14: `slices_max`: invalid value: integer `-2`")
                && e.contains("a whole number"),
            "{e}"
        );
        let e = error("[herd]\nid = \"f\"\n[herd.resource_quotas]\ncpu_limit = 2\n");
        assert!(
            e.starts_with("h.toml:4:13: `cpu_limit`:") && e.contains("text in quotes"),
            "{e}"
        );
        // Quotas too small to run anything are refused where they are written.
        let e = error("[herd]\nid = \"f\"\n[herd.resource_quotas]\ncpu_limit = \"0.0001\"\n");
        assert!(
            e.starts_with("h.toml:4:13:") && e.contains("at least 1m"),
            "{e}"
        );
        let e = error("[herd]\nid = \"f\"\n[herd.resource_quotas]\nmemory_limit = \"1\"\n");
        assert!(
            e.starts_with("h.toml:4:16:") && e.contains("less than 1Mi"),
            "{e}"
        );
        let e = error("[herd]\nid = \"Finance Team\"\n");
        assert!(e.starts_with("h.toml:2:6:") && e.contains("herd id"), "{e}");
        let e = error("[herd]\ndescription = \"x\"\n");
        assert!(e.contains("id"), "{e}");
        let e = error("[herd]\nid = \"f\"\n[herd.masking_policies]\ndefault = \"blur\"\n");
        assert!(e.starts_with("h.toml:4:") && e.contains("blur"), "{e}");
        let e = error(
            "[herd]\nid = \"f\"\n[[herd.rbac_policies]]\nrole = \"a\"\nactions = [\"read:x\", \"dance\"]\n",
        );
        assert!(
            e.starts_with("h.toml:5:22:") && e.contains("`dance`"),
            "{e}"
        );
        let e = error("");
        assert!(e.starts_with("h.toml:1:1:") && e.contains("herd"), "{e}");
    }

    proptest! {
        #[test]
        fn no_input_panics(text in "\\PC{0,300}") {
            let _ = parse_herd("p.toml", &text);
        }

        #[test]
        fn no_herd_shaped_input_panics(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("[herd]".to_string()),
                    Just("[herd.resource_quotas]".to_string()),
                    Just("[[herd.rbac_policies]]".to_string()),
                    "[a-z_]{1,12} = \"[^\"\\n]{0,12}\"",
                    "[a-z_]{1,12} = [0-9]{1,22}",
                    "\\PC{0,20}",
                ],
                0..12,
            )
        ) {
            let _ = parse_herd("p.toml", &lines.join("\n"));
        }
    }
}
