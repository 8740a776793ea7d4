//! Run-wide memory of the values a `unique` column has seen: compact, one hash probe per value.
//!
//! A `HashSet<Box<str>>` costs an allocation and two probes per new value,
//! which made `unique` a hundred times dearer than every other rule. Here
//! short values (and integers) are packed into 64- or 128-bit keys held in
//! [`KeyTable`]s: open addressing, the key itself in the slot, so a probe is
//! one cache line. Integers and values of up to 8 bytes take 8-byte slots,
//! half the memory (and cache) of 16-byte ones. Longer values are appended to one byte arena and a table
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
//!
//! Most cheaply of all, keys that arrive in ascending order (ids issued in
//! order and read in order, the common case) are not hashed: a batch's
//! ascending keys that lie beyond every key kept so far are stored as a sorted
//! run ([`Runs`]), a copy instead of a cache miss per key.

use std::collections::BTreeMap;
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::{BuildHasher, Hasher};

/// Byte strings seen so far.
pub(crate) struct SeenBytes {
    /// Values of up to 7 bytes, packed with their length into an 8-byte key.
    tiny: KeyTable<8>,
    /// Values of exactly 8 bytes, as they are (ids like `T0000001`).
    eight: KeyTable<8>,
    /// Values of 9 to [`SHORT_BYTES_MAX`] bytes, packed with their length into a 16-byte
    /// key. Together, the short values need no arena: one probe each. Ids, codes and keys
    /// are usually this short, and at millions of values the cache misses of the arena
    /// path dominate the cost of `unique`.
    short: KeyTable<16>,
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

/// Longest value kept packed in a key (16 bytes; the last one holds the length).
const SHORT_BYTES_MAX: usize = 15;

impl SeenBytes {
    pub(crate) fn new() -> SeenBytes {
        SeenBytes {
            tiny: KeyTable::new(),
            eight: KeyTable::new(),
            short: KeyTable::new(),
            table: HashMap::with_hasher(PassThrough),
            arena: Vec::new(),
            entries: Vec::new(),
            seed: random_seed(),
        }
    }

    /// Whether `value` was recorded, without recording it.
    pub(crate) fn contains(&self, value: &[u8]) -> bool {
        match Short::of(value) {
            Some(Short::Tiny(key)) => self.tiny.contains(key),
            Some(Short::Eight(key)) => self.eight.contains(key),
            Some(Short::Wide(key)) => self.short.contains(key),
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
        match Short::of(value) {
            Some(Short::Tiny(key)) => self.tiny.seen_before(key),
            Some(Short::Eight(key)) => self.eight.seen_before(key),
            Some(Short::Wide(key)) => self.short.seen_before(key),
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
        // Short keys by kind, with where each one's value is; values of different kinds
        // are never equal, so each kind keeps its own order and long values go at once.
        let mut tiny = Keyed::<8>::default();
        let mut eight = Keyed::<8>::default();
        let mut wide = Keyed::<16>::default();
        for j in 0..count {
            let v = value(j);
            match Short::of(v) {
                Some(Short::Tiny(key)) => tiny.push(key, j),
                Some(Short::Eight(key)) => eight.push(key, j),
                Some(Short::Wide(key)) => wide.push(key, j),
                None => {
                    let h = hash_bytes(v, self.seed);
                    seen(j, self.seen_before_hashed(v, h));
                }
            }
        }
        tiny.probe(&mut self.tiny, &mut seen);
        eight.probe(&mut self.eight, &mut seen);
        wide.probe(&mut self.short, &mut seen);
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
        self.tiny.len() + self.eight.len() + self.short.len() + self.entries.len()
    }

    /// Bytes held (capacity, not length: what the allocator gave out).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tiny.heap_bytes()
            + self.eight.heap_bytes()
            + self.short.heap_bytes()
            + self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<ArenaEntry>()
            + self.table.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
    }
}

/// A short value as the key of its table.
enum Short {
    /// Up to 7 bytes; the last byte holds the length plus one, so "a" and "a\0" differ.
    Tiny([u8; 8]),
    /// Exactly 8 bytes, as they are.
    Eight([u8; 8]),
    /// 9 to [`SHORT_BYTES_MAX`] bytes; the last byte holds the length.
    Wide([u8; 16]),
}

impl Short {
    fn of(value: &[u8]) -> Option<Short> {
        match value.len() {
            n @ 0..=7 => {
                let mut key = [0u8; 8];
                key[..n].copy_from_slice(value);
                key[7] = n as u8 + 1;
                Some(Short::Tiny(key))
            }
            8 => {
                let mut key = [0u8; 8];
                key.copy_from_slice(value);
                Some(Short::Eight(key))
            }
            n @ 9..=SHORT_BYTES_MAX => {
                let mut key = [0u8; 16];
                key[..n].copy_from_slice(value);
                key[15] = n as u8;
                Some(Short::Wide(key))
            }
            _ => None,
        }
    }
}

/// A batch's keys for one table, and the row of each.
struct Keyed<const N: usize> {
    keys: Vec<[u8; N]>,
    rows: Vec<usize>,
}

impl<const N: usize> Default for Keyed<N> {
    fn default() -> Self {
        Keyed {
            keys: Vec::new(),
            rows: Vec::new(),
        }
    }
}

impl<const N: usize> Keyed<N> {
    fn push(&mut self, key: [u8; N], row: usize) {
        self.keys.push(key);
        self.rows.push(row);
    }

    fn probe(&self, table: &mut KeyTable<N>, seen: &mut impl FnMut(usize, bool)) {
        if !self.keys.is_empty() {
            table.seen_before_all(&self.keys, |k, before| seen(self.rows[k], before));
        }
    }
}

/// 64-bit integers seen so far.
pub(crate) struct SeenInts(KeyTable<8>);

impl SeenInts {
    pub(crate) fn new() -> SeenInts {
        SeenInts(KeyTable::new())
    }

    /// Whether `value` was recorded, without recording it.
    pub(crate) fn contains(&self, value: i64) -> bool {
        self.0.contains(int_key(value))
    }

    /// Records `value`; true if it was seen before.
    pub(crate) fn seen_before(&mut self, value: i64) -> bool {
        self.0.seen_before(int_key(value))
    }

    /// Records `count` integers, `value(j)` for `j` in `0..count`, telling `seen(j, before)`
    /// for each in order.
    pub(crate) fn seen_before_each(
        &mut self,
        count: usize,
        value: impl Fn(usize) -> i64,
        seen: impl FnMut(usize, bool),
    ) {
        let keys: Vec<[u8; 8]> = (0..count).map(|j| int_key(value(j))).collect();
        self.0.seen_before_all(&keys, seen);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

/// An integer as a key whose bytes sort as the integers do (the sign bit flipped, then
/// big-endian), so ascending integers make runs.
fn int_key(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

/// How many keys ahead of the one being probed a key's first slot is prefetched: enough
/// loads in flight to cover a memory latency.
const PREFETCH_AHEAD: usize = 16;

/// A set of `N`-byte keys (`N` is 8 or 16): open addressing with linear probing, the key
/// itself in the slot, at most half full. An all-zero slot is empty; the all-zero key is
/// a flag of its own. One probe is one cache line. The price is 2–4 slots per key, more
/// than a `HashSet<i64>` for integers; it is reserved in the run's memory pool like the
/// rest of the `unique` state. Keys that arrive in ascending runs skip the slots (see
/// [`Runs`]) and cost one key's bytes each.
pub(crate) struct KeyTable<const N: usize> {
    slots: Slots<N>,
    /// `64 - log2(slots)`: a hash's top bits pick its first slot.
    shift: u32,
    /// Keys in the slots.
    len: usize,
    /// Whether the all-zero key was recorded.
    zero: bool,
    seed: u64,
    /// Keys recorded in ascending runs, outside the slots (see [`Runs`]).
    runs: Runs<N>,
    /// The lowest and highest key (in [`order`]) in the slots, if any: a run that lies
    /// outside them needs no probe of the slots.
    slot_range: Option<(u128, u128)>,
}

/// Slots of a new table (1 KiB at most: a `unique` column has 16 shards of tables).
const KEY_TABLE_SLOTS_MIN: usize = 64;

impl<const N: usize> KeyTable<N> {
    const EMPTY: [u8; N] = [0u8; N];

    pub(crate) fn new() -> KeyTable<N> {
        KeyTable {
            slots: Slots::zeroed(KEY_TABLE_SLOTS_MIN),
            shift: 64 - KEY_TABLE_SLOTS_MIN.trailing_zeros(),
            len: 0,
            zero: false,
            seed: random_seed(),
            runs: Runs::default(),
            slot_range: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len + usize::from(self.zero) + self.runs.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.bytes() + self.runs.heap_bytes()
    }

    fn first_slot(&self, key: &[u8; N]) -> usize {
        let low = word(&key[..N.min(8)]);
        let high = if N > 8 { word(&key[8..]) } else { 0 };
        let h = fold_mul(fold_mul(low ^ self.seed, high ^ K1), self.seed ^ K2);
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
        for k in old.as_slice() {
            if *k != Self::EMPTY {
                let mut i = self.first_slot(k);
                let new = self.slots.as_mut_slice();
                while new[i] != Self::EMPTY {
                    i = (i + 1) & mask;
                }
                new[i] = *k;
            }
        }
    }

    /// Records `key`; true if it was there before.
    pub(crate) fn seen_before(&mut self, key: [u8; N]) -> bool {
        if key == Self::EMPTY {
            return std::mem::replace(&mut self.zero, true);
        }
        if self.runs.contains(&key) {
            return true;
        }
        self.reserve(1);
        let i = self.first_slot(&key);
        self.probe(key, i)
    }

    /// Whether `key` is in the table.
    pub(crate) fn contains(&self, key: [u8; N]) -> bool {
        if key == Self::EMPTY {
            return self.zero;
        }
        self.runs.contains(&key) || self.slots_contain(&key)
    }

    /// Whether `key` (not all zero) is in the slots.
    fn slots_contain(&self, key: &[u8; N]) -> bool {
        let slots = self.slots.as_slice();
        let mask = slots.len() - 1;
        let mut i = self.first_slot(key);
        loop {
            if slots[i] == *key {
                return true;
            }
            if slots[i] == Self::EMPTY {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    /// Records each key of `keys`, telling `seen(j, before)` for each; keys equal to one
    /// another are recorded in their order in `keys`.
    ///
    /// Where most of the keys ascend (ids numbered in the order they were issued, read in
    /// that order), the ascending ones are kept as a run (see [`Runs`]); the others, and
    /// every key of a batch that does not ascend, are probed in the slots.
    pub(crate) fn seen_before_all(&mut self, keys: &[[u8; N]], mut seen: impl FnMut(usize, bool)) {
        match self.record_run(keys, &mut seen) {
            None => self.probe_all(keys, seen),
            Some(rest) if rest.is_empty() => {}
            Some(rest) => {
                let others: Vec<[u8; N]> = rest.iter().map(|&j| keys[j]).collect();
                self.probe_all(&others, |k, before| seen(rest[k], before));
            }
        }
    }

    /// Takes the keys of `keys` that ascend, each above every one before it, as a new run,
    /// telling `seen` for each of them; returns the indexes of the others, which are left
    /// to probe. `None` (nothing recorded) where a run does not pay: too few keys ascend,
    /// or they reach into a run already kept.
    ///
    /// The others can only equal keys before them in `keys` (each is at most the highest
    /// ascending key before it, every later ascending key is above that), so probing them
    /// after the run is recorded keeps the order of equal keys.
    fn record_run(
        &mut self,
        keys: &[[u8; N]],
        seen: &mut impl FnMut(usize, bool),
    ) -> Option<Vec<usize>> {
        if keys.len() < RUN_KEYS_MIN {
            return None;
        }
        let mut run: Vec<[u8; N]> = Vec::with_capacity(keys.len());
        let mut at: Vec<usize> = Vec::with_capacity(keys.len());
        let mut rest = Vec::new();
        let mut highest: Option<u128> = None;
        for (j, key) in keys.iter().enumerate() {
            let o = order(key);
            if *key != Self::EMPTY && highest.is_none_or(|h| o > h) {
                run.push(*key);
                at.push(j);
                highest = Some(o);
            } else {
                rest.push(j);
                // More than half out of order: no run (checked below too), stop looking.
                if rest.len() * 2 > keys.len() {
                    return None;
                }
            }
        }
        if run.len() < RUN_KEYS_MIN || run.len() * 2 < keys.len() {
            return None;
        }
        let (low, high) = (order(&run[0]), highest?);
        if self.runs.reaches_into(low, high) {
            return None;
        }
        // Keys probed into the slots before may lie in the run's range: those are seen.
        if self
            .slot_range
            .is_some_and(|(lo, hi)| low <= hi && lo <= high)
        {
            let mut kept = 0;
            for i in 0..run.len() {
                if self.slots_contain(&run[i]) {
                    seen(at[i], true);
                } else {
                    run[kept] = run[i];
                    at[kept] = at[i];
                    kept += 1;
                }
            }
            run.truncate(kept);
            at.truncate(kept);
        }
        for &j in &at {
            seen(j, false);
        }
        self.runs.add(run);
        Some(rest)
    }

    /// Records each key of `keys` in the slots, telling `seen(j, before)` in order.
    ///
    /// Each key's first slot is prefetched [`PREFETCH_AHEAD`] keys before it is probed, so
    /// the cache misses of a large table overlap instead of queueing. (Plain loads overlap
    /// too, but each one that misses holds up the instructions behind it until it lands;
    /// a prefetch does not.)
    fn probe_all(&mut self, keys: &[[u8; N]], mut seen: impl FnMut(usize, bool)) {
        self.reserve(keys.len());
        let first: Vec<usize> = keys.iter().map(|k| self.first_slot(k)).collect();
        for &i in first.iter().take(PREFETCH_AHEAD) {
            prefetch(&self.slots.as_slice()[i]);
        }
        for (j, (&key, &i)) in keys.iter().zip(&first).enumerate() {
            if let Some(&ahead) = first.get(j + PREFETCH_AHEAD) {
                prefetch(&self.slots.as_slice()[ahead]);
            }
            let before = if key == Self::EMPTY {
                std::mem::replace(&mut self.zero, true)
            } else {
                self.runs.contains(&key) || self.probe(key, i)
            };
            seen(j, before);
        }
    }

    /// Records `key` (not all zero) from slot `i` on; true if it was there before.
    fn probe(&mut self, key: [u8; N], mut i: usize) -> bool {
        let slots = self.slots.as_mut_slice();
        let mask = slots.len() - 1;
        loop {
            let slot = &mut slots[i];
            if *slot == key {
                return true;
            }
            if *slot == Self::EMPTY {
                *slot = key;
                self.len += 1;
                let k = order(&key);
                self.slot_range = Some(match self.slot_range {
                    Some((lo, hi)) => (lo.min(k), hi.max(k)),
                    None => (k, k),
                });
                return false;
            }
            i = (i + 1) & mask;
        }
    }
}

/// A key's place in the order runs are kept in: its bytes as a big-endian number, so
/// keys compare as their bytes do (an 8-byte id `T0000002` follows `T0000001`).
#[inline(always)]
fn order<const N: usize>(key: &[u8; N]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[..N].copy_from_slice(key);
    u128::from_be_bytes(bytes)
}

/// Keys held as ascending runs, each a batch's keys that lay beyond every key recorded
/// before them: no two runs overlap, so a key is in at most the one run whose range holds
/// it, found by its lowest key and then by binary search.
///
/// Ids are usually issued in order and read back in order, where probing a hash table
/// costs a cache miss per key once it outgrows the caches; recording a run is a copy,
/// 8 or 16 bytes a key (a table at most half full takes 16 or 32). Keys that do not come
/// in such runs go to the table as before.
struct Runs<const N: usize> {
    /// Each run by its lowest key.
    by_low: BTreeMap<u128, Run<N>>,
    /// Keys in all runs.
    len: usize,
}

struct Run<const N: usize> {
    high: u128,
    keys: Box<[[u8; N]]>,
}

impl<const N: usize> Default for Runs<N> {
    fn default() -> Self {
        Runs {
            by_low: BTreeMap::new(),
            len: 0,
        }
    }
}

/// The bytes a B-tree entry costs besides its keys: the key, the run and its share of a
/// node, rounded up.
const RUN_ENTRY_BYTES: usize = 64;

impl<const N: usize> Runs<N> {
    fn contains(&self, key: &[u8; N]) -> bool {
        if self.len == 0 {
            return false;
        }
        let k = order(key);
        match self.by_low.range(..=k).next_back() {
            Some((_, run)) if k <= run.high => run.keys.binary_search_by_key(&k, order).is_ok(),
            _ => false,
        }
    }

    /// Whether a run holds keys in `low..=high`'s range.
    fn reaches_into(&self, low: u128, high: u128) -> bool {
        // Runs do not overlap, so the one with the greatest lowest key not above `high`
        // is the only one that can reach into `low..=high`.
        self.by_low
            .range(..=high)
            .next_back()
            .is_some_and(|(_, run)| run.high >= low)
    }

    /// Keeps `keys`, ascending and outside every run, as a run.
    fn add(&mut self, keys: Vec<[u8; N]>) {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return;
        };
        let (low, high) = (order(first), order(last));
        self.len += keys.len();
        self.by_low.insert(
            low,
            Run {
                high,
                keys: keys.into_boxed_slice(),
            },
        );
    }

    fn heap_bytes(&self) -> usize {
        self.len * N + self.by_low.len() * RUN_ENTRY_BYTES
    }
}

/// The fewest keys kept as a run: below it, a run's entry costs more than its keys' slots.
const RUN_KEYS_MIN: usize = 8;

/// Starts loading `slot`'s cache line without waiting for it.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<const N: usize>(slot: &[u8; N]) {
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
enum Slots<const N: usize> {
    Heap(Vec<[u8; N]>),
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

impl<const N: usize> Slots<N> {
    fn zeroed(len: usize) -> Slots<N> {
        let bytes = len * N;
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
        Slots::Heap(vec![[0u8; N]; len])
    }

    fn len(&self) -> usize {
        match self {
            Slots::Heap(v) => v.len(),
            Slots::Mapped { len, .. } => *len,
        }
    }

    fn bytes(&self) -> usize {
        self.len() * N
    }

    fn as_slice(&self) -> &[[u8; N]] {
        match self {
            Slots::Heap(v) => v,
            Slots::Mapped { map, start, len } => map[*start..*start + *len * N].as_chunks().0,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [[u8; N]] {
        match self {
            Slots::Heap(v) => v,
            Slots::Mapped { map, start, len } => map[*start..*start + *len * N].as_chunks_mut().0,
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
        let values: [&[u8]; 13] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\0",
            b"1234567",
            b"1234567\0",
            b"\0\0\0\0\0\0\0\0",
            b"12345678",
            b"12345678\0",
            b"123456789",
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
        assert_eq!(s.len(), values.len());
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
            .map(|i| match i % 7 {
                0 => format!("a value longer than fifteen bytes {i}").into_bytes(),
                1 => format!("{i}").into_bytes(),
                2 => format!("id-{i:08}").into_bytes(),
                _ => format!("T{i:07}").into_bytes(),
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
    fn integers_and_eight_byte_values_take_eight_byte_slots() {
        // 100 000 keys need 262 144 slots (at most half full): 2 MiB of 8-byte slots,
        // where 16-byte slots took 4 MiB.
        // Descending, so they go to the slots, not to runs.
        let n = 100_000;
        let mut ints = SeenInts::new();
        ints.seen_before_each(n, |j| (n - j) as i64 * 7919, |_, _| {});
        let mut ids = SeenBytes::new();
        let values: Vec<String> = (0..n).rev().map(|i| format!("T{i:07}")).collect();
        ids.seen_before_each(n, |j| values[j].as_bytes(), |_, _| {});
        for (what, len, bytes) in [
            ("integers", ints.len(), ints.heap_bytes()),
            ("8-byte values", ids.len(), ids.heap_bytes()),
        ] {
            assert_eq!(len, n, "{what}");
            assert!(bytes <= 4 * 8 * n, "{what}: {bytes} bytes for {n} keys");
        }
    }

    #[test]
    fn ascending_ids_are_kept_as_runs_at_about_their_own_size() {
        // Two partitions' ids, interleaved batch by batch, each batch ascending: runs, at
        // 8 bytes a key plus an entry per run, where slots at most half full take 16.
        let n = 200_000;
        let batch = 4096;
        let values: Vec<String> = (0..n).map(|i| format!("T{i:07}")).collect();
        let (low, high) = values.split_at(n / 2);
        let mut ids = SeenBytes::new();
        for (a, b) in low.chunks(batch).zip(high.chunks(batch)) {
            for chunk in [a, b] {
                let mut seen_any = false;
                ids.seen_before_each(
                    chunk.len(),
                    |j| chunk[j].as_bytes(),
                    |_, before| seen_any |= before,
                );
                assert!(!seen_any);
            }
        }
        assert_eq!(ids.len(), n);
        assert!(
            ids.eight.runs.len == n,
            "{} of {n} in runs",
            ids.eight.runs.len
        );
        assert!(ids.heap_bytes() <= 9 * n, "{} bytes", ids.heap_bytes());
        // Each is seen again, alone or in a batch, ascending or not.
        assert!(ids.contains(b"T0000000") && ids.contains(b"T0199999"));
        assert!(!ids.contains(b"T0200000"));
        assert!(ids.seen_before(b"T0123456"));
        let mut again = Vec::new();
        ids.seen_before_each(
            100,
            |j| values[j * 7].as_bytes(),
            |j, before| again.push((j, before)),
        );
        assert!(again.iter().all(|&(_, before)| before) && again.len() == 100);
    }

    proptest::proptest! {
        /// Batches of keys from a small range (many repeats), some ascending, some not,
        /// give the answers of a `HashSet`, in runs or in slots. The integers cross zero
        /// (where the sign flip of `int_key` matters) and include `i64::MIN`, whose key is
        /// all zero (the table's flag, never part of a run).
        #[test]
        fn runs_and_slots_agree_with_a_set(
            batches in proptest::collection::vec(
                // 0: ascending, 1: ascending with repeats, 2: as drawn.
                (
                    proptest::collection::vec(
                        proptest::strategy::Strategy::prop_map(-200i64..200, |v| if v == -200 { i64::MIN } else { v }),
                        0..40,
                    ),
                    0u8..3,
                ),
                1..40,
            )
        ) {
            let mut ints = SeenInts::new();
            let mut bytes = SeenBytes::new();
            let mut set = HashSet::new();
            for (mut batch, order) in batches {
                if order < 2 {
                    batch.sort_unstable();
                }
                if order == 0 {
                    batch.dedup();
                }
                let mut got_ints = vec![None; batch.len()];
                ints.seen_before_each(batch.len(), |j| batch[j], |j, b| got_ints[j] = Some(b));
                let text: Vec<String> = batch.iter().map(|v| format!("k{v:06}")).collect();
                let mut got_bytes = vec![None; batch.len()];
                bytes.seen_before_each(
                    batch.len(),
                    |j| text[j].as_bytes(),
                    |j, b| got_bytes[j] = Some(b),
                );
                for (j, v) in batch.iter().enumerate() {
                    let before = !set.insert(*v);
                    proptest::prop_assert_eq!(got_ints[j], Some(before), "int {}", v);
                    proptest::prop_assert_eq!(got_bytes[j], Some(before), "bytes {}", v);
                }
                proptest::prop_assert_eq!(ints.len(), set.len());
                proptest::prop_assert_eq!(bytes.len(), set.len());
            }
            for v in (-199..200).chain([i64::MIN]) {
                proptest::prop_assert_eq!(ints.contains(v), set.contains(&v));
                proptest::prop_assert_eq!(
                    bytes.contains(format!("k{v:06}").as_bytes()),
                    set.contains(&v)
                );
            }
        }
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
