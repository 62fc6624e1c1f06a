//! RFC 6962 Merkle tree hashing with RFC 9162 proof generation and verification.
//!
//! A leaf is `SHA-256(0x00 || entry)` and an interior node `SHA-256(0x01 || left || right)`; the
//! two prefixes keep a leaf from ever being read as a node (second-preimage resistance). Trees
//! are the left-complete trees of RFC 6962 section 2.1, so any tree size is allowed.
//!
//! Proofs are generated from the slice of all leaf hashes (`O(n)` per proof). That is the right
//! trade for hashguard: its manifest log holds one entry per list epoch, thousands of entries at
//! most, and the service rebuilds the slice from its store. Logs too big for that use
//! [`crate::tiles`], which computes the same proofs from tiles. Verification follows the
//! algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.

use sha2::{Digest, Sha256};
use std::fmt;

/// Size in bytes of every hash in this crate (SHA-256).
pub const HASH_SIZE: usize = 32;

/// The most hashes any proof of a tree of at most `u64::MAX` leaves can hold; longer proofs are
/// refused before any hashing.
pub const MAX_PROOF_LEN: usize = 64;

/// A SHA-256 Merkle tree hash (a leaf, a node or a root).
///
/// Shown as standard base64 by `Display` (the checkpoint's spelling) and as hex by `Debug`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; HASH_SIZE]);

impl Hash {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_SIZE]) -> Self {
        Hash(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// Reads a hash from exactly 32 bytes, or `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; HASH_SIZE]>::try_from(bytes).ok().map(Hash)
    }

    /// Parses canonical standard base64 of exactly 32 bytes (the checkpoint and proof spelling).
    pub fn from_base64(s: &str) -> Option<Self> {
        crate::text::b64_decode(s).and_then(|b| Hash::from_slice(&b))
    }

    /// Standard padded base64 (44 characters).
    pub fn to_base64(&self) -> String {
        crate::text::b64_encode(&self.0)
    }

    /// Lowercase hex (64 characters), the spelling of hashguard's other hashes.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// The root of the empty tree: `SHA-256("")` (RFC 6962 section 2.1).
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked between sizes that are not `old <= new`.
    #[error("no consistency between tree sizes {old} and {new}")]
    BadSizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes and index.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The proof is well formed but does not lead to the expected root(s).
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

/// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// The interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The largest power of two strictly below `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash (MTH) of a tree whose leaf hashes are `leaves`; [`EMPTY_ROOT`] for none.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            // usize -> u64 never loses bits on supported targets; the split is below n.
            let k = split_point(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Where proof generation gets the hash of a complete, aligned subtree: the hash of leaves
/// `[index << level, (index + 1) << level)`. Slices compute it; tiles look it up.
pub(crate) trait SubtreeSource {
    /// The error of a failed look-up.
    type Error;
    /// The hash of the complete subtree at `level` (height) and `index` within that level.
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

struct SliceSource<'a>(&'a [Hash]);

impl SubtreeSource for SliceSource<'_> {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        // Callers only ask for subtrees inside the slice (checked by the public functions).
        let lo = (index << level) as usize;
        let hi = ((index + 1) << level) as usize;
        Ok(root(&self.0[lo..hi]))
    }
}

/// MTH(D[lo:hi]) for `hi > lo`, from complete aligned subtrees. RFC 6962's recursion only ever
/// asks for ranges whose left part is complete and aligned, so each look-up is one subtree.
pub(crate) fn range_hash<S: SubtreeSource>(
    src: &mut S,
    lo: u64,
    hi: u64,
) -> Result<Hash, S::Error> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return src.subtree(n.trailing_zeros(), lo >> n.trailing_zeros());
    }
    let k = split_point(n);
    let left = range_hash(src, lo, lo + k)?;
    let right = range_hash(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// RFC 6962 section 2.1.1 PATH(m, D[lo:hi]), `m` relative to `lo`.
fn path<S: SubtreeSource>(
    src: &mut S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, lo, lo + k, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        path(src, m - k, lo + k, hi, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// RFC 6962 section 2.1.2 SUBPROOF(m, D[lo:hi], b), `m` relative to `lo`.
fn subproof<S: SubtreeSource>(
    src: &mut S,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_hash(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, lo, lo + k, complete, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        subproof(src, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// The inclusion proof of leaf `index` in a tree of `size` leaves, from a subtree source.
pub(crate) fn inclusion_proof_from<S: SubtreeSource>(
    src: &mut S,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, MerkleError>, S::Error> {
    if index >= size {
        return Ok(Err(MerkleError::IndexOutOfRange { index, size }));
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(Ok(out))
}

/// The consistency proof from `old` to `new` leaves, from a subtree source.
pub(crate) fn consistency_proof_from<S: SubtreeSource>(
    src: &mut S,
    old: u64,
    new: u64,
) -> Result<Result<Vec<Hash>, MerkleError>, S::Error> {
    if old > new {
        return Ok(Err(MerkleError::BadSizes { old, new }));
    }
    let mut out = Vec::new();
    // An empty old tree and an unchanged tree need no hashes (the verifier's special cases).
    if old != 0 && old != new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(Ok(out))
}

/// The inclusion proof (audit path) of leaf `index` in the tree of all `leaves`: the sibling
/// hashes from the leaf up to the root's child (RFC 6962 section 2.1.1).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    match inclusion_proof_from(&mut SliceSource(leaves), index, size) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The consistency proof that the tree of the first `old_size` leaves is a prefix of the tree of
/// all `leaves` (RFC 6962 section 2.1.2). Empty when `old_size` is 0 or equals the tree size.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let new = leaves.len() as u64;
    match consistency_proof_from(&mut SliceSource(leaves), old_size, new) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Verifies that `leaf` (a leaf hash, see [`leaf_hash`]) is at `index` in the tree of `size`
/// leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(MerkleError::WrongLength);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::WrongLength);
    }
    if r != *root {
        return Err(MerkleError::Mismatch);
    }
    Ok(())
}

/// Runs RFC 9162 section 2.1.4.2 steps 2-7 for `0 < old < new` and returns the two roots the
/// proof leads to (old, new), or `None` when its length does not fit the sizes.
pub(crate) fn consistency_roots(
    old: u64,
    new: u64,
    old_root: &Hash,
    proof: &[Hash],
) -> Option<(Hash, Hash)> {
    debug_assert!(0 < old && old < new);
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return None;
    }
    // Step 2: a power-of-two old tree is a complete subtree of the new one, so the proof omits
    // its hash and the verifier starts from the old root.
    let mut path = proof.iter();
    let first = if old.is_power_of_two() {
        *old_root
    } else {
        *path.next()?
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return None;
    }
    Some((fr, sr))
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root` (RFC 9162 section 2.1.4.2).
///
/// RFC 9162 defines proofs for `0 < old < new` only; the two other cases are answered the way
/// Go's `tlog.CheckTree` answers them: the empty tree (root [`EMPTY_ROOT`]) is a prefix of every
/// tree with an empty proof, and a tree is consistent with itself (equal roots, empty proof).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::WrongLength);
        }
        let expected = if old_size == 0 { &EMPTY_ROOT } else { new_root };
        return if old_root == expected {
            Ok(())
        } else {
            Err(MerkleError::Mismatch)
        };
    }
    match consistency_roots(old_size, new_size, old_root, proof) {
        None => Err(MerkleError::WrongLength),
        Some((fr, sr)) if fr == *old_root && sr == *new_root => Ok(()),
        Some(_) => Err(MerkleError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, Hash(Sha256::digest(b"").into()));
        assert_eq!(root(&[]), EMPTY_ROOT);
    }

    // RFC 6962's reference test data (the tree of the 8 inputs used by Certificate Transparency's
    // and Trillian's merkle tests): leaf hashes and roots of the first sizes.
    #[test]
    fn known_roots() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let hashes: Vec<Hash> = inputs.iter().map(|i| leaf_hash(i)).collect();
        for (n, want) in roots.iter().enumerate() {
            assert_eq!(root(&hashes[..=n]).to_hex(), *want, "size {}", n + 1);
        }
    }

    #[test]
    fn proofs_verify_for_small_trees() {
        for n in 1..=40u64 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                verify_inclusion(&l[i as usize], i, n, &p, &r).unwrap();
            }
            for m in 0..=n {
                let p = consistency_proof(&l, m).unwrap();
                verify_consistency(m, n, &root(&l[..m as usize]), &r, &p).unwrap();
            }
        }
    }

    #[test]
    fn special_cases_are_refused() {
        let l = leaves(5);
        let r = root(&l);
        assert_eq!(
            inclusion_proof(&l, 5),
            Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            consistency_proof(&l, 6),
            Err(MerkleError::BadSizes { old: 6, new: 5 })
        );
        // A tree is consistent with itself only with the same root and no hashes.
        assert!(verify_consistency(5, 5, &r, &r, &[]).is_ok());
        assert!(verify_consistency(5, 5, &l[0], &r, &[]).is_err());
        assert!(verify_consistency(5, 5, &r, &r, &[r]).is_err());
        // The empty tree has one root.
        assert!(verify_consistency(0, 5, &EMPTY_ROOT, &r, &[]).is_ok());
        assert!(verify_consistency(0, 5, &r, &r, &[]).is_err());
        // Too long proofs are refused before hashing.
        assert_eq!(
            verify_inclusion(&l[0], 0, 5, &[r; 65], &r),
            Err(MerkleError::WrongLength)
        );
        // The empty proof of a one-leaf tree.
        assert!(verify_inclusion(&l[0], 0, 1, &[], &l[0]).is_ok());
    }
}
