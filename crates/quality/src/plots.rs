//! The figures of docs/quality.md, drawn from the JSON that `measure` and `collisions` write:
//! recall by transform, recall by PDQ distance, chance key matches against the list size, and
//! the probability that a heavy user's account reaches the threshold T in a year by chance.
//!
//! The account model (stated in docs/quality.md): a user uploads `n` distinct benign images a
//! year; each opens by chance with probability `p = rate_per_pair x N` against a list of `N`
//! keys, independently; the account is flagged when `T` distinct items opened, so the yearly
//! false-flag probability is the Poisson tail `P(X >= T)` with `lambda = n p`. Independence is
//! the optimistic part: near-variants of one flat image open together (see the report).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a TrueType font for the bitmap backend (plotters' `ab_glyph` feature needs one;
/// tools/setup.sh installs fonts-dejavu-core).
pub fn register_font() -> Result<()> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            anyhow!(
                "no DejaVu Sans font found (looked in {}): install fonts-dejavu-core",
                FONT_PATHS.join(", ")
            )
        })?;
    let bytes: &'static [u8] = Box::leak(
        std::fs::read(path)
            .with_context(|| format!("reading {path}"))?
            .into_boxed_slice(),
    );
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable TrueType font"))?;
    Ok(())
}

/// `ln P(X >= t)` for `X ~ Poisson(lambda)`, summed in log space so that tails far below 1e-300
/// stay finite.
pub fn ln_poisson_tail(lambda: f64, t: u32) -> f64 {
    if t == 0 {
        return 0.0;
    }
    if lambda <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let ln_fact = |k: u32| (1..=k).map(|i| f64::from(i).ln()).sum::<f64>();
    if f64::from(t) < lambda {
        // Below the mean: 1 - P(X < t), from the few lower terms (exact where the upper sum
        // would need thousands of terms).
        let ln_lower = (0..t)
            .map(|k| -lambda + f64::from(k) * lambda.ln() - ln_fact(k))
            .fold(f64::NEG_INFINITY, |acc, x| {
                let m = acc.max(x);
                if m == f64::NEG_INFINITY {
                    m
                } else {
                    m + ((acc - m).exp() + (x - m).exp()).ln()
                }
            });
        return (-ln_lower.exp()).ln_1p().min(0.0);
    }
    // Terms from t upwards; past the mode they shrink geometrically.
    let mut ln_term = -lambda + f64::from(t) * lambda.ln() - ln_fact(t);
    let mut acc = ln_term;
    let mut k = t;
    loop {
        k += 1;
        ln_term += lambda.ln() - f64::from(k).ln();
        let next = acc.max(ln_term) + (1.0 + (-(acc - ln_term).abs()).exp()).ln();
        if (next - acc).abs() < 1e-15 && f64::from(k) > lambda || k > t + 100_000 {
            acc = next;
            break;
        }
        acc = next;
    }
    acc.min(0.0)
}

fn rows(v: &Value, field: &str) -> Result<Vec<(String, f64, f64, u64)>> {
    let arr = v
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the report has no `{field}` array"))?;
    arr.iter()
        .map(|row| {
            let name = row
                .get(0)
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("`{field}`: a row without a name"))?;
            let t = row
                .get(1)
                .ok_or_else(|| anyhow!("`{field}`: a row without counts"))?;
            let num = |k: &str| {
                t.get(k)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| anyhow!("`{field}`: row {name} has no {k}"))
            };
            Ok((
                name.to_owned(),
                num("recall")?,
                num("plain_recall")?,
                num("n")? as u64,
            ))
        })
        .collect()
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws into an RGB buffer of `size` and writes it as PNG with the workspace's `image` crate
/// (plotters' own encoder would pull a second `image` version).
fn png(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<()> {
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf)
        .ok_or_else(|| anyhow!("plot buffer has the wrong size"))?;
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Horizontal grouped bars, one row per transform or bucket: the protocol's recall (blue) and
/// the plain PDQ <= 31 matcher's (grey), each labelled with its value.
fn recall_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    rows: &[(String, f64, f64, u64)],
) -> Result<()> {
    // Two empty rows above the bars hold the legend, so that it covers no bar or value.
    const LEGEND_ROWS: u32 = 2;
    let height = 120 + 34 * (rows.len() as u32 + LEGEND_ROWS);
    png(path, (1100, height), |root| {
        let n = rows.len() as u32;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..1.08, (0u32..n + LEGEND_ROWS).into_segmented())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("recall")
            .y_desc(y_label)
            .y_labels(rows.len() + LEGEND_ROWS as usize)
            .y_label_formatter(&|v| match v {
                // Row 0 is drawn at the top; the axis may also ask for the segment past the
                // last one, which has no label.
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => n
                    .checked_sub(1 + *i)
                    .and_then(|row| rows.get(row as usize))
                    .map(|r| format!("{} (n={})", r.0, r.3))
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(draw_err)?;
        let blue = RGBColor(31, 119, 180);
        let grey = RGBColor(170, 170, 170);
        // Row 0 at the top (segment n-1-i); in each row the protocol's bar above the plain one.
        for (protocol, colour, label) in [
            (true, blue, "protocol (real client and opener)"),
            (false, grey, "plain PDQ <= 31 matcher"),
        ] {
            let value = move |r: &(String, f64, f64, u64)| if protocol { r.1 } else { r.2 };
            chart
                .draw_series(rows.iter().enumerate().map(move |(i, r)| {
                    let seg = n - 1 - i as u32;
                    let mut bar = Rectangle::new(
                        [
                            (0.0, SegmentValue::Exact(seg)),
                            (value(r), SegmentValue::Exact(seg + 1)),
                        ],
                        colour.filled(),
                    );
                    if protocol {
                        bar.set_margin(3, 17, 0, 0);
                    } else {
                        bar.set_margin(17, 3, 0, 0);
                    }
                    bar
                }))
                .map_err(draw_err)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
            chart
                .draw_series(rows.iter().enumerate().map(move |(i, r)| {
                    let seg = n - 1 - i as u32;
                    let dy = if protocol { -14 } else { 0 };
                    EmptyElement::at((value(r), SegmentValue::CenterOf(seg)))
                        + Text::new(
                            format!("{:.3}", value(r)),
                            (6, dy),
                            ("sans-serif", 12).into_font(),
                        )
                }))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

/// A per-pair chance key-match rate with its 95 % interval, and what it is named in a legend.
#[derive(Debug, Clone)]
pub struct Rate {
    /// Legend text.
    pub name: String,
    /// Estimate, low, high (per ordered pair).
    pub rate: (f64, f64, f64),
}

/// The per-pair rates of a `collisions` JSON: all pairs across packages, and, if present, the
/// photo-like rows; with every probe of the voucher where the report has them (P = 237 at v1),
/// else with the identity probes (reports written before those were counted).
pub fn rates_from_collisions(v: &Value) -> Result<Vec<Rate>> {
    let triple = |k: &str| -> Result<(f64, f64, f64)> {
        let a = v
            .get(k)
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("the collisions report has no `{k}`"))?;
        let g = |i: usize| {
            a.get(i)
                .and_then(Value::as_f64)
                .ok_or_else(|| anyhow!("`{k}` is not a triple of numbers"))
        };
        Ok((g(0)?, g(1)?, g(2)?))
    };
    let every_probe = v.get("rate_all_probes_cross_package").is_some();
    let (cross, onto, probes) = if every_probe {
        (
            "rate_all_probes_cross_package",
            "rate_all_probes_onto_listed",
            "every probe",
        )
    } else {
        ("rate_cross_package", "rate_onto_listed", "identity probes")
    };
    let mut out = vec![Rate {
        name: format!("measured, different packages, {probes} (95 % band)"),
        rate: triple(cross)?,
    }];
    let listed = v
        .get("listed_packages")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if listed {
        out.push(Rate {
            name: format!(
                "measured, onto photo-like images from other packages, {probes} (95 % band)"
            ),
            rate: triple(onto)?,
        });
    }
    Ok(out)
}

/// Expected chance opens per innocent image against a list of N keys (log-log), for each rate
/// and for the uniform-key model `P / 2^k`.
fn collisions_vs_list(path: &Path, rates: &[Rate], probes: u32, k: u32) -> Result<()> {
    png(path, (1000, 620), |root| {
        let xs: Vec<f64> = (0..=50)
            .map(|i| 10f64.powf(3.0 + f64::from(i) * 0.1))
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Chance key matches per innocent image vs list size",
                ("sans-serif", 24),
            )
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((1e3f64..1e8f64).log_scale(), (1e-10f64..1e2f64).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("keys in the list (N)")
            .y_desc("expected chance opens per image")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(draw_err)?;
        let palette = [
            RGBColor(214, 39, 40),
            RGBColor(44, 160, 44),
            RGBColor(148, 103, 189),
        ];
        for (i, r) in rates.iter().enumerate() {
            let c = palette[i % palette.len()];
            let band: Vec<(f64, f64)> = xs
                .iter()
                .map(|&x| (x, (r.rate.2 * x).max(1e-10)))
                .chain(xs.iter().rev().map(|&x| (x, (r.rate.1 * x).max(1e-10))))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.2).filled())))
                .map_err(draw_err)?;
            chart
                .draw_series(LineSeries::new(
                    xs.iter().map(|&x| (x, (r.rate.0 * x).max(1e-10))),
                    c.stroke_width(3),
                ))
                .map_err(draw_err)?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
        let uniform = f64::from(probes) / 2f64.powi(k as i32);
        chart
            .draw_series(LineSeries::new(
                xs.iter().map(|&x| (x, (uniform * x).max(1e-10))),
                BLACK.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(format!("uniform {k}-bit keys, P = {probes} (model)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

/// One curve of the false-flag figure: a per-image chance-open probability and its name.
#[derive(Debug, Clone)]
pub struct ImageRate {
    /// Legend text.
    pub name: String,
    /// Chance opens per innocent image.
    pub p: f64,
}

/// `log10 P(account reaches T in a year)` against T for a user of `n` images a year.
fn false_flag_vs_t(path: &Path, curves: &[ImageRate], n: f64, t_max: u32) -> Result<()> {
    png(path, (1000, 620), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Chance of a false account flag per year ({n:.0} images a year)"),
                ("sans-serif", 24),
            )
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(1u32..t_max, -60f64..0.5)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("threshold T (distinct opened items)")
            .y_desc("log10 P(flagged in a year), clamped at -60")
            .draw()
            .map_err(draw_err)?;
        let palette = [
            RGBColor(214, 39, 40),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(31, 119, 180),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
        ];
        for (i, c) in curves.iter().enumerate() {
            let col = palette[i % palette.len()];
            let lambda = n * c.p;
            chart
                .draw_series(LineSeries::new(
                    (1..t_max).map(|t| (t, (ln_poisson_tail(lambda, t) / 10f64.ln()).max(-60.0))),
                    col.stroke_width(3),
                ))
                .map_err(draw_err)?
                .label(c.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                });
        }
        chart
            .draw_series(LineSeries::new(
                [(1u32, -12f64), (t_max, -12f64)],
                BLACK.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label("goal: 1e-12 per year")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        chart
            .draw_series(LineSeries::new(
                [(30u32, -60f64), (30u32, 0.5f64)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(draw_err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

/// What to draw.
pub struct PlotInputs<'a> {
    /// A `measure --json` report.
    pub measure: &'a Value,
    /// A `collisions --json` report, if any.
    pub collisions: Option<&'a Value>,
    /// Per-image chance-open probabilities for the false-flag figure (besides the ones derived
    /// from `collisions` at 1M and 10M keys).
    pub extra_image_rates: Vec<ImageRate>,
    /// Images a heavy user uploads a year.
    pub images_per_year: f64,
    /// Probe count and key bits, for the uniform model line.
    pub probes: u32,
    /// Key bits.
    pub key_bits: u32,
}

/// Draws every figure into `out` (created if missing); returns the files written.
pub fn draw_all(inputs: &PlotInputs<'_>, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    let per_t = rows(inputs.measure, "per_transform")?;
    let p = out.join("recall-by-transform.png");
    recall_bars(&p, "Recall by transform", "transform", &per_t)?;
    written.push(p);
    let per_d = rows(inputs.measure, "per_distance")?;
    let p = out.join("recall-by-distance.png");
    recall_bars(
        &p,
        "Recall by PDQ distance of the copy to its original",
        "PDQ distance (bits)",
        &per_d,
    )?;
    written.push(p);
    let mut image_rates = inputs.extra_image_rates.clone();
    if let Some(c) = inputs.collisions {
        let rates = rates_from_collisions(c)?;
        let p = out.join("collisions-vs-list-size.png");
        collisions_vs_list(&p, &rates, inputs.probes, inputs.key_bits)?;
        written.push(p);
        for r in &rates {
            for n in [1e6, 1e7] {
                image_rates.push(ImageRate {
                    name: format!("{}, {n:.0e} keys", r.name.replace(" (95 % band)", "")),
                    p: r.rate.0 * n,
                });
            }
        }
    }
    let p = out.join("false-flag-vs-threshold.png");
    false_flag_vs_t(&p, &image_rates, inputs.images_per_year, 61)?;
    written.push(p);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_rates_use_every_probe_when_the_report_has_them() {
        let old = serde_json::json!({"rate_cross_package": [1e-7, 5e-8, 2e-7]});
        let rates = rates_from_collisions(&old).expect("rates");
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].rate, (1e-7, 5e-8, 2e-7));
        assert!(
            rates[0].name.contains("identity probes"),
            "{}",
            rates[0].name
        );
        let new = serde_json::json!({
            "rate_cross_package": [1e-7, 5e-8, 2e-7],
            "rate_all_probes_cross_package": [3e-7, 2e-7, 4e-7],
            "rate_onto_listed": [4e-7, 3e-7, 6e-7],
            "rate_all_probes_onto_listed": [1e-6, 8e-7, 1.3e-6],
            "listed_packages": ["stellarium-data"],
        });
        let rates = rates_from_collisions(&new).expect("rates");
        assert_eq!(
            rates.iter().map(|r| r.rate).collect::<Vec<_>>(),
            vec![(3e-7, 2e-7, 4e-7), (1e-6, 8e-7, 1.3e-6)]
        );
        assert!(rates.iter().all(|r| r.name.contains("every probe")));
    }

    #[test]
    fn draws_every_figure_from_small_reports() {
        if FONT_PATHS.iter().all(|p| !Path::new(p).is_file()) {
            eprintln!("SKIP: no DejaVu Sans font (tools/setup.sh installs fonts-dejavu-core)");
            return;
        }
        let tally = |r: f64| serde_json::json!({"n": 100, "recall": r, "plain_recall": 1.0});
        let measure = serde_json::json!({
            "per_transform": [["identity", tally(1.0)], ["jpeg-q75", tally(0.98)]],
            "per_distance": [["0", tally(1.0)], ["1-4", tally(0.9)]],
        });
        let collisions = serde_json::json!({"rate_cross_package": [1e-7, 5e-8, 2e-7]});
        let dir = std::env::temp_dir().join(format!("hashguard-plots-{}", std::process::id()));
        let written = draw_all(
            &PlotInputs {
                measure: &measure,
                collisions: Some(&collisions),
                extra_image_rates: vec![ImageRate {
                    name: "test".into(),
                    p: 1e-5,
                }],
                images_per_year: 10_000.0,
                probes: 79,
                key_bits: 48,
            },
            &dir,
        )
        .expect("figures drawn");
        assert_eq!(written.len(), 4);
        for p in &written {
            let img = image::open(p).expect("a PNG that decodes");
            assert!(img.width() >= 1000, "{}", p.display());
        }
        std::fs::remove_dir_all(&dir).ok();
        // A report without the arrays is a clear error, not a panic.
        let err = draw_all(
            &PlotInputs {
                measure: &serde_json::json!({}),
                collisions: None,
                extra_image_rates: vec![],
                images_per_year: 1.0,
                probes: 79,
                key_bits: 48,
            },
            &dir,
        )
        .unwrap_err();
        assert!(err.to_string().contains("per_transform"), "{err}");
    }

    #[test]
    fn poisson_tail_matches_direct_sums() {
        // P(X >= 1) = 1 - e^-lambda.
        for lambda in [0.01f64, 0.5, 3.0] {
            let want = 1.0 - (-lambda).exp();
            assert!((ln_poisson_tail(lambda, 1).exp() - want).abs() < 1e-12);
        }
        // P(X >= 3) at lambda = 2: 1 - e^-2 (1 + 2 + 2).
        let want = 1.0 - (-2f64).exp() * 5.0;
        assert!((ln_poisson_tail(2.0, 3).exp() - want).abs() < 1e-12);
        // Far tail: lambda = 0.05, T = 30 is about e^-lambda lambda^30 / 30! (the next term is
        // 600x smaller).
        let approx = -0.05 + 30.0 * 0.05f64.ln() - (1..=30).map(|i| f64::from(i).ln()).sum::<f64>();
        let got = ln_poisson_tail(0.05, 30);
        assert!((got - approx).abs() < 0.01, "{got} vs {approx}");
        assert_eq!(ln_poisson_tail(1.0, 0), 0.0);
        // Below the mean the tail is near 1: P(X >= 2) at lambda = 4430 is 1 - e^-4430 (1 + 4430).
        assert!(ln_poisson_tail(4430.0, 2).abs() < 1e-300);
        for lambda in [17.7, 1770.0, 4430.0, 44300.0] {
            for t in [30, 59, 60] {
                let v = ln_poisson_tail(lambda, t);
                assert!(
                    v <= 0.0 && (lambda < 100.0 || v > -1e-9),
                    "{lambda} {t}: {v}"
                );
            }
        }
        // P(X >= 3) at lambda = 5 = 1 - e^-5 (1 + 5 + 12.5), through the lower sum.
        let want = 1.0 - (-5f64).exp() * 18.5;
        assert!((ln_poisson_tail(5.0, 3).exp() - want).abs() < 1e-12);
        assert_eq!(ln_poisson_tail(0.0, 5), f64::NEG_INFINITY);
    }
}
