//! RFC 6962-style Merkle roots over table points (protocol.md 4.2).
//!
//! `leaf = SHA-256(0x00 ‖ LE32 shard ‖ LE32 index ‖ point)`, `node = SHA-256(0x01 ‖ left ‖ right)`,
//! split at the largest power of two below n; the root of zero leaves is SHA-256 of nothing.
//! The table root is the same tree over `SHA-256(0x00 ‖ shard_root)` leaves.

use crate::suite::sha256;

/// Leaf hash of point `index` of shard `shard`.
pub fn point_leaf(shard: u16, index: u32, point: &[u8; 32]) -> [u8; 32] {
    sha256(&[
        &[0u8],
        &u32::from(shard).to_le_bytes(),
        &index.to_le_bytes(),
        point,
    ])
}

/// RFC 6962 Merkle tree hash over already-hashed leaves.
pub fn root_of_leaves(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let mut k = 1usize;
            while k * 2 < n {
                k *= 2;
            }
            let l = root_of_leaves(&leaves[..k]);
            let r = root_of_leaves(&leaves[k..]);
            sha256(&[&[1u8], &l, &r])
        }
    }
}

/// Root of one shard's points (compressed encodings).
pub fn shard_root(shard: u16, points: &[[u8; 32]]) -> [u8; 32] {
    // A shard holds m ≤ u32::MAX points, so the index never wraps.
    let leaves: Vec<[u8; 32]> = (0u32..)
        .zip(points)
        .map(|(i, p)| point_leaf(shard, i, p))
        .collect();
    root_of_leaves(&leaves)
}

/// Root over the shard roots, in shard order.
pub fn table_root(shard_roots: &[[u8; 32]]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = shard_roots.iter().map(|r| sha256(&[&[0u8], r])).collect();
    root_of_leaves(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_depends_on_every_leaf_and_position() {
        let pts: Vec<[u8; 32]> = (0..7u8).map(|i| [i; 32]).collect();
        let r = shard_root(0, &pts);
        for i in 0..pts.len() {
            let mut p = pts.clone();
            p[i][0] ^= 1;
            assert_ne!(shard_root(0, &p), r);
        }
        let mut swapped = pts.clone();
        swapped.swap(0, 1);
        assert_ne!(shard_root(0, &swapped), r);
        assert_ne!(shard_root(1, &pts), r);
        // RFC 6962 shape: 3 leaves = node(node(l0, l1), l2).
        let l: Vec<[u8; 32]> = (0..3u8).map(|i| [i; 32]).collect();
        let want = sha256(&[&[1], &sha256(&[&[1], &l[0], &l[1]]), &l[2]]);
        assert_eq!(root_of_leaves(&l), want);
    }
}
