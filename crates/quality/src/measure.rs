//! Recall and false opens through the real protocol, at the deployed parameters.
//!
//! A random half of the originals (seeded) is the stand-in list: their keys are selected
//! exactly as a real table build does (`separate_related`: strict separation, except that
//! keys of related entries may be kept closer under `intervene`), a table is built with
//! `build_table`, certified for the client with the trust sandbox (`accept_alone`) and loaded
//! as a `ClientTable`. Every transformed copy of a listed original and every non-listed
//! original is then uploaded as an app would: `Client::build_pdq_voucher_dihedral` from the
//! copy's PDQ floats (dihedral variants included), the voucher encoded and decoded, and opened
//! by the real `Opener`. Beside it, a plain
//! PDQ matcher (distance <= 31 to any listed hash, quality >= q_min) is the reference line.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use hashguard_pdq::{Hash256, PdqFloats, PdqHasher, RgbImage as PdqRgb};
use hashguard_protocol::prelude::*;
use hashguard_protocol::trust_sandbox::accept_alone;
use image::RgbImage;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::transforms::Transform;

/// PDQ distance buckets for recall by distance (inclusive bounds).
pub const BUCKETS: [(u32, u32); 9] = [
    (0, 0),
    (1, 4),
    (5, 8),
    (9, 12),
    (13, 16),
    (17, 24),
    (25, 31),
    (32, 63),
    (64, 256),
];

/// The PDQ floats of an image (hash, quality, margins).
pub fn floats(img: &RgbImage) -> Result<PdqFloats> {
    let (w, h) = img.dimensions();
    let rgb = PdqRgb::new(img.as_raw(), w as usize, h as usize)
        .map_err(|e| anyhow!("image {w}x{h}: {e}"))?;
    Ok(PdqHasher::new().floats_rgb(&rgb))
}

/// The floats of the dihedral variants the parameters probe, in the pixel domain, as the client
/// SDK hashes them (the other variants all-zero, of quality 0: neither the probes nor the
/// payload read them), or `None` when the parameters probe no dihedral variant.
pub fn dihedral_floats(img: &RgbImage, params: &Params) -> Result<Option<[PdqFloats; 7]>> {
    if params.dihedral() == 0 {
        return Ok(None);
    }
    let (w, h) = img.dimensions();
    let rgb = PdqRgb::new(img.as_raw(), w as usize, h as usize)
        .map_err(|e| anyhow!("image {w}x{h}: {e}"))?;
    Ok(Some(PdqHasher::new().dihedral_pixel_floats_rgb_selected(
        &rgb,
        params.dihedral(),
    )))
}

/// One original: a name and a loader (decoding lazily keeps memory flat on a large corpus).
pub struct Original {
    /// A stable name (package/path, or `generated/<seed>`).
    pub name: String,
    /// Produces the pixels.
    pub load: Box<dyn Fn() -> Result<RgbImage> + Send + Sync>,
}

/// Counts for one row of a result table.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    /// Copies uploaded.
    pub n: usize,
    /// Copies whose voucher opened (one match: 1 ..= m probes) at the real opener.
    pub opened: usize,
    /// Copies the plain PDQ matcher catches (distance <= 31 to the original, quality >= q_min).
    pub plain: usize,
    /// Copies of quality below q_min (the client sends no real probe for them).
    pub below_q_min: usize,
    /// Opened copies none of whose probe keys is their own original's key (opened through
    /// another listed key: a chance key match, counted in `opened` as the server sees it).
    pub opened_other_key: usize,
    /// `opened / n`.
    pub recall: f64,
    /// `plain / n`.
    pub plain_recall: f64,
}

impl Tally {
    fn add(&mut self, opened: bool, plain: bool, low: bool, other: bool) {
        self.n += 1;
        self.opened_other_key += usize::from(other);
        self.opened += usize::from(opened);
        self.plain += usize::from(plain);
        self.below_q_min += usize::from(low);
    }
    fn finish(&mut self) {
        if self.n > 0 {
            self.recall = self.opened as f64 / self.n as f64;
            self.plain_recall = self.plain as f64 / self.n as f64;
        }
    }
}

/// Everything one measurement run found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// The parameters (`Params::v1(Policy::Intervene)` unless stated).
    pub params: String,
    /// Seed of the split and of every random choice.
    pub seed: u64,
    /// The long side the originals were scaled down to first, if any.
    pub small_originals_long_side: Option<u32>,
    /// Originals used.
    pub originals: usize,
    /// Originals that could not be loaded (skipped).
    pub load_failures: usize,
    /// Listed originals (half).
    pub listed: usize,
    /// Listed originals below q_min (their key is still listed, as a careless list would).
    pub listed_below_q_min: usize,
    /// Listed keys that the build's separation dropped (closer than `sep` to another listed
    /// key): their originals and copies can only open by chance.
    pub pruned_keys: usize,
    /// Of those, keys of entries related (PDQ <= 31) to a kept entry.
    pub pruned_related: usize,
    /// Of those, keys of unrelated entries.
    pub pruned_unrelated: usize,
    /// Kept keys closer than `sep` to another kept key (related entries kept catchable).
    pub kept_close: usize,
    /// Recall per transform, in suite order.
    pub per_transform: Vec<(String, Tally)>,
    /// Recall per transform family (jpeg, messenger, ...).
    pub per_family: BTreeMap<String, Tally>,
    /// Recall per PDQ distance bucket (copy to its original), non-dihedral transforms pooled.
    pub per_distance: Vec<(String, Tally)>,
    /// Recall per transform for originals whose long side is <= 512 px.
    pub small_originals: Vec<(String, Tally)>,
    /// Non-listed originals uploaded.
    pub non_listed: usize,
    /// Non-listed originals whose voucher opened (false opens).
    pub false_opens: usize,
    /// Each false open: the non-listed original, the listed original nearest in PDQ, and their
    /// PDQ distance.
    pub false_open_details: Vec<(String, String, u32)>,
    /// Listed originals whose key `prune_separated` dropped (their copies open only through
    /// another key).
    pub pruned_originals: Vec<String>,
    /// Non-listed originals the plain matcher matches to some listed hash (false matches).
    pub plain_false_matches: usize,
    /// Copies (of listed or non-listed images) with more than m opened probes (invalid).
    pub multiple_opens: usize,
    /// Copies that opened as one match through 2 ..= m probes (related keys or dihedral
    /// probes), by count of opened probes.
    pub multi_probe_matches: BTreeMap<u16, usize>,
    /// Uploads where the opener disagreed with the ideal functionality (some probe key listed).
    pub ideal_mismatches: usize,
}

/// What one upload found.
struct Upload {
    transform: usize,
    opened: bool,
    opened_probes: u16,
    plain: bool,
    low: bool,
    distance: u32,
    small: bool,
    multi: bool,
    ideal_mismatch: bool,
    other_key: bool,
}

/// The protocol side of a run: a table of listed keys and the opener.
struct Deployment {
    params: Params,
    table: ClientTable,
    opener: Opener,
    layout: VoucherLayout,
    kept: Vec<u64>,
}

/// What one upload found at the opener.
struct Opening {
    opened: bool,
    opened_probes: u16,
    multi: bool,
    ideal_mismatch: bool,
    own_probed: bool,
}

impl Deployment {
    fn build(
        params: &Params,
        listed: &[Hash256],
        r: &mut ChaCha20Rng,
    ) -> Result<(Self, Separation)> {
        let pruned = separate_related(listed, params);
        let secret = OpeningKey::generate(r);
        let spec = TableSpec::new(
            [0x17; 16],
            TableKind::Pdq,
            params.clone(),
            secret.public_key(),
            4,
            [0x17; 32],
        )
        .map_err(|e| anyhow!("table spec: {e:?}"))?;
        let keys: Vec<KeyBytes> = pruned
            .kept
            .iter()
            .map(|&v| KeyBytes::from_pdq_key(v, params.k()))
            .collect();
        let epoch = EpochInput {
            epoch: 1,
            prev_manifest_hash: [0; 32],
            beacon: [7; 32],
        };
        let built = build_table(&spec, &secret, &keys, &epoch, None, r)
            .map_err(|e| anyhow!("table build: {e:?}"))?;
        let shards: Vec<TableShard> = built.shards.iter().map(|s| s.shard.clone()).collect();
        let manifest = accept_alone(
            Manifest::for_table(&built, &epoch, 0, u64::MAX)
                .map_err(|e| anyhow!("manifest: {e:?}"))?,
            PinnedParams::exactly(params.clone()),
            0,
        )
        .map_err(|e| anyhow!("manifest not accepted: {e:?}"))?;
        let table = ClientTable::load(&manifest, TableKind::Pdq, &shards, 1 << 26)
            .map_err(|e| anyhow!("table load: {e:?}"))?;
        Ok((
            Deployment {
                params: params.clone(),
                table,
                opener: Opener::new(secret, params.clone()),
                layout: VoucherLayout::pdq(params),
                kept: pruned.kept.clone(),
            },
            pruned,
        ))
    }

    /// Uploads one image's floats (with its dihedral variants when the parameters probe
    /// them); `own` is the original's key.
    fn upload(
        &self,
        client: &mut Client,
        f: &PdqFloats,
        variants: Option<&[PdqFloats; 7]>,
        own: Option<u64>,
        r: &mut ChaCha20Rng,
    ) -> Result<Opening> {
        let mut cid = [0u8; 32];
        r.fill_bytes(&mut cid);
        let item = Item {
            pdq: Some(PdqInput::from_floats(f)),
            content_sha256: cid,
            media_kind: MediaKind::Image,
            frame_idx: 0,
            thumbnail: b"",
        };
        let binding = UploadBinding::new([1; 16], &cid);
        let dihedral = match variants {
            Some(v) => DihedralInput::from_variant_floats(v),
            None => DihedralInput::from_floats(f),
        };
        let bv = client
            .build_pdq_voucher_dihedral(&self.table, &item, &dihedral, &binding, r)
            .map_err(|e| anyhow!("voucher: {e:?}"))?;
        let v = Voucher::decode(&bv.voucher.encode(), &self.layout)
            .map_err(|e| anyhow!("voucher decode: {e:?}"))?;
        let outcome = self.opener.open(&v, &self.layout, &binding);
        let (opened, opened_probes) = match &outcome {
            OpenOutcome::Opened(rec) => (true, rec.opened_probes),
            _ => (false, 0),
        };
        let multi = matches!(outcome, OpenOutcome::MultipleOpens(_));
        let probes = all_probe_keys(&PdqInput::from_floats(f), Some(&dihedral), &self.params);
        let ideal_count = probes
            .iter()
            .filter(|k| self.kept.binary_search(k).is_ok())
            .count();
        let ideal = f.quality >= self.params.q_min() && ideal_count > 0;
        let own_probed = own.is_some_and(|o| probes.contains(&o));
        Ok(Opening {
            opened,
            opened_probes,
            multi,
            // The opener must equal the ideal functionality, count included.
            ideal_mismatch: (opened != ideal && !multi)
                || (opened && usize::from(opened_probes) != ideal_count),
            own_probed,
        })
    }
}

/// Runs the measurement on `originals` with `transforms`, at `params`. With `small = Some(l)`
/// every original is first scaled down to long side `l` (bilinear, kept lossless): the listed
/// entries are then small originals, as in the "small originals" case.
pub fn run(
    originals: &[Original],
    transforms: &[Transform],
    params: &Params,
    seed: u64,
    small: Option<u32>,
) -> Result<Report> {
    let indexed: Vec<(usize, Transform)> = transforms.iter().copied().enumerate().collect();
    run_indexed(originals, &indexed, params, seed, small)
}

/// [`run`] with each transform's seed index given: a copy's seed depends on the original, the
/// run's seed and this index, so a run of a subset of [`Transform::suite`] that passes each
/// transform's suite position makes exactly the copies (and outcomes) of the full run.
pub fn run_indexed(
    originals: &[Original],
    transforms: &[(usize, Transform)],
    params: &Params,
    seed: u64,
    small: Option<u32>,
) -> Result<Report> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    // Seeded split: a random permutation, first half listed.
    let mut order: Vec<usize> = (0..originals.len()).collect();
    for i in (1..order.len()).rev() {
        let j = (r.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let half = originals.len() / 2;
    let listed_idx = &order[..half];
    let other_idx = &order[half..];

    // Hash every original once.
    let base: Vec<Option<(RgbImage, PdqFloats)>> = order
        .par_iter()
        .map(|&i| {
            let mut img = (originals[i].load)().ok()?;
            if let Some(l) = small {
                img = crate::transforms::resize_long_side(&img, l);
            }
            let f = floats(&img).ok()?;
            Some((img, f))
        })
        .collect();
    let mut report = Report {
        params: format!(
            "{:?}: k={} f={} w={} dihedral={:#04x} dihedral_f={} P={} m={} T={} q_min={} sep={}",
            params.policy(),
            params.k(),
            params.f(),
            params.w(),
            params.dihedral(),
            params.dihedral_f(),
            params.probes(),
            params.max_opens(),
            params.threshold(),
            params.q_min(),
            params.sep()
        ),
        seed,
        small_originals_long_side: small,
        originals: originals.len(),
        load_failures: base.iter().filter(|b| b.is_none()).count(),
        ..Report::default()
    };
    let (listed, others) = base.split_at(half);
    let listed: Vec<(usize, &RgbImage, &PdqFloats)> = listed
        .iter()
        .zip(listed_idx)
        .filter_map(|(b, &i)| b.as_ref().map(|(img, f)| (i, img, f)))
        .collect();
    let others: Vec<(usize, &RgbImage, &PdqFloats)> = others
        .iter()
        .zip(other_idx)
        .filter_map(|(b, &i)| b.as_ref().map(|(img, f)| (i, img, f)))
        .collect();
    report.listed = listed.len();
    report.listed_below_q_min = listed
        .iter()
        .filter(|(_, _, f)| f.quality < params.q_min())
        .count();
    let listed_hashes: Vec<Hash256> = listed.iter().map(|(_, _, f)| f.hash()).collect();
    let raw: Vec<u64> = listed
        .iter()
        .map(|(_, _, f)| pdq_key(&f.hash(), params))
        .collect();
    let (dep, sep) = Deployment::build(params, &listed_hashes, &mut r)?;
    report.pruned_keys = sep.removed();
    report.pruned_related = sep.pruned_related.len();
    report.pruned_unrelated = sep.pruned_unrelated.len();
    report.kept_close = sep.kept_close;
    report.pruned_originals = listed
        .iter()
        .zip(&raw)
        .filter(|(_, k)| dep.kept.binary_search(k).is_err())
        .map(|((i, _, _), _)| originals[*i].name.clone())
        .collect();
    let q_min = params.q_min();
    let plain_match = |f: &PdqFloats| {
        f.quality >= q_min && listed_hashes.iter().any(|h| h.distance(&f.hash()) <= 31)
    };

    // Listed originals: every transform, one client per original (like one account each).
    let uploads: Vec<Result<Vec<Upload>>> = listed
        .par_iter()
        .map(|&(i, img, orig)| {
            let mut rr = ChaCha20Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9));
            let mut client = Client::new(AccountState::generate(&mut rr), params.clone());
            let small = img.width().max(img.height()) <= 512;
            let mut out = Vec::new();
            for (t_i, (seed_index, t)) in transforms.iter().enumerate() {
                let copy = t.apply(img, seed ^ ((i as u64) << 8) ^ *seed_index as u64)?;
                let f = floats(&copy)?;
                let variants = dihedral_floats(&copy, params)?;
                let own = pdq_key(&orig.hash(), params);
                let o = dep.upload(&mut client, &f, variants.as_ref(), Some(own), &mut rr)?;
                out.push(Upload {
                    transform: t_i,
                    opened: o.opened,
                    opened_probes: o.opened_probes,
                    plain: f.quality >= q_min && f.hash().distance(&orig.hash()) <= 31,
                    low: f.quality < q_min,
                    distance: f.hash().distance(&orig.hash()),
                    small,
                    multi: o.multi,
                    ideal_mismatch: o.ideal_mismatch,
                    other_key: o.opened && !(o.own_probed && f.quality >= q_min),
                });
            }
            Ok(out)
        })
        .collect();
    let mut per_t: Vec<Tally> = vec![Tally::default(); transforms.len()];
    let mut per_small: Vec<Tally> = vec![Tally::default(); transforms.len()];
    let mut per_d: Vec<Tally> = vec![Tally::default(); BUCKETS.len()];
    let mut fam: BTreeMap<String, Tally> = BTreeMap::new();
    for u in uploads {
        for u in u? {
            let t = &transforms[u.transform].1;
            per_t[u.transform].add(u.opened, u.plain, u.low, u.other_key);
            if u.small {
                per_small[u.transform].add(u.opened, u.plain, u.low, u.other_key);
            }
            fam.entry(t.family().to_owned()).or_default().add(
                u.opened,
                u.plain,
                u.low,
                u.other_key,
            );
            if t.family() != "dihedral" {
                if let Some(b) = BUCKETS
                    .iter()
                    .position(|&(lo, hi)| (lo..=hi).contains(&u.distance))
                {
                    per_d[b].add(u.opened, u.plain, u.low, u.other_key);
                }
            }
            report.multiple_opens += usize::from(u.multi);
            report.ideal_mismatches += usize::from(u.ideal_mismatch);
            if u.opened_probes > 1 {
                *report
                    .multi_probe_matches
                    .entry(u.opened_probes)
                    .or_default() += 1;
            }
        }
    }
    // Non-listed originals: false opens and the plain matcher's false matches.
    // (index, floats, opening, plain match)
    type NonListed<'a> = (usize, &'a PdqFloats, Opening, bool);
    let fp: Vec<Result<NonListed>> = others
        .par_iter()
        .map(|&(i, img, f)| {
            let mut rr =
                ChaCha20Rng::seed_from_u64(seed ^ 0xfa15e ^ (i as u64).wrapping_mul(0x9e37_79b9));
            let mut client = Client::new(AccountState::generate(&mut rr), params.clone());
            let variants = dihedral_floats(img, params)?;
            let o = dep.upload(&mut client, f, variants.as_ref(), None, &mut rr)?;
            Ok((i, f, o, plain_match(f)))
        })
        .collect();
    for x in fp {
        let (i, f, o, plain) = x?;
        let (opened, multi, mismatch) = (o.opened, o.multi, o.ideal_mismatch);
        if opened {
            let nearest = listed
                .iter()
                .map(|(j, _, g)| (g.hash().distance(&f.hash()), *j))
                .min();
            if let Some((d, j)) = nearest {
                report.false_open_details.push((
                    originals[i].name.clone(),
                    originals[j].name.clone(),
                    d,
                ));
            }
        }
        report.non_listed += 1;
        report.false_opens += usize::from(opened);
        report.plain_false_matches += usize::from(plain);
        report.multiple_opens += usize::from(multi);
        report.ideal_mismatches += usize::from(mismatch);
    }
    for t in per_t
        .iter_mut()
        .chain(per_small.iter_mut())
        .chain(per_d.iter_mut())
    {
        t.finish();
    }
    for t in fam.values_mut() {
        t.finish();
    }
    report.per_transform = transforms.iter().map(|t| t.1.name()).zip(per_t).collect();
    report.small_originals = transforms
        .iter()
        .map(|t| t.1.name())
        .zip(per_small)
        .filter(|(_, t)| t.n > 0)
        .collect();
    report.per_distance = BUCKETS
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo}-{hi}")
            }
        })
        .zip(per_d)
        .collect();
    report.per_family = fam;
    Ok(report)
}

fn table_md(title: &str, first: &str, rows: &[(String, Tally)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "### {title}\n\n| {first} | copies | opened (protocol) | recall | plain PDQ <= 31 | plain recall | below q_min | opened via another key |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (name, t) in rows {
        s.push_str(&format!(
            "| {name} | {} | {} | {:.3} | {} | {:.3} | {} | {} |\n",
            t.n, t.opened, t.recall, t.plain, t.plain_recall, t.below_q_min, t.opened_other_key
        ));
    }
    s.push('\n');
    s
}

impl Report {
    /// The report as markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Parameters: `{}`; seed {}; originals scaled to long side {:?} first; {} originals ({} failed to load), {} listed ({} below q_min; {} keys pruned by separation: {} related, {} unrelated; {} kept closer than sep as related entries), {} non-listed.\n\n",
            self.params, self.seed, self.small_originals_long_side, self.originals, self.load_failures, self.listed,
            self.listed_below_q_min, self.pruned_keys, self.pruned_related, self.pruned_unrelated, self.kept_close, self.non_listed
        );
        s.push_str(&table_md(
            "Recall per transform",
            "transform",
            &self.per_transform,
        ));
        let fam: Vec<(String, Tally)> = self
            .per_family
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        s.push_str(&table_md("Recall per family", "family", &fam));
        s.push_str(&table_md(
            "Recall per PDQ distance to the original (non-dihedral transforms pooled)",
            "distance",
            &self.per_distance,
        ));
        s.push_str(&table_md(
            "Originals with long side <= 512 px",
            "transform",
            &self.small_originals,
        ));
        for (a, b, d) in &self.false_open_details {
            s.push_str(&format!(
                "- false open: `{a}` (nearest listed `{b}`, PDQ distance {d})\n"
            ));
        }
        for p in &self.pruned_originals {
            s.push_str(&format!("- listed key pruned by separation: `{p}`\n"));
        }
        s.push('\n');
        s.push_str(&format!(
            "Non-listed originals: {} uploaded, {} false opens (protocol), {} false matches (plain PDQ <= 31). More than m opened probes (invalid): {}. One match through several probes (count: copies): {:?}. Opener vs ideal functionality mismatches: {}.\n",
            self.non_listed, self.false_opens, self.plain_false_matches, self.multiple_opens, self.multi_probe_matches, self.ideal_mismatches
        ));
        s
    }
}
