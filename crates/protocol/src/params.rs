//! Protocol parameters (protocol.md 3.3 as revised by R/E3), their canonical encoding, and the
//! check a client makes against the values pinned in its binary.

use crate::wire::{DecodeError, Reader, Writer};

/// The DHF prime ℓ = 2^64 − 59 (Apple PSI §4.3; protocol.md 3.3).
pub const DHF_PRIME: u64 = 0xffff_ffff_ffff_ffc5;

/// What the server does with a key match (ARCHITECTURE.md "Two policies, one protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Hold the matching item and offer the sender an automatic check by consent. The server
    /// learns each upload's match bit. No synthetic vouchers.
    Intervene,
    /// Apple's 2021 design: synthetic vouchers hide the match bit below the threshold and the
    /// server's reply never depends on opening.
    Silent,
}

impl Policy {
    /// Wire value.
    pub fn to_byte(self) -> u8 {
        match self {
            Policy::Intervene => 1,
            Policy::Silent => 2,
        }
    }
    /// Parses the wire value.
    pub fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            1 => Ok(Policy::Intervene),
            2 => Ok(Policy::Silent),
            _ => Err(DecodeError::InvalidValue("policy")),
        }
    }

    /// Every policy.
    pub const ALL: [Policy; 2] = [Policy::Intervene, Policy::Silent];

    /// The policy's name in configuration and records: `intervene` or `silent`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Intervene => "intervene",
            Policy::Silent => "silent",
        }
    }

    /// The policy of a [`Policy::name`].
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The named parameter sets of protocol.md 3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// [`Params::v1`]: k = 48, f = 2, w = 12 (P = 79; 237 with the dihedral probes of
    /// `intervene`).
    V1,
    /// [`Params::lite`]: k = 48, f = 1, w = 12 (P = 13; 39 with the dihedral probes of
    /// `intervene`).
    Lite,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 2] = [Preset::V1, Preset::Lite];

    /// The preset's name in configuration and records: `v1` or `lite`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::V1 => "v1",
            Preset::Lite => "lite",
        }
    }

    /// The preset of a [`Preset::name`].
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's parameters under `policy`.
    pub fn params(self, policy: Policy) -> Params {
        match self {
            Preset::V1 => Params::v1(policy),
            Preset::Lite => Params::lite(policy),
        }
    }
}

/// Why a parameter set is invalid or does not match the pinned values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A single parameter is out of its range.
    #[error("parameter {0} is out of range")]
    OutOfRange(&'static str),
    /// Key positions repeat or exceed 255.
    #[error("key positions must be {0} distinct PDQ bit indices")]
    BadPositions(u8),
    /// `sep < 2f + 1`: two probes of one voucher could then both open.
    #[error("key separation {sep} is below 2f+1 = {need}")]
    SeparationTooSmall {
        /// The separation given.
        sep: u8,
        /// 2f + 1.
        need: u8,
    },
    /// Silent policy with no synthetic capacity, or intervene with synthetic parameters.
    #[error("policy and synthetic parameters disagree: {0}")]
    PolicyMismatch(&'static str),
    /// More dihedral variants than the payload has slots for their PDQ.
    #[error("{got} dihedral variants requested; the payload carries at most {max}")]
    TooManyDihedralVariants {
        /// Variants requested (bits set in `dihedral`).
        got: usize,
        /// [`MAX_DIHEDRAL_VARIANTS`].
        max: usize,
    },
    /// The received parameters differ from the pinned ones.
    #[error("parameter {0} differs from the value pinned in this build")]
    NotPinned(&'static str),
    /// The received threshold is below the pinned floor.
    #[error("threshold {got} is below the pinned floor {floor}")]
    ThresholdBelowFloor {
        /// Received T.
        got: u16,
        /// Pinned floor.
        floor: u16,
    },
}

/// The presets' dihedral variants under `intervene` (bits of [`ParamsSpec::dihedral`]): the
/// left-right mirror (flipy) and rot90 (which catches copies turned 90 degrees clockwise), the
/// smallest set that reached recall >= 0.90 on mirrored and rotated copies in docs/quality.md
/// "Dihedral probes" (adding rot270 costs 79 more probes).
pub const V1_DIHEDRAL: u8 = 1 << 4 | 1;
/// The presets' flips per dihedral variant under `intervene` (capped at the preset's f):
/// f_d = 1 reached 0.89 / 0.91 on mirror / rot90 copies, f_d = 2 0.94 / 0.94 (docs/quality.md).
pub const V1_DIHEDRAL_F: u8 = 2;
/// The presets' m under `intervene`: two related keys per orientation (docs/quality.md
/// "Related keys").
pub const V1_MAX_OPENS: u8 = 2 * (1 + V1_DIHEDRAL.count_ones() as u8);

/// The public parameters of a deployment. Constructed only through [`Params::new`] (or the
/// presets), which enforces every invariant, so a `Params` value is always usable.
///
/// ```
/// use hashguard_protocol::params::{Params, PinnedParams, Policy};
/// let p = Params::v1(Policy::Silent);
/// assert_eq!((p.k(), p.probes(), p.threshold(), p.max_opens()), (48, 79, 30, 1));
/// let p = Params::v1(Policy::Intervene);
/// assert!(p.probes() > 79 && p.max_opens() > 1); // dihedral probes, related keys
/// // Canonical encoding, strictly decoded.
/// assert_eq!(Params::decode(&p.encode()), Ok(p.clone()));
/// // A client pins its parameters; the lite variant (P = 13) is refused.
/// let pin = PinnedParams::exactly(p);
/// assert!(pin.check(&Params::lite(Policy::Intervene)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    // Always a spec that `Params::new` accepted.
    spec: ParamsSpec,
}

/// The low-frequency PDQ key positions of calibration.md: bits (row i, column j) sorted by
/// `i + j`, then by `i`; the first `k` of that order. Bit index = `16 i + j`.
pub fn low_frequency_positions(k: u8) -> Vec<u8> {
    let mut all: Vec<(u8, u8)> = (0..16u8)
        .flat_map(|i| (0..16u8).map(move |j| (i, j)))
        .collect();
    all.sort_by_key(|&(i, j)| (i + j, i));
    all.into_iter()
        .take(k as usize)
        .map(|(i, j)| i * 16 + j)
        .collect()
}

/// Number of probes for multi-probe with at most `f` flips among `w` bits: Σ_{i≤f} C(w, i).
pub fn probe_count(w: u8, f: u8) -> u32 {
    let mut total = 0u64;
    let mut c = 1u64; // C(w, 0)
    for i in 0..=u64::from(f) {
        total += c;
        c = c * (u64::from(w) - i.min(u64::from(w))) / (i + 1);
    }
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Probes per PDQ voucher with dihedral probes: `Σ_{i≤f} C(w, i)` for the image itself plus
/// `Σ_{i≤dihedral_f} C(w, i)` for each variant bit set in `dihedral`.
pub fn total_probes(w: u8, f: u8, dihedral: u8, dihedral_f: u8) -> u32 {
    let per_variant = probe_count(w, dihedral_f);
    probe_count(w, f).saturating_add(per_variant.saturating_mul(dihedral.count_ones()))
}

/// Smallest allowed visual-derivative blob length.
pub const MIN_VD_LEN: u32 = 64;
/// Largest allowed visual-derivative blob length.
pub const MAX_VD_LEN: u32 = 1 << 20;
/// Largest probe count accepted (keeps vouchers bounded).
pub const MAX_PROBES: u32 = 1024;
/// Largest synthetic capacity accepted.
pub const MAX_S_MAX: u16 = 1024;
/// Largest `max_opens` accepted (a voucher with more opened probes is always invalid).
pub const MAX_OPENS: u8 = 64;
/// Every dihedral variant a client can probe, as bits of [`ParamsSpec::dihedral`], in the
/// order of `hashguard_pdq::DihedralHashes::named_variants`: bit 0 rot90 (counter-clockwise),
/// 1 rot180, 2 rot270, 3 flipx (upside down), 4 flipy (left-right mirror), 5 flipplus1
/// (transpose), 6 flipminus1 (anti-transpose).
pub const DIHEDRAL_ALL: u8 = 0x7f;
/// The most dihedral variants a parameter set may probe. The payload carries the PDQ of each
/// probed variant (so the server's full-distance check can compare the orientation that
/// matched) in this many fixed slots: a fixed number keeps every payload, and so every
/// voucher of a layout, the same length whatever the parameters (G1).
pub const MAX_DIHEDRAL_VARIANTS: usize = 2;
/// The names of the dihedral variants, by bit of [`ParamsSpec::dihedral`].
pub const DIHEDRAL_NAMES: [&str; 7] = [
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus1",
    "flipminus1",
];

/// Every value of a [`Params`], by name: what [`Params::new`] validates, and what
/// [`Params::to_spec`] gives back to derive a variant of a preset
/// (`Params::new(ParamsSpec { threshold: 2, ..Params::v1(policy).to_spec() })`). Named fields,
/// because six of them are small integers of one type that a positional call could swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsSpec {
    /// The deployment's policy.
    pub policy: Policy,
    /// The k PDQ bit positions, in key order (k = their number).
    pub key_positions: Vec<u8>,
    /// Maximum flipped bits per probe.
    pub f: u8,
    /// Number of weakest key bits considered for flips.
    pub w: u8,
    /// Threshold T of distinct matches before payloads decrypt.
    pub threshold: u16,
    /// DHF synthetic capacity (0 under `intervene`).
    pub s_max: u16,
    /// PDQ quality floor.
    pub q_min: u8,
    /// Client near-duplicate radius.
    pub r_dedup: u8,
    /// Minimum Hamming separation between table keys.
    pub sep: u8,
    /// Synthetic schedule numerator a in p_i = a / (b + i) (0 under `intervene`).
    pub synth_a: u32,
    /// Synthetic schedule offset b (0 under `intervene`).
    pub synth_b: u32,
    /// Fixed visual-derivative blob length in bytes.
    pub vd_len: u32,
    /// m: the most opened probes one voucher may have and still count as **one** match (all
    /// opened probes must carry the same key; more than m is an invalid voucher). 1 under
    /// `silent` (synthetic vouchers open exactly one probe); under `intervene` it admits keys
    /// of related list entries kept closer than `sep` and dihedral probes
    /// (docs/protocol.md "Related keys and dihedral probes").
    pub max_opens: u8,
    /// Which dihedral variants of the image the client also probes: bits as in
    /// [`DIHEDRAL_NAMES`] (0 under `silent`), at most [`MAX_DIHEDRAL_VARIANTS`] of them.
    pub dihedral: u8,
    /// Flips per dihedral variant: each probed variant adds `Σ_{i≤dihedral_f} C(w, i)` probes
    /// (its key with up to `dihedral_f` of its own `w` weakest bits flipped); `≤ f`.
    pub dihedral_f: u8,
}

impl Params {
    /// Builds and validates a parameter set.
    ///
    /// Invariants: `1 ≤ k ≤ 64` distinct positions; `f ≤ w ≤ k`; `P = Σ_{i≤f} C(w,i) ≤ 1024`;
    /// at most [`MAX_DIHEDRAL_VARIANTS`] dihedral variants, `dihedral_f ≤ f`;
    /// `sep ≥ 2f + 1`; `T ≥ 2`; under `silent`, `s_max ≥ 11` (the synthetic cap is
    /// `s_max − 10`) and `0 < synth_a ≤ synth_b + 1` (so p_i ≤ 1);
    /// under `intervene`, `s_max = 0` and no synthetic schedule (protocol-review.md m3: the DHF
    /// identifies nothing without synthetics, so its 728 bytes are dropped); the VD length is in
    /// `[64, 1 MiB]`.
    pub fn new(spec: ParamsSpec) -> Result<Self, ParamsError> {
        let &ParamsSpec {
            policy,
            f,
            w,
            threshold,
            s_max,
            q_min,
            r_dedup,
            sep,
            synth_a,
            synth_b,
            vd_len,
            ..
        } = &spec;
        let key_positions = &spec.key_positions;
        let k = key_positions.len();
        if k == 0 || k > 64 {
            return Err(ParamsError::OutOfRange("k"));
        }
        let mut seen = [false; 256];
        for &p in key_positions {
            if seen[p as usize] {
                return Err(ParamsError::BadPositions(
                    u8::try_from(k).unwrap_or(u8::MAX),
                ));
            }
            seen[p as usize] = true;
        }
        if usize::from(w) > k || f > w {
            return Err(ParamsError::OutOfRange("f/w"));
        }
        let &ParamsSpec {
            max_opens,
            dihedral,
            dihedral_f,
            ..
        } = &spec;
        if dihedral > DIHEDRAL_ALL || dihedral_f > f {
            return Err(ParamsError::OutOfRange("dihedral"));
        }
        let variants = dihedral.count_ones() as usize;
        if variants > MAX_DIHEDRAL_VARIANTS {
            return Err(ParamsError::TooManyDihedralVariants {
                got: variants,
                max: MAX_DIHEDRAL_VARIANTS,
            });
        }
        if total_probes(w, f, dihedral, dihedral_f) > MAX_PROBES {
            return Err(ParamsError::OutOfRange("P"));
        }
        // Every probed orientation may open one probe of a related cluster (keys.rs
        // `separate_related`), so m must admit at least one per orientation.
        let orientations = 1 + dihedral.count_ones() as u8;
        if max_opens == 0 || max_opens > MAX_OPENS || max_opens < orientations {
            return Err(ParamsError::OutOfRange("max_opens"));
        }
        let need = 2 * f + 1;
        if sep < need {
            return Err(ParamsError::SeparationTooSmall { sep, need });
        }
        if threshold < 2 {
            return Err(ParamsError::OutOfRange("T"));
        }
        if q_min > 100 {
            return Err(ParamsError::OutOfRange("q_min"));
        }
        if usize::from(r_dedup) > 128 {
            return Err(ParamsError::OutOfRange("r_dedup"));
        }
        if s_max > MAX_S_MAX {
            return Err(ParamsError::OutOfRange("s_max"));
        }
        match policy {
            Policy::Silent => {
                // Synthetic vouchers open exactly one probe; a real voucher that could open
                // two would stand out among them (protocol-review.md m1).
                if max_opens != 1 || dihedral != 0 {
                    return Err(ParamsError::PolicyMismatch(
                        "silent admits one opened probe and no dihedral probes",
                    ));
                }
                if s_max < 11 {
                    return Err(ParamsError::PolicyMismatch("silent needs s_max >= 11"));
                }
                if synth_a == 0 || u64::from(synth_a) > u64::from(synth_b) + 1 {
                    return Err(ParamsError::PolicyMismatch("silent needs 0 < a <= b + 1"));
                }
            }
            Policy::Intervene => {
                if s_max != 0 || synth_a != 0 || synth_b != 0 {
                    return Err(ParamsError::PolicyMismatch(
                        "intervene has no synthetic vouchers (s_max = a = b = 0)",
                    ));
                }
            }
        }
        if !(MIN_VD_LEN..=MAX_VD_LEN).contains(&vd_len) {
            return Err(ParamsError::OutOfRange("vd_len"));
        }
        Ok(Params { spec })
    }

    /// The v1 defaults of protocol.md 3.3 with calibration.md's positions: k = 48 low-frequency
    /// bits, f = 2, w = 12 (P = 79), T = 30, q_min = 50, r_dedup = 8, sep = 5, VD 4096 bytes;
    /// `intervene` adds dihedral probes of the mirror and rot90 variants with f_d = 2
    /// (P = 237) and m = 6 (related keys kept, docs/protocol.md); `silent` adds s_max = 90 and
    /// the schedule a/(b+i) with a = 4, b = 30, with m = 1 and no dihedral probes.
    pub fn v1(policy: Policy) -> Self {
        Self::v1_with(policy, 2)
    }

    /// The lite variant (f = 1: P = 13, 39 with `intervene`'s dihedral probes at f_d = 1),
    /// otherwise as [`Params::v1`].
    pub fn lite(policy: Policy) -> Self {
        Self::v1_with(policy, 1)
    }

    fn v1_with(policy: Policy, f: u8) -> Self {
        let (k, w, t) = (48, 12, 30);
        let (s_max, a, b, max_opens, dihedral, dihedral_f) = match policy {
            Policy::Intervene => (0, 0, 0, V1_MAX_OPENS, V1_DIHEDRAL, V1_DIHEDRAL_F),
            Policy::Silent => (90, 4, 30, 1, 0, 0),
        };
        match Self::new(ParamsSpec {
            policy,
            key_positions: low_frequency_positions(k),
            f,
            w,
            threshold: t,
            s_max,
            q_min: hashguard_pdq::QUALITY_THRESHOLD,
            r_dedup: 8,
            sep: 2 * f + 1,
            synth_a: a,
            synth_b: b,
            vd_len: 4096,
            max_opens,
            dihedral,
            dihedral_f: dihedral_f.min(f),
        }) {
            Ok(p) => p,
            // The presets satisfy every invariant (checked by a unit test).
            Err(e) => panic!("built-in parameter preset is invalid: {e}"),
        }
    }

    /// Every value by name, to derive a variant (validated again by [`Params::new`]).
    pub fn to_spec(&self) -> ParamsSpec {
        self.spec.clone()
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.spec.policy
    }
    /// Key bits k.
    pub fn k(&self) -> u8 {
        // Params::new bounds k to 1..=64.
        u8::try_from(self.spec.key_positions.len()).expect("k ≤ 64")
    }
    /// The k PDQ bit positions, in key order (position 0 is the key's most significant bit).
    pub fn key_positions(&self) -> &[u8] {
        &self.spec.key_positions
    }
    /// Maximum flipped bits per probe.
    pub fn f(&self) -> u8 {
        self.spec.f
    }
    /// Number of weakest key bits considered for flips.
    pub fn w(&self) -> u8 {
        self.spec.w
    }
    /// Probes per PDQ voucher, P = Σ_{i≤f} C(w, i) + |dihedral| · Σ_{i≤dihedral_f} C(w, i).
    pub fn probes(&self) -> u16 {
        // Params::new bounds P to MAX_PROBES (1024).
        u16::try_from(total_probes(
            self.spec.w,
            self.spec.f,
            self.spec.dihedral,
            self.spec.dihedral_f,
        ))
        .expect("P ≤ MAX_PROBES")
    }
    /// m: the most opened probes that still count as one match ([`ParamsSpec::max_opens`]).
    pub fn max_opens(&self) -> u8 {
        self.spec.max_opens
    }
    /// The dihedral variants probed, as bits ([`ParamsSpec::dihedral`]).
    pub fn dihedral(&self) -> u8 {
        self.spec.dihedral
    }
    /// Flips per dihedral variant ([`ParamsSpec::dihedral_f`]).
    pub fn dihedral_f(&self) -> u8 {
        self.spec.dihedral_f
    }
    /// Orientations probed: the image itself and each dihedral variant.
    pub fn orientations(&self) -> u8 {
        1 + self.spec.dihedral.count_ones() as u8
    }
    /// The most keys the table build keeps within distance `< sep` of each other (a cluster of
    /// related entries): `⌊m / orientations⌋`, so that one voucher opens at most m probes on an
    /// honest table (keys.rs `separate_related`). 1 means strict separation.
    pub fn cluster_cap(&self) -> u8 {
        self.spec.max_opens / self.orientations()
    }
    /// Threshold T of distinct matches before payloads decrypt.
    pub fn threshold(&self) -> u16 {
        self.spec.threshold
    }
    /// DHF synthetic capacity s_max (0 under `intervene`).
    pub fn s_max(&self) -> u16 {
        self.spec.s_max
    }
    /// PDQ quality floor.
    pub fn q_min(&self) -> u8 {
        self.spec.q_min
    }
    /// Client near-duplicate radius.
    pub fn r_dedup(&self) -> u8 {
        self.spec.r_dedup
    }
    /// Minimum Hamming separation between table keys.
    pub fn sep(&self) -> u8 {
        self.spec.sep
    }
    /// Synthetic schedule numerator a in p_i = a / (b + i).
    pub fn synth_a(&self) -> u32 {
        self.spec.synth_a
    }
    /// Synthetic schedule offset b.
    pub fn synth_b(&self) -> u32 {
        self.spec.synth_b
    }
    /// Fixed visual-derivative blob length in bytes (ciphertext including tag).
    pub fn vd_len(&self) -> u32 {
        self.spec.vd_len
    }

    /// Canonical encoding (part of the manifest and of every DLEQ context).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        self.write(&mut w);
        w.buf
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.spec.policy.to_byte());
        w.u8(self.k());
        w.bytes(&self.spec.key_positions);
        w.u8(self.spec.f);
        w.u8(self.spec.w);
        w.u16(self.probes());
        w.u16(self.spec.threshold);
        w.u16(self.spec.s_max);
        w.u64(DHF_PRIME);
        w.u8(self.spec.q_min);
        w.u8(self.spec.r_dedup);
        w.u8(self.spec.sep);
        w.u32(self.spec.synth_a);
        w.u32(self.spec.synth_b);
        w.u32(self.spec.vd_len);
        w.u8(self.spec.max_opens);
        w.u8(self.spec.dihedral);
        w.u8(self.spec.dihedral_f);
    }

    /// Strict decoding of [`Params::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let p = Self::read(&mut r)?;
        r.finish()?;
        Ok(p)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let policy = Policy::from_byte(r.u8("policy")?)?;
        let k = r.u8("k")?;
        let key_positions = r.take(k as usize, "key_positions")?.to_vec();
        let f = r.u8("f")?;
        let w = r.u8("w")?;
        let p = r.u16("P")?;
        let threshold = r.u16("T")?;
        let s_max = r.u16("s_max")?;
        if r.u64("dhf_prime")? != DHF_PRIME {
            return Err(DecodeError::InvalidValue("dhf_prime"));
        }
        let q_min = r.u8("q_min")?;
        let r_dedup = r.u8("r_dedup")?;
        let sep = r.u8("sep")?;
        let synth_a = r.u32("synth_a")?;
        let synth_b = r.u32("synth_b")?;
        let vd_len = r.u32("vd_len")?;
        let max_opens = r.u8("max_opens")?;
        let dihedral = r.u8("dihedral")?;
        let dihedral_f = r.u8("dihedral_f")?;
        let params = Params::new(ParamsSpec {
            policy,
            key_positions,
            f,
            w,
            threshold,
            s_max,
            q_min,
            r_dedup,
            sep,
            synth_a,
            synth_b,
            vd_len,
            max_opens,
            dihedral,
            dihedral_f,
        })
        .map_err(|_| DecodeError::InvalidValue("params"))?;
        if params.probes() != p {
            return Err(DecodeError::InvalidValue("P"));
        }
        Ok(params)
    }
}

/// The parameter values pinned in a client binary (protocol.md R/E3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedParams {
    /// Everything except T must equal these exactly.
    pub params: Params,
    /// The lowest threshold this build accepts.
    pub t_floor: u16,
}

impl PinnedParams {
    /// Pins `params` exactly and T at `params.threshold()` as the floor.
    pub fn exactly(params: Params) -> Self {
        let t_floor = params.threshold();
        PinnedParams { params, t_floor }
    }

    /// Checks received parameters: suite-level and layout parameters must equal the pinned
    /// values and T must be at least the floor.
    pub fn check(&self, got: &Params) -> Result<(), ParamsError> {
        let p = &self.params;
        let checks: [(bool, &'static str); 14] = [
            (p.spec.policy == got.spec.policy, "policy"),
            (
                p.spec.key_positions == got.spec.key_positions,
                "key_positions",
            ),
            (p.spec.f == got.spec.f, "f"),
            (p.spec.w == got.spec.w, "w"),
            (p.spec.s_max == got.spec.s_max, "s_max"),
            (p.spec.q_min == got.spec.q_min, "q_min"),
            (p.spec.r_dedup == got.spec.r_dedup, "r_dedup"),
            (p.spec.sep == got.spec.sep, "sep"),
            (p.spec.synth_a == got.spec.synth_a, "synth_a"),
            (p.spec.synth_b == got.spec.synth_b, "synth_b"),
            (p.spec.vd_len == got.spec.vd_len, "vd_len"),
            (p.spec.max_opens == got.spec.max_opens, "max_opens"),
            (p.spec.dihedral == got.spec.dihedral, "dihedral"),
            (p.spec.dihedral_f == got.spec.dihedral_f, "dihedral_f"),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(ParamsError::NotPinned(what));
            }
        }
        if got.threshold() < self.t_floor {
            return Err(ParamsError::ThresholdBelowFloor {
                got: got.threshold(),
                floor: self.t_floor,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_protocol_md() {
        let v1 = Params::v1(Policy::Intervene);
        assert_eq!(
            u32::from(v1.probes()),
            79 + V1_DIHEDRAL.count_ones() * probe_count(12, V1_DIHEDRAL_F)
        );
        assert_eq!(Params::v1(Policy::Silent).probes(), 79);
        assert!(v1.cluster_cap() >= 2, "related keys kept under intervene");
        assert_eq!(Params::v1(Policy::Silent).cluster_cap(), 1);
        assert_eq!(v1.k(), 48);
        assert_eq!(Params::lite(Policy::Silent).probes(), 13);
        assert_eq!(Params::v1(Policy::Silent).s_max(), 90);
        // calibration.md: 45 positions with i + j <= 8, then (0,9), (1,8), (2,7).
        let pos = low_frequency_positions(48);
        assert_eq!(pos[0], 0);
        assert_eq!(&pos[45..], &[9, 16 + 8, 32 + 7]);
        assert!(pos[..45].iter().all(|&b| (b / 16) + (b % 16) <= 8));
    }

    #[test]
    fn params_roundtrip_and_reject() {
        for p in [
            Params::v1(Policy::Intervene),
            Params::v1(Policy::Silent),
            Params::lite(Policy::Intervene),
        ] {
            let e = p.encode();
            assert_eq!(Params::decode(&e), Ok(p.clone()));
            let mut bad = e.clone();
            bad.push(0);
            assert!(Params::decode(&bad).is_err());
            assert!(Params::decode(&e[..e.len() - 1]).is_err());
        }
        let v1 = Params::v1(Policy::Intervene).to_spec();
        assert_eq!(Params::new(v1.clone()), Ok(Params::v1(Policy::Intervene)));
        assert!(matches!(
            Params::new(ParamsSpec {
                sep: 4,
                ..v1.clone()
            }),
            Err(ParamsError::SeparationTooSmall { .. })
        ));
        // Synthetics under `intervene`.
        assert!(Params::new(ParamsSpec {
            s_max: 90,
            synth_a: 4,
            synth_b: 30,
            ..v1
        })
        .is_err());
    }

    #[test]
    fn pinned_check() {
        let pin = PinnedParams::exactly(Params::v1(Policy::Intervene));
        assert!(pin.check(&Params::v1(Policy::Intervene)).is_ok());
        assert_eq!(
            pin.check(&Params::lite(Policy::Intervene)),
            Err(ParamsError::NotPinned("f"))
        );
        let low_t = Params::new(ParamsSpec {
            threshold: 29,
            ..Params::v1(Policy::Intervene).to_spec()
        })
        .expect("valid");
        assert!(matches!(
            pin.check(&low_t),
            Err(ParamsError::ThresholdBelowFloor { .. })
        ));
        assert_eq!(
            pin.check(&Params::v1(Policy::Silent)),
            Err(ParamsError::NotPinned("policy"))
        );
    }
}
