//! Units side by side, as Anthropic's "Towards Monosemanticity" compared them: detection
//! scores of SAE latents, model neurons and randomly initialised SAE latents, on the same
//! number of units, each distribution beside its floors — the "None" floor (what always
//! answering "None" scores on the same examples) and, when run, the random-explanation score
//! (each unit judged with another unit's explanation).
//!
//! Units are taken in index order among those that fired and were scored, the same number from
//! every population, so a population whose units rarely fire is not compared on a different
//! count.

use std::fmt::Write as _;
use std::path::Path;

use sae_geometry_plot::{Axis, Bar, Color, Figure, Layer, Panel as PlotPanel, Stroke};
use serde::{Deserialize, Serialize};

use crate::run::{LatentResult, LatentStatus};
use crate::score::DetectionScores;

/// Bins of the score histograms over [0, 1].
pub const BINS: usize = 10;

/// Summary of one score over a population's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Units.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// First quartile (linear interpolation, numpy's default).
    pub q25: f64,
    /// Third quartile.
    pub q75: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Counts in [0, 0.1), [0.1, 0.2), …, [0.9, 1.0].
    pub histogram: [usize; BINS],
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Distribution {
    /// The distribution of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        let mut histogram = [0usize; BINS];
        for v in &s {
            let b = ((v * BINS as f64).floor() as usize).min(BINS - 1);
            histogram[b] += 1;
        }
        Some(Self {
            n: s.len(),
            mean: s.iter().sum::<f64>() / s.len() as f64,
            median: quantile(&s, 0.5),
            q25: quantile(&s, 0.25),
            q75: quantile(&s, 0.75),
            min: s[0],
            max: s[s.len() - 1],
            histogram,
        })
    }
}

/// One population's units and scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// Its name ("SAE latents", "neurons", "random latents").
    pub label: String,
    /// Units asked for.
    pub asked: usize,
    /// Units that fired.
    pub live: usize,
    /// The units compared, in index order.
    pub units: Vec<usize>,
    /// Detection accuracy (the tutorial's score).
    pub accuracy: Option<Distribution>,
    /// Balanced accuracy.
    pub balanced_accuracy: Option<Distribution>,
    /// The "None" floor of each unit's scoring set.
    pub none_floor: Option<Distribution>,
    /// Accuracy with another unit's explanation, when that baseline was run.
    pub random_explanation_accuracy: Option<Distribution>,
    /// Balanced accuracy with another unit's explanation.
    pub random_explanation_balanced_accuracy: Option<Distribution>,
}

/// The units of `results` that fired and were scored, in index order.
pub fn scored_units(results: &[LatentResult]) -> Vec<usize> {
    let mut u: Vec<usize> = results
        .iter()
        .filter(|r| r.status == LatentStatus::Ok && r.detection.is_some())
        .map(|r| r.latent)
        .collect();
    u.sort_unstable();
    u
}

/// Summarises the first `n_units` scored units of `results`; `random_explanations` are the
/// random-explanation baseline's scores by unit, when run.
pub fn population(
    label: &str,
    results: &[LatentResult],
    random_explanations: Option<&[(usize, Option<DetectionScores>)]>,
    n_units: usize,
) -> Population {
    let units: Vec<usize> = scored_units(results).into_iter().take(n_units).collect();
    let by = |u: usize| results.iter().find(|r| r.latent == u);
    let det: Vec<DetectionScores> = units
        .iter()
        .filter_map(|&u| by(u).and_then(|r| r.detection))
        .collect();
    let rand: Option<Vec<DetectionScores>> = random_explanations.map(|r| {
        units
            .iter()
            .filter_map(|u| r.iter().find(|x| x.0 == *u).and_then(|x| x.1))
            .collect()
    });
    let dist = |f: fn(&DetectionScores) -> f64, v: &[DetectionScores]| {
        Distribution::of(&v.iter().map(f).collect::<Vec<_>>())
    };
    Population {
        label: label.to_string(),
        asked: results.len(),
        live: results
            .iter()
            .filter(|r| r.status != LatentStatus::Dead)
            .count(),
        accuracy: dist(|d| d.accuracy, &det),
        balanced_accuracy: dist(|d| d.balanced_accuracy, &det),
        none_floor: dist(|d| d.none_floor, &det),
        random_explanation_accuracy: rand.as_deref().and_then(|v| dist(|d| d.accuracy, v)),
        random_explanation_balanced_accuracy: rand
            .as_deref()
            .and_then(|v| dist(|d| d.balanced_accuracy, v)),
        units,
    }
}

const W: usize = 900;
const PANEL_H: usize = 260;
const H: usize = 2 * PANEL_H + 40;
const ML: f64 = 60.0;
const MR: f64 = 20.0;
const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

type ScorePanel = (
    &'static str,
    fn(&Population) -> Option<&Distribution>,
    fn(&Population) -> Option<f64>,
);

/// Accuracy with the "None" floor marked; balanced accuracy with the random-explanation
/// baseline marked (0.5 is chance).
const PANELS: [ScorePanel; 2] = [
    (
        "detection accuracy (dashed: the None floor)",
        |p| p.accuracy.as_ref(),
        |p| p.none_floor.as_ref().map(|d| d.mean),
    ),
    (
        "balanced accuracy (dashed: another unit's explanation)",
        |p| p.balanced_accuracy.as_ref(),
        |p| {
            p.random_explanation_balanced_accuracy
                .as_ref()
                .map(|d| d.mean)
        },
    ),
];

/// Rectangles of the chart: `(x, y, w, h, colour, dashed marker, hover text)`.
type Rect = (f64, f64, f64, f64, [u8; 3], bool, String);

fn layout(pops: &[Population]) -> Vec<Rect> {
    let mut out = Vec::new();
    let plot_w = W as f64 - ML - MR;
    let bin_w = plot_w / BINS as f64;
    let bar_w = bin_w * 0.8 / pops.len().max(1) as f64;
    for (k, (_, dist, floor)) in PANELS.iter().enumerate() {
        let top = 30.0 + (k * PANEL_H) as f64;
        let h = PANEL_H as f64 - 50.0;
        let max = pops
            .iter()
            .filter_map(|p| {
                dist(p).map(|d| d.histogram.iter().copied().max().unwrap_or(0) as f64 / d.n as f64)
            })
            .fold(0.0f64, f64::max)
            .max(1e-9);
        for (pi, p) in pops.iter().enumerate() {
            let c = PALETTE[pi % PALETTE.len()];
            if let Some(d) = dist(p) {
                for (b, &count) in d.histogram.iter().enumerate() {
                    let frac = count as f64 / d.n as f64;
                    let bh = frac / max * h;
                    let x = ML + b as f64 * bin_w + bin_w * 0.1 + pi as f64 * bar_w;
                    out.push((
                        x,
                        top + h - bh,
                        bar_w,
                        bh,
                        c,
                        false,
                        format!(
                            "{}: {count} of {} units in [{:.1}, {:.1})",
                            p.label,
                            d.n,
                            b as f64 / BINS as f64,
                            (b + 1) as f64 / BINS as f64
                        ),
                    ));
                }
                // Mean: a solid marker line.
                out.push((
                    ML + d.mean * plot_w - 1.0,
                    top,
                    2.0,
                    h,
                    c,
                    false,
                    format!("{} mean {:.3}", p.label, d.mean),
                ));
            }
            if let Some(f) = floor(p) {
                out.push((
                    ML + f * plot_w - 1.0,
                    top,
                    2.0,
                    h,
                    c,
                    true,
                    format!("{} floor {:.3}", p.label, f),
                ));
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes the side-by-side histograms as a standalone HTML page (inline SVG, hover for counts).
pub fn write_html(pops: &[Population], title: &str, path: &Path) -> crate::Result<()> {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="{W}" height="{H}" fill="white"/>"#
    );
    for (k, (name, _, _)) in PANELS.iter().enumerate() {
        let top = 30.0 + (k * PANEL_H) as f64;
        let base = top + PANEL_H as f64 - 50.0;
        let _ = write!(
            svg,
            r#"<text x="{ML}" y="{}">{}</text><line x1="{ML}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
            top - 8.0,
            esc(name),
            W as f64 - MR
        );
        for t in 0..=BINS {
            let x = ML + t as f64 / BINS as f64 * (W as f64 - ML - MR);
            let _ = write!(
                svg,
                r#"<text x="{x}" y="{}" text-anchor="middle">{:.1}</text>"#,
                base + 15.0,
                t as f64 / BINS as f64
            );
        }
    }
    for (x, y, w, h, c, dashed, tip) in layout(pops) {
        let fill = format!("rgb({},{},{})", c[0], c[1], c[2]);
        if dashed {
            let _ = write!(
                svg,
                r#"<line class="floor" x1="{0}" y1="{y}" x2="{0}" y2="{1}" stroke="{fill}" stroke-width="2" stroke-dasharray="6,4"><title>{2}</title></line>"#,
                x + w / 2.0,
                y + h,
                esc(&tip)
            );
        } else {
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}"><title>{}</title></rect>"#,
                esc(&tip)
            );
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::new();
    for (i, p) in pops.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let _ = write!(
            legend,
            r#"<span style="color:rgb({},{},{})">■ {} ({} units)</span> &nbsp; "#,
            c[0],
            c[1],
            c[2],
            esc(&p.label),
            p.units.len()
        );
    }
    let t = esc(title);
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h3>{t}</h3><p>{legend}</p><p>Histograms of per-unit scores (fraction of each population's units per bin); solid lines: means; dashed: floors. Hover for values.</p>{svg}</body></html>\n"
    );
    Ok(sae_core::atomic::write(path, html.as_bytes())?)
}

/// The histograms as a static figure: one panel per score, each population's bars side by side
/// within a bin (fraction of its units), its mean a solid line and its floor a dashed one.
pub fn figure(pops: &[Population], title: &str) -> Figure {
    let bin = 1.0 / BINS as f64;
    let bar = bin * 0.8 / pops.len().max(1) as f64;
    let panels = PANELS
        .iter()
        .enumerate()
        .map(|(k, (name, dist, floor))| {
            let floor_name = if k == 0 {
                "None floor"
            } else {
                "with another's explanation"
            };
            // Headroom above the tallest bar for the legend (up to nine entries, top right).
            let tallest = pops
                .iter()
                .filter_map(|p| dist(p))
                .flat_map(|d| d.histogram.iter().map(move |&c| c as f64 / d.n as f64))
                .fold(0.0f64, f64::max);
            let mut panel = PlotPanel::new(
                Axis::new("score").with_range(0.0, 1.0),
                Axis::new("fraction of the population's units")
                    .with_range(0.0, (tallest * 2.6).max(0.1)),
            )
            .with_title(*name);
            for (pi, p) in pops.iter().enumerate() {
                let [r, g, b] = PALETTE[pi % PALETTE.len()];
                let color = Color::rgb(r, g, b);
                if let Some(d) = dist(p) {
                    let bars = d
                        .histogram
                        .iter()
                        .enumerate()
                        .map(|(k, &count)| {
                            let x0 = k as f64 * bin + bin * 0.1 + pi as f64 * bar;
                            Bar {
                                x0,
                                x1: x0 + bar,
                                height: count as f64 / d.n as f64,
                            }
                        })
                        .collect();
                    panel.layers.push(Layer::bars(
                        format!("{} ({} units)", p.label, d.n),
                        color,
                        bars,
                    ));
                    panel.layers.push(Layer::vline(
                        format!("{} mean {:.3}", p.label, d.mean),
                        color,
                        Stroke::Solid,
                        d.mean,
                    ));
                }
                if let Some(f) = floor(p) {
                    panel.layers.push(Layer::vline(
                        format!("{} {floor_name} {f:.3}", p.label),
                        color,
                        Stroke::Dashed,
                        f,
                    ));
                }
            }
            panel
        })
        .collect();
    Figure::new(title, panels).with_size(1100, 900)
}

/// Writes the side-by-side histograms as a PNG: title, a titled panel per score with labelled
/// axes, and a legend of populations, means and floors.
pub fn write_png(pops: &[Population], title: &str, path: &Path) -> crate::Result<()> {
    sae_geometry_plot::write_png(&figure(pops, title), path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_matches_numpy() {
        // numpy on these values: mean 0.44, median 0.4, percentiles 25 → 0.3, 75 → 0.5.
        let d = Distribution::of(&[0.1, 0.3, 0.5, 0.9, 0.4]).unwrap();
        assert!((d.mean - 0.44).abs() < 1e-12);
        assert!((d.median - 0.4).abs() < 1e-12);
        assert!((d.q25 - 0.3).abs() < 1e-12);
        assert!((d.q75 - 0.5).abs() < 1e-12);
        assert_eq!(d.histogram, [0, 1, 0, 1, 1, 1, 0, 0, 0, 1]);
        let one = Distribution::of(&[1.0]).unwrap();
        assert_eq!(one.histogram[BINS - 1], 1);
        assert!(Distribution::of(&[]).is_none());
    }
}

/// Each unit's detection scores with another unit's explanation.
pub type RandomScores = Vec<(usize, Option<DetectionScores>)>;

/// Reads the random-explanation baseline written beside `results`
/// (`RESULTS.random-explanations.jsonl`), when it exists.
///
/// # Errors
/// [`crate::AutoInterpError::Corrupt`] for a line that is not a JSON object with a `latent`.
pub fn read_random_explanations(results: &Path) -> crate::Result<Option<RandomScores>> {
    let p = crate::pipeline::sibling(results, ".random-explanations.jsonl");
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let corrupt = |message: String| crate::AutoInterpError::Corrupt {
            path: p.clone(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        let latent = v["latent"]
            .as_u64()
            .ok_or_else(|| corrupt("no latent".into()))?;
        let d = serde_json::from_value(v["detection"].clone()).ok();
        out.push((latent as usize, d));
    }
    Ok(Some(out))
}

/// Several populations' runs side by side (see the module docs).
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Units compared per population.
    pub units: usize,
    /// The populations, in the order given.
    pub populations: Vec<Population>,
    /// Each population's results, for the per-unit table.
    pub results: Vec<Vec<LatentResult>>,
}

/// Compares the results files `runs` (label, `autointerp` results JSONL with scoring) on
/// `units` units each (default: the smallest number any population scored).
///
/// # Errors
/// A missing or corrupt results file; a population with no scored unit, or fewer than `units`.
pub fn compare_runs(
    runs: &[(String, std::path::PathBuf)],
    units: Option<usize>,
) -> crate::Result<Comparison> {
    let mut loaded = Vec::new();
    for (label, path) in runs {
        if !path.exists() {
            return Err(crate::AutoInterpError::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("results of population {label} not found"),
                ),
            ));
        }
        let results = crate::read_results(path)?;
        let random = read_random_explanations(path)?;
        loaded.push((label.clone(), results, random));
    }
    let smallest = loaded
        .iter()
        .map(|(_, r, _)| scored_units(r).len())
        .min()
        .unwrap_or(0);
    let units = units.unwrap_or(smallest);
    if units == 0 {
        return Err(crate::AutoInterpError::invalid(
            "populations",
            "at least one scored unit each (run autointerp with scoring)",
            "a population with none",
        ));
    }
    if let Some((label, r, _)) = loaded
        .iter()
        .find(|(_, r, _)| scored_units(r).len() < units)
    {
        return Err(crate::AutoInterpError::invalid(
            "units",
            format!(
                "at most {} (population {label}'s scored units)",
                scored_units(r).len()
            ),
            units,
        ));
    }
    let populations = loaded
        .iter()
        .map(|(l, r, rand)| population(l, r, rand.as_deref(), units))
        .collect();
    Ok(Comparison {
        units,
        populations,
        results: loaded.into_iter().map(|(_, r, _)| r).collect(),
    })
}

impl Comparison {
    /// One row per population: units, live, score quartiles, balanced accuracy, floors.
    pub fn csv(&self) -> String {
        let f = |d: &Option<Distribution>, g: fn(&Distribution) -> f64| {
            d.as_ref().map_or(String::new(), |d| format!("{:.4}", g(d)))
        };
        let mut csv = String::from(
            "population,units,asked,live,mean_score,median_score,q25_score,q75_score,mean_balanced_accuracy,median_balanced_accuracy,mean_none_floor,random_explanation_mean_score,random_explanation_mean_balanced_accuracy\n",
        );
        for p in &self.populations {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                p.label,
                p.units.len(),
                p.asked,
                p.live,
                f(&p.accuracy, |d| d.mean),
                f(&p.accuracy, |d| d.median),
                f(&p.accuracy, |d| d.q25),
                f(&p.accuracy, |d| d.q75),
                f(&p.balanced_accuracy, |d| d.mean),
                f(&p.balanced_accuracy, |d| d.median),
                f(&p.none_floor, |d| d.mean),
                f(&p.random_explanation_accuracy, |d| d.mean),
                f(&p.random_explanation_balanced_accuracy, |d| d.mean),
            );
        }
        csv
    }

    /// One row per compared unit: its population, score, balanced accuracy and none floor.
    pub fn unit_csv(&self) -> String {
        let mut scores = String::from("population,unit,score,balanced_accuracy,none_floor\n");
        for (results, p) in self.results.iter().zip(&self.populations) {
            for u in &p.units {
                if let Some(d) = results
                    .iter()
                    .find(|r| r.latent == *u)
                    .and_then(|r| r.detection)
                {
                    let _ = writeln!(
                        scores,
                        "{},{u},{:.6},{:.6},{:.6}",
                        p.label, d.accuracy, d.balanced_accuracy, d.none_floor
                    );
                }
            }
        }
        scores
    }

    /// Writes `dir`/compare.json, compare.csv, scores.csv, compare.html and compare.png.
    pub fn save(&self, dir: &Path) -> crate::Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| crate::AutoInterpError::io(dir, e))?;
        let write = |name: &str, text: String| sae_core::atomic::write(dir.join(name), text);
        write(
            "compare.json",
            serde_json::to_string_pretty(&self.populations)?,
        )?;
        write("compare.csv", self.csv())?;
        write("scores.csv", self.unit_csv())?;
        let title = format!("Detection scores of {} units per population", self.units);
        write_html(&self.populations, &title, &dir.join("compare.html"))?;
        write_png(&self.populations, &title, &dir.join("compare.png"))
    }
}
