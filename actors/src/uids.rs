//! [`UidSet`]: the exact set of distinct uids of an open window's part. A window of a million
//! users keeps a million uids until it closes, so they are stored compactly: every uid's bytes
//! once, back to back in one arena, and a hash table of 8-byte references into it (about 9
//! bytes of table per uid plus the uid itself, where a set of boxed strings costs a pointer, a
//! length and a heap allocation per uid). The count stays exact: uids are compared byte for
//! byte, never by fingerprint.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::DefaultHashBuilder;

/// Where a uid lies in the arena: offset in the upper 40 bits, length in the lower 24 (a uid
/// is at most `frames.max_bytes`, 1 MiB, long; the arena may reach 1 TiB).
#[derive(Clone, Copy)]
struct Span(u64);

const LEN_BITS: u32 = 24;

impl Span {
    fn new(start: usize, len: usize) -> Span {
        debug_assert!(len < 1 << LEN_BITS && start < 1 << (64 - LEN_BITS));
        Span(((start as u64) << LEN_BITS) | len as u64)
    }

    fn range(self) -> std::ops::Range<usize> {
        let start = (self.0 >> LEN_BITS) as usize;
        start..start + (self.0 & ((1 << LEN_BITS) - 1)) as usize
    }
}

/// An exact set of uids; see the module documentation.
#[derive(Default)]
pub struct UidSet {
    arena: String,
    table: HashTable<Span>,
    hasher: DefaultHashBuilder,
}

impl UidSet {
    /// Adds `uid`; true if it was not in the set.
    pub fn insert(&mut self, uid: &str) -> bool {
        let hash = self.hasher.hash_one(uid);
        let (arena, hasher) = (&self.arena, &self.hasher);
        match self.table.entry(
            hash,
            |span| &arena[span.range()] == uid,
            |span| hasher.hash_one(&arena[span.range()]),
        ) {
            Entry::Occupied(_) => false,
            Entry::Vacant(vacant) => {
                let span = Span::new(self.arena.len(), uid.len());
                vacant.insert(span);
                self.arena.push_str(uid);
                true
            }
        }
    }

    /// True if `uid` is in the set.
    pub fn contains(&self, uid: &str) -> bool {
        let hash = self.hasher.hash_one(uid);
        self.table
            .find(hash, |span| &self.arena[span.range()] == uid)
            .is_some()
    }

    /// The number of distinct uids.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every uid, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.table.iter().map(|span| &self.arena[span.range()])
    }

    /// Bytes held (arena and table), for reports.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.table.capacity() * (std::mem::size_of::<Span>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_each_uid_once_and_finds_them_back() {
        let mut set = UidSet::default();
        assert!(set.insert("u1"));
        assert!(set.insert(""));
        assert!(set.insert("ü-😀"));
        assert!(!set.insert("u1"));
        assert!(!set.insert(""));
        assert_eq!(set.len(), 3);
        assert!(set.contains("ü-😀") && !set.contains("u2"));
        let mut all: Vec<&str> = set.iter().collect();
        all.sort_unstable();
        assert_eq!(all, ["", "u1", "ü-😀"]);
    }

    #[test]
    fn a_million_uids_take_a_fraction_of_boxed_strings() {
        let mut set = UidSet::default();
        for i in 0..1_000_000 {
            set.insert(&format!("user-{i}"));
        }
        assert_eq!(set.len(), 1_000_000);
        // "user-NNNNNN" is 11 bytes; the table adds about 9 bytes per uid at its load factor.
        let per_uid = set.heap_bytes() as f64 / 1e6;
        assert!(per_uid < 40.0, "{per_uid} bytes per uid");
    }

    proptest! {
        /// Any sequence of inserts counts exactly what a set of owned strings counts.
        #[test]
        fn agrees_with_a_set_of_strings(uids in prop::collection::vec("\\PC{0,6}", 0..300)) {
            let mut set = UidSet::default();
            let mut reference = HashSet::new();
            for uid in &uids {
                prop_assert_eq!(set.insert(uid), reference.insert(uid.clone()));
            }
            prop_assert_eq!(set.len(), reference.len());
            let back: HashSet<String> = set.iter().map(str::to_owned).collect();
            prop_assert_eq!(back, reference);
        }
    }
}
