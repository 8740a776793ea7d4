//! Run-wide memory of the values a `unique` column has seen: compact, one hash probe per value.
//!
//! A `HashSet<Box<str>>` costs an allocation and two probes per new value,
//! which made `unique` a hundred times dearer than every other rule. Here
//! values are appended to one byte arena and the table maps a 64-bit hash to
//! the newest arena entry with that hash; entries sharing a hash are chained.
//! The hash is keyed per process (from std's `RandomState`), so data cannot
//! be crafted to collide.

use std::collections::HashSet;
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::{BuildHasher, Hasher};

/// Byte strings seen so far.
pub(crate) struct SeenBytes {
    /// Values of up to [`SHORT_BYTES_MAX`] bytes, packed into the key itself: one probe,
    /// no arena. Ids, codes and keys are usually this short, and at millions of values
    /// the cache misses of the arena path dominate the cost of `unique`.
    short: HashSet<u128, Keyed>,
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
            short: HashSet::with_hasher(Keyed {
                seed: random_seed(),
            }),
            table: HashMap::with_hasher(PassThrough),
            arena: Vec::new(),
            entries: Vec::new(),
            seed: random_seed(),
        }
    }

    /// Records `value`; true if it was seen before.
    pub(crate) fn seen_before(&mut self, value: &[u8]) -> bool {
        if value.len() <= SHORT_BYTES_MAX {
            // The length byte keeps "a" and "a\0" apart.
            let mut packed = [0u8; 16];
            packed[..value.len()].copy_from_slice(value);
            packed[15] = value.len() as u8 + 1;
            return !self.short.insert(u128::from_le_bytes(packed));
        }
        let h = hash_bytes(value, self.seed);
        self.seen_before_hashed(value, h)
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
        self.short.capacity() * (std::mem::size_of::<u128>() + 1)
            + self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<ArenaEntry>()
            + self.table.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
    }
}

/// Bytes a [`SeenInts`] holds (capacity times slot size, plus control bytes).
pub(crate) fn seen_ints_heap_bytes(set: &SeenInts) -> usize {
    set.capacity() * (std::mem::size_of::<i64>() + 1)
}

/// 64-bit integers seen so far.
pub(crate) type SeenInts = HashSet<i64, Keyed>;

pub(crate) fn seen_ints() -> SeenInts {
    HashSet::with_hasher(Keyed {
        seed: random_seed(),
    })
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

/// A keyed hasher for integers.
#[derive(Clone, Copy)]
pub(crate) struct Keyed {
    seed: u64,
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.seed)
    }
}

pub(crate) struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        fold_mul(self.0, K2)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes, self.0);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = fold_mul(self.0 ^ n, K1);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
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
            assert!(s.seen_before(v), "{v:?} forgotten");
        }
        assert_eq!(s.len(), 5);
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
