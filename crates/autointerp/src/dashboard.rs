//! Latent dashboards as one call: each latent's page data — top and quantile windows from the
//! corpus statistics, the activation histogram, boosted and suppressed tokens (logit lens),
//! nearest latents by decoder cosine in its own SAE and in other widths, and the autointerp
//! explanation and score — ready for [`latent_geometry::dashboard::write_dashboards`].

use std::collections::HashMap;

use activation_store::{LatentStats, Window};
use gpt2_gemma_models::{AnyTokenizer, LanguageModel};
use latent_geometry::dashboard::{DashLatent, DashWindow, histogram};
use latent_geometry::splitting::nearest_latents;
use latent_geometry::{LogitLensConfig, logit_lens};
use sae_core::Sae;
use sae_core::device::tensor_to_vec;

use crate::run::LatentResult;

/// What each page shows (the defaults are `sae-geometry dashboard`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Top activating windows shown (default 20).
    pub top_windows: usize,
    /// Quantile bins shown, at most (default 5; fewer when the statistics kept fewer).
    pub quantile_bins: usize,
    /// Windows shown per quantile bin, the highest of each (default 3).
    pub windows_per_quantile: usize,
    /// Bins of the activation histogram (default 20).
    pub histogram_bins: usize,
    /// Nearest latents listed from the latent's own SAE (default 5).
    pub neighbours: usize,
    /// Nearest latents listed from each other SAE of the family (default 3).
    pub family_neighbours: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            top_windows: 20,
            quantile_bins: 5,
            windows_per_quantile: 3,
            histogram_bins: 20,
            neighbours: 5,
            family_neighbours: 3,
        }
    }
}

/// What the pages are built from.
pub struct DashboardInputs<'a, M: LanguageModel + ?Sized> {
    /// The model (its unembedding gives boosted and suppressed tokens).
    pub model: &'a M,
    /// Its tokenizer (window tokens and token strings).
    pub tokenizer: &'a AnyTokenizer,
    /// The SAE.
    pub sae: &'a Sae,
    /// Corpus statistics of (at least) `latents` (`activation_store::gather_stats` or a saved
    /// `latent-stats` summary).
    pub stats: &'a LatentStats,
    /// The latents, one page each (those the statistics lack are left out).
    pub latents: &'a [usize],
    /// Autointerp results whose explanations and scores are shown (may be empty).
    pub results: &'a [LatentResult],
    /// Other SAEs (e.g. other widths of a family) whose nearest latents are listed, each
    /// labelled "{width}-wide".
    pub family: &'a [Sae],
}

/// The pages of `inputs.latents`, in the statistics' order.
///
/// # Errors
/// An SAE of the family on another `d_in` ([`crate::AutoInterpError::InvalidOption`]), and the
/// logit lens's, the tokenizer's and the tensor reads' errors.
pub fn dashboard_pages<M: LanguageModel + ?Sized>(
    inputs: &DashboardInputs<'_, M>,
    config: &DashboardConfig,
) -> crate::Result<Vec<DashLatent>> {
    let DashboardInputs {
        model,
        tokenizer: tok,
        sae,
        stats,
        latents,
        results,
        family,
    } = inputs;
    let explanations: HashMap<usize, (Option<String>, Option<f64>)> = results
        .iter()
        .map(|r| (r.latent, (r.explanation.clone(), r.score)))
        .collect();
    let lens = logit_lens(
        &sae.w_dec(),
        &model.unembed(),
        Some(latents),
        LogitLensConfig::default(),
    )?;
    let d = sae.d_in();
    let w_dec = tensor_to_vec(sae.w_dec())?;
    let mut neighbours: Vec<Vec<(String, usize, f32)>> =
        nearest_latents(&w_dec, d, latents, None, config.neighbours)
            .into_iter()
            .map(|v| v.into_iter().map(|(j, c)| (String::new(), j, c)).collect())
            .collect();
    for (i, other) in family.iter().enumerate() {
        if other.d_in() != d {
            return Err(crate::AutoInterpError::invalid(
                "family",
                format!("SAEs on the dashboard SAE's d_in {d}"),
                format!("family[{i}] has d_in {}", other.d_in()),
            ));
        }
        let label = format!("{}-wide", other.d_sae());
        let other_dec = tensor_to_vec(other.w_dec())?;
        let near = nearest_latents(
            &w_dec,
            d,
            latents,
            Some(&other_dec),
            config.family_neighbours,
        );
        for (v, near) in neighbours.iter_mut().zip(near) {
            v.extend(near.into_iter().map(|(j, c)| (label.clone(), j, c)));
        }
    }
    let str_window = |w: &Window| -> crate::Result<DashWindow> {
        Ok(DashWindow {
            tokens: tok.str_tokens(&w.tokens)?,
            acts: w.values.clone(),
        })
    };
    let token_values = |ids: &[u32], vals: &[f32]| -> crate::Result<Vec<(String, f32)>> {
        ids.iter()
            .zip(vals)
            .map(|(&i, &v)| Ok((tok.decode(&[i])?, v)))
            .collect()
    };
    let frequencies = stats.frequencies();
    let mut pages = Vec::with_capacity(latents.len());
    for (slot, summary) in stats.latents.iter().enumerate() {
        let l = summary.latent;
        let Some(pos) = latents.iter().position(|&x| x == l) else {
            continue;
        };
        let top = summary
            .top
            .iter()
            .filter(|w| w.value > 0.0)
            .take(config.top_windows)
            .map(&str_window)
            .collect::<crate::Result<Vec<_>>>()?;
        let bins = summary.quantiles(
            stats
                .config
                .n_quantiles
                .clamp(1, config.quantile_bins.max(1)),
        );
        let nb = bins.len();
        let quantiles = bins
            .iter()
            .enumerate()
            .map(|(i, ws)| {
                let shown = ws
                    .iter()
                    .rev()
                    .take(config.windows_per_quantile)
                    .map(&str_window)
                    .collect::<crate::Result<Vec<_>>>()?;
                Ok((
                    format!("Quantile {} of {nb} (sampled activating windows)", i + 1),
                    shown,
                ))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let sampled: Vec<f32> = summary.samples().iter().map(|w| w.value).collect();
        let lt = &lens[pos];
        let (explanation, score) = explanations.get(&l).cloned().unwrap_or((None, None));
        pages.push(DashLatent {
            latent: l,
            frequency: frequencies[slot],
            max: summary.max.max(0.0),
            mean_when_active: summary.mean_when_active(),
            top,
            quantiles,
            histogram: histogram(&sampled, config.histogram_bins),
            top_tokens: token_values(&lt.top_ids, &lt.top_values)?,
            bottom_tokens: token_values(&lt.bottom_ids, &lt.bottom_values)?,
            neighbours: neighbours[pos].clone(),
            explanation,
            score,
        });
    }
    Ok(pages)
}
