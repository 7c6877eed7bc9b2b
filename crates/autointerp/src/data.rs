//! From one-pass latent statistics to each latent's generation and scoring examples.
//!
//! Invariants (tested):
//! - generation and scoring windows never overlap: the top windows are split by a seeded
//!   permutation, and a random window is only used for a latent when it overlaps none of that
//!   latent's top windows (delphi reuses one seed for both sets and leaks examples — not here);
//! - random windows keep their real activations, so a random window on which the latent fires
//!   above the threshold is an active example;
//! - everything is a pure function of the statistics, the configuration and the seed.

use activation_store::{LatentStats, Window};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::AutoInterpConfig;
use crate::example::Example;

/// One latent's examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentExamples {
    /// The latent's index in the SAE.
    pub latent: usize,
    /// Its largest activation seen.
    pub max_activation: f32,
    /// `act_threshold_frac × max_activation`.
    pub act_threshold: f32,
    /// Top windows shown to the explainer, best first.
    pub generation: Vec<Example>,
    /// Scoring set: held-out top windows and random windows, shuffled.
    pub scoring: Vec<Example>,
    /// The held-out top windows of the scoring set, best first (also the positives of
    /// neighbour scoring).
    #[serde(default)]
    pub held_out: Vec<Example>,
    /// Fuzzing set: active windows highlighted either correctly or at decoy positions,
    /// shuffled, with whether each highlighting is the real one.
    pub fuzzing: Vec<(Example, bool)>,
    /// Top logit-lens tokens, when known.
    pub logit_tokens: Option<Vec<String>>,
}

impl LatentExamples {
    /// Whether the latent never fired above zero (nothing to explain).
    pub fn is_dead(&self) -> bool {
        self.generation.is_empty()
    }

    /// Whether each scoring example is active.
    pub fn scoring_truth(&self) -> Vec<bool> {
        self.scoring.iter().map(Example::is_active).collect()
    }
}

/// Whether window `a` and the window centred at (`seq`, `pos`) share a token.
pub(crate) fn overlaps(a: &Window, seq: u64, pos: u32, buffer: usize) -> bool {
    a.seq == seq && (i64::from(a.pos) - i64::from(pos)).unsigned_abs() <= 2 * buffer as u64
}

/// A latent-specific generator, so each latent's draws do not depend on the others.
fn rng_for(seed: u64, latent: usize, stream: u64) -> StdRng {
    let mut z = seed
        ^ (latent as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Builds every latent's examples from `stats`. `str_tokens` maps token ids to their texts
/// (e.g. [`gpt2_gemma_models::AnyTokenizer::str_tokens`]).
///
/// `stats` must have been gathered with `buffer = cfg.buffer`, `k ≥ cfg.n_top_ex()` and
/// enough random windows (`≥ cfg.n_random_ex_for_scoring`, more to leave room for
/// exclusions).
pub fn build_examples(
    stats: &LatentStats,
    cfg: &AutoInterpConfig,
    seed: u64,
    str_tokens: &dyn Fn(&[u32]) -> crate::Result<Vec<String>>,
) -> crate::Result<Vec<LatentExamples>> {
    cfg.validate()?;
    if stats.config.buffer != cfg.buffer {
        return Err(crate::AutoInterpError::invalid(
            "statistics buffer",
            format!("{} (the autointerp buffer)", cfg.buffer),
            stats.config.buffer,
        ));
    }
    let mut out = Vec::with_capacity(stats.latents.len());
    for (slot, summary) in stats.latents.iter().enumerate() {
        let latent = summary.latent;
        let max = summary.max.max(0.0);
        let thr = cfg.act_threshold_frac * max;
        let example = |w: &Window| -> crate::Result<Example> {
            Example::new(
                w.tokens.clone(),
                str_tokens(&w.tokens)?,
                w.values.clone(),
                thr,
            )
        };
        // The top `n_top_ex` windows are split as the tutorial does; any further windows
        // gathered are spares for held-out windows that overlap a generation window.
        let all_tops: Vec<&Window> = summary.top.iter().filter(|w| w.value > 0.0).collect();
        let tops = &all_tops[..all_tops.len().min(cfg.n_top_ex())];
        if tops.is_empty() {
            out.push(LatentExamples {
                latent,
                max_activation: max,
                act_threshold: thr,
                generation: Vec::new(),
                scoring: Vec::new(),
                held_out: Vec::new(),
                fuzzing: Vec::new(),
                logit_tokens: None,
            });
            continue;
        }
        let ntop = tops.len();
        let n_score_top = if cfg.scoring {
            cfg.n_top_ex_for_scoring.min(ntop / 2)
        } else {
            0
        };
        let n_gen = (ntop - n_score_top).min(cfg.n_top_ex_for_generation);
        let mut rng = rng_for(seed, latent, 0);
        let mut perm: Vec<usize> = (0..ntop).collect();
        perm.shuffle(&mut rng);
        let mut gen_idx = perm[..n_gen].to_vec();
        gen_idx.sort_unstable();
        let generation = gen_idx
            .iter()
            .map(|&i| example(tops[i]))
            .collect::<crate::Result<Vec<_>>>()?;
        // Held-out top windows: none may overlap a generation window (top windows of one
        // sequence can overlap when `no_overlap` is off).
        let score_tops = perm[n_gen..]
            .iter()
            .copied()
            .chain(ntop..all_tops.len())
            .filter(|&i| {
                !gen_idx
                    .iter()
                    .any(|&g| overlaps(tops[g], all_tops[i].seq, all_tops[i].pos, cfg.buffer))
            })
            .take(n_score_top)
            .map(|i| example(all_tops[i]))
            .collect::<crate::Result<Vec<_>>>()?;
        let mut scoring = score_tops.clone();
        let mut fuzzing = Vec::new();
        if cfg.scoring {
            // Random windows: none may overlap any of this latent's top windows.
            let mut randoms: Vec<Window> = stats
                .random_windows_for(slot)
                .into_iter()
                .filter(|r| {
                    !summary
                        .top
                        .iter()
                        .any(|t| overlaps(t, r.seq, r.pos, cfg.buffer))
                })
                .collect();
            let mut rng = rng_for(seed, latent, 1);
            randoms.shuffle(&mut rng);
            for r in randoms.iter().take(cfg.n_random_ex_for_scoring) {
                scoring.push(example(r)?);
            }
            scoring.shuffle(&mut rng);
            // Fuzzing: each held-out top window, correctly or decoy highlighted.
            let mut rng = rng_for(seed, latent, 2);
            for (i, ex) in score_tops.iter().enumerate() {
                let real = i % 2 == 0;
                fuzzing.push((
                    if real {
                        ex.clone()
                    } else {
                        decoy(ex, &mut rng)
                    },
                    real,
                ));
            }
            fuzzing.shuffle(&mut rng);
        }
        out.push(LatentExamples {
            latent,
            max_activation: max,
            act_threshold: thr,
            generation,
            scoring,
            held_out: score_tops,
            fuzzing,
            logit_tokens: None,
        });
    }
    Ok(out)
}

/// The same window with as many tokens highlighted as are active, at random inactive
/// positions.
fn decoy(ex: &Example, rng: &mut StdRng) -> Example {
    let active = ex.toks_are_active();
    let n = active.iter().filter(|a| **a).count().max(1);
    let mut inactive: Vec<usize> = (0..active.len()).filter(|&i| !active[i]).collect();
    inactive.shuffle(rng);
    let mut acts = vec![0.0; ex.acts.len()];
    for &i in inactive.iter().take(n) {
        acts[i] = 1.0;
    }
    Example {
        tokens: ex.tokens.clone(),
        str_tokens: ex.str_tokens.clone(),
        acts,
        act_threshold: 0.5,
    }
}
