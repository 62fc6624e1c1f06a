//! Chance key matches measured pairwise on the corpus (issue 17, items 1 and 3).
//!
//! For every ordered pair (i, j) of distinct corpus images, image i "opens" j's key when one of
//! i's probe keys (`probe_keys`: its own key and the flips of up to f of its w weakest key bits)
//! equals j's key. That is exactly when a voucher for i would open against a list holding j: the
//! measurement runs show the real opener equal to this ideal functionality on every upload.
//! Every pair of the manifest is more than 31 PDQ bits apart, so every hit is a key match
//! without a PDQ match. The rate per pair times a list size is the expected number of listed
//! keys an innocent image opens.

use anyhow::Result;
use hashguard_pdq::PdqFloats;
use hashguard_protocol::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

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

/// Counts key matches among all ordered pairs of `images` (name, package, floats); with
/// `listed` packages, also the rate onto images of those packages from images of any other.
pub fn pairwise(
    images: &[(String, String, PdqFloats)],
    params: &Params,
    listed: &[String],
) -> CollisionReport {
    let keys: Vec<u64> = images
        .iter()
        .map(|(_, _, f)| pdq_key(&f.hash(), params))
        .collect();
    let mut by_key: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_key.entry(*k).or_default().push(i);
    }
    let hits: Vec<(usize, usize)> = images
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, (_, _, f))| {
            let mut probes = probe_keys(&f.hash(), &f.margins(), params);
            probes.sort_unstable();
            probes.dedup();
            let mut out = Vec::new();
            for &p in probes.iter() {
                if let Some(js) = by_key.get(&p) {
                    out.extend(js.iter().filter(|&&j| j != i).map(|&j| (i, j)));
                }
            }
            out
        })
        .collect();
    let n = images.len() as f64;
    let mut per_pkg: HashMap<&str, f64> = HashMap::new();
    for (_, p, _) in images {
        *per_pkg.entry(p.as_str()).or_default() += 1.0;
    }
    let same_pairs: f64 = per_pkg.values().map(|c| c * (c - 1.0)).sum();
    let pairs = n * (n - 1.0);
    let same = hits
        .iter()
        .filter(|(i, j)| images[*i].1 == images[*j].1)
        .count();
    let cross = hits.len() - same;
    let mut probers: Vec<usize> = hits
        .iter()
        .filter(|(i, j)| images[*i].1 != images[*j].1)
        .map(|&(i, _)| i)
        .collect();
    probers.sort_unstable();
    probers.dedup();
    let in_listed = |j: usize| listed.contains(&images[j].1);
    let n_listed = images.iter().filter(|(_, p, _)| listed.contains(p)).count() as f64;
    let listed_same: f64 = per_pkg
        .iter()
        .filter(|(p, _)| listed.iter().any(|l| l == *p))
        .map(|(_, c)| c * c)
        .sum();
    // Pairs (i, j): j listed, i in another package.
    let pairs_onto_listed = n_listed * n - listed_same;
    let hits_onto_listed = hits
        .iter()
        .filter(|&&(i, j)| in_listed(j) && images[i].1 != images[j].1)
        .count();
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
            .filter(|(i, j)| images[*i].1 != images[*j].1)
            .chain(hits.iter().filter(|(i, j)| images[*i].1 == images[*j].1))
            .take(200)
            .map(|&(i, j)| Hit {
                prober: images[i].0.clone(),
                matched: images[j].0.clone(),
                distance: images[i].2.hash().distance(&images[j].2.hash()),
            })
            .collect(),
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
            ("all".to_owned(), self.rate),
            ("different packages".to_owned(), self.rate_cross_package),
        ];
        if !self.listed_packages.is_empty() {
            rows.push((
                format!(
                    "onto the listed packages from any other ({} hits in {:.2e} pairs)",
                    self.hits_onto_listed, self.pairs_onto_listed
                ),
                self.rate_onto_listed,
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
            "\n{} of {} images ({:.2e}) open at least one key of another package's image.\n\n",
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

/// Hashes every image with `load`, keeping those of quality >= q_min.
pub fn hash_all<F>(
    names: Vec<(String, String)>,
    load: F,
    q_min: u8,
) -> Result<Vec<(String, String, PdqFloats)>>
where
    F: Fn(&str) -> Result<image::RgbImage> + Sync,
{
    Ok(names
        .into_par_iter()
        .filter_map(|(name, pkg)| {
            let img = load(&name).ok()?;
            let f = crate::measure::floats(&img).ok()?;
            (f.quality >= q_min).then_some((name, pkg, f))
        })
        .collect())
}
