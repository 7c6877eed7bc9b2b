//! Offline latent dashboards: one standalone HTML page per latent and an index page, with no
//! network and no scripts from anywhere — top activating windows with per-token shading and the
//! value on hover, windows from activation quantiles, the activation histogram with the firing
//! frequency, top and bottom logit-lens tokens, nearest latents by decoder cosine, and the
//! autointerp explanation and score when known.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A window of tokens and the latent's activation on each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashWindow {
    /// Each token's text.
    pub tokens: Vec<String>,
    /// The latent's activation on each token.
    pub acts: Vec<f32>,
}

/// Everything one latent's page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashLatent {
    /// The latent's index.
    pub latent: usize,
    /// Fraction of tokens it fired on.
    pub frequency: f64,
    /// Largest activation seen.
    pub max: f32,
    /// Mean activation when it fired.
    pub mean_when_active: f64,
    /// Top activating windows, best first.
    pub top: Vec<DashWindow>,
    /// Windows sampled from activation quantiles, lowest bin first: (label, windows).
    pub quantiles: Vec<(String, Vec<DashWindow>)>,
    /// Histogram of sampled activations: (low edge, high edge, count).
    pub histogram: Vec<(f32, f32, usize)>,
    /// Most boosted tokens and their logit weights.
    pub top_tokens: Vec<(String, f32)>,
    /// Most suppressed tokens and their logit weights.
    pub bottom_tokens: Vec<(String, f32)>,
    /// Nearest latents by decoder cosine: (label, latent, cosine); the label names the SAE.
    pub neighbours: Vec<(String, usize, f32)>,
    /// Autointerp explanation, when known.
    pub explanation: Option<String>,
    /// Its detection score.
    pub score: Option<f64>,
}

/// `count`-bin histogram of `values` between 0 and their max.
pub fn histogram(values: &[f32], count: usize) -> Vec<(f32, f32, usize)> {
    let max = values.iter().copied().fold(0f32, f32::max);
    if count == 0 || max <= 0.0 {
        return Vec::new();
    }
    let w = max / count as f32;
    let mut bins = vec![0usize; count];
    for &v in values {
        let i = ((v / w) as usize).min(count - 1);
        bins[i] += 1;
    }
    bins.into_iter()
        .enumerate()
        .map(|(i, c)| (i as f32 * w, (i + 1) as f32 * w, c))
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A token as shown: newlines as ↵, other control characters escaped.
fn shown(tok: &str) -> String {
    let t: String = tok
        .chars()
        .map(|c| match c {
            '\n' => '↵',
            '\t' => '⇥',
            c if c.is_control() => '·',
            c => c,
        })
        .collect();
    esc(&t)
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;max-width:1100px}h1{font-size:20px}h2{font-size:16px;margin-top:22px}.w{font-family:monospace;white-space:pre-wrap;margin:3px 0;padding:3px;border-bottom:1px solid #eee}.tok{border-radius:2px}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;font-family:monospace}a{color:#1f5fbf}";

fn window_html(out: &mut String, w: &DashWindow, max: f32) {
    out.push_str("<div class=\"w\">");
    for (t, &a) in w.tokens.iter().zip(&w.acts) {
        let alpha = if max > 0.0 {
            (a / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<span class=\"tok\" title=\"{:.4}\" style=\"background:rgba(255,120,0,{alpha:.3})\">{}</span>",
            a,
            shown(t)
        );
    }
    out.push_str("</div>");
}

fn tokens_table(out: &mut String, title: &str, toks: &[(String, f32)]) {
    let _ = write!(
        out,
        "<td style=\"vertical-align:top\"><b>{title}</b><table>"
    );
    for (t, v) in toks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{v:+.3}</td></tr>",
            shown(&serde_json::to_string(t).unwrap_or_default())
        );
    }
    out.push_str("</table></td>");
}

fn page(l: &DashLatent, title: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>latent {} — {}</title><style>{STYLE}</style></head><body data-latent=\"{}\" data-windows=\"{}\">",
        l.latent,
        esc(title),
        l.latent,
        l.top.len() + l.quantiles.iter().map(|q| q.1.len()).sum::<usize>()
    );
    let _ = write!(
        h,
        "<p><a href=\"index.html\">← all latents</a></p><h1>{} — latent {}</h1>",
        esc(title),
        l.latent
    );
    let _ = write!(
        h,
        "<p>firing frequency {:.3e} · max activation {:.3} · mean when active {:.3}</p>",
        l.frequency, l.max, l.mean_when_active
    );
    if let Some(e) = &l.explanation {
        let _ = write!(h, "<p><b>Explanation:</b> {}", esc(e));
        if let Some(s) = l.score {
            let _ = write!(h, " (detection score {s:.2})");
        }
        h.push_str("</p>");
    }
    // Histogram.
    if !l.histogram.is_empty() {
        let maxc = l.histogram.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f32;
        let (w, ht) = (600.0f32, 120.0f32);
        let bw = w / l.histogram.len() as f32;
        let _ = write!(
            h,
            "<h2>Activation density (sampled activating tokens)</h2><svg width=\"{w}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
            ht + 18.0
        );
        for (i, (lo, hi, c)) in l.histogram.iter().enumerate() {
            let bh = ht * *c as f32 / maxc;
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#f08030\"><title>{lo:.3}–{hi:.3}: {c}</title></rect>",
                i as f32 * bw,
                ht - bh,
                (bw - 1.0).max(1.0)
            );
        }
        let last = l.histogram.last().map_or(0.0, |b| b.1);
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\" font-size=\"11\">0</text><text x=\"{w}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last:.2}</text></svg>",
            ht + 14.0,
            ht + 14.0
        );
    }
    // Logit lens and neighbours.
    h.push_str("<h2>Logit lens and neighbours</h2><table><tr>");
    tokens_table(&mut h, "boosted", &l.top_tokens);
    tokens_table(&mut h, "suppressed", &l.bottom_tokens);
    h.push_str("<td style=\"vertical-align:top\"><b>nearest latents (decoder cosine)</b><table>");
    for (label, n, c) in &l.neighbours {
        let link = if label.is_empty() {
            format!("<a href=\"latent-{n}.html\">{n}</a>")
        } else {
            format!("{} {n}", esc(label))
        };
        let _ = write!(h, "<tr><td>{link}</td><td>{c:.3}</td></tr>");
    }
    h.push_str("</table></td></tr></table>");
    h.push_str("<h2>Top activations</h2>");
    for w in &l.top {
        window_html(&mut h, w, l.max);
    }
    for (label, ws) in l.quantiles.iter().rev() {
        let _ = write!(h, "<h2>{}</h2>", esc(label));
        for w in ws {
            window_html(&mut h, w, l.max);
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes `index.html` and `latent-{i}.html` for every latent into `dir`.
pub fn write_dashboards(latents: &[DashLatent], title: &str, dir: &Path) -> Result<()> {
    let io = crate::plot::io_err;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut index = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body data-latents=\"{}\"><h1>{}</h1><table><tr><th>latent</th><th>frequency</th><th>max</th><th>explanation</th><th>score</th><th>top boosted tokens</th></tr>",
        esc(title),
        latents.len(),
        esc(title)
    );
    for l in latents {
        let p = dir.join(format!("latent-{}.html", l.latent));
        sae_core::atomic::write(&p, page(l, title).as_bytes())?;
        let toks: Vec<String> = l
            .top_tokens
            .iter()
            .take(5)
            .map(|(t, _)| shown(&serde_json::to_string(t).unwrap_or_default()))
            .collect();
        let _ = write!(
            index,
            "<tr><td><a href=\"latent-{0}.html\">{0}</a></td><td>{1:.2e}</td><td>{2:.3}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>",
            l.latent,
            l.frequency,
            l.max,
            l.explanation.as_deref().map(esc).unwrap_or_default(),
            l.score.map(|s| format!("{s:.2}")).unwrap_or_default(),
            toks.join(" ")
        );
    }
    index.push_str("</table></body></html>\n");
    Ok(sae_core::atomic::write(
        dir.join("index.html"),
        index.as_bytes(),
    )?)
}
