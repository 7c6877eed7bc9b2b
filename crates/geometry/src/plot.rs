//! Plots of the feature-splitting table: a standalone HTML page (SVG, inline script, no network)
//! with hover text, and a PNG.
//!
//! The HTML reproduces the tutorial's plotly figure — points coloured by SAE width (grey for the
//! narrowest, then greens) or by cluster, wider SAEs drawn first and with smaller markers, hover
//! showing width, index, description and top tokens — without a plotting library, so it opens
//! offline anywhere. The page records what it drew (`data-points-drawn`) and any script error
//! (`data-errors`) on `<body>`, which the headless-Chromium test reads.

use std::path::Path;

use sae_geometry_plot::{Axis, Color, Figure, Layer, Panel};

use crate::error::{GeometryError, Result};
use crate::splitting::SplittingRow;

/// What the colour shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ColorBy {
    /// The SAE's width (the tutorial's first figure).
    #[default]
    Width,
    /// The HDBSCAN cluster (the tutorial's second figure; noise grey).
    Cluster,
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> GeometryError {
    GeometryError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Distinct widths in increasing order.
fn widths(rows: &[SplittingRow]) -> Vec<usize> {
    let mut w: Vec<usize> = rows.iter().map(|r| r.sae_width).collect();
    w.sort_unstable();
    w.dedup();
    w
}

/// The tutorial's grey-then-greens palette for `n` widths (narrowest grey).
fn width_colors(n: usize) -> Vec<[u8; 4]> {
    (0..n)
        .map(|i| {
            if i == 0 {
                [170, 170, 170, 128]
            } else if n <= 2 {
                [0, 120, 0, 255]
            } else {
                let t = (i - 1) as f32 / (n - 2) as f32;
                let lerp = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
                [lerp(0.0, 144.0), lerp(120.0, 238.0), lerp(0.0, 144.0), 255]
            }
        })
        .collect()
}

fn cluster_color(c: i64) -> [u8; 4] {
    if c < 0 {
        return [190, 190, 190, 160];
    }
    // Golden-angle hues.
    let h = (c as f32 * 137.507_77) % 360.0;
    let (s, l) = (0.65f32, 0.45f32);
    let k = |n: f32| (n + h / 30.0) % 12.0;
    let a = s * l.min(1.0 - l);
    let f = |n: f32| l - a * (-1.0f32).max((k(n) - 3.0).min(9.0 - k(n)).min(1.0));
    [
        (f(0.0) * 255.0) as u8,
        (f(8.0) * 255.0) as u8,
        (f(4.0) * 255.0) as u8,
        255,
    ]
}

fn color_of(r: &SplittingRow, by: ColorBy, ws: &[usize], pal: &[[u8; 4]]) -> [u8; 4] {
    match by {
        ColorBy::Width => pal[ws.iter().position(|&w| w == r.sae_width).unwrap_or(0)],
        ColorBy::Cluster => cluster_color(r.cluster.unwrap_or(-1)),
    }
}

/// Drawing order and marker radius: wider SAEs first (underneath), narrower on top and larger,
/// as the tutorial's `marker_size = 4 · width / max_width` after sorting by width descending.
fn draw_order(rows: &[SplittingRow]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| rows[b].sae_width.cmp(&rows[a].sae_width).then(a.cmp(&b)));
    idx
}

fn radius(r: &SplittingRow, ws: &[usize], by: ColorBy) -> f32 {
    match by {
        ColorBy::Cluster => 2.5,
        ColorBy::Width => {
            let max = *ws.last().unwrap_or(&1) as f32;
            let min = *ws.first().unwrap_or(&1) as f32;
            // Narrowest largest: 4·max/width in plotly's area units → radius ∝ sqrt.
            2.0 + 3.0 * ((max / r.sae_width as f32).sqrt() - 1.0)
                / ((max / min).sqrt() - 1.0).max(1e-6)
        }
    }
}

/// Writes the standalone HTML scatter plot.
pub fn write_html(rows: &[SplittingRow], by: ColorBy, title: &str, path: &Path) -> Result<()> {
    let ws = widths(rows);
    let pal = width_colors(ws.len());
    let order = draw_order(rows);
    let points: Vec<serde_json::Value> = order
        .iter()
        .map(|&i| {
            let r = &rows[i];
            let c = color_of(r, by, &ws, &pal);
            serde_json::json!([
                r.umap_x,
                r.umap_y,
                radius(r, &ws, by),
                format!(
                    "rgba({},{},{},{:.2})",
                    c[0],
                    c[1],
                    c[2],
                    f32::from(c[3]) / 255.0
                ),
                r.sae_width,
                r.latent_idx,
                r.description,
                r.top_token_strs,
                r.cluster,
                r.family,
                r.family_evidence
            ])
        })
        .collect();
    let legend: Vec<serde_json::Value> = match by {
        ColorBy::Width => ws
            .iter()
            .zip(&pal)
            .map(|(w, c)| {
                serde_json::json!([
                    format!("width {w}"),
                    format!("rgb({},{},{})", c[0], c[1], c[2])
                ])
            })
            .collect(),
        ColorBy::Cluster => Vec::new(),
    };
    // Segments from each family member to its parent, drawn under the points.
    let segments: Vec<[f32; 4]> = family_segments(rows)
        .into_iter()
        .flat_map(|(p, ms)| ms.into_iter().map(move |m| [p.0, p.1, m.0, m.1]))
        .collect();
    let segments = serde_json::to_string(&segments).map_err(|e| io_err(path, e))?;
    // `</` cannot appear inside the inline script.
    let data = serde_json::to_string(&points)
        .map_err(|e| io_err(path, e))?
        .replace("</", "<\\/");
    let legend = serde_json::to_string(&legend)
        .map_err(|e| io_err(path, e))?
        .replace("</", "<\\/");
    let title_html = title.replace('&', "&amp;").replace('<', "&lt;");
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title_html}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; color: #222; }}
#tip {{ position: fixed; pointer-events: none; background: #fff; border: 1px solid #999; padding: 6px 8px;
  font-size: 12px; max-width: 420px; display: none; box-shadow: 0 2px 6px rgba(0,0,0,.2); }}
svg {{ border: 1px solid #ddd; background: #fff; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 14px; vertical-align: middle; }}
</style></head>
<body data-errors="0" data-points-drawn="0">
<h2>{title_html}</h2>
<div class="legend" id="legend"></div>
<svg id="plot" width="1200" height="900" viewBox="0 0 1200 900"></svg>
<div id="tip"></div>
<script>
window.onerror = function () {{ document.body.dataset.errors = String(Number(document.body.dataset.errors) + 1); }};
(function () {{
  var pts = {data};
  var legend = {legend};
  var segs = {segments};
  var svg = document.getElementById('plot'), tip = document.getElementById('tip');
  var W = 1200, H = 900, M = 40, NS = 'http://www.w3.org/2000/svg';
  var xs = pts.map(function (p) {{ return p[0]; }}), ys = pts.map(function (p) {{ return p[1]; }});
  var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
  var sx = function (v) {{ return M + (v - x0) / ((x1 - x0) || 1) * (W - 2 * M); }};
  var sy = function (v) {{ return H - M - (v - y0) / ((y1 - y0) || 1) * (H - 2 * M); }};
  var esc = function (s) {{ return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;'); }};
  var frag = document.createDocumentFragment();
  segs.forEach(function (s) {{
    var l = document.createElementNS(NS, 'line');
    l.setAttribute('x1', sx(s[0]).toFixed(2)); l.setAttribute('y1', sy(s[1]).toFixed(2));
    l.setAttribute('x2', sx(s[2]).toFixed(2)); l.setAttribute('y2', sy(s[3]).toFixed(2));
    l.setAttribute('stroke', 'rgba(170,40,40,0.35)'); l.setAttribute('stroke-width', '0.8');
    frag.appendChild(l);
  }});
  pts.forEach(function (p, i) {{
    var c = document.createElementNS(NS, 'circle');
    c.setAttribute('cx', sx(p[0]).toFixed(2)); c.setAttribute('cy', sy(p[1]).toFixed(2));
    c.setAttribute('r', p[2].toFixed(2)); c.setAttribute('fill', p[3]);
    c.setAttribute('data-i', i);
    frag.appendChild(c);
  }});
  svg.appendChild(frag);
  svg.addEventListener('mousemove', function (e) {{
    var i = e.target.getAttribute && e.target.getAttribute('data-i');
    if (i === null || i === undefined) {{ tip.style.display = 'none'; return; }}
    var p = pts[Number(i)];
    tip.innerHTML = '<b>width ' + p[4] + ', latent ' + p[5] + '</b>' + (p[8] !== null ? ' (cluster ' + p[8] + ')' : '') +
      '<br>' + esc(p[6] || '(no description)') + '<br><i>top tokens:</i> ' + esc(p[7]) +
      (p[9] ? '<br><i>family ' + esc(p[9]) + ':</i> ' + esc(p[10] || '') : '');
    tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px'; tip.style.display = 'block';
  }});
  var lg = document.getElementById('legend');
  legend.forEach(function (l) {{
    var s = document.createElement('span'); s.style.background = l[1]; lg.appendChild(s);
    lg.appendChild(document.createTextNode(l[0]));
  }});
  document.body.dataset.pointsDrawn = String(svg.querySelectorAll('circle').length);
}})();
</script></body></html>
"#
    );
    Ok(sae_core::atomic::write(path, html.as_bytes())?)
}

/// The words of a static scatter: its title and axis labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotLabels<'a> {
    /// The figure's title.
    pub title: &'a str,
    /// The horizontal axis.
    pub x: &'a str,
    /// The vertical axis.
    pub y: &'a str,
}

impl<'a> PlotLabels<'a> {
    /// A UMAP map: axes "UMAP 1" and "UMAP 2".
    pub fn umap(title: &'a str) -> Self {
        Self {
            title,
            x: "UMAP 1",
            y: "UMAP 2",
        }
    }
}

/// A parent's position and its members' positions.
type FamilyStar = ((f32, f32), Vec<(f32, f32)>);

/// Each family's parent position and its members' positions (rows whose `family` names another
/// row), parents in row order.
fn family_segments(rows: &[SplittingRow]) -> Vec<FamilyStar> {
    let at: std::collections::HashMap<String, (f32, f32)> = rows
        .iter()
        .map(|r| {
            (
                format!("{}/{}", r.sae_width, r.latent_idx),
                (r.umap_x, r.umap_y),
            )
        })
        .collect();
    let mut fams: std::collections::BTreeMap<String, Vec<(f32, f32)>> = Default::default();
    for r in rows {
        if let Some(f) = &r.family
            && *f != format!("{}/{}", r.sae_width, r.latent_idx)
        {
            fams.entry(f.clone())
                .or_default()
                .push((r.umap_x, r.umap_y));
        }
    }
    fams.into_iter()
        .filter_map(|(f, ms)| at.get(&f).map(|p| (*p, ms)))
        .collect()
}

/// Clusters named in the legend (the largest); the others are drawn but not listed.
const LEGEND_CLUSTERS: usize = 10;

/// The scatter as a figure: one layer per width (wider first, underneath, as the HTML) or per
/// cluster (noise first, the largest clusters in the legend).
pub fn figure(rows: &[SplittingRow], by: ColorBy, labels: PlotLabels<'_>) -> Figure {
    let ws = widths(rows);
    let pal = width_colors(ws.len());
    let xy = |r: &SplittingRow| (f64::from(r.umap_x), f64::from(r.umap_y));
    let color = |c: [u8; 4]| Color::rgba(c[0], c[1], c[2], f64::from(c[3]) / 255.0);
    let mut panel = Panel::new(Axis::new(labels.x), Axis::new(labels.y));
    // Family members joined to their parents, underneath the points (one star per family).
    let fams = family_segments(rows);
    let n_fams = fams.len();
    for (k, (p, ms)) in fams.into_iter().enumerate() {
        let pp = (f64::from(p.0), f64::from(p.1));
        let mut pts = vec![pp];
        for m in ms {
            pts.push((f64::from(m.0), f64::from(m.1)));
            pts.push(pp);
        }
        panel.layers.push(Layer::Line {
            label: if k == 0 {
                format!("family member → parent ({n_fams} families)")
            } else {
                String::new()
            },
            color: Color::rgba(170, 40, 40, 0.35),
            stroke: sae_geometry_plot::Stroke::Solid,
            markers: false,
            points: pts,
        });
    }
    match by {
        ColorBy::Width => {
            for (i, &w) in ws.iter().enumerate().rev() {
                let pts: Vec<_> = rows.iter().filter(|r| r.sae_width == w).map(xy).collect();
                let r = rows
                    .iter()
                    .find(|r| r.sae_width == w)
                    .map_or(2.0, |r| radius(r, &ws, by));
                panel.layers.push(Layer::points(
                    format!("width {w} ({} latents)", pts.len()),
                    color(pal[i]),
                    r.round().max(1.0) as u32,
                    pts,
                ));
            }
        }
        ColorBy::Cluster => {
            let mut sizes: std::collections::BTreeMap<i64, usize> = Default::default();
            for r in rows {
                *sizes.entry(r.cluster.unwrap_or(-1)).or_default() += 1;
            }
            let mut order: Vec<(i64, usize)> = sizes.into_iter().collect();
            // Noise first (underneath), then clusters from the largest.
            order.sort_by_key(|&(c, n)| (c >= 0, std::cmp::Reverse(n), c));
            let n_clusters = order.iter().filter(|(c, _)| *c >= 0).count();
            let mut listed = 0;
            for (c, n) in &order {
                let pts: Vec<_> = rows
                    .iter()
                    .filter(|r| r.cluster.unwrap_or(-1) == *c)
                    .map(xy)
                    .collect();
                let label = if *c < 0 {
                    format!("noise ({n})")
                } else if listed < LEGEND_CLUSTERS {
                    listed += 1;
                    format!("cluster {c} ({n})")
                } else {
                    String::new()
                };
                panel
                    .layers
                    .push(Layer::points(label, color(cluster_color(*c)), 3, pts));
            }
            if n_clusters > LEGEND_CLUSTERS {
                let title = format!(
                    "{} ({n_clusters} clusters; the {LEGEND_CLUSTERS} largest in the legend)",
                    labels.title
                );
                return Figure::new(title, vec![panel]);
            }
        }
    }
    Figure::new(labels.title, vec![panel])
}

/// Writes a PNG of the same scatter (1200 × 900): title, labelled axes with ticks, and a legend
/// of widths or clusters (the hover text lives in the HTML).
pub fn write_png(
    rows: &[SplittingRow],
    by: ColorBy,
    labels: PlotLabels<'_>,
    path: &Path,
) -> Result<()> {
    Ok(sae_geometry_plot::write_png(
        &figure(rows, by, labels),
        path,
    )?)
}
