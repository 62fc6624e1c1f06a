//! The updatable index: a frozen multi-index plus a small delta buffer and tombstones.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{BuildError, LoadError};
use crate::fast::{self, Level};
use crate::frozen::{FrozenIndex, Scratch};
use crate::{Code, Layout, Match};

/// An index that accepts additions and removals.
///
/// Additions go to a delta buffer that is scanned linearly (SIMD popcount);
/// removals of entries in the frozen part are tombstones (by id) that filter its
/// results. [`Index::compact`] merges both into a new frozen index; call it when
/// [`Index::pending`] grows: the delta costs a linear scan per query (measured
/// at about 1.2 ns per code with AVX-512 on 1M codes, so 4,000 pending codes
/// add about 5 us to each query).
///
/// ```
/// use hashguard_index::Index;
/// let mut idx = Index::build(&[[0u64; 4], [u64::MAX; 4]], None).unwrap();
/// idx.add([1, 0, 0, 0], 7);
/// assert!(idx.remove(0));
/// let ids: Vec<u32> = idx.search(&[0; 4], 3).iter().map(|m| m.id).collect();
/// assert_eq!(ids, [7]);
/// idx.compact().unwrap();
/// assert_eq!(idx.len(), 2);
/// assert_eq!(idx.pending(), 0);
/// ```
#[derive(Debug)]
pub struct Index {
    frozen: FrozenIndex,
    delta_codes: Vec<Code>,
    delta_ids: Vec<u32>,
    dead: HashSet<u32>,
    dead_entries: usize,
    layout: Option<Layout>,
    level: Level,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        match FrozenIndex::build(&[], None, None) {
            Ok(f) => Self::from_frozen(f),
            // Building from nothing cannot fail (no ids, zero codes).
            Err(_) => unreachable!("empty build"),
        }
    }

    /// Wraps a frozen (e.g. memory-mapped) index.
    pub fn from_frozen(frozen: FrozenIndex) -> Self {
        Index {
            frozen,
            delta_codes: Vec::new(),
            delta_ids: Vec::new(),
            dead: HashSet::new(),
            dead_entries: 0,
            layout: None,
            level: Level::detect(),
        }
    }

    /// Bulk-builds from codes (ids as in [`FrozenIndex::build`]), default layout.
    pub fn build(codes: &[Code], ids: Option<&[u32]>) -> Result<Self, BuildError> {
        Ok(Self::from_frozen(FrozenIndex::build(codes, ids, None)?))
    }

    /// Bulk-builds with a fixed layout, which later compactions keep.
    pub fn build_with_layout(
        codes: &[Code],
        ids: Option<&[u32]>,
        layout: Layout,
    ) -> Result<Self, BuildError> {
        let mut s = Self::from_frozen(FrozenIndex::build(codes, ids, Some(&layout))?);
        s.layout = Some(layout);
        Ok(s)
    }

    /// Memory-maps an index file written by [`Index::save`] or [`FrozenIndex::save`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        Ok(Self::from_frozen(FrozenIndex::open(path)?))
    }

    /// Adds one code with an id.
    pub fn add(&mut self, code: Code, id: u32) {
        self.delta_codes.push(code);
        self.delta_ids.push(id);
    }

    /// Removes every entry with this id (delta entries at once, frozen entries by
    /// tombstone). Returns whether any live entry had the id. Costs one pass over
    /// the frozen ids (4 bytes per entry).
    pub fn remove(&mut self, id: u32) -> bool {
        let before = self.delta_ids.len();
        if self.delta_ids.contains(&id) {
            let mut keep = self.delta_ids.iter().map(|&x| x != id);
            self.delta_codes.retain(|_| keep.next().unwrap_or(true));
            self.delta_ids.retain(|&x| x != id);
        }
        let mut removed = self.delta_ids.len() != before;
        if !self.dead.contains(&id) {
            let k = self.frozen.ids().iter().filter(|&&x| x == id).count();
            if k > 0 {
                self.dead.insert(id);
                self.dead_entries += k;
                removed = true;
            }
        }
        removed
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.frozen.len() - self.dead_entries + self.delta_codes.len()
    }

    /// True if there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes not yet merged: delta entries plus tombstoned frozen entries.
    pub fn pending(&self) -> usize {
        self.delta_codes.len() + self.dead_entries
    }

    /// The frozen part.
    pub fn frozen(&self) -> &FrozenIndex {
        &self.frozen
    }

    /// The frozen part, mutably (to tune it, e.g. [`FrozenIndex::set_linear_fraction`];
    /// compaction builds a new one with default settings).
    pub fn frozen_mut(&mut self) -> &mut FrozenIndex {
        &mut self.frozen
    }

    /// All live entries within distance `r` of `q`, sorted by (distance, id).
    pub fn search(&self, q: &Code, r: u32) -> Vec<Match> {
        let mut out = Vec::new();
        self.search_into(q, r, &mut Scratch::new(), &mut out);
        out.sort_unstable();
        out
    }

    /// Appends every live entry within distance `r` of `q` to `out` (unordered).
    pub fn search_into(&self, q: &Code, r: u32, scratch: &mut Scratch, out: &mut Vec<Match>) {
        let start = out.len();
        self.frozen.search_into(q, r, scratch, out);
        if !self.dead.is_empty() {
            let mut i = start;
            while i < out.len() {
                if self.dead.contains(&out[i].id) {
                    out.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
        if !self.delta_codes.is_empty() {
            let mut hits = Vec::new();
            fast::scan(self.level, &self.delta_codes, 0, q, r, &mut hits);
            out.extend(hits.into_iter().map(|(p, d)| Match {
                distance: d,
                id: self.delta_ids.get(p as usize).copied().unwrap_or(u32::MAX),
            }));
        }
    }

    /// Merges the delta buffer and tombstones into a new frozen index.
    pub fn compact(&mut self) -> Result<(), BuildError> {
        if self.pending() == 0 {
            return Ok(());
        }
        let live = self.len();
        let mut codes = Vec::with_capacity(live);
        let mut ids = Vec::with_capacity(live);
        for (c, &id) in self.frozen.codes().iter().zip(self.frozen.ids()) {
            if !self.dead.contains(&id) {
                codes.push(*c);
                ids.push(id);
            }
        }
        codes.extend_from_slice(&self.delta_codes);
        ids.extend_from_slice(&self.delta_ids);
        self.frozen = FrozenIndex::build(&codes, Some(&ids), self.layout.as_ref())?;
        self.delta_codes.clear();
        self.delta_ids.clear();
        self.dead.clear();
        self.dead_entries = 0;
        Ok(())
    }

    /// Compacts, then writes the index file to `path` (temporary file + rename).
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<(), std::io::Error> {
        self.compact().map_err(std::io::Error::other)?;
        self.frozen.save(path)
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}
