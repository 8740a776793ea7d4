//! Shared-memory pipes: Arrow IPC frames in a ring of shared-memory slots between two
//! processes on one host (SPEC §8, same-host exchange).
//!
//! A pipe is one file under `/dev/shm` (any tmpfs path works), created by the process that
//! wires a run ([`create`]) and opened by exactly one writer ([`PipeWriter::open`]) and one
//! reader ([`PipeReader::open`]), usually two slice processes:
//!
//! ```text
//!  ┌────────── header (one page) ──────────┐┌ slot 0 ┐┌ slot 1 ┐ … ┌ slot N-1 ┐
//!  │ writer line: head, state, waiting, err ││ frame  ││ frame  │   │          │
//!  │ reader line: tail, state, waiting, freed││        ││        │   │          │
//!  │ queue[N] (slot of frame k), len[N], slot_state[N]                          │
//!  └────────────────────────────────────────┘└────────┘└────────┘   └──────────┘
//! ```
//!
//! * **Frames** are Arrow IPC stream messages (`StreamEncoder` on the writer,
//!   `StreamDecoder` on the reader): the first also carries the schema, the last is the
//!   end-of-stream marker. A batch whose encoding does not fit a slot is split into row
//!   ranges that do; a frame that still does not fit (one row with a value larger than a
//!   slot) is written across several slots, each marked as continued, and the reader copies
//!   and joins them.
//! * **Bounded**: the writer takes a free slot; when none is free it sleeps until the reader
//!   frees one (backpressure). Slots are mapped with `MAP_POPULATE`, so steady state has no
//!   page faults, and they are reused, so no per-batch buffer is allocated for the data.
//! * **In place**: the reader decodes a frame where it lies. The batch's buffers point into
//!   the slot, which is *leased* until the last of them is dropped. So that a consumer that
//!   keeps batches (a join's build side, a sort) cannot hold every slot and stall the writer,
//!   at most half the slots are leased at once; past that a frame is copied out and its slot
//!   freed at once. Schemas with dictionaries are always copied (the decoder keeps
//!   dictionaries across frames).
//! * **Wake-ups** are futexes on the shared counters (`head` for the reader, `freed` for the
//!   writer), with a `waiting` flag so the common case makes no system call. No spinning.
//! * **A peer that dies** is noticed: each side holds an exclusive `flock` on its own lock
//!   file (`PATH.writer`, `PATH.reader`) while attached. A waiting side re-checks its peer
//!   every [`LIVENESS_INTERVAL`]; a peer that is attached, not closed and no longer holds its
//!   lock has died, and the wait fails with an error naming the pipe. A writer that fails
//!   ([`PipeWriter::fail`]) or is dropped unfinished passes that on to the reader.
//!
//! Both ends are trusted processes of the same run: the protocol keeps them off each
//! other's slots, the file is the owner's only (mode 0600), and the reader checks each
//! frame's IPC framing but not every value (see [`PipeReader::open`]: that check cost the
//! reader twice the writer's copy). The creator removes the
//! files ([`remove`]) once both ends are attached; the file's pages are allocated up front,
//! so a full tmpfs fails [`create`] instead of a later page fault.
//!
//! This is the engine's main user of `unsafe` (see ARCHITECTURE.md for the others): mapping shared memory, viewing the header as
//! atomics, the futex system call, and handing Arrow a buffer that lives in a slot.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamEncoder;
use memmap2::{MmapMut, MmapOptions};

use crate::error::{EngineError, Result};

/// How often a waiting side checks that its peer is still alive.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(50);

/// How long one end waits for the other to attach before it fails (the other end's
/// process failed before it opened the pipe).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The most slots a pipe may have.
pub const MAX_SLOTS: u32 = 64;

const MAGIC: u64 = u64::from_le_bytes(*b"RUNIPIPE");
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 4096;
const SLOT_ALIGN: usize = 64;
const ERROR_BYTES: usize = 1024;

// Side states (writer and reader).
const DETACHED: u32 = 0;
const ATTACHED: u32 = 1;
const FINISHED: u32 = 2;
const FAILED: u32 = 3;

/// Largest slot: a frame length's top bit marks a frame continued in the next slot.
const SLOT_BYTES_MAX: usize = (1 << 31) - SLOT_ALIGN;
const CONTINUED: u32 = 1 << 31;

// Slot states.
const FREE: u32 = 0;
const WRITTEN: u32 = 1;
const LEASED: u32 = 2;

/// The shape of a pipe: how many slots and how large each is. A frame larger than a slot is
/// split by rows; a single row larger than a slot spans several slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeConfig {
    pub slots: u32,
    pub slot_bytes: usize,
}

impl Default for PipeConfig {
    /// 8 slots of 4 MiB: a 64 K-row batch of a few numeric columns fits one slot.
    fn default() -> Self {
        Self {
            slots: 8,
            slot_bytes: 4 << 20,
        }
    }
}

#[repr(C, align(64))]
struct SideLine {
    /// Writer: frames published. Reader: frames consumed.
    count: AtomicU32,
    state: AtomicU32,
    waiting: AtomicU32,
    /// Writer: length of the error text. Reader: slots freed so far (the writer's futex).
    aux: AtomicU32,
}

#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    slots: AtomicU32,
    slot_bytes: AtomicU64,
    writer: SideLine,
    reader: SideLine,
    queue: [AtomicU32; MAX_SLOTS as usize],
    frame_len: [AtomicU32; MAX_SLOTS as usize],
    slot_state: [AtomicU32; MAX_SLOTS as usize],
    error: [u8; ERROR_BYTES],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// Creates a pipe file at `path` (on a tmpfs such as `/dev/shm`) with `config`'s slots, and
/// its two lock files. Fails if the file exists.
pub fn create(path: &Path, config: PipeConfig) -> Result<()> {
    if !(2..=MAX_SLOTS).contains(&config.slots) || !config.slots.is_power_of_two() {
        return Err(pipe_error(
            path,
            format!(
                "a pipe needs a power of two from 2 to {MAX_SLOTS} slots, not {}",
                config.slots
            ),
        ));
    }
    if config.slot_bytes < 4096 || config.slot_bytes > SLOT_BYTES_MAX {
        return Err(pipe_error(
            path,
            format!(
                "slot size must be 4 KiB to 2 GiB, not {} bytes",
                config.slot_bytes
            ),
        ));
    }
    let slot_bytes = config.slot_bytes.next_multiple_of(SLOT_ALIGN);
    // Owner only: the reader trusts the frames it finds (see `PipeReader::open`).
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| pipe_error(path, format!("cannot create: {e}")))?;
    for side in [Side::Writer, Side::Reader] {
        File::create(lock_path(path, side))
            .map_err(|e| pipe_error(path, format!("cannot create its lock file: {e}")))?;
    }
    let total = HEADER_BYTES + slot_bytes * config.slots as usize;
    // Allocated, not just sized: a full tmpfs says so here (ENOSPC) instead of killing the
    // first process that touches a page of a sparse file (SIGBUS).
    // SAFETY: `file` is an open descriptor this function owns; the call only allocates.
    let allocated = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, total as libc::off_t) };
    if allocated != 0 {
        let e = std::io::Error::from_raw_os_error(allocated);
        remove(path);
        return Err(pipe_error(
            path,
            format!("cannot allocate {total} bytes: {e}"),
        ));
    }
    let map = Mapping::new(&file, path)?;
    let header = map.header();
    header.slots.store(config.slots, Ordering::Relaxed);
    header
        .slot_bytes
        .store(slot_bytes as u64, Ordering::Relaxed);
    header.version.store(VERSION, Ordering::Relaxed);
    header.magic.store(MAGIC, Ordering::Release);
    Ok(())
}

/// Removes a pipe's file and lock files (missing ones are fine).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    for side in [Side::Writer, Side::Reader] {
        let _ = std::fs::remove_file(lock_path(path, side));
    }
}

/// The writing end of a pipe. Blocking: call it from a thread that may sleep.
pub struct PipeWriter {
    end: End,
    /// The stream's schema: every batch must have its column types, since the reader
    /// decodes with them and trusts what it reads (see `PipeReader::decode_batch`).
    schema: SchemaRef,
    encoder: StreamEncoder,
    /// Reused between frames: the encoded buffers of the frame being written.
    parts: Vec<Buffer>,
    /// No frame written yet: the next one also carries the schema.
    first: bool,
    finished: bool,
}

impl PipeWriter {
    /// Attaches to the pipe at `path` as its one writer of batches of `schema`.
    pub fn open(path: &Path, schema: &SchemaRef) -> Result<Self> {
        let end = End::attach(path, Side::Writer)?;
        let encoder = StreamEncoder::try_new(schema).map_err(|e| end.error(e.to_string()))?;
        Ok(Self {
            end,
            schema: Arc::clone(schema),
            encoder,
            parts: Vec::new(),
            first: true,
            finished: false,
        })
    }

    /// Writes one batch, waiting for a free slot while the ring is full. Batches too large
    /// for a slot are split by rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.check_types(batch)?;
        // A view array's slice still points into all of its data buffers, which IPC writes
        // whole: compact them first, so that a frame (and a split) carries what it uses.
        let compacted;
        let batch = if has_views(&batch.schema()) {
            compacted = compact_views(batch).map_err(|e| self.end.error(e.to_string()))?;
            &compacted
        } else {
            batch
        };
        let budget = self.end.slot_bytes;
        let mut estimate = encoded_estimate(batch);
        if self.first {
            estimate += 512 * batch.num_columns();
        }
        if estimate > budget && batch.num_rows() > 1 {
            let parts = estimate.div_ceil(budget).max(2);
            let step = batch.num_rows().div_ceil(parts);
            // A part that would not encode smaller than the whole (data the estimate cannot
            // see being sliced) is not worth splitting into: one frame spans slots instead,
            // rather than a frame per row.
            if encoded_estimate(&batch.slice(0, step)) * 2 > estimate {
                return self.write_frame(batch);
            }
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = step.min(batch.num_rows() - offset);
                self.write(&batch.slice(offset, len))?;
                offset += len;
            }
            return Ok(());
        }
        self.write_frame(batch)
    }

    /// Refuses a batch whose columns are not of the stream's types: the reader would decode
    /// its bytes as the stream's types without checking them.
    fn check_types(&self, batch: &RecordBatch) -> Result<()> {
        let expected = self.schema.fields();
        let got = batch.schema_ref().fields();
        if got.len() != expected.len() {
            return Err(self.end.error(format!(
                "a batch of {} columns written to a stream of {}",
                got.len(),
                expected.len()
            )));
        }
        for (g, e) in got.iter().zip(expected.iter()) {
            if !g.data_type().equals_datatype(e.data_type()) {
                return Err(self.end.error(format!(
                    "column `{}` of a batch is {}, the stream's is {}",
                    e.name(),
                    g.data_type(),
                    e.data_type()
                )));
            }
        }
        Ok(())
    }

    /// Ends the stream: the reader sees the end after the last frame.
    pub fn finish(mut self) -> Result<()> {
        // The end-of-stream frame (with the schema, if no batch carried it).
        let placeholder = StreamEncoder::try_new(&arrow::datatypes::Schema::empty())
            .map_err(|e| self.end.error(e.to_string()))?;
        let encoder = std::mem::replace(&mut self.encoder, placeholder);
        let parts = encoder
            .finish()
            .map_err(|e| self.end.error(format!("cannot end the stream: {e}")))?;
        self.put(parts, 0)?;
        self.finished = true;
        self.end.close(FINISHED);
        Ok(())
    }

    /// Ends the stream with an error; the reader fails with `message` after the frames
    /// already written.
    pub fn fail(mut self, message: &str) {
        self.finished = true;
        self.end.set_error(message);
        self.end.close(FAILED);
    }

    fn write_frame(&mut self, batch: &RecordBatch) -> Result<()> {
        let parts = self
            .encoder
            .encode(batch)
            .map_err(|e| self.end.error(format!("cannot encode a batch: {e}")))?;
        self.first = false;
        self.put(parts, batch.num_rows())
    }

    /// Copies one frame's encoded parts into a free slot and publishes it.
    fn put(&mut self, parts: Vec<Buffer>, rows: usize) -> Result<()> {
        self.parts.clear();
        self.parts.extend(parts);
        let len: usize = self.parts.iter().map(Buffer::len).sum();
        if len > self.end.slot_bytes {
            return self.put_across_slots(len, rows);
        }
        let slot = self.end.free_slot()?;
        let target = self.end.map.slot_mut(slot, len);
        let mut at = 0;
        for part in &self.parts {
            target[at..at + part.len()].copy_from_slice(part.as_slice());
            at += part.len();
        }
        self.parts.clear();
        self.end.publish(slot, len, false);
        Ok(())
    }

    /// A frame larger than a slot (a row holding a value of megabytes): its bytes go into as
    /// many slots as they need, in order, every piece but the last marked as continued.
    fn put_across_slots(&mut self, len: usize, rows: usize) -> Result<()> {
        let slot_bytes = self.end.slot_bytes;
        tracing::debug!(rows, len, slot_bytes, "pipe frame spans several slots");
        let parts = std::mem::take(&mut self.parts);
        let mut pieces = parts.iter().map(Buffer::as_slice);
        let mut pending: Option<&[u8]> = None;
        let mut left = len;
        while left > 0 {
            let slot = self.end.free_slot()?;
            let fill = left.min(slot_bytes);
            let target = self.end.map.slot_mut(slot, fill);
            let mut at = 0;
            while at < fill {
                let Some(source) = pending.take().or_else(|| pieces.next()) else {
                    break;
                };
                let n = source.len().min(fill - at);
                target[at..at + n].copy_from_slice(&source[..n]);
                at += n;
                if n < source.len() {
                    pending = Some(&source[n..]);
                }
            }
            left -= fill;
            self.end.publish(slot, fill, left > 0);
        }
        drop(pieces);
        self.parts = parts;
        self.parts.clear();
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.end
                .set_error("the writer stopped before the end of the stream");
            self.end.close(FAILED);
        }
    }
}

/// The reading end of a pipe. Blocking: call it from a thread that may sleep.
///
/// Frames are decoded message by message: the schema is read once, and each record batch is
/// decoded where it lies, without Arrow's per-value validation (see
/// [`PipeReader::decode_batch`]). A stream with dictionaries is handed to arrow's
/// `StreamDecoder` instead, copied, since its dictionaries live across frames.
pub struct PipeReader {
    end: End,
    /// The stream's schema, once its message is read (streams without dictionaries).
    schema: Option<SchemaRef>,
    /// Only for streams with dictionaries: decodes every byte, copied.
    decoder: Option<StreamDecoder>,
    /// Slots leased to batches that are still alive (shared with their leases).
    leased: Arc<AtomicUsize>,
    /// The pieces so far of a frame written across several slots.
    joined: Vec<u8>,
    /// The last frame read is continued by the next.
    joining: bool,
    /// Batches decoded but not yet returned.
    pending: std::collections::VecDeque<RecordBatch>,
    done: bool,
}

impl PipeReader {
    /// Attaches to the pipe at `path` as its one reader.
    pub fn open(path: &Path) -> Result<Self> {
        let end = End::attach(path, Side::Reader)?;
        Ok(Self {
            end,
            schema: None,
            decoder: None,
            leased: Arc::new(AtomicUsize::new(0)),
            joined: Vec::new(),
            joining: false,
            pending: std::collections::VecDeque::with_capacity(2),
            done: false,
        })
    }

    /// The stream's schema, once the first frame has been read.
    pub fn schema(&self) -> Option<SchemaRef> {
        match &self.decoder {
            Some(decoder) => decoder.schema(),
            None => self.schema.clone(),
        }
    }

    /// The next batch, waiting while the ring is empty; `None` at the end of the stream.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Ok(Some(batch));
            }
            if self.done {
                return Ok(None);
            }
            let Some((slot, len, continued)) = self.end.next_frame()? else {
                self.done = true;
                if let Some(decoder) = &mut self.decoder {
                    decoder
                        .finish()
                        .map_err(|e| self.end.error(format!("the stream ended mid-frame: {e}")))?;
                } else if self.joining {
                    return Err(self.end.error("the stream ended mid-frame"));
                }
                return Ok(None);
            };
            // The pieces of a frame larger than a slot are copied out and joined.
            let buffer = if continued || self.joining {
                self.joined.extend_from_slice(self.end.map.slot(slot, len));
                self.end.release(slot);
                self.joining = continued;
                if continued {
                    continue;
                }
                Buffer::from_vec(std::mem::take(&mut self.joined))
            } else {
                self.take(slot, len)
            };
            match &mut self.decoder {
                Some(decoder) => feed(decoder, buffer, &self.end, &mut self.pending)?,
                None => self.decode_messages(buffer)?,
            }
        }
    }

    /// Decodes the IPC messages of a whole frame.
    fn decode_messages(&mut self, buffer: Buffer) -> Result<()> {
        let mut at = 0;
        while at < buffer.len() {
            let bytes = &buffer.as_slice()[at..];
            let bad = |what: &str| self.end.error(format!("bad frame: {what}"));
            let word = |range: std::ops::Range<usize>| -> Result<[u8; 4]> {
                bytes
                    .get(range)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .ok_or_else(|| bad("it ends inside a message's length"))
            };
            if word(0..4)? != [0xff; 4] {
                return Err(bad("a message without the IPC continuation marker"));
            }
            let meta_len = usize::try_from(i32::from_le_bytes(word(4..8)?))
                .map_err(|_| bad("a negative message length"))?;
            if meta_len == 0 {
                // The end-of-stream marker: the writer closes the pipe next.
                at += 8;
                continue;
            }
            let meta = bytes
                .get(8..8 + meta_len)
                .ok_or_else(|| bad("a message header longer than the frame"))?;
            let message = arrow::ipc::root_as_message(meta)
                .map_err(|e| bad(&format!("an unreadable message header: {e}")))?;
            let body_len =
                usize::try_from(message.bodyLength()).map_err(|_| bad("a negative body length"))?;
            let end = (8 + meta_len)
                .checked_add(body_len)
                .filter(|&end| end <= bytes.len())
                .ok_or_else(|| bad("a message body longer than the frame"))?;
            match message.header_type() {
                arrow::ipc::MessageHeader::Schema if self.schema.is_none() => {
                    let fb = message
                        .header_as_schema()
                        .ok_or_else(|| bad("an unreadable schema"))?;
                    let schema = arrow::ipc::convert::fb_to_schema(fb);
                    if has_dictionary(&schema) {
                        // Dictionaries live across frames: the stream decoder takes every
                        // byte from here on (this frame was copied, as first frames are).
                        let mut decoder = StreamDecoder::new();
                        feed(&mut decoder, buffer.slice(at), &self.end, &mut self.pending)?;
                        self.decoder = Some(decoder);
                        return Ok(());
                    }
                    self.schema = Some(Arc::new(schema));
                }
                arrow::ipc::MessageHeader::RecordBatch => {
                    let schema = self
                        .schema
                        .clone()
                        .ok_or_else(|| bad("a record batch before the schema"))?;
                    let body = buffer.slice_with_length(at + 8 + meta_len, body_len);
                    let batch = self.decode_batch(message, &body, schema)?;
                    if batch.num_rows() > 0 {
                        self.pending.push_back(batch);
                    }
                }
                other => {
                    return Err(bad(&format!(
                        "an unexpected {} message",
                        other.variant_name().unwrap_or("unknown")
                    )));
                }
            }
            at += end;
        }
        Ok(())
    }

    /// One record batch message, decoded where its body lies.
    fn decode_batch(
        &self,
        message: arrow::ipc::Message<'_>,
        body: &Buffer,
        schema: SchemaRef,
    ) -> Result<RecordBatch> {
        let bad = |e: arrow::error::ArrowError| self.end.error(format!("bad frame: {e}"));
        let header = message
            .header_as_record_batch()
            .ok_or_else(|| self.end.error("bad frame: not a record batch"))?;
        let version = message.version();
        let no_dictionaries = std::collections::HashMap::new();
        let mut trusted = arrow_data::UnsafeFlag::new();
        // SAFETY: this skips Arrow's per-value validation (every offset, every UTF-8
        // boundary), which cost the reader twice what the writer's copy costs and so held the
        // pipe to half a memcpy. The bytes are a message `PipeWriter` published: made by
        // arrow's own `StreamEncoder` from a batch that was valid in the writer, a runi
        // process of the same run, and published only once whole (the slot's length is
        // stored after the copy, with release ordering), while the protocol keeps each side
        // off the other's slots. The pipe file is mode 0600, so only processes of the same
        // user, which could write into this process's memory anyway, can change a frame.
        // `PipeWriter::write` refuses batches whose column types are not the stream's, so
        // the bytes are laid out as the schema used here says. The framing is still
        // checked: message lengths and the flatbuffer header above (errors); a buffer
        // outside the body makes arrow's decoder panic (a crash of this thread, not a read
        // out of bounds).
        unsafe { trusted.set(true) };
        arrow::ipc::reader::RecordBatchDecoder::try_new(
            body,
            header,
            schema,
            &no_dictionaries,
            &version,
        )
        .map_err(bad)?
        .with_skip_validation(trusted)
        .read_record_batch()
        .map_err(bad)
    }

    /// The frame in `slot` as an Arrow buffer: leased in place while few slots are leased,
    /// copied out (and the slot freed) otherwise.
    fn take(&self, slot: u32, len: usize) -> Buffer {
        let slots = self.end.slots as usize;
        // The first frame (schema unknown until decoded) is copied: with dictionaries, the
        // decoder would keep pointing into it.
        let in_place = self.decoder.is_none()
            && self.schema.is_some()
            && self.leased.load(Ordering::Acquire) < slots / 2;
        let bytes = self.end.map.slot(slot, len);
        if !in_place {
            let copy = Buffer::from_slice_ref(bytes);
            self.end.release(slot);
            return copy;
        }
        self.end.map.header().slot_state[slot as usize].store(LEASED, Ordering::Release);
        self.leased.fetch_add(1, Ordering::AcqRel);
        let lease = Lease {
            map: Arc::clone(&self.end.map),
            slot,
            leased: Arc::clone(&self.leased),
        };
        let ptr = NonNull::new(bytes.as_ptr().cast_mut()).unwrap_or(NonNull::dangling());
        // SAFETY: `ptr..ptr+len` lies in the mapping, which `lease` keeps alive. The slot is
        // in state LEASED until `lease` drops, and the writer writes only FREE slots, so the
        // bytes do not change while the buffer (or anything sliced from it) exists.
        unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(lease)) }
    }
}

/// Hands `buffer` to a stream decoder (streams with dictionaries), queueing the batches it
/// completes. The decoder hands out a batch without a body only when the next bytes arrive,
/// so one frame may complete two.
fn feed(
    decoder: &mut StreamDecoder,
    mut buffer: Buffer,
    end: &End,
    pending: &mut std::collections::VecDeque<RecordBatch>,
) -> Result<()> {
    while !buffer.is_empty() {
        let decoded = decoder
            .decode(&mut buffer)
            .map_err(|e| end.error(format!("bad frame: {e}")))?;
        if let Some(batch) = decoded.filter(|b| b.num_rows() > 0) {
            pending.push_back(batch);
        }
    }
    Ok(())
}

/// Keeps a slot (and the mapping) alive while Arrow buffers point into it.
struct Lease {
    map: Arc<Mapping>,
    slot: u32,
    leased: Arc<AtomicUsize>,
}

impl std::panic::RefUnwindSafe for Lease {}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leased.fetch_sub(1, Ordering::AcqRel);
        free_slot(&self.map, self.slot);
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let state = if self.done { FINISHED } else { FAILED };
        self.end.close(state);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Writer,
    Reader,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Writer => "writer",
            Side::Reader => "reader",
        }
    }
}

/// One attached end: the mapping, the lock that says "alive", and which side it is.
struct End {
    path: PathBuf,
    map: Arc<Mapping>,
    side: Side,
    slots: u32,
    slot_bytes: usize,
    /// Held (exclusively locked) for as long as this end is attached.
    _lock: File,
    /// The peer's lock file, opened once, probed while waiting.
    peer_lock: File,
    /// When this end attached: a peer that has not attached [`ATTACH_TIMEOUT`] later is
    /// taken as never coming (it failed before it could).
    attached_at: std::time::Instant,
}

impl End {
    fn attach(path: &Path, side: Side) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| pipe_error(path, format!("cannot open: {e}")))?;
        let map = Arc::new(Mapping::new(&file, path)?);
        let header = map.header();
        if header.magic.load(Ordering::Acquire) != MAGIC
            || header.version.load(Ordering::Relaxed) != VERSION
        {
            return Err(pipe_error(path, "not a Runink pipe (bad magic or version)"));
        }
        let slots = header.slots.load(Ordering::Relaxed);
        let slot_bytes = header.slot_bytes.load(Ordering::Relaxed) as usize;
        if !(2..=MAX_SLOTS).contains(&slots)
            || !slots.is_power_of_two()
            || map.len() != HEADER_BYTES + slots as usize * slot_bytes
        {
            return Err(pipe_error(path, "corrupt header (slot count or size)"));
        }
        let lock = File::open(lock_path(path, side))
            .map_err(|e| pipe_error(path, format!("cannot open its {} lock: {e}", side.name())))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => {
                pipe_error(path, format!("another {} is already attached", side.name()))
            }
            std::fs::TryLockError::Error(e) => {
                pipe_error(path, format!("cannot lock its {} lock: {e}", side.name()))
            }
        })?;
        let peer = match side {
            Side::Writer => Side::Reader,
            Side::Reader => Side::Writer,
        };
        let peer_lock = File::open(lock_path(path, peer))
            .map_err(|e| pipe_error(path, format!("cannot open its {} lock: {e}", peer.name())))?;
        let line = map.line(side);
        if line
            .state
            .compare_exchange(DETACHED, ATTACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(pipe_error(
                path,
                format!("its {} has already been used", side.name()),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            side,
            slots,
            slot_bytes,
            _lock: lock,
            peer_lock,
            attached_at: std::time::Instant::now(),
        })
    }

    fn error(&self, message: impl Into<String>) -> EngineError {
        pipe_error(&self.path, message)
    }

    fn peer(&self) -> &SideLine {
        match self.side {
            Side::Writer => self.map.line(Side::Reader),
            Side::Reader => self.map.line(Side::Writer),
        }
    }

    /// Fails if the peer attached and then went away without closing, or has not attached
    /// within [`ATTACH_TIMEOUT`].
    fn check_peer(&self) -> Result<()> {
        let state = self.peer().state.load(Ordering::Acquire);
        let peer = match self.side {
            Side::Writer => "reader",
            Side::Reader => "writer",
        };
        if state == DETACHED && self.attached_at.elapsed() >= ATTACH_TIMEOUT {
            return Err(self.error(format!(
                "the {peer} did not attach within {} s",
                ATTACH_TIMEOUT.as_secs()
            )));
        }
        if state != ATTACHED {
            return Ok(());
        }
        match self.peer_lock.try_lock_shared() {
            Ok(()) => {
                let _ = self.peer_lock.unlock();
                // It may have closed between the two looks.
                if self.peer().state.load(Ordering::Acquire) == ATTACHED {
                    return Err(self.error(format!(
                        "the {peer} process died (it holds the pipe no more)"
                    )));
                }
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// Writer: a free slot, waiting for the reader to free one while none is.
    fn free_slot(&self) -> Result<u32> {
        let freed = &self.map.line(Side::Reader).aux;
        let me = self.map.line(Side::Writer);
        loop {
            if let Some(slot) = self.find_free() {
                return Ok(slot);
            }
            let seen = freed.load(Ordering::SeqCst);
            me.waiting.store(1, Ordering::SeqCst);
            if let Some(slot) = self.find_free() {
                me.waiting.store(0, Ordering::SeqCst);
                return Ok(slot);
            }
            match self.peer().state.load(Ordering::Acquire) {
                FINISHED | FAILED => {
                    me.waiting.store(0, Ordering::SeqCst);
                    return Err(self.error("the reader closed the pipe before the end"));
                }
                _ => {}
            }
            futex_wait(freed, seen, LIVENESS_INTERVAL);
            me.waiting.store(0, Ordering::SeqCst);
            self.check_peer()?;
        }
    }

    fn find_free(&self) -> Option<u32> {
        let header = self.map.header();
        (0..self.slots).find(|&s| {
            header.slot_state[s as usize]
                .compare_exchange(FREE, WRITTEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Writer: makes the frame in `slot` the next one the reader sees; `continued`: the next
    /// frame carries the rest of this one's bytes.
    fn publish(&self, slot: u32, len: usize, continued: bool) {
        let header = self.map.header();
        let line = self.map.line(Side::Writer);
        let head = line.count.load(Ordering::Relaxed);
        let marked = len as u32 | if continued { CONTINUED } else { 0 };
        header.frame_len[slot as usize].store(marked, Ordering::Relaxed);
        header.queue[(head % self.slots) as usize].store(slot, Ordering::Relaxed);
        line.count.store(head.wrapping_add(1), Ordering::SeqCst);
        if self.map.line(Side::Reader).waiting.load(Ordering::SeqCst) != 0 {
            futex_wake(&line.count);
        }
    }

    /// Reader: the next frame's slot, length and whether the next frame continues it, waiting
    /// while there is none; `None` at the end of the stream.
    fn next_frame(&self) -> Result<Option<(u32, usize, bool)>> {
        let header = self.map.header();
        let writer = self.map.line(Side::Writer);
        let me = self.map.line(Side::Reader);
        let tail = me.count.load(Ordering::Relaxed);
        loop {
            let head = writer.count.load(Ordering::SeqCst);
            if head != tail {
                let slot = header.queue[(tail % self.slots) as usize].load(Ordering::Relaxed);
                if slot >= self.slots {
                    return Err(self.error("corrupt frame table"));
                }
                let marked = header.frame_len[slot as usize].load(Ordering::Relaxed);
                let len = (marked & !CONTINUED) as usize;
                if len > self.slot_bytes {
                    return Err(self.error("corrupt frame table"));
                }
                me.count.store(tail.wrapping_add(1), Ordering::Release);
                return Ok(Some((slot, len, marked & CONTINUED != 0)));
            }
            match writer.state.load(Ordering::Acquire) {
                FINISHED if writer.count.load(Ordering::SeqCst) == tail => return Ok(None),
                FAILED if writer.count.load(Ordering::SeqCst) == tail => {
                    return Err(self.error(format!("the writer failed: {}", self.read_error())));
                }
                FINISHED | FAILED => continue,
                _ => {}
            }
            me.waiting.store(1, Ordering::SeqCst);
            if writer.count.load(Ordering::SeqCst) == head
                && writer.state.load(Ordering::SeqCst) < FINISHED
            {
                futex_wait(&writer.count, head, LIVENESS_INTERVAL);
            }
            me.waiting.store(0, Ordering::SeqCst);
            self.check_peer()?;
        }
    }

    fn release(&self, slot: u32) {
        free_slot(&self.map, slot);
    }

    fn set_error(&self, message: &str) {
        let header = self.map.header_mut_error();
        let bytes = message.as_bytes();
        let mut len = bytes.len().min(ERROR_BYTES);
        while !message.is_char_boundary(len) {
            len -= 1;
        }
        header[..len].copy_from_slice(&bytes[..len]);
        self.map
            .line(Side::Writer)
            .aux
            .store(len as u32, Ordering::Release);
    }

    fn read_error(&self) -> String {
        let len =
            (self.map.line(Side::Writer).aux.load(Ordering::Acquire) as usize).min(ERROR_BYTES);
        String::from_utf8_lossy(&self.map.error_bytes()[..len]).into_owned()
    }

    fn close(&self, state: u32) {
        let line = self.map.line(self.side);
        line.state.store(state, Ordering::SeqCst);
        // Wake the peer whatever it waits on.
        futex_wake(&self.map.line(Side::Writer).count);
        futex_wake(&self.map.line(Side::Reader).aux);
    }
}

fn free_slot(map: &Mapping, slot: u32) {
    let header = map.header();
    header.slot_state[slot as usize].store(FREE, Ordering::SeqCst);
    let reader = map.line(Side::Reader);
    reader.aux.fetch_add(1, Ordering::SeqCst);
    if map.line(Side::Writer).waiting.load(Ordering::SeqCst) != 0 {
        futex_wake(&reader.aux);
    }
}

/// A shared mapping of a pipe file.
struct Mapping {
    map: MmapMut,
}

impl Mapping {
    fn new(file: &File, path: &Path) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|e| pipe_error(path, format!("cannot stat: {e}")))?
            .len() as usize;
        if len < HEADER_BYTES {
            return Err(pipe_error(path, "too small to be a pipe"));
        }
        // SAFETY: the file is a pipe file that only Runink's pipe ends map; every access to
        // shared state goes through atomics in the header, and slot bytes are written only
        // by the writer while the slot is WRITTEN-and-unpublished (see the module docs).
        let map = unsafe { MmapOptions::new().populate().map_mut(file) }
            .map_err(|e| pipe_error(path, format!("cannot map: {e}")))?;
        Ok(Self { map })
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned and at least HEADER_BYTES long (checked in
        // `new`), Header fits in HEADER_BYTES (const assert), and every field but `error`
        // is an atomic, which may be shared between threads and processes.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    fn line(&self, side: Side) -> &SideLine {
        match side {
            Side::Writer => &self.header().writer,
            Side::Reader => &self.header().reader,
        }
    }

    fn error_bytes(&self) -> &[u8] {
        &self.header().error
    }

    #[allow(clippy::mut_from_ref)]
    fn header_mut_error(&self) -> &mut [u8] {
        let offset = std::mem::offset_of!(Header, error);
        // SAFETY: in bounds of the header; only the writer writes the error text, and only
        // before it publishes FAILED (Release), after which the reader reads it (Acquire).
        unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().cast_mut().add(offset), ERROR_BYTES)
        }
    }

    fn slot(&self, slot: u32, len: usize) -> &[u8] {
        let start = self.slot_start(slot);
        &self.map[start..start + len]
    }

    #[allow(clippy::mut_from_ref)]
    fn slot_mut(&self, slot: u32, len: usize) -> &mut [u8] {
        let start = self.slot_start(slot);
        assert!(start + len <= self.map.len(), "slot out of the mapping");
        // SAFETY: in bounds (asserted). The writer holds the slot in state WRITTEN and has
        // not published it, so no reader looks at these bytes and no other writer exists.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().cast_mut().add(start), len) }
    }

    fn slot_start(&self, slot: u32) -> usize {
        let slot_bytes = self.header().slot_bytes.load(Ordering::Relaxed) as usize;
        HEADER_BYTES + slot as usize * slot_bytes
    }
}

fn lock_path(path: &Path, side: Side) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(side.name());
    PathBuf::from(name)
}

fn pipe_error(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::Pipe {
        pipe: path.display().to_string(),
        message: message.into(),
    }
}

/// Bytes the IPC encoding of `batch` takes, roughly (its buffers plus framing).
fn encoded_estimate(batch: &RecordBatch) -> usize {
    let data: usize = batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let slice = slice_bytes(&data);
            // View arrays: the data buffers come on top of the views.
            let views: usize = match c.data_type() {
                DataType::Utf8View | DataType::BinaryView => {
                    data.buffers().iter().skip(1).map(|b| b.len()).sum()
                }
                _ => 0,
            };
            slice.saturating_add(views)
        })
        .sum();
    data + 1024 + 256 * batch.num_columns()
}

/// Bytes the rows of `data` (a slice, maybe) hold, as IPC writes them. Arrow's
/// `get_slice_memory_size` counts a list's values whole, however few rows the list is
/// sliced to, while IPC writes only the values the rows use: estimated that way, a slice
/// of a list column never looked smaller, and batches were split down to a frame per row
/// (ORDER BY … LIMIT over a list column on slices ran 10× slower than in one process).
fn slice_bytes(data: &arrow::array::ArrayData) -> usize {
    let len = data.len();
    let nulls = data.nulls().map_or(0, |_| len.div_ceil(8));
    let listed = |start: usize, end: usize, offset_bytes: usize| {
        let values = data.child_data()[0].slice(start, end.saturating_sub(start));
        nulls + (len + 1) * offset_bytes + slice_bytes(&values)
    };
    match data.data_type() {
        DataType::List(_) | DataType::Map(_, _) if len > 0 => {
            let offsets = &data.buffer::<i32>(0)[..=len];
            listed(offsets[0] as usize, offsets[len] as usize, 4)
        }
        DataType::LargeList(_) if len > 0 => {
            let offsets = &data.buffer::<i64>(0)[..=len];
            listed(offsets[0] as usize, offsets[len] as usize, 8)
        }
        // A struct's slice slices its children (arrow-data), so their sizes are the rows'.
        DataType::Struct(_) => nulls + data.child_data().iter().map(slice_bytes).sum::<usize>(),
        _ => data.get_slice_memory_size().unwrap_or(usize::MAX / 4),
    }
}

/// Whether top-level columns are string or binary views (nested views are not compacted).
fn has_views(schema: &arrow::datatypes::Schema) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
}

/// The batch with its view columns' data buffers holding only what their rows use.
fn compact_views(
    batch: &RecordBatch,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, AsArray};
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(c.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(c),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

fn has_dictionary(schema: &arrow::datatypes::Schema) -> bool {
    fn field(f: &Field) -> bool {
        data_type(f.data_type())
    }
    fn data_type(t: &DataType) -> bool {
        match t {
            DataType::Dictionary(..) => true,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::FixedSizeList(f, _)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::Map(f, _) => field(f),
            DataType::Struct(fields) => fields.iter().any(|f| field(f)),
            DataType::Union(fields, _) => fields.iter().any(|(_, f)| field(f)),
            DataType::RunEndEncoded(a, b) => field(a) || field(b),
            _ => false,
        }
    }
    schema.fields().iter().any(|f| field(f))
}

/// Sleeps while `word` holds `expected`, at most `timeout` (shared, not private: the word is
/// in memory mapped by two processes).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; a spurious or
    // early return (EAGAIN, EINTR, ETIMEDOUT) is fine because every caller re-checks.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
