//! The scale-tuning curves against scale, with the chosen scale marked: a standalone HTML page
//! (inline SVG, no scripts from anywhere) and a PNG. Each curve is min–max normalised to share
//! one axis; hovering a point in the HTML shows the raw values.

use std::fmt::Write as _;
use std::path::Path;

use sae_geometry_plot::{Axis, Color, Figure, Layer, Panel, Stroke};

use crate::error::Result;
use crate::metrics::ScaleMetrics;

const W: usize = 800;
const H: usize = 480;
const M: (f64, f64, f64, f64) = (60.0, 20.0, 30.0, 50.0); // left, right, top, bottom

type Series = (&'static str, [u8; 3], fn(&ScaleMetrics) -> f64);

const SERIES: [Series; 4] = [
    ("self-similarity", [31, 119, 180], |m| m.self_similarity),
    ("entropy change", [44, 160, 44], |m| m.entropy_change),
    ("cross-entropy vs mean embedding", [214, 39, 40], |m| {
        m.cross_entropy
    }),
    ("score m(s)", [0, 0, 0], |m| m.score),
];

fn norm(v: &[f64]) -> Vec<f64> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter()
        .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.5 })
        .collect()
}

fn xy(metrics: &[ScaleMetrics], i: usize, y: f64) -> (f64, f64) {
    let lo = metrics.first().map_or(0.0, |m| f64::from(m.scale));
    let hi = metrics.last().map_or(1.0, |m| f64::from(m.scale));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = M.0 + (f64::from(metrics[i].scale) - lo) / span * (W as f64 - M.0 - M.1);
    let y = M.2 + (1.0 - y) * (H as f64 - M.2 - M.3);
    (x, y)
}

/// Writes the curves as a standalone HTML page.
pub fn write_html(metrics: &[ScaleMetrics], chosen: usize, title: &str, path: &Path) -> Result<()> {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{W}" height="{H}" fill="white"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        M.0,
        H as f64 - M.3,
        W as f64 - M.1,
        H as f64 - M.3
    );
    if let Some(c) = metrics.get(chosen) {
        let (x, _) = xy(metrics, chosen, 0.0);
        let _ = write!(
            svg,
            r#"<line id="chosen" x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="gray" stroke-dasharray="4 3"/><text x="{:.1}" y="{}">chosen scale {:.2}</text>"#,
            M.2,
            H as f64 - M.3,
            x + 4.0,
            M.2 + 12.0,
            c.scale
        );
    }
    for (k, (name, [r, g, b], f)) in SERIES.iter().enumerate() {
        let ys = norm(&metrics.iter().map(f).collect::<Vec<_>>());
        let pts: Vec<String> = (0..metrics.len())
            .map(|i| {
                let (x, y) = xy(metrics, i, ys[i]);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="rgb({r},{g},{b})" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for (i, m) in metrics.iter().enumerate() {
            let (x, y) = xy(metrics, i, ys[i]);
            let _ = write!(
                svg,
                r#"<circle class="pt" cx="{x:.1}" cy="{y:.1}" r="3" fill="rgb({r},{g},{b})"><title>scale {:.3}: {name} = {:.5}</title></circle>"#,
                m.scale,
                f(m)
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="rgb({r},{g},{b})"/><text x="{}" y="{}">{name}</text>"#,
            M.0 + 10.0 + 190.0 * k as f64,
            H as f64 - 18.0,
            M.0 + 26.0 + 190.0 * k as f64,
            H as f64 - 13.0
        );
    }
    let lo = metrics.first().map_or(0.0, |m| m.scale);
    let hi = metrics.last().map_or(0.0, |m| m.scale);
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}">{lo:.1}</text><text x="{}" y="{}" text-anchor="end">scale {hi:.1}</text></svg>"#,
        M.0,
        H as f64 - M.3 + 14.0,
        W as f64 - M.1,
        H as f64 - M.3 + 14.0
    );
    let esc = title.replace('&', "&amp;").replace('<', "&lt;");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc}</title></head><body><h3>{esc}</h3><p>Curves min–max normalised; hover a point for its value.</p>{svg}</body></html>\n"
    );
    Ok(sae_core::atomic::write(path, html.as_bytes())?)
}

/// The curves as a static figure: each min–max normalised (as in the HTML), the chosen scale a
/// dashed vertical line.
pub fn figure(metrics: &[ScaleMetrics], chosen: usize, title: &str) -> Figure {
    let mut panel = Panel::new(
        Axis::new("scale (norm of the patched vector)"),
        Axis::new("value, min–max normalised per curve").with_range(-0.05, 1.05),
    );
    if let Some(c) = metrics.get(chosen) {
        panel.layers.push(Layer::vline(
            format!("chosen scale {:.2}", c.scale),
            Color::rgb(128, 128, 128),
            Stroke::Dashed,
            f64::from(c.scale),
        ));
    }
    for (name, [r, g, b], f) in SERIES {
        let ys = norm(&metrics.iter().map(f).collect::<Vec<_>>());
        let pts = metrics
            .iter()
            .zip(ys)
            .map(|(m, y)| (f64::from(m.scale), y))
            .collect();
        panel
            .layers
            .push(Layer::line(name, Color::rgb(r, g, b), pts));
    }
    Figure::new(title, vec![panel]).with_size(1000, 640)
}

/// Writes the curves as a PNG: title, labelled axes with ticks, a legend of the curves and the
/// chosen scale.
pub fn write_png(metrics: &[ScaleMetrics], chosen: usize, title: &str, path: &Path) -> Result<()> {
    Ok(sae_geometry_plot::write_png(
        &figure(metrics, chosen, title),
        path,
    )?)
}
