//! Typed errors.

/// A slot layout that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The number of slots is outside the allowed range.
    #[error("a layout needs 1..=32 slots (8..=32 for uniform layouts), got {0}")]
    SlotCount(usize),
    /// A slot is empty or wider than 32 bits.
    #[error("slot width must be 1..=32 bits, got {0}")]
    SlotWidth(u32),
    /// Offset-table bits exceed the slot width or 24.
    #[error("table bits must be at most min(slot width, 24), got {0}")]
    TableBits(u32),
    /// Slots are not contiguous or do not cover exactly bits 0..256.
    #[error("slots must be contiguous and cover bits 0..256 (stopped at bit {0})")]
    Coverage(u32),
}

/// Errors from building an index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The caller's id list does not have one id per code.
    #[error("{ids} ids given for {codes} codes")]
    IdCount {
        /// Number of codes.
        codes: usize,
        /// Number of ids.
        ids: usize,
    },
    /// More codes than a `u32` position can address.
    #[error("too many codes: {0} (at most 4294967295)")]
    TooMany(usize),
}

/// Why an index file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or mapped.
    #[error("cannot read index file: {0}")]
    Io(#[from] std::io::Error),
    /// Fewer bytes than the fixed header or than the header announces.
    #[error("index file truncated: {len} bytes, expected {expected}")]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes required.
        expected: u64,
    },
    /// More bytes than the header announces.
    #[error("index file has {len} bytes, header says {expected}")]
    TrailingBytes {
        /// Bytes present.
        len: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The file does not start with the index magic.
    #[error("not a hashguard index file (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported index format version {0} (this build reads version 1)")]
    UnsupportedVersion(u32),
    /// The stored checksum does not match the contents.
    #[error("index file checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): file is corrupted")]
    Checksum {
        /// Checksum in the header.
        stored: u64,
        /// Checksum of the bytes.
        computed: u64,
    },
    /// The header or slot table is inconsistent.
    #[error("malformed index header: {0}")]
    Header(&'static str),
    /// The stored slot layout is invalid.
    #[error("invalid slot layout in index file: {0}")]
    Layout(#[from] LayoutError),
    /// A bucket offset table is not monotone or does not end at the entry count.
    #[error("corrupt offset table in slot {0}")]
    Offsets(usize),
    /// A posting or other cross-reference is inconsistent (deep verification).
    #[error("corrupt postings in slot {0}")]
    Postings(usize),
    /// The platform is big-endian; the format is little-endian and mapped in place.
    #[error("index files are little-endian and can only be mapped on little-endian platforms")]
    BigEndian,
}
