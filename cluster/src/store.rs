//! Barn on disk: the Raft log and the state machine's snapshots in one RocksDB database.
//!
//! Every RocksDB call of the workspace is in this file, so that replacing RocksDB (or the
//! Debian build of it that `.cargo/config.toml` links, see ARCHITECTURE.md) touches one
//! module.
//!
//! ```text
//!  <state dir>/             one RocksDB database, three column families
//!    logs   key: log index, u64 big-endian (key order = index order)   value: Entry (JSON)
//!    meta   format → "runink-barn/1"     vote → Vote (JSON)
//!           committed → LogId (JSON)     last_purged → LogId (JSON)
//!    sm     snapshot_meta → SnapshotMeta (JSON)
//!           snapshot_data → {"format":"runink-barn-snapshot","version":1,"state":{…}}
//! ```
//!
//! **Durability.** A vote and appended entries are acknowledged to openraft (by returning,
//! or through the `LogFlushed` callback) only after a RocksDB write with `sync = true`
//! returned, i.e. after the write-ahead log was fsynced. Truncation, purging and snapshots
//! are synced too: they are rare, and a synced write never leaves the log and its
//! pointers disagreeing after a crash. The one unsynced write is the `committed` pointer:
//! losing its latest value in a power cut only means that fewer entries are re-applied at
//! start-up until the leader commits them again, and it is written after the entries it
//! points to were synced, so it never points past the durable log.
//!
//! **State machine.** The state lives in memory ([`StateMachineData`]); what is durable is
//! the log plus the latest snapshot. On [`open`] the state is loaded from the snapshot, and
//! openraft re-applies the committed entries after it (it reads `committed` back for that).
//! We chose this over writing every applied command into a column family because it keeps
//! `apply` a pure function over ordered maps, with one encoding of the state (the snapshot)
//! instead of two that could drift apart; Barn's state is a control-plane catalog (herds,
//! datasets, runs), small enough to serialize whole. The price: start-up replays the
//! entries since the last snapshot, so the Raft config's snapshot policy bounds it.
//!
//! **Corruption.** Anything read back is decoded with checks (key length, JSON, the index
//! inside an entry matching its key, the snapshot's format tag); a mismatch is a
//! `StorageError`, which stops the Raft node, never a panic.
//!
//! RocksDB calls are synchronous and run on the async task that called them: a synced
//! write blocks that tokio worker for one disk flush. A control plane's write rate affords
//! that; moving the writes to a blocking thread is the change to make if it stops doing so.

use std::fmt::Debug;
use std::io::{self, Cursor};
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, StorageIOError,
};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{BarnError, Result};
use crate::state::{Response, StateMachineData};
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};

/// Column family of the Raft log.
pub const CF_LOGS: &str = "logs";
/// Column family of the log's pointers (vote, committed, last purged) and the format tag.
pub const CF_META: &str = "meta";
/// Column family of the state machine's current snapshot.
pub const CF_SM: &str = "sm";

/// The most entries one [`RaftLogReader::limited_get_log_entries`] call returns, so a
/// lagging follower is caught up in bounded batches.
pub const LOG_READ_ENTRIES_MAX: usize = 1024;

/// How many of RocksDB's own info logs (`LOG.old.*`) to keep in the state directory.
const INFO_LOGS_KEPT: usize = 2;

const FORMAT: &[u8] = b"runink-barn/1";
const SNAPSHOT_FORMAT: &str = "runink-barn-snapshot";
const SNAPSHOT_VERSION: u32 = 1;

const KEY_FORMAT: &[u8] = b"format";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

/// Opens (or creates) Barn's database in `path` and returns its two halves for
/// `openraft::Raft::new`. The state machine is loaded from the last snapshot.
///
/// RocksDB locks the directory: while the returned stores (or their clones) live, a second
/// `open` of the same path, in this process or another, fails with [`BarnError::Open`].
pub fn open(path: impl AsRef<Path>) -> Result<(LogStore, StateMachineStore)> {
    let path = path.as_ref();
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_keep_log_file_num(INFO_LOGS_KEPT);
    let families =
        [CF_LOGS, CF_META, CF_SM].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&options, path, families).map_err(|e| BarnError::Open {
        path: path.to_path_buf(),
        message: e.into_string(),
    })?;
    let db = Arc::new(db);
    check_format(&db, path)?;
    let log = LogStore { db: db.clone() };
    let state_machine = StateMachineStore::load(db)?;
    Ok((log, state_machine))
}

/// The Raft log and its pointers: openraft's [`RaftLogStorage`]. Clones share the database
/// (a clone is also the log reader replication uses).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl LogStore {
    /// Reads the entries in `range` in index order, at most `max` of them.
    fn read_entries(
        &self,
        range: impl RangeBounds<u64>,
        max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&index) => index,
            Bound::Excluded(&index) => match index.checked_add(1) {
                Some(index) => index,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let logs = column(&self.db, CF_LOGS)?;
        let from = index_key(start);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(logs, IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = key_index(&key)?;
            // Keys are ordered and start at `start`, so the first index past the range ends it.
            if !range.contains(&index) || entries.len() >= max {
                break;
            }
            entries.push(decode_entry(index, &value)?);
        }
        Ok(entries)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let logs = column(&self.db, CF_LOGS)?;
        match self.db.iterator_cf(logs, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let index = key_index(&key)?;
                Ok(Some(decode_entry(index, &value)?.log_id))
            }
        }
    }

    fn write(&self, batch: WriteBatch, durable: Durability) -> Result<(), rocksdb::Error> {
        let mut options = WriteOptions::default();
        options.set_sync(durable == Durability::Synced);
        self.db.write_opt(batch, &options)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range, usize::MAX)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start..end, LOG_READ_ENTRIES_MAX)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> =
            read_json(&self.db, CF_META, KEY_LAST_PURGED, ErrorSubject::Logs)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            column(&self.db, CF_META)?,
            KEY_VOTE,
            encode(vote, ErrorSubject::Vote)?,
        );
        // Synced: a vote forgotten after a crash could let this node vote twice in a term.
        self.write(batch, Durability::Synced)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_json(&self.db, CF_META, KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            column(&self.db, CF_META)?,
            KEY_COMMITTED,
            encode(&committed, ErrorSubject::Store)?,
        );
        // Not synced: see the module docs.
        self.write(batch, Durability::Buffered)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        // Stored as `Option<LogId>`: `null` once saved as "nothing committed".
        let committed: Option<Option<LogId>> =
            read_json(&self.db, CF_META, KEY_COMMITTED, ErrorSubject::Store)?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let logs = column(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.put_cf(logs, index_key(entry.log_id.index), value);
        }
        // One batch: the entries become readable (and durable) all together, so a crash
        // can never leave a hole. The callback tells openraft they are on disk, so it runs
        // only after the synced write returned.
        match self.write(batch, Durability::Synced) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let logs = column(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        // `delete_range` excludes its end, so the last possible index goes separately.
        batch.delete_range_cf(logs, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(logs, index_key(u64::MAX));
        self.write(batch, Durability::Synced)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let logs = column(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        // The pointer and the deletion in one batch: after a crash either both happened or
        // neither did, and `get_log_state` never reports entries that are gone.
        batch.put_cf(
            column(&self.db, CF_META)?,
            KEY_LAST_PURGED,
            encode(&log_id, ErrorSubject::Logs)?,
        );
        match log_id.index.checked_add(1) {
            Some(end) => batch.delete_range_cf(logs, index_key(0), index_key(end)),
            None => {
                batch.delete_range_cf(logs, index_key(0), index_key(u64::MAX));
                batch.delete_cf(logs, index_key(u64::MAX));
            }
        }
        self.write(batch, Durability::Synced)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

/// The state machine: Barn's state in memory plus its snapshots in RocksDB, openraft's
/// [`RaftStateMachine`]. Clones share both.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    applied: Arc<RwLock<Applied>>,
    /// Held while the current snapshot is replaced, so that a snapshot built from older
    /// state never overwrites a newer one installed meanwhile.
    snapshot_write: Arc<Mutex<()>>,
}

impl Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("path", &self.db.path())
            .finish()
    }
}

/// The state as of the last applied log entry.
#[derive(Clone, Debug, Default)]
struct Applied {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    data: StateMachineData,
}

impl StateMachineStore {
    /// Runs `read` on the current state. Reads here are local: they may lag the leader
    /// (linearizable reads go through `Raft::ensure_linearizable` first).
    pub fn read<T>(&self, read: impl FnOnce(&StateMachineData) -> T) -> Result<T> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok(read(&applied.data))
    }

    /// The id of the last log entry applied to the state, if any.
    pub fn last_applied(&self) -> Result<Option<LogId>> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok(applied.last_applied)
    }

    fn load(db: Arc<DB>) -> Result<Self> {
        let applied = match read_snapshot(&db)? {
            None => Applied::default(),
            Some((meta, bytes)) => Applied {
                data: decode_snapshot(&bytes, &meta)?,
                last_applied: meta.last_log_id,
                last_membership: meta.last_membership,
            },
        };
        Ok(Self {
            db,
            applied: Arc::new(RwLock::new(applied)),
            snapshot_write: Arc::new(Mutex::new(())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.write().map_err(|_| poisoned())?;
        let entries = entries.into_iter();
        let mut responses = Vec::with_capacity(entries.size_hint().0);
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Applied,
                EntryPayload::Normal(command) => applied.data.apply(&command),
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::Applied
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // A copy of the state as of now: the builder serializes it while later entries are
        // applied here. Copying a control-plane catalog is cheap next to serializing it.
        let applied = match self.applied.read() {
            Ok(applied) => Ok(applied.clone()),
            Err(_) => Err(poisoned()),
        };
        SnapshotBuilder {
            db: self.db.clone(),
            applied,
            snapshot_write: self.snapshot_write.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        // Decode before anything changes: a bad snapshot leaves state and disk as they were.
        let data = decode_snapshot(&bytes, meta)?;
        save_snapshot(
            &self.db,
            &self.snapshot_write,
            meta,
            &bytes,
            Replace::Always,
        )?;
        let mut applied = self.applied.write().map_err(|_| poisoned())?;
        *applied = Applied {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            data,
        };
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(read_snapshot(&self.db)?.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// Builds a snapshot from a copy of the state taken by `get_snapshot_builder`.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    /// The copy, or the error met taking it (reported by `build_snapshot`, since
    /// `get_snapshot_builder` cannot fail).
    applied: Result<Applied, StorageError>,
    snapshot_write: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = std::mem::replace(&mut self.applied, Err(used_builder()))?;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership,
            // The state at a log id is the same on every replica and serializes to the
            // same bytes, so the log id names the snapshot's content.
            snapshot_id: match applied.last_applied {
                Some(id) => format!("{}-{}", id.leader_id, id.index),
                None => "empty".to_string(),
            },
        };
        let file = SnapshotFile {
            format: SNAPSHOT_FORMAT.to_string(),
            version: SNAPSHOT_VERSION,
            state: applied.data,
        };
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        save_snapshot(
            &self.db,
            &self.snapshot_write,
            &meta,
            &bytes,
            Replace::IfNotOlder,
        )?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// The bytes of a snapshot: a tagged, versioned envelope around the state.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    format: String,
    version: u32,
    state: StateMachineData,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync the write-ahead log before the write returns.
    Synced,
    /// In the write-ahead log, flushed to disk by RocksDB or by the next synced write.
    Buffered,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// An installed snapshot replaces whatever is there.
    Always,
    /// A built snapshot replaces only a snapshot that is not newer than itself.
    IfNotOlder,
}

fn check_format(db: &DB, path: &Path) -> Result<()> {
    let format_error = |message: String| BarnError::Format {
        path: path.to_path_buf(),
        message,
    };
    let meta = column(db, CF_META)?;
    match db
        .get_cf(meta, KEY_FORMAT)
        .map_err(|e| format_error(e.into_string()))?
    {
        Some(found) if found == FORMAT => Ok(()),
        Some(found) => Err(format_error(format!(
            "it holds format `{}`; this runi reads `{}`",
            String::from_utf8_lossy(&found),
            String::from_utf8_lossy(FORMAT),
        ))),
        None => {
            let mut options = WriteOptions::default();
            options.set_sync(true);
            db.put_cf_opt(meta, KEY_FORMAT, FORMAT, &options)
                .map_err(|e| format_error(e.into_string()))
        }
    }
}

fn save_snapshot(
    db: &DB,
    lock: &Mutex<()>,
    meta: &SnapshotMeta,
    bytes: &[u8],
    replace: Replace,
) -> Result<(), StorageError> {
    let _guard = lock.lock().map_err(|_| poisoned())?;
    if replace == Replace::IfNotOlder {
        let current: Option<SnapshotMeta> =
            read_json(db, CF_SM, KEY_SNAPSHOT_META, ErrorSubject::Snapshot(None))?;
        if current.is_some_and(|current| current.last_log_id > meta.last_log_id) {
            return Ok(());
        }
    }
    let subject = ErrorSubject::Snapshot(Some(meta.signature()));
    let sm = column(db, CF_SM)?;
    let mut batch = WriteBatch::default();
    batch.put_cf(sm, KEY_SNAPSHOT_META, encode(meta, subject.clone())?);
    batch.put_cf(sm, KEY_SNAPSHOT_DATA, bytes);
    let mut options = WriteOptions::default();
    // Synced: once a snapshot is saved openraft may purge the entries it covers.
    options.set_sync(true);
    db.write_opt(batch, &options)
        .map_err(|e| StorageIOError::new(subject, ErrorVerb::Write, &e).into())
}

/// The current snapshot's meta and bytes, if there is one.
fn read_snapshot(db: &DB) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StorageError> {
    let meta: Option<SnapshotMeta> =
        read_json(db, CF_SM, KEY_SNAPSHOT_META, ErrorSubject::Snapshot(None))?;
    let Some(meta) = meta else {
        return Ok(None);
    };
    let subject = ErrorSubject::Snapshot(Some(meta.signature()));
    let bytes = db
        .get_cf(column(db, CF_SM)?, KEY_SNAPSHOT_DATA)
        .map_err(|e| StorageIOError::new(subject.clone(), ErrorVerb::Read, &e))?
        .ok_or_else(|| {
            StorageIOError::new(
                subject,
                ErrorVerb::Read,
                AnyError::error("the snapshot's meta is stored but its data is missing"),
            )
        })?;
    Ok(Some((meta, bytes)))
}

fn decode_snapshot(bytes: &[u8], meta: &SnapshotMeta) -> Result<StateMachineData, StorageError> {
    let bad = |message: String| -> StorageError {
        StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(message)).into()
    };
    let file: SnapshotFile = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("snapshot data does not decode: {e}")))?;
    if file.format != SNAPSHOT_FORMAT || file.version != SNAPSHOT_VERSION {
        return Err(bad(format!(
            "snapshot is `{}` version {}; this runi reads `{SNAPSHOT_FORMAT}` version \
             {SNAPSHOT_VERSION}",
            file.format, file.version
        )));
    }
    Ok(file.state)
}

fn column<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StorageError> {
    // `open` creates every column family, so a missing one is a broken invariant.
    db.cf_handle(name).ok_or_else(|| {
        StorageIOError::new(
            ErrorSubject::Store,
            ErrorVerb::Read,
            AnyError::error(format!("column family `{name}` is missing")),
        )
        .into()
    })
}

fn read_json<T: DeserializeOwned>(
    db: &DB,
    family: &str,
    key: &[u8],
    subject: ErrorSubject<u64>,
) -> Result<Option<T>, StorageError> {
    let Some(bytes) = db
        .get_cf(column(db, family)?, key)
        .map_err(|e| StorageIOError::new(subject.clone(), ErrorVerb::Read, &e))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        StorageIOError::new(
            subject,
            ErrorVerb::Read,
            AnyError::error(format!(
                "`{family}/{}` does not decode: {e}",
                String::from_utf8_lossy(key)
            )),
        )
        .into()
    })
}

fn encode<T: Serialize>(value: &T, subject: ErrorSubject<u64>) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageIOError::new(subject, ErrorVerb::Write, &e).into())
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StorageIOError::read_logs(AnyError::error(format!(
            "a log key is {} bytes long, not 8",
            key.len()
        )))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| {
        StorageIOError::read_log_at_index(
            index,
            AnyError::error(format!("log entry does not decode: {e}")),
        )
    })?;
    if entry.log_id.index != index {
        return Err(StorageIOError::read_log_at_index(
            index,
            AnyError::error(format!(
                "the entry stored at index {index} says it is entry {}",
                entry.log_id.index
            )),
        )
        .into());
    }
    Ok(entry)
}

fn poisoned() -> StorageError {
    // Only a panic while applying entries poisons the lock; the state may be half-changed,
    // so the node must stop rather than serve or snapshot it.
    StorageIOError::read_state_machine(AnyError::error(
        "the state machine's lock was poisoned by a panic",
    ))
    .into()
}

fn used_builder() -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::error("a snapshot builder was used twice"))
        .into()
}
