//! Byte-level reader and writer shared by every wire format of the crate (little-endian, fixed
//! sizes), and the one error type all parsers return.

/// Why a byte string is not a valid encoding of a protocol message.
///
/// Every parser of the crate returns this type; none panics on any input (fuzzed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the named field.
    #[error("truncated input: {0} is missing")]
    Truncated(&'static str),
    /// Bytes remained after the last field.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The input has the wrong total length for its fixed-size format.
    #[error("wrong length for {what}: expected {expected}, got {got}")]
    WrongLength {
        /// The message.
        what: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Actual length in bytes.
        got: usize,
    },
    /// The version byte names a version this build does not speak.
    #[error("unsupported {what} version {got}")]
    UnsupportedVersion {
        /// The message.
        what: &'static str,
        /// The version found.
        got: u16,
    },
    /// The suite byte names a cipher suite this build does not speak.
    #[error("unsupported cipher suite {0}")]
    UnsupportedSuite(u8),
    /// A group element is not a canonical ristretto255 encoding.
    #[error("{0} is not a canonical ristretto255 point")]
    InvalidPoint(&'static str),
    /// A group element is the identity where the identity is forbidden.
    #[error("{0} is the identity element")]
    IdentityPoint(&'static str),
    /// A scalar or field element is not canonical.
    #[error("{0} is not a canonical field element")]
    NonCanonical(&'static str),
    /// A field holds a value outside its allowed range.
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
    /// A count field is larger than this build accepts.
    #[error("{what} is {got}, above the limit {limit}")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// The value found.
        got: u64,
        /// The limit.
        limit: u64,
    },
}

/// Appends fixed-size fields.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
}

/// Reads fixed-size fields, failing with [`DecodeError::Truncated`] rather than panicking.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}
