//! Run-wide memory of the values a `unique` column has seen: compact, one hash probe per value.
//!
//! A `HashSet<Box<str>>` costs an allocation and two probes per new value,
//! which made `unique` a hundred times dearer than every other rule. Here
//! short values (and integers) are packed into 128-bit keys held in a
//! [`KeyTable`]: open addressing, the key itself in the slot, so a probe is
//! one cache line. Longer values are appended to one byte arena and a table
//! maps a 64-bit hash to the newest arena entry with that hash; entries
//! sharing a hash are chained. Hashes are keyed per process (from std's
//! `RandomState`), so data cannot be crafted to collide.
//!
//! At millions of keys every probe misses the caches, and on 4 KiB pages the
//! TLB too: in a run that also parses CSV and encodes Parquet, the page walks
//! made `unique` several times dearer than in isolation. Large tables are
//! therefore anonymous mappings advised as transparent huge pages (a hint:
//! where the kernel declines, they are ordinary pages), and a batch's keys are
//! probed in groups whose first slots are loaded together, so their misses
//! overlap instead of queueing.

use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::{BuildHasher, Hasher};

/// Byte strings seen so far.
pub(crate) struct SeenBytes {
    /// Values of up to [`SHORT_BYTES_MAX`] bytes, packed into the key itself: one probe,
    /// no arena. Ids, codes and keys are usually this short, and at millions of values
    /// the cache misses of the arena path dominate the cost of `unique`.
    short: KeyTable,
    /// Hash → index of the newest entry with that hash (longer values).
    table: HashMap<u64, usize, PassThrough>,
    arena: Vec<u8>,
    entries: Vec<ArenaEntry>,
    seed: u64,
}

struct ArenaEntry {
    start: usize,
    len: usize,
    /// The previous entry with the same hash (`usize::MAX`: none).
    next: usize,
}

const NONE: usize = usize::MAX;

/// Longest value kept packed in a `u128` key (the last byte holds the length).
const SHORT_BYTES_MAX: usize = 15;

impl SeenBytes {
    pub(crate) fn new() -> SeenBytes {
        SeenBytes {
            short: KeyTable::new(),
            table: HashMap::with_hasher(PassThrough),
            arena: Vec::new(),
            entries: Vec::new(),
            seed: random_seed(),
        }
    }

    /// Whether `value` was recorded, without recording it.
    pub(crate) fn contains(&self, value: &[u8]) -> bool {
        match pack_short(value) {
            Some(key) => self.short.contains(key),
            None => {
                let h = hash_bytes(value, self.seed);
                let mut i = self.table.get(&h).copied().unwrap_or(NONE);
                while i != NONE {
                    let e = &self.entries[i];
                    if &self.arena[e.start..e.start + e.len] == value {
                        return true;
                    }
                    i = e.next;
                }
                false
            }
        }
    }

    /// Records `value`; true if it was seen before.
    pub(crate) fn seen_before(&mut self, value: &[u8]) -> bool {
        match pack_short(value) {
            Some(key) => self.short.seen_before(key),
            None => {
                let h = hash_bytes(value, self.seed);
                self.seen_before_hashed(value, h)
            }
        }
    }

    /// Records `count` values, `value(j)` for `j` in `0..count`, telling `seen(j, before)`
    /// for each: the same answers as [`SeenBytes::seen_before`] one by one (values equal
    /// to one another are recorded in order), with the short values' probes overlapped.
    pub(crate) fn seen_before_each<'v>(
        &mut self,
        count: usize,
        value: impl Fn(usize) -> &'v [u8],
        mut seen: impl FnMut(usize, bool),
    ) {
        let mut keys = Vec::with_capacity(count);
        // Where each short key's value is, once a long value has been met (a short and a
        // long value are never equal, so the two paths cannot disagree on order).
        let mut at: Option<Vec<usize>> = None;
        for j in 0..count {
            let v = value(j);
            match pack_short(v) {
                Some(key) => {
                    keys.push(key);
                    if let Some(at) = &mut at {
                        at.push(j);
                    }
                }
                None => {
                    at.get_or_insert_with(|| (0..keys.len()).collect());
                    let h = hash_bytes(v, self.seed);
                    seen(j, self.seen_before_hashed(v, h));
                }
            }
        }
        match &at {
            None => self.short.seen_before_all(&keys, &mut seen),
            Some(at) => self
                .short
                .seen_before_all(&keys, |k, before| seen(at[k], before)),
        }
    }

    fn seen_before_hashed(&mut self, value: &[u8], h: u64) -> bool {
        let head = match self.table.entry(h) {
            MapEntry::Vacant(v) => {
                v.insert(self.entries.len());
                NONE
            }
            MapEntry::Occupied(mut o) => {
                let mut i = *o.get();
                while i != NONE {
                    let e = &self.entries[i];
                    if &self.arena[e.start..e.start + e.len] == value {
                        return true;
                    }
                    i = e.next;
                }
                std::mem::replace(o.get_mut(), self.entries.len())
            }
        };
        self.entries.push(ArenaEntry {
            start: self.arena.len(),
            len: value.len(),
            next: head,
        });
        self.arena.extend_from_slice(value);
        false
    }

    pub(crate) fn len(&self) -> usize {
        self.short.len() + self.entries.len()
    }

    /// Bytes held (capacity, not length: what the allocator gave out).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.short.heap_bytes()
            + self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<ArenaEntry>()
            + self.table.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
    }
}

/// Packs a value of up to [`SHORT_BYTES_MAX`] bytes into a key; the last byte holds the
/// length plus one, so "a" and "a\0" differ and no packed value is zero.
fn pack_short(value: &[u8]) -> Option<u128> {
    if value.len() > SHORT_BYTES_MAX {
        return None;
    }
    let mut packed = [0u8; 16];
    packed[..value.len()].copy_from_slice(value);
    packed[15] = value.len() as u8 + 1;
    Some(u128::from_le_bytes(packed))
}

/// 64-bit integers seen so far.
pub(crate) struct SeenInts(KeyTable);

impl SeenInts {
    pub(crate) fn new() -> SeenInts {
        SeenInts(KeyTable::new())
    }

    /// Whether `value` was recorded, without recording it.
    pub(crate) fn contains(&self, value: i64) -> bool {
        self.0.contains(Self::key(value))
    }

    /// Records `value`; true if it was seen before.
    pub(crate) fn seen_before(&mut self, value: i64) -> bool {
        self.0.seen_before(Self::key(value))
    }

    /// The key of an integer: bit 64 set, so no key is zero.
    fn key(value: i64) -> u128 {
        (1u128 << 64) | u128::from(value as u64)
    }

    /// Records `count` integers, `value(j)` for `j` in `0..count`, telling `seen(j, before)`
    /// for each in order.
    pub(crate) fn seen_before_each(
        &mut self,
        count: usize,
        value: impl Fn(usize) -> i64,
        seen: impl FnMut(usize, bool),
    ) {
        let keys: Vec<u128> = (0..count).map(|j| Self::key(value(j))).collect();
        self.0.seen_before_all(&keys, seen);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

/// How many keys ahead of the one being probed a key's first slot is prefetched: enough
/// loads in flight to cover a memory latency.
const PREFETCH_AHEAD: usize = 16;

/// A set of non-zero 128-bit keys: open addressing with linear probing, the key itself in
/// the slot (zero: empty), at most half full. One probe is one cache line. The price is
/// 32–64 bytes per key (16-byte slots, a quarter to a half of them used), more than a
/// `HashSet<i64>` for integers; it is reserved in the run's memory pool like the rest of
/// the `unique` state.
pub(crate) struct KeyTable {
    slots: Slots,
    /// `64 - log2(slots)`: a hash's top bits pick its first slot.
    shift: u32,
    len: usize,
    seed: u64,
}

/// Slots of a new table (1 KiB: a `unique` column has 16 shards of tables).
const KEY_TABLE_SLOTS_MIN: usize = 64;

impl KeyTable {
    pub(crate) fn new() -> KeyTable {
        KeyTable {
            slots: Slots::zeroed(KEY_TABLE_SLOTS_MIN),
            shift: 64 - KEY_TABLE_SLOTS_MIN.trailing_zeros(),
            len: 0,
            seed: random_seed(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.bytes()
    }

    fn first_slot(&self, key: u128) -> usize {
        let h = fold_mul(
            fold_mul((key as u64) ^ self.seed, ((key >> 64) as u64) ^ K1),
            self.seed ^ K2,
        );
        (h >> self.shift) as usize
    }

    /// Makes room for `additional` more keys without growing in between.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = (self.len + additional).saturating_mul(2);
        let mut slots = self.slots.len();
        while slots < needed {
            slots *= 2;
        }
        if slots == self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, Slots::zeroed(slots));
        self.shift = 64 - slots.trailing_zeros();
        let mask = slots - 1;
        for k in old.as_slice().iter().map(|s| u128::from_ne_bytes(*s)) {
            if k != 0 {
                let mut i = self.first_slot(k);
                let new = self.slots.as_mut_slice();
                while new[i] != [0u8; 16] {
                    i = (i + 1) & mask;
                }
                new[i] = k.to_ne_bytes();
            }
        }
    }

    /// Records `key` (not zero); true if it was there before.
    pub(crate) fn seen_before(&mut self, key: u128) -> bool {
        self.reserve(1);
        let i = self.first_slot(key);
        self.probe(key, i)
    }

    /// Whether `key` (not zero) is in the table.
    pub(crate) fn contains(&self, key: u128) -> bool {
        let want = key.to_ne_bytes();
        let slots = self.slots.as_slice();
        let mask = slots.len() - 1;
        let mut i = self.first_slot(key);
        loop {
            if slots[i] == want {
                return true;
            }
            if slots[i] == [0u8; 16] {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    /// Records each key of `keys` (none zero), telling `seen(j, before)` in order.
    ///
    /// Each key's first slot is prefetched [`PREFETCH_AHEAD`] keys before it is probed, so
    /// the cache misses of a large table overlap instead of queueing. (Plain loads overlap
    /// too, but each one that misses holds up the instructions behind it until it lands;
    /// a prefetch does not.)
    pub(crate) fn seen_before_all(&mut self, keys: &[u128], mut seen: impl FnMut(usize, bool)) {
        self.reserve(keys.len());
        let first: Vec<usize> = keys.iter().map(|&k| self.first_slot(k)).collect();
        for &i in first.iter().take(PREFETCH_AHEAD) {
            prefetch(&self.slots.as_slice()[i]);
        }
        for (j, (&key, &i)) in keys.iter().zip(&first).enumerate() {
            if let Some(&ahead) = first.get(j + PREFETCH_AHEAD) {
                prefetch(&self.slots.as_slice()[ahead]);
            }
            seen(j, self.probe(key, i));
        }
    }

    fn probe(&mut self, key: u128, mut i: usize) -> bool {
        let want = key.to_ne_bytes();
        let slots = self.slots.as_mut_slice();
        let mask = slots.len() - 1;
        loop {
            let slot = &mut slots[i];
            if *slot == want {
                return true;
            }
            if *slot == [0u8; 16] {
                *slot = want;
                self.len += 1;
                return false;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Starts loading `slot`'s cache line without waiting for it.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(slot: &[u8; 16]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes no memory, and `slot` is a
    // valid reference besides. SSE, which has it, is part of x86-64's baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(slot.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::hint::black_box(slot[0]);
}

/// A key table's slots, zeroed: on the heap while small, in an anonymous mapping advised as
/// huge pages once it spans one.
enum Slots {
    Heap(Vec<[u8; 16]>),
    Mapped {
        map: memmap2::MmapMut,
        /// Where the first huge-page-aligned byte is (the mapping is one huge page longer
        /// than the slots; the unused ends are never touched, so never backed).
        start: usize,
        len: usize,
    },
}

/// The huge page size transparent huge pages use on x86-64 and most arm64 kernels.
const HUGE_PAGE_BYTES: usize = 2 << 20;

impl Slots {
    fn zeroed(len: usize) -> Slots {
        let bytes = len * 16;
        if bytes >= HUGE_PAGE_BYTES
            && let Ok(map) = memmap2::MmapOptions::new()
                .len(bytes + HUGE_PAGE_BYTES)
                .map_anon()
        {
            let addr = map.as_ptr() as usize;
            let start = addr.next_multiple_of(HUGE_PAGE_BYTES) - addr;
            // Only a hint: without it the table works, on small pages.
            let _ = map.advise_range(memmap2::Advice::HugePage, start, bytes);
            return Slots::Mapped { map, start, len };
        }
        Slots::Heap(vec![[0u8; 16]; len])
    }

    fn len(&self) -> usize {
        match self {
            Slots::Heap(v) => v.len(),
            Slots::Mapped { len, .. } => *len,
        }
    }

    fn bytes(&self) -> usize {
        self.len() * 16
    }

    fn as_slice(&self) -> &[[u8; 16]] {
        match self {
            Slots::Heap(v) => v,
            Slots::Mapped { map, start, len } => map[*start..*start + *len * 16].as_chunks().0,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [[u8; 16]] {
        match self {
            Slots::Heap(v) => v,
            Slots::Mapped { map, start, len } => map[*start..*start + *len * 16].as_chunks_mut().0,
        }
    }
}

/// A per-process random key for hashes that data must not be able to steer.
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(0x5eed_u64)
}

/// The keyed hash that picks a byte string's shard of a `unique` column.
pub(crate) fn shard_hash_bytes(value: &[u8], seed: u64) -> u64 {
    hash_bytes(value, seed)
}

/// The keyed hash that picks an integer's shard of a `unique` column.
pub(crate) fn shard_hash_int(value: i64, seed: u64) -> u64 {
    fold_mul(value as u64 ^ seed, K1)
}

/// Multiply two words to 128 bits and fold: the mixing step of wyhash/foldhash.
fn fold_mul(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    (full as u64) ^ ((full >> 64) as u64)
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// A keyed hash of a byte string, 16 bytes per step.
fn hash_bytes(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K0);
    let mut chunks = bytes.chunks_exact(16);
    for c in &mut chunks {
        h = fold_mul(word(&c[..8]) ^ h ^ K1, word(&c[8..]) ^ K2);
    }
    let rest = chunks.remainder();
    let (a, b) = if rest.len() > 8 {
        (word(&rest[..8]), word(&rest[8..]))
    } else {
        (word(rest), 0)
    };
    fold_mul(fold_mul(a ^ h ^ K1, b ^ K2), seed ^ K0)
}

/// The table's keys are already hashes; hashing them again is wasted work.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach this table; stay correct for anything else.
        self.0 = hash_bytes(bytes, self.0);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn remembers_values_across_calls() {
        let mut s = SeenBytes::new();
        assert!(!s.seen_before(b"a"));
        assert!(!s.seen_before(b""));
        assert!(!s.seen_before(b"a longer value that spans chunks!"));
        assert!(s.seen_before(b"a"));
        assert!(s.seen_before(b""));
        assert!(s.seen_before(b"a longer value that spans chunks!"));
        assert!(!s.seen_before(b"b"));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn short_values_are_packed_without_confusion() {
        let mut s = SeenBytes::new();
        // Trailing zero bytes and lengths around the packing limit stay distinct.
        let values: [&[u8]; 5] = [
            b"a",
            b"a\0",
            b"a\0\0",
            b"123456789012345",
            b"1234567890123456",
        ];
        for v in values {
            assert!(!s.seen_before(v), "{v:?} seen too early");
        }
        for v in values {
            assert!(s.contains(v), "{v:?} not contained");
            assert!(s.seen_before(v), "{v:?} forgotten");
        }
        assert_eq!(s.len(), 5);
        // Looking does not record, short or long.
        for v in [&b"b"[..], b"a value longer than fifteen bytes"] {
            assert!(!s.contains(v));
            assert!(!s.contains(v));
            assert!(!s.seen_before(v));
            assert!(s.contains(v));
        }
        let mut ints = SeenInts::new();
        for v in [0, -1, i64::MIN, i64::MAX] {
            assert!(!ints.contains(v));
            assert!(!ints.seen_before(v));
            assert!(ints.contains(v));
        }
    }

    #[test]
    fn chains_handle_hash_collisions() {
        // Every value on one hash: lookups must walk the chain and compare bytes.
        let mut s = SeenBytes::new();
        assert!(!s.seen_before_hashed(b"x", 7));
        assert!(!s.seen_before_hashed(b"y", 7));
        assert!(s.seen_before_hashed(b"x", 7));
        assert!(s.seen_before_hashed(b"y", 7));
        assert!(!s.seen_before_hashed(b"z", 7));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn batches_agree_with_one_by_one_across_growth_and_huge_pages() {
        // 300 000 keys grow the table past the huge-page threshold (2 MiB of slots) and
        // through several re-hashes; long values go to the arena in the same batches.
        let values: Vec<Vec<u8>> = (0..300_000u32)
            .map(|i| {
                if i % 7 == 0 {
                    format!("a value longer than fifteen bytes {i}").into_bytes()
                } else {
                    format!("T{i:07}").into_bytes()
                }
            })
            .collect();
        let mut batched = SeenBytes::new();
        let mut single = SeenBytes::new();
        // Every value twice, the second time in a later batch and once within one batch.
        let order: Vec<usize> = (0..values.len())
            .chain((0..values.len()).rev())
            .chain([5, 5, 14, 14])
            .collect();
        for chunk in order.chunks(8192) {
            let mut answers = vec![None; chunk.len()];
            batched.seen_before_each(
                chunk.len(),
                |j| values[chunk[j]].as_slice(),
                |j, before| answers[j] = Some(before),
            );
            for (j, &v) in chunk.iter().enumerate() {
                assert_eq!(
                    answers[j],
                    Some(single.seen_before(&values[v])),
                    "value {v}"
                );
            }
        }
        assert_eq!(batched.len(), values.len());
        assert!(batched.heap_bytes() >= HUGE_PAGE_BYTES);
    }

    #[test]
    fn integers_are_told_apart_at_the_edges() {
        let mut s = SeenInts::new();
        let values = [0, -1, 1, i64::MIN, i64::MAX, 0, i64::MIN];
        let mut answers = Vec::new();
        s.seen_before_each(
            values.len(),
            |j| values[j],
            |_, before| answers.push(before),
        );
        assert_eq!(answers, [false, false, false, false, false, true, true]);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn hashes_differ_for_close_inputs() {
        let seed = 42;
        let hs: HashSet<u64> = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "T0000001",
            "T0000002",
            "T00000010000000000",
        ]
        .iter()
        .map(|s| hash_bytes(s.as_bytes(), seed))
        .collect();
        assert_eq!(hs.len(), 8);
    }
}
