//! Slot layouts: how the 256 bits of a code are cut into multi-index slots.

use crate::error::LayoutError;
use crate::Code;

/// Largest number of slots a layout may have.
pub const MAX_SLOTS: usize = 32;
/// Largest width of one slot, in bits (a slot value must fit a `u32`).
pub const MAX_SLOT_BITS: u32 = 32;
/// Largest number of bits of a slot that are resolved by its direct offset table.
pub const MAX_TABLE_BITS: u32 = 24;

/// One slot: a contiguous run of `width` bits starting at bit `start` of the code.
///
/// The top `table_bits` bits of the slot value select a bucket in a direct offset
/// table; the following bits (as many as fit beside the position in a `u32`
/// posting) are stored in the posting as a key that is compared before a
/// candidate code is fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// First bit of the code covered by this slot (bit k lives in word k/64, bit k%64).
    pub start: u32,
    /// Number of bits in the slot (1..=32).
    pub width: u32,
    /// Number of high bits of the slot value that index the offset table (0..=min(width, 24)).
    pub table_bits: u32,
}

impl Slot {
    /// Extracts this slot's value (`width` bits) from a code.
    #[inline]
    pub fn value(&self, code: &Code) -> u32 {
        extract(code, self.start, self.width)
    }

    /// The slot value's top `table_bits` bits: its bucket in the offset table.
    #[inline]
    pub fn top(&self, code: &Code) -> u32 {
        (u64::from(self.value(code)) >> self.low_bits()) as u32
    }

    /// Number of low bits of the slot value not covered by the offset table.
    #[inline]
    pub fn low_bits(&self) -> u32 {
        self.width - self.table_bits
    }
}

/// Extracts `width` (<= 32) bits starting at bit `start` (< 256) of a code.
#[inline]
pub(crate) fn extract(code: &Code, start: u32, width: u32) -> u32 {
    let w = (start / 64) as usize;
    let s = start % 64;
    let lo = code.get(w).copied().unwrap_or(0) >> s;
    let v = if s != 0 && s + width > 64 {
        lo | (code.get(w + 1).copied().unwrap_or(0) << (64 - s))
    } else {
        lo
    };
    (v & low_mask(width)) as u32
}

/// A mask of the low `bits` bits (bits <= 64).
#[inline]
pub(crate) fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// How the 256 bits are cut into slots. Invariants (checked by every constructor):
/// 1 to 32 slots, contiguous and disjoint, covering bits 0..256 in order, each
/// 1..=32 bits wide, with `table_bits <= min(width, 24)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    slots: Vec<Slot>,
}

impl Layout {
    /// Builds a layout from slot widths (in code bit order) and the offset-table
    /// bits of each slot (`min(width, table_bits)` is used per slot).
    ///
    /// ```
    /// use hashguard_index::Layout;
    /// let l = Layout::from_widths(&[16; 16], 12).unwrap();
    /// assert_eq!(l.slots().len(), 16);
    /// assert!(Layout::from_widths(&[16; 15], 12).is_err()); // covers only 240 bits
    /// ```
    pub fn from_widths(widths: &[u32], table_bits: u32) -> Result<Self, LayoutError> {
        if widths.is_empty() || widths.len() > MAX_SLOTS {
            return Err(LayoutError::SlotCount(widths.len()));
        }
        if table_bits > MAX_TABLE_BITS {
            return Err(LayoutError::TableBits(table_bits));
        }
        let mut slots = Vec::with_capacity(widths.len());
        let mut start = 0u32;
        for &w in widths {
            if w == 0 || w > MAX_SLOT_BITS {
                return Err(LayoutError::SlotWidth(w));
            }
            slots.push(Slot {
                start,
                width: w,
                table_bits: table_bits.min(w),
            });
            start = start.saturating_add(w);
        }
        if start != 256 {
            return Err(LayoutError::Coverage(start));
        }
        Ok(Layout { slots })
    }

    /// Builds a layout from explicit slots, checking every invariant.
    pub fn from_slots(slots: Vec<Slot>) -> Result<Self, LayoutError> {
        if slots.is_empty() || slots.len() > MAX_SLOTS {
            return Err(LayoutError::SlotCount(slots.len()));
        }
        let mut start = 0u32;
        for s in &slots {
            if s.width == 0 || s.width > MAX_SLOT_BITS {
                return Err(LayoutError::SlotWidth(s.width));
            }
            if s.table_bits > MAX_TABLE_BITS || s.table_bits > s.width {
                return Err(LayoutError::TableBits(s.table_bits));
            }
            if s.start != start {
                return Err(LayoutError::Coverage(s.start));
            }
            start += s.width;
        }
        if start != 256 {
            return Err(LayoutError::Coverage(start));
        }
        Ok(Layout { slots })
    }

    /// `m` slots of (nearly) equal width: the first `256 % m` slots get one extra bit.
    /// `m` must be in 8..=32 so that every slot fits 32 bits.
    ///
    /// ```
    /// use hashguard_index::Layout;
    /// let l = Layout::uniform(11, 18).unwrap();
    /// let w: Vec<u32> = l.slots().iter().map(|s| s.width).collect();
    /// assert_eq!(w, [24, 24, 24, 23, 23, 23, 23, 23, 23, 23, 23]);
    /// ```
    pub fn uniform(m: usize, table_bits: u32) -> Result<Self, LayoutError> {
        if !(8..=MAX_SLOTS).contains(&m) {
            return Err(LayoutError::SlotCount(m));
        }
        let base = 256 / m as u32;
        let extra = 256 % m as u32;
        let widths: Vec<u32> = (0..m as u32).map(|i| base + u32::from(i < extra)).collect();
        Self::from_widths(&widths, table_bits)
    }

    /// The default layout for an index of `n` codes, chosen by measurement at
    /// radius 31 (see the crate documentation): about `256 / log2(n)` slots
    /// (11 at 10 million), clamped to 8..=16, with offset tables of
    /// `log2(n) - 5` bits (about 32 codes per table bucket), clamped to 4..=20.
    pub fn for_len(n: usize) -> Self {
        let lg = (usize::BITS - n.max(2).leading_zeros()) as f64; // ~ceil(log2 n)
        let m = ((256.0 / lg.max(16.0)).round() as usize).clamp(8, 16);
        let t = (lg as i64 - 5).clamp(4, 20) as u32;
        // uniform() only fails for m outside 8..=32 or t > 24, excluded above.
        Self::uniform(m, t).unwrap_or_else(|_| Layout {
            slots: (0..16)
                .map(|i| Slot {
                    start: i * 16,
                    width: 16,
                    table_bits: 12,
                })
                .collect(),
        })
    }

    /// The slots, in code bit order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}
