//! A whole patch-scoping study as one call: a sweep of scales (the tutorial's absolute ones, or
//! multiples of the model's residual norm), the scale-tuning metrics and the chosen scale, and
//! the results file and plots.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (model, tokenizer, sae): (gpt2_gemma_models::AnyModel, gpt2_gemma_models::AnyTokenizer, sae_core::Sae) = todo!();
//! use patch_scoping::study::{Scales, StudyConfig, run_study};
//! let direction = patch_scoping::decoder_row(&sae, 607)?; // the tutorial's latent
//! let mut cfg = StudyConfig::new(2); // blocks.2.hook_resid_pre
//! cfg.scales = Scales::Absolute(vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
//! let study = run_study(&model, &tokenizer, &direction, &cfg)?;
//! for g in &study.generations {
//!     println!("scale {} | {:?}", g.scale, g.explanation);
//! }
//! study.save("runs/latent-607.json".as_ref(), "latent 607")?;
//! # Ok(()) }
//! ```

use std::path::Path;

use gpt2_gemma_models::{AnyTokenizer, LanguageModel, Sampling};
use serde::{Deserialize, Serialize};

use crate::{
    PatchMode, PatchPrompt, Result, ScaleGeneration, ScaleKind, ScaleMetrics, ScopingError,
    SweepConfig, TUTORIAL_TEMPLATE, TuningConfig, residual_norm, sweep, tune_scales,
    tutorial_sampling,
};

/// The scales swept, and what they mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scales {
    /// `points` evenly spaced multiples of the residual norm entering the layer (measured on
    /// the prompt at the placeholder), from 0 to `max`: comparable across models.
    RelativeSweep {
        /// Number of scales (at least 2).
        points: usize,
        /// The largest multiple.
        max: f32,
    },
    /// The patched vector's L2 norm (the tutorial's scales, e.g. 0, 10, …, 50).
    Absolute(Vec<f32>),
    /// Multiples of the residual norm entering the layer, turned into absolute scales.
    Relative(Vec<f32>),
    /// Per position, multiples of the norm of the residual being replaced (‖h‖·c).
    PerPosition(Vec<f32>),
}

impl Scales {
    /// How the results file names these scales.
    pub fn meaning(&self) -> &'static str {
        match self {
            Scales::RelativeSweep { .. } => {
                "relative (default sweep: multiples of the residual norm)"
            }
            Scales::Absolute(_) => "absolute",
            Scales::Relative(_) => "relative",
            Scales::PerPosition(_) => "per-position relative",
        }
    }

    /// The scales as asked, the scales patched, and how the patch reads them.
    fn resolve(&self, norm: f32) -> Result<(Vec<f32>, Vec<f32>, ScaleKind)> {
        let (requested, absolute, kind) = match self {
            Scales::RelativeSweep { points, max } => {
                let n = (*points).max(2);
                let rel: Vec<f32> = (0..n).map(|i| max * i as f32 / (n - 1) as f32).collect();
                let abs = rel.iter().map(|r| r * norm).collect();
                (rel, abs, ScaleKind::Absolute)
            }
            Scales::Absolute(v) => (v.clone(), v.clone(), ScaleKind::Absolute),
            Scales::Relative(v) => (
                v.clone(),
                v.iter().map(|r| r * norm).collect(),
                ScaleKind::Absolute,
            ),
            Scales::PerPosition(v) => (v.clone(), v.clone(), ScaleKind::RelativeToResidual),
        };
        if requested.is_empty() {
            return Err(ScopingError::invalid("scales", "at least one", 0));
        }
        Ok((requested, absolute, kind))
    }
}

/// A study's settings, with the tutorial's defaults ([`StudyConfig::new`]).
#[derive(Debug, Clone)]
pub struct StudyConfig {
    /// `blocks.{layer}.hook_resid_pre` is patched (the tutorial: 2).
    pub layer: usize,
    /// The scales (default: 64 points from 0 to 2× the residual norm).
    pub scales: Scales,
    /// Replace the residual at the placeholder (the tutorial) or add to it.
    pub mode: PatchMode,
    /// Decoding (default: the tutorial's sampling, temperature 0.5, frequency penalty 2.0).
    pub sampling: Sampling,
    /// New tokens per scale (the tutorial: 50).
    pub max_new_tokens: usize,
    /// Prompt template, `{X}` the placeholder (default: the tutorial's Gemma-turn prompt).
    pub template: String,
    /// Placeholder token id (default: the tokenizer's unknown token).
    pub placeholder_id: Option<u32>,
    /// Scale tuning: `None` skips the metrics; `Some(None)` probes at about 2/3 of the depth.
    pub tuning: Option<Option<usize>>,
}

impl StudyConfig {
    /// The tutorial's prompt and sampling at `layer`, the default relative sweep, with tuning.
    pub fn new(layer: usize) -> Self {
        Self {
            layer,
            scales: Scales::RelativeSweep {
                points: 64,
                max: 2.0,
            },
            mode: PatchMode::Replace,
            sampling: tutorial_sampling(0),
            max_new_tokens: 50,
            template: TUTORIAL_TEMPLATE.to_string(),
            placeholder_id: None,
            tuning: Some(None),
        }
    }
}

/// What a study found.
#[derive(Debug, Clone)]
pub struct Study {
    /// The prompt, with its placeholder positions.
    pub prompt: PatchPrompt,
    /// The residual norm entering the layer at the placeholder.
    pub residual_norm: f32,
    /// The scales as asked (their meaning: [`Study::scale_meaning`]).
    pub requested: Vec<f32>,
    /// The scales patched.
    pub absolute: Vec<f32>,
    /// What the requested scales mean.
    pub scale_meaning: &'static str,
    /// One generation per scale.
    pub generations: Vec<ScaleGeneration>,
    /// Tuning metrics per scale, the chosen index and the probe layer (when tuning ran).
    pub tuning: Option<(Vec<ScaleMetrics>, usize, usize)>,
    /// Seconds spent generating.
    pub generation_seconds: f64,
    /// The settings.
    pub config: StudyConfig,
}

/// Runs a study of `direction` (a decoder row, `d_model` floats).
///
/// # Errors
/// [`ScopingError::Invalid`] for a direction of the wrong length, no scales or a layer out of
/// range; [`ScopingError::NoPlaceholder`] when the prompt holds no placeholder; model failures.
pub fn run_study<M: LanguageModel + ?Sized>(
    model: &M,
    tokenizer: &AnyTokenizer,
    direction: &[f32],
    cfg: &StudyConfig,
) -> Result<Study> {
    if direction.len() != model.d_model() {
        return Err(ScopingError::invalid(
            "direction",
            format!("{} values (the model's d_model)", model.d_model()),
            direction.len(),
        ));
    }
    let prompt = PatchPrompt::new(tokenizer, &cfg.template, cfg.placeholder_id)?;
    let norm = residual_norm(model, &prompt, cfg.layer)?;
    let (requested, absolute, kind) = cfg.scales.resolve(norm)?;
    let sweep_cfg = SweepConfig {
        layer: cfg.layer,
        mode: cfg.mode,
        kind,
        max_new_tokens: cfg.max_new_tokens,
        sampling: cfg.sampling.clone(),
        eos: None,
    };
    let t0 = std::time::Instant::now();
    let generations = sweep(model, tokenizer, &prompt, direction, &absolute, &sweep_cfg)?;
    let generation_seconds = t0.elapsed().as_secs_f64();
    let tuning = match cfg.tuning {
        None => None,
        Some(probe) => {
            let mut tc = TuningConfig::new(cfg.layer, model.n_layers());
            if let Some(p) = probe {
                tc.probe_layer = p;
            }
            tc.mode = cfg.mode;
            tc.kind = kind;
            let (m, c) = tune_scales(model, &prompt, direction, &absolute, &tc)?;
            Some((m, c, tc.probe_layer))
        }
    };
    Ok(Study {
        prompt,
        residual_norm: norm,
        requested,
        absolute,
        scale_meaning: cfg.scales.meaning(),
        generations,
        tuning,
        generation_seconds,
        config: cfg.clone(),
    })
}

impl Study {
    /// The chosen scale's index (with tuning).
    pub fn chosen(&self) -> Option<usize> {
        self.tuning.as_ref().map(|t| t.1)
    }

    /// The results file's JSON; `latent` and `sae` name what the direction is, when it is a
    /// latent.
    pub fn to_json(&self, latent: Option<usize>, sae: Option<&str>) -> serde_json::Value {
        let chosen = self.chosen();
        let per_scale: Vec<serde_json::Value> = self
            .generations
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let mut o = serde_json::json!({
                    "scale": self.requested[i],
                    "absolute_scale": self.absolute[i],
                    "generated_ids": g.generated_ids,
                    "text": g.text,
                    "explanation": g.explanation,
                });
                if let Some((m, _, _)) = &self.tuning {
                    o["self_similarity"] = serde_json::json!(m[i].self_similarity);
                    o["entropy"] = serde_json::json!(m[i].entropy);
                    o["entropy_change"] = serde_json::json!(m[i].entropy_change);
                    o["cross_entropy"] = serde_json::json!(m[i].cross_entropy);
                    o["score"] = serde_json::json!(m[i].score);
                }
                o
            })
            .collect();
        let sampling = match &self.config.sampling {
            Sampling::Greedy => "greedy".to_string(),
            Sampling::Sample(s) => format!(
                "temperature {} freq_penalty {} seed {}",
                s.temperature, s.freq_penalty, s.seed
            ),
            other => format!("{other:?}"),
        };
        serde_json::json!({
            "prompt": self.prompt.text,
            "placeholder_positions": self.prompt.positions,
            "layer": self.config.layer,
            "probe_layer": self.tuning.as_ref().map(|t| t.2),
            "latent": latent,
            "sae": sae,
            "mode": self.config.mode,
            "scale_kind": self.scale_meaning,
            "residual_norm": self.residual_norm,
            "sampling": sampling,
            "chosen_index": chosen,
            "chosen_scale": chosen.map(|c| self.requested[c]),
            "chosen_absolute_scale": chosen.map(|c| self.absolute[c]),
            "chosen_explanation": chosen.map(|c| self.generations[c].explanation.clone()),
            "generation_seconds": self.generation_seconds,
            "scales": per_scale,
        })
    }

    /// Writes the results JSON `out` (see [`Study::to_json`]) and, with tuning, the tuning
    /// curves as `out` with extensions `.html` and `.png`, titled after `what`.
    pub fn save_as(&self, out: &Path, what: &str, json: &serde_json::Value) -> Result<()> {
        let io = |e: String| ScopingError::Io {
            path: out.to_path_buf(),
            message: e,
        };
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(json).map_err(|e| io(e.to_string()))?;
        sae_core::atomic::write(out, text)?;
        if let Some((m, c, _)) = &self.tuning {
            let title = if what.is_empty() {
                format!("patch scoping: layer {} — scale tuning", self.config.layer)
            } else {
                format!(
                    "patch scoping: {what}, layer {} — scale tuning",
                    self.config.layer
                )
            };
            crate::plot::write_html(m, *c, &title, &out.with_extension("html"))?;
            crate::plot::write_png(m, *c, &title, &out.with_extension("png"))?;
        }
        Ok(())
    }

    /// [`Study::save_as`] with [`Study::to_json`] of no latent.
    pub fn save(&self, out: &Path, what: &str) -> Result<()> {
        self.save_as(out, what, &self.to_json(None, None))
    }
}
