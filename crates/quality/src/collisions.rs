//! Chance key matches measured pairwise on the corpus (issue 17, items 1 and 3).
//!
//! For every ordered pair (i, j) of distinct corpus images, image i "opens" j's key when one of
//! i's probe keys equals j's key. Counted twice: with the identity probes only (`probe_keys`: its
//! own key and the flips of up to f of its w weakest key bits, P = 79 at v1), and with every
//! probe a v1 voucher under `intervene` carries (`all_probe_keys`: also the keys of its rot90 and
//! flipy variants, hashed in the pixel domain as the client SDK hashes them, P = 237). That is
//! exactly when a voucher for i would open against a list holding j: the measurement runs show
//! the real opener equal to this ideal functionality on every upload.
//! Every pair of the manifest is more than 31 PDQ bits apart, so every hit is a key match
//! without a PDQ match. The rate per pair times a list size is the expected number of listed
//! keys an innocent image opens.

use anyhow::Result;
use hashguard_pdq::PdqFloats;
use hashguard_protocol::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// One hashed corpus image.
#[derive(Debug, Clone)]
pub struct HashedImage {
    /// `package/path`.
    pub name: String,
    /// Its package.
    pub package: String,
    /// Its PDQ floats.
    pub floats: PdqFloats,
    /// Every probe key its voucher carries at the parameters it was hashed for
    /// (`all_probe_keys`, dihedral variants included when the parameters probe them), sorted.
    pub probes: Vec<u64>,
}

/// One key match between two different images.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The image whose probes matched.
    pub prober: String,
    /// The image whose key was matched.
    pub matched: String,
    /// Their PDQ distance.
    pub distance: u32,
}

/// The pairwise result.
#[derive(Debug, Clone, Serialize)]
pub struct CollisionReport {
    /// Images hashed (quality >= q_min).
    pub images: usize,
    /// Ordered pairs compared (images x (images - 1)).
    pub pairs: f64,
    /// Ordered pairs where the first image's probes hit the second's key.
    pub hits: usize,
    /// Hits between images of the same package (related artwork).
    pub hits_same_package: usize,
    /// Ordered pairs between different packages.
    pub pairs_cross_package: f64,
    /// Hits between different packages.
    pub hits_cross_package: usize,
    /// Images whose probes hit the key of at least one image of another package.
    pub images_with_cross_hit: usize,
    /// Hits per ordered pair, all pairs, with a 95 % Wilson interval.
    pub rate: (f64, f64, f64),
    /// Hits per ordered pair, different packages only, with a 95 % Wilson interval.
    pub rate_cross_package: (f64, f64, f64),
    /// The packages whose images stand for the list in [`Self::rate_onto_listed`] (empty: not
    /// measured).
    pub listed_packages: Vec<String>,
    /// Ordered pairs (prober, matched) with the matched image in a listed package and the
    /// prober in another package: innocent uploads of any kind against a list of that kind.
    pub pairs_onto_listed: f64,
    /// Hits among those pairs.
    pub hits_onto_listed: usize,
    /// Hits per such pair, with a 95 % Wilson interval.
    pub rate_onto_listed: (f64, f64, f64),
    /// Hits (up to 200), those across packages first.
    pub examples: Vec<Hit>,
    /// Mean number of distinct probe keys per image with every probe of the voucher
    /// ([`HashedImage::probes`]).
    pub probes_per_image: f64,
    /// Ordered pairs where any of the first image's probes, dihedral ones included, hit the
    /// second's key.
    pub hits_all_probes: usize,
    /// Those between different packages.
    pub hits_all_probes_cross_package: usize,
    /// Those onto the listed packages from any other.
    pub hits_all_probes_onto_listed: usize,
    /// Hits per ordered pair with every probe, all pairs, with a 95 % Wilson interval.
    pub rate_all_probes: (f64, f64, f64),
    /// The same, different packages only.
    pub rate_all_probes_cross_package: (f64, f64, f64),
    /// The same, onto the listed packages from any other.
    pub rate_all_probes_onto_listed: (f64, f64, f64),
}

/// A 95 % Wilson score interval for `k` successes in `n` trials: (estimate, low, high).
pub fn wilson(k: f64, n: f64) -> (f64, f64, f64) {
    if n <= 0.0 {
        return (0.0, 0.0, 1.0);
    }
    let z = 1.959_964f64;
    let p = k / n;
    let den = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / den;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / den;
    (p, (centre - half).max(0.0), (centre + half).min(1.0))
}

/// The ordered pairs (i, j), i != j, where one of `probes(i)` (distinct keys) equals j's key.
fn key_hits<'a, P>(keys: &HashMap<u64, Vec<usize>>, n: usize, probes: P) -> Vec<(usize, usize)>
where
    P: Fn(usize) -> std::borrow::Cow<'a, [u64]> + Sync,
{
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut out = Vec::new();
            for p in probes(i).iter() {
                if let Some(js) = keys.get(p) {
                    out.extend(js.iter().filter(|&&j| j != i).map(|&j| (i, j)));
                }
            }
            out
        })
        .collect()
}

/// Counts key matches among all ordered pairs of `images`, with the identity probes and with
/// every probe of the voucher; with `listed` packages, also the rate onto images of those
/// packages from images of any other.
pub fn pairwise(images: &[HashedImage], params: &Params, listed: &[String]) -> CollisionReport {
    let mut by_key: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, image) in images.iter().enumerate() {
        by_key
            .entry(pdq_key(&image.floats.hash(), params))
            .or_default()
            .push(i);
    }
    let hits = key_hits(&by_key, images.len(), |i| {
        let f = &images[i].floats;
        let mut identity = probe_keys(&f.hash(), &f.margins(), params).to_vec();
        identity.sort_unstable();
        identity.dedup();
        std::borrow::Cow::Owned(identity)
    });
    // Already sorted and distinct (`hashed`).
    let hits_all = key_hits(&by_key, images.len(), |i| {
        std::borrow::Cow::Borrowed(images[i].probes.as_slice())
    });
    let n = images.len() as f64;
    let mut per_pkg: HashMap<&str, f64> = HashMap::new();
    for image in images {
        *per_pkg.entry(image.package.as_str()).or_default() += 1.0;
    }
    let same_pairs: f64 = per_pkg.values().map(|c| c * (c - 1.0)).sum();
    let pairs = n * (n - 1.0);
    let cross_package = |&(i, j): &(usize, usize)| images[i].package != images[j].package;
    let cross = hits.iter().filter(|h| cross_package(h)).count();
    let same = hits.len() - cross;
    let mut probers: Vec<usize> = hits
        .iter()
        .filter(|h| cross_package(h))
        .map(|&(i, _)| i)
        .collect();
    probers.sort_unstable();
    probers.dedup();
    let in_listed = |j: usize| listed.contains(&images[j].package);
    let n_listed = images
        .iter()
        .filter(|image| listed.contains(&image.package))
        .count() as f64;
    let listed_same: f64 = per_pkg
        .iter()
        .filter(|(p, _)| listed.iter().any(|l| l == *p))
        .map(|(_, c)| c * c)
        .sum();
    // Pairs (i, j): j listed, i in another package.
    let pairs_onto_listed = n_listed * n - listed_same;
    let onto_listed = |h: &(usize, usize)| in_listed(h.1) && cross_package(h);
    let hits_onto_listed = hits.iter().filter(|h| onto_listed(h)).count();
    let all_cross = hits_all.iter().filter(|h| cross_package(h)).count();
    let all_onto_listed = hits_all.iter().filter(|h| onto_listed(h)).count();
    CollisionReport {
        images: images.len(),
        pairs,
        hits: hits.len(),
        hits_same_package: same,
        pairs_cross_package: pairs - same_pairs,
        hits_cross_package: cross,
        images_with_cross_hit: probers.len(),
        rate: wilson(hits.len() as f64, pairs),
        rate_cross_package: wilson(cross as f64, pairs - same_pairs),
        listed_packages: listed.to_vec(),
        pairs_onto_listed,
        hits_onto_listed,
        rate_onto_listed: wilson(hits_onto_listed as f64, pairs_onto_listed),
        // Cross-package hits first: they are the ones a reader needs to see.
        examples: hits
            .iter()
            .filter(|h| cross_package(h))
            .chain(hits.iter().filter(|h| !cross_package(h)))
            .take(200)
            .map(|&(i, j)| Hit {
                prober: images[i].name.clone(),
                matched: images[j].name.clone(),
                distance: images[i].floats.hash().distance(&images[j].floats.hash()),
            })
            .collect(),
        probes_per_image: images.iter().map(|i| i.probes.len() as f64).sum::<f64>() / n.max(1.0),
        hits_all_probes: hits_all.len(),
        hits_all_probes_cross_package: all_cross,
        hits_all_probes_onto_listed: all_onto_listed,
        rate_all_probes: wilson(hits_all.len() as f64, pairs),
        rate_all_probes_cross_package: wilson(all_cross as f64, pairs - same_pairs),
        rate_all_probes_onto_listed: wilson(all_onto_listed as f64, pairs_onto_listed),
    }
}

impl CollisionReport {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let per = |r: (f64, f64, f64), n: f64| {
            format!(
                "{:.2e} (95 % CI {:.2e} .. {:.2e})",
                r.0 * n,
                r.1 * n,
                r.2 * n
            )
        };
        let mut s = format!(
            "{} images, {:.3e} ordered pairs: {} key matches ({} within a package, {} across packages).\n\n",
            self.images, self.pairs, self.hits, self.hits_same_package, self.hits_cross_package
        );
        s.push_str("| pairs | rate per pair | expected opens per image, 1M keys | 10M keys |\n|---|---|---|---|\n");
        let mut rows = vec![
            ("all, identity probes".to_owned(), self.rate),
            (
                "different packages, identity probes".to_owned(),
                self.rate_cross_package,
            ),
            (
                format!(
                    "all, every probe ({} hits; {:.1} distinct probe keys per image)",
                    self.hits_all_probes, self.probes_per_image
                ),
                self.rate_all_probes,
            ),
            (
                format!(
                    "different packages, every probe ({} hits)",
                    self.hits_all_probes_cross_package
                ),
                self.rate_all_probes_cross_package,
            ),
        ];
        if !self.listed_packages.is_empty() {
            rows.push((
                format!(
                    "onto the listed packages from any other, identity probes ({} hits in {:.2e} pairs)",
                    self.hits_onto_listed, self.pairs_onto_listed
                ),
                self.rate_onto_listed,
            ));
            rows.push((
                format!(
                    "onto the listed packages from any other, every probe ({} hits)",
                    self.hits_all_probes_onto_listed
                ),
                self.rate_all_probes_onto_listed,
            ));
        }
        for (name, r) in rows {
            s.push_str(&format!(
                "| {name} | {:.2e} ({:.2e} .. {:.2e}) | {} | {} |\n",
                r.0,
                r.1,
                r.2,
                per(r, 1e6),
                per(r, 1e7)
            ));
        }
        s.push_str(&format!(
            "\n{} of {} images ({:.2e}) open at least one key of another package's image with their identity probes.\n\n",
            self.images_with_cross_hit,
            self.images,
            self.images_with_cross_hit as f64 / self.images.max(1) as f64
        ));
        for h in self.examples.iter().take(30) {
            s.push_str(&format!(
                "- `{}` probes `{}` (PDQ distance {})\n",
                h.prober, h.matched, h.distance
            ));
        }
        s
    }
}

/// Hashes every (name, package) with `load`, keeping those of quality >= `params.q_min()`,
/// with every probe key a voucher at `params` carries (the dihedral variants hashed in the
/// pixel domain, as the client SDK does).
pub fn hash_all<F>(
    names: Vec<(String, String)>,
    load: F,
    params: &Params,
) -> Result<Vec<HashedImage>>
where
    F: Fn(&str) -> Result<image::RgbImage> + Sync,
{
    Ok(names
        .into_par_iter()
        .filter_map(|(name, package)| {
            let img = load(&name).ok()?;
            hashed(name, package, &img, params).ok().flatten()
        })
        .collect())
}

/// One image's [`HashedImage`], or `None` below the quality floor.
pub fn hashed(
    name: String,
    package: String,
    img: &image::RgbImage,
    params: &Params,
) -> Result<Option<HashedImage>> {
    let floats = crate::measure::floats(img)?;
    if floats.quality < params.q_min() {
        return Ok(None);
    }
    let dihedral = crate::measure::dihedral_floats(img, params)?
        .map(|variants| DihedralInput::from_variant_floats(&variants));
    let mut probes =
        all_probe_keys(&PdqInput::from_floats(&floats), dihedral.as_ref(), params).to_vec();
    probes.sort_unstable();
    probes.dedup();
    Ok(Some(HashedImage {
        name,
        package,
        floats,
        probes,
    }))
}
