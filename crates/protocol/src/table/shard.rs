//! One published shard (`TableShard` wire format) and its manifest entry.

use curve25519_dalek::ristretto::CompressedRistretto;

use crate::dleq::DleqProof;
use crate::keys::TableKind;
use crate::merkle;
use crate::okvs::Layout;

use crate::suite::SUITE_ID;
use crate::wire::{DecodeError, Reader, Writer};

/// Header of one shard: everything but the points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    /// Key space.
    pub kind: TableKind,
    /// Shard index s.
    pub shard: u16,
    /// Shard count S.
    pub shard_count: u16,
    /// Incremented on every rebuild of this shard.
    pub shard_version: u32,
    /// n_s, keys encoded.
    pub n_keys: u32,
    /// The OKVS layout (a function of n_s).
    pub layout: Layout,
    /// Fill seed of the epoch in which this shard was built.
    pub fill_seed: [u8; 32],
    /// Build id.
    pub build_id: [u8; 32],
    /// OKVS seed (first attempt that peels).
    pub okvs_seed: [u8; 32],
}

/// Version of the `TableShard` wire format.
pub const TABLE_SHARD_VERSION: u16 = 1;

/// A published shard: header plus `m_s` compressed points `T_s[j] = α·M_s[j]`.
///
/// Wire format (little-endian): `u16 version | u8 suite | u8 kind | u16 shard | u16 shard_count |
/// u32 shard_version | u32 n_s | u32 m_s | u32 segment_length | u32 segment_count |
/// [32] fill_seed | [32] build_id | [32] okvs_seed | [32]×m_s points`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShard {
    /// Header.
    pub header: ShardHeader,
    /// The blinded points.
    pub points: Vec<CompressedRistretto>,
}

/// Size of the fixed part of a `TableShard` encoding.
pub const TABLE_SHARD_HEADER_LEN: usize = 2 + 1 + 1 + 2 + 2 + 4 * 5 + 32 * 3;

impl TableShard {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.header;
        let mut w = Writer::with_capacity(TABLE_SHARD_HEADER_LEN + 32 * self.points.len());
        w.u16(TABLE_SHARD_VERSION);
        w.u8(SUITE_ID);
        w.u8(h.kind.to_byte());
        w.u16(h.shard);
        w.u16(h.shard_count);
        w.u32(h.shard_version);
        w.u32(h.n_keys);
        w.u32(h.layout.m);
        w.u32(h.layout.segment_length);
        w.u32(h.layout.segment_count);
        w.bytes(&h.fill_seed);
        w.bytes(&h.build_id);
        w.bytes(&h.okvs_seed);
        for p in &self.points {
            w.bytes(p.as_bytes());
        }
        w.buf
    }

    /// Strict decoding. Checks the format and that the layout equals `binary_fuse_size(n_s)`;
    /// point validity is checked by [`ClientTable::load`](super::ClientTable::load) (every point, once).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u16("version")?;
        if version != TABLE_SHARD_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "TableShard",
                got: version,
            });
        }
        let suite = r.u8("suite")?;
        if suite != SUITE_ID {
            return Err(DecodeError::UnsupportedSuite(suite));
        }
        let kind = TableKind::from_byte(r.u8("kind")?).ok_or(DecodeError::InvalidValue("kind"))?;
        let shard = r.u16("shard")?;
        let shard_count = r.u16("shard_count")?;
        if shard_count == 0 || shard >= shard_count {
            return Err(DecodeError::InvalidValue("shard index"));
        }
        let shard_version = r.u32("shard_version")?;
        let n_keys = r.u32("n_s")?;
        let m = r.u32("m_s")?;
        let segment_length = r.u32("segment_length")?;
        let segment_count = r.u32("segment_count")?;
        let layout = Layout::for_keys(n_keys as usize).ok_or(DecodeError::InvalidValue("n_s"))?;
        if layout.m != m
            || layout.segment_length != segment_length
            || layout.segment_count != segment_count
        {
            return Err(DecodeError::InvalidValue("layout"));
        }
        let fill_seed = r.array("fill_seed")?;
        let build_id = r.array("build_id")?;
        let okvs_seed = r.array("okvs_seed")?;
        let expected = 32usize
            .checked_mul(m as usize)
            .ok_or(DecodeError::InvalidValue("m_s"))?;
        if r.remaining() != expected {
            return Err(DecodeError::WrongLength {
                what: "TableShard points",
                expected,
                got: r.remaining(),
            });
        }
        let mut points = Vec::with_capacity(m as usize);
        for _ in 0..m {
            points.push(CompressedRistretto(r.array("point")?));
        }
        r.finish()?;
        Ok(TableShard {
            header: ShardHeader {
                kind,
                shard,
                shard_count,
                shard_version,
                n_keys,
                layout,
                fill_seed,
                build_id,
                okvs_seed,
            },
            points,
        })
    }

    /// Merkle root of the points.
    pub fn root(&self) -> [u8; 32] {
        let pts: Vec<[u8; 32]> = self.points.iter().map(|p| p.to_bytes()).collect();
        merkle::shard_root(self.header.shard, &pts)
    }
}

/// A shard's public manifest entry (R/E9): what the manifest says about each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardEntry {
    /// Shard version.
    pub shard_version: u32,
    /// n_s.
    pub n_keys: u32,
    /// m_s.
    pub m: u32,
    /// Segment length.
    pub segment_length: u32,
    /// Build id.
    pub build_id: [u8; 32],
    /// Merkle root of T_s.
    pub root: [u8; 32],
    /// DLEQ proof that T_s = α·M_s.
    pub proof: DleqProof,
}
