//! Tiled logs (c2sp.org/tlog-tiles): tile paths, building every tile, auditing, tile proofs.
//!
//! A log serves its tree as static files. A hash tile `tile/<L>/<N>[.p/<W>]` holds up to 256
//! consecutive hashes of tree level `8 L` (32 bytes each); level 0 holds the leaf hashes, and
//! each hash of level `L > 0` is the root of a *full* tile of level `L - 1`. An entry bundle
//! `tile/entries/<N>[.p/<W>]` holds the entries of level-0 tile `N`, each prefixed by its length
//! as a big-endian u16. `N` is written in 3-digit groups, all but the last prefixed by `x`
//! (`1234067` is `x001/x234/067`); `.p/<W>` marks a partial tile of width `W` (1 to 255), the
//! rightmost tile of a level, whose width follows from the tree size.
//!
//! Paths here are relative to the log's prefix, e.g. `tile/0/x001/234.p/7`. Everything is
//! strict: a path has one spelling, a tile exactly `W * 32` bytes, a bundle exactly `W` entries.
//!
//! hashguard's log holds one entry per list epoch, so [`build_tiles`] rebuilds every tile from
//! all entries (a few thousand at most) each time the log grows; the service keeps the union of
//! what it published (partial tiles of each checkpointed size, full tiles once complete).

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Hash, MerkleError, SubtreeSource, HASH_SIZE};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Hashes per full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;

/// The largest entry an entry bundle can hold (its length prefix is a u16).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// The highest tile level (a level-63 tile already spans more than 2^64 leaves).
pub const MAX_LEVEL: u8 = 63;

/// Why a tile path, tile or bundle was refused, or an audit failed. Every variant that concerns
/// one file names its path, so an auditor can say exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not a canonical tile path.
    #[error("invalid tile path {0:?}")]
    InvalidPath(String),
    /// A level above 63, a width outside 1..=256.
    #[error("invalid tile coordinates: {0}")]
    InvalidCoordinates(&'static str),
    /// An entry longer than [`MAX_ENTRY_SIZE`] cannot go into a bundle.
    #[error("entry {index} has {len} bytes, more than a bundle allows")]
    EntryTooLarge {
        /// The entry's index in the log.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// The fetch function failed.
    #[error("could not fetch {path}: {reason}")]
    Fetch {
        /// The tile path.
        path: String,
        /// The fetcher's error.
        reason: String,
    },
    /// A hash tile does not have `width * 32` bytes.
    #[error("{path} has {got} bytes, {expected} expected")]
    WrongLength {
        /// The tile path.
        path: String,
        /// Its expected length.
        expected: usize,
        /// Its length.
        got: usize,
    },
    /// An entry bundle is truncated, has trailing bytes, or the wrong number of entries.
    #[error("malformed entry bundle {path}: {reason}")]
    MalformedBundle {
        /// The bundle path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hash in a tile is not the one the entries give.
    #[error("{path}: hash {position} is not the one the entries give")]
    TileMismatch {
        /// The tile path.
        path: String,
        /// The position (0-255) of the first wrong hash in the tile.
        position: usize,
    },
    /// The root computed from the entries is not the checkpoint's.
    #[error("the entries give root {computed}, the checkpoint says {expected}")]
    RootMismatch {
        /// The checkpoint's root.
        expected: Hash,
        /// The root of the entries served.
        computed: Hash,
    },
    /// A proof was asked for sizes or an index outside the tree.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes of tree level `8 * level`.
    Hashes {
        /// The tile level, 0 to 63.
        level: u8,
    },
    /// Length-prefixed entries (an entry bundle).
    Entries,
}

/// The coordinates of one tile or entry bundle; its `Display` is the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TilePath {
    kind: TileKind,
    index: u64,
    width: u16,
}

impl TilePath {
    /// Hash tile `index` of `level` with `width` hashes (256 for a full tile).
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        if level > MAX_LEVEL {
            return Err(TileError::InvalidCoordinates("level above 63"));
        }
        Self::new(TileKind::Hashes { level }, index, width)
    }

    /// Entry bundle `index` with `width` entries (256 for a full bundle).
    pub fn entries(index: u64, width: u16) -> Result<Self, TileError> {
        Self::new(TileKind::Entries, index, width)
    }

    fn new(kind: TileKind, index: u64, width: u16) -> Result<Self, TileError> {
        if width == 0 || u64::from(width) > TILE_WIDTH {
            return Err(TileError::InvalidCoordinates("width outside 1..=256"));
        }
        Ok(TilePath { kind, index, width })
    }

    /// Parses a path relative to the log prefix (`tile/0/x001/234.p/7`), accepting only the
    /// canonical spelling.
    pub fn parse(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::InvalidPath(path.chars().take(80).collect());
        // "tile/entries/" plus 7 groups for a u64 plus ".p/255" fits in 64 bytes.
        if path.len() > 64 {
            return Err(bad());
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 3 || parts[0] != "tile" {
            return Err(bad());
        }
        let kind = if parts[1] == "entries" {
            TileKind::Entries
        } else {
            let level = crate::text::parse_decimal(parts[1]).ok_or_else(bad)?;
            let level = u8::try_from(level).map_err(|_| bad())?;
            TileKind::Hashes { level }
        };
        let mut width = TILE_WIDTH as u16;
        let last = parts.len() - 1;
        if last >= 3 {
            if let Some(group) = parts[last - 1].strip_suffix(".p") {
                let w = crate::text::parse_decimal(parts[last]).ok_or_else(bad)?;
                width = u16::try_from(w).map_err(|_| bad())?;
                if width == 0 || u64::from(width) >= TILE_WIDTH {
                    return Err(bad());
                }
                parts[last - 1] = group;
                parts.pop();
            }
        }
        let mut index: u64 = 0;
        let groups = &parts[2..];
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x').ok_or_else(bad)?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(d))
                .ok_or_else(bad)?;
        }
        let parsed = Self::new(kind, index, width).map_err(|_| bad())?;
        if let TileKind::Hashes { level } = kind {
            if level > MAX_LEVEL {
                return Err(bad());
            }
        }
        // One spelling per tile: no leading x000 groups, nothing the formatter would not write.
        if parsed.to_string() != path {
            return Err(bad());
        }
        Ok(parsed)
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// The tile's index within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of hashes or entries (256 for a full tile).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether this is a partial (rightmost, narrower than 256) tile.
    pub fn is_partial(&self) -> bool {
        u64::from(self.width) < TILE_WIDTH
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tile/")?;
        match self.kind {
            TileKind::Hashes { level } => write!(f, "{level}/")?,
            TileKind::Entries => f.write_str("entries/")?,
        }
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{g:03}/")?;
            } else {
                write!(f, "{g:03}")?;
            }
        }
        if self.is_partial() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// The number of hashes stored at tile level `level` for a tree of `size` leaves.
fn level_count(size: u64, level: u8) -> u64 {
    size.checked_shr(8 * u32::from(level)).unwrap_or(0)
}

/// The tiles of one level (`kind`) of `count` hashes: full ones, then the partial one.
fn level_tiles(kind: TileKind, count: u64) -> impl Iterator<Item = TilePath> {
    let full = count / TILE_WIDTH;
    let rest = (count % TILE_WIDTH) as u16;
    (0..full)
        .map(move |n| TilePath {
            kind,
            index: n,
            width: TILE_WIDTH as u16,
        })
        .chain((rest > 0).then_some(TilePath {
            kind,
            index: full,
            width: rest,
        }))
}

/// Every tile and entry bundle a tree of `size` leaves is served as (its partial tiles at this
/// size included), in path order. A tree of 70,000 entries has 274 bundles and 277 hash tiles.
pub fn tiles_for_size(size: u64) -> Vec<TilePath> {
    let mut out: Vec<TilePath> = level_tiles(TileKind::Entries, size).collect();
    for level in 0..=MAX_LEVEL {
        let count = level_count(size, level);
        if count == 0 {
            break;
        }
        out.extend(level_tiles(TileKind::Hashes { level }, count));
    }
    out.sort();
    out
}

/// Encodes entries as a bundle: each one's length as a big-endian u16, then its bytes.
/// `first_index` only numbers errors.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(
    entries: &[E],
    first_index: u64,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (i, e) in (first_index..).zip(entries) {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge {
            index: i,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes the entry bundle at `path`: exactly `path.width()` entries, no trailing byte.
pub fn parse_entry_bundle(path: &TilePath, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let bad = |reason| TileError::MalformedBundle {
        path: path.to_string(),
        reason,
    };
    if path.kind != TileKind::Entries {
        return Err(bad("not an entry bundle path"));
    }
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == usize::from(path.width) {
            return Err(bad("more entries than its width"));
        }
        let [a, b, tail @ ..] = rest else {
            return Err(bad("truncated length prefix"));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(bad("truncated entry"));
        }
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if out.len() != usize::from(path.width) {
        return Err(bad("fewer entries than its width"));
    }
    Ok(out)
}

/// The hashes of each tile level for a tree with these leaf hashes: level 0 is the leaves,
/// level `L` the roots of the full tiles of level `L - 1`.
fn level_hashes(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves];
    loop {
        let below = &levels[levels.len() - 1];
        let next: Vec<Hash> = below
            .chunks_exact(TILE_WIDTH as usize)
            .map(merkle::root)
            .collect();
        if next.is_empty() {
            return levels;
        }
        levels.push(next);
    }
}

fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

/// Builds every hash tile and entry bundle of the tree of `entries` at its current size
/// ([`tiles_for_size`]), keyed by path.
pub fn build_tiles<E: AsRef<[u8]>>(
    entries: &[E],
) -> Result<BTreeMap<TilePath, Vec<u8>>, TileError> {
    let size = entries.len() as u64;
    let leaves: Vec<Hash> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.as_ref()))
        .collect();
    let levels = level_hashes(leaves);
    let mut out = BTreeMap::new();
    for path in tiles_for_size(size) {
        let start = (path.index * TILE_WIDTH) as usize;
        let end = start + usize::from(path.width);
        let bytes = match path.kind {
            TileKind::Entries => encode_entry_bundle(&entries[start..end], start as u64)?,
            TileKind::Hashes { level } => tile_bytes(&levels[usize::from(level)][start..end]),
        };
        out.insert(path, bytes);
    }
    Ok(out)
}

/// Calls `fetch` and names the path in its error.
fn fetch_tile<F, E>(fetch: &mut F, path: &TilePath) -> Result<Vec<u8>, TileError>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    fetch(path).map_err(|e| TileError::Fetch {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Audits a log: downloads every entry bundle and hash tile of the checkpoint's tree through
/// `fetch`, recomputes every leaf hash, every tile and the root, and returns the entries.
///
/// This is what an auditor (`hashguard log audit`) runs. Open the checkpoint first (with the
/// log's key or a policy): the audit proves that the files served are exactly the tree the
/// checkpoint commits to, not who signed it. The first difference is returned as an error
/// naming the file. Work and memory grow with the tree; fetches happen in path order, one at a
/// time, so a fetch that fails stops the audit.
pub fn audit<F, E>(checkpoint: &Checkpoint, mut fetch: F) -> Result<Vec<Vec<u8>>, TileError>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    let size = checkpoint.size();
    let mut entries = Vec::new();
    let mut leaves = Vec::new();
    for path in level_tiles(TileKind::Entries, size) {
        let bytes = fetch_tile(&mut fetch, &path)?;
        for e in parse_entry_bundle(&path, &bytes)? {
            leaves.push(merkle::leaf_hash(&e));
            entries.push(e);
        }
    }
    let levels = level_hashes(leaves);
    for (level, hashes) in (0..=MAX_LEVEL).zip(&levels) {
        for path in level_tiles(TileKind::Hashes { level }, level_count(size, level)) {
            let bytes = fetch_tile(&mut fetch, &path)?;
            let expected_len = usize::from(path.width) * HASH_SIZE;
            if bytes.len() != expected_len {
                return Err(TileError::WrongLength {
                    path: path.to_string(),
                    expected: expected_len,
                    got: bytes.len(),
                });
            }
            let start = (path.index * TILE_WIDTH) as usize;
            let want = &hashes[start..start + usize::from(path.width)];
            if let Some(position) = bytes
                .chunks_exact(HASH_SIZE)
                .zip(want)
                .position(|(got, want)| got != want.as_bytes())
            {
                return Err(TileError::TileMismatch {
                    path: path.to_string(),
                    position,
                });
            }
        }
    }
    let computed = merkle::root(&levels[0]);
    if computed != *checkpoint.root_hash() {
        return Err(TileError::RootMismatch {
            expected: *checkpoint.root_hash(),
            computed,
        });
    }
    Ok(entries)
}

/// Subtree hashes read from the hash tiles of a tree of `size` leaves, each tile fetched once.
struct TileSource<F> {
    size: u64,
    fetch: F,
    cache: HashMap<TilePath, Vec<u8>>,
}

impl<F, E> SubtreeSource for TileSource<F>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    type Error = TileError;

    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, TileError> {
        // A subtree of height `level` is 2^(level % 8) consecutive hashes of tile level
        // `level / 8`, all within one tile since subtrees are aligned.
        let tile_level = (level / 8) as u8;
        let span = 1u64 << (level % 8);
        let first = index << (level % 8);
        let (n, offset) = (first / TILE_WIDTH, (first % TILE_WIDTH) as usize);
        let count = level_count(self.size, tile_level);
        let width = count.saturating_sub(n * TILE_WIDTH).min(TILE_WIDTH) as u16;
        if u64::from(width) < offset as u64 + span {
            return Err(TileError::InvalidCoordinates("subtree outside the tree"));
        }
        let path = TilePath::hashes(tile_level, n, width)?;
        if !self.cache.contains_key(&path) {
            let bytes = fetch_tile(&mut self.fetch, &path)?;
            if bytes.len() != usize::from(width) * HASH_SIZE {
                return Err(TileError::WrongLength {
                    path: path.to_string(),
                    expected: usize::from(width) * HASH_SIZE,
                    got: bytes.len(),
                });
            }
            self.cache.insert(path, bytes);
        }
        let bytes = &self.cache[&path];
        let hashes: Vec<Hash> = bytes[offset * HASH_SIZE..(offset + span as usize) * HASH_SIZE]
            .chunks_exact(HASH_SIZE)
            .filter_map(Hash::from_slice)
            .collect();
        Ok(merkle::root(&hashes))
    }
}

/// The root of the tree of `size` leaves, from its hash tiles. Compare it with a checkpoint to
/// authenticate the tiles fetched.
pub fn root_from_tiles<F, E>(size: u64, fetch: F) -> Result<Hash, TileError>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    if size == 0 {
        return Ok(merkle::EMPTY_ROOT);
    }
    let mut src = TileSource {
        size,
        fetch,
        cache: HashMap::new(),
    };
    merkle::range_hash(&mut src, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from its hash tiles (about
/// one tile per level). The tiles are not trusted: verify the proof against the checkpoint with
/// [`merkle::verify_inclusion`].
pub fn inclusion_proof_from_tiles<F, E>(
    size: u64,
    index: u64,
    fetch: F,
) -> Result<Vec<Hash>, TileError>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    let mut src = TileSource {
        size,
        fetch,
        cache: HashMap::new(),
    };
    Ok(merkle::inclusion_proof_from(&mut src, index, size)??)
}

/// The consistency proof from `old_size` to `new_size` leaves, from the hash tiles of the tree
/// of `new_size`. Verify it with [`merkle::verify_consistency`].
pub fn consistency_proof_from_tiles<F, E>(
    old_size: u64,
    new_size: u64,
    fetch: F,
) -> Result<Vec<Hash>, TileError>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: fmt::Display,
{
    let mut src = TileSource {
        size: new_size,
        fetch,
        cache: HashMap::new(),
    };
    Ok(merkle::consistency_proof_from(
        &mut src, old_size, new_size,
    )??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            (
                TilePath::hashes(0, 1234067, 256).unwrap(),
                "tile/0/x001/x234/067",
            ),
            (TilePath::hashes(1, 0, 17).unwrap(), "tile/1/000.p/17"),
            (TilePath::entries(5, 1).unwrap(), "tile/entries/005.p/1"),
            (
                TilePath::entries(1000, 256).unwrap(),
                "tile/entries/x001/000",
            ),
            (
                TilePath::hashes(63, u64::MAX, 255).unwrap(),
                "tile/63/x018/x446/x744/x073/x709/x551/615.p/255",
            ),
        ];
        for (t, s) in cases {
            assert_eq!(t.to_string(), s);
            assert_eq!(TilePath::parse(s).unwrap(), t);
        }
        for bad in [
            "tile/0/x000/005",
            "tile/0/5",
            "tile/0/0005",
            "tile/00/005",
            "tile/64/005",
            "tile/0/005.p/256",
            "tile/0/005.p/0",
            "tile/0/005.p/07",
            "tile/0/005.p",
            "tile/0/x005",
            "tile/0/005/",
            "/tile/0/005",
            "tile/data/005",
            "tile/entries/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x1000/000",
            "tile/-1/000",
            "tile/0/+01",
            "tile/0/005.p/1.p/1",
            "tile/0",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad}");
        }
        assert!(TilePath::hashes(64, 0, 1).is_err());
        assert!(TilePath::hashes(0, 0, 0).is_err());
        assert!(TilePath::entries(0, 257).is_err());
    }

    #[test]
    fn tiles_of_the_spec_example_size() {
        let t = tiles_for_size(70_000);
        let count = |k: TileKind, partial: bool| {
            t.iter()
                .filter(|p| p.kind == k && p.is_partial() == partial)
                .count()
        };
        assert_eq!(count(TileKind::Hashes { level: 0 }, false), 273);
        assert_eq!(count(TileKind::Hashes { level: 0 }, true), 1);
        assert_eq!(count(TileKind::Hashes { level: 1 }, false), 1);
        assert!(t.contains(&TilePath::hashes(0, 273, 112).unwrap()));
        assert!(t.contains(&TilePath::hashes(1, 1, 17).unwrap()));
        assert!(t.contains(&TilePath::hashes(2, 0, 1).unwrap()));
        assert_eq!(t.len(), 274 + 277);
        let t = tiles_for_size(256);
        assert_eq!(
            t,
            [
                TilePath::hashes(0, 0, 256).unwrap(),
                TilePath::hashes(1, 0, 1).unwrap(),
                TilePath::entries(0, 256).unwrap(),
            ]
        );
        assert!(tiles_for_size(0).is_empty());
    }

    #[test]
    fn bundles() {
        let p = TilePath::entries(0, 2).unwrap();
        let b = encode_entry_bundle(&[b"ab".to_vec(), Vec::new()], 0).unwrap();
        assert_eq!(b, [0, 2, b'a', b'b', 0, 0]);
        assert_eq!(
            parse_entry_bundle(&p, &b).unwrap(),
            [b"ab".to_vec(), vec![]]
        );
        for bad in [
            &b[..5],
            &b[..1],
            &[0, 2, b'a', b'b'][..],
            &[b.as_slice(), &[0, 0]].concat()[..],
        ] {
            assert!(parse_entry_bundle(&p, bad).is_err());
        }
        assert!(matches!(
            encode_entry_bundle(&[vec![0u8; MAX_ENTRY_SIZE + 1]], 7),
            Err(TileError::EntryTooLarge { index: 7, .. })
        ));
    }
}
