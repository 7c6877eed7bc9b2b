//! Generating explanations: one scale, or a sweep of scales as one batch.

use gpt2_gemma_models::{
    AnyTokenizer, GenerateConfig, Hooks, LanguageModel, SampleConfig, Sampling, generate,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::patch::{Patch, PatchMode, ScaleKind};
use crate::prompt::{PatchPrompt, explanation_of};

/// The tutorial's sampling: temperature 0.5, frequency penalty 2.0.
pub fn tutorial_sampling(seed: u64) -> Sampling {
    Sampling::Sample(SampleConfig {
        temperature: 0.5,
        freq_penalty: 2.0,
        seed,
        ..SampleConfig::default()
    })
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// `blocks.{layer}.hook_resid_pre` is patched (the tutorial: 2).
    pub layer: usize,
    /// Replace or add.
    pub mode: PatchMode,
    /// What the scales mean.
    pub kind: ScaleKind,
    /// New tokens at most.
    pub max_new_tokens: usize,
    /// Greedy or sampled (the tutorial's: [`tutorial_sampling`]).
    pub sampling: Sampling,
    /// Stop at this token (default: the tokenizer's end of sequence).
    pub eos: Option<u32>,
}

/// The generation at one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleGeneration {
    /// The scale.
    pub scale: f32,
    /// The new tokens only.
    pub generated_ids: Vec<u32>,
    /// Their text.
    pub text: String,
    /// The text up to the closing quote (the tutorial's post-processing).
    pub explanation: String,
}

/// Generates at every scale of `scales` as one batch (the scales are the batch dimension):
/// one prefill pass with the patch, then KV-cached decoding untouched by it.
pub fn sweep<M: LanguageModel + ?Sized>(
    model: &M,
    tok: &AnyTokenizer,
    prompt: &PatchPrompt,
    direction: &[f32],
    scales: &[f32],
    cfg: &SweepConfig,
) -> Result<Vec<ScaleGeneration>> {
    let patch = Patch::new(
        cfg.layer,
        prompt.positions.clone(),
        direction,
        scales.to_vec(),
        cfg.mode,
        cfg.kind,
    )?;
    let prompts = vec![prompt.ids.clone(); scales.len()];
    let gen_cfg = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        sampling: cfg.sampling.clone(),
        eos_token: Some(cfg.eos.unwrap_or_else(|| tok.eos_id())),
    };
    let mut hooks = Hooks::new().add(patch.point(), patch.hook());
    let out = generate(model, &prompts, &gen_cfg, &mut hooks)?;
    out.into_iter()
        .zip(scales)
        .map(|(ids, &scale)| {
            let text = tok.decode(&ids)?;
            Ok(ScaleGeneration {
                scale,
                explanation: explanation_of(&text),
                generated_ids: ids,
                text,
            })
        })
        .collect()
}

/// The tutorial's `generate_patch_scoping_explanation`: latent `latent`'s decoder row, scaled
/// to `scale`, replaces the residual entering `layer` at the placeholder on the prefill pass.
#[allow(clippy::too_many_arguments)]
pub fn generate_patch_scoping_explanation<M: LanguageModel + ?Sized>(
    model: &M,
    tok: &AnyTokenizer,
    sae: &sae_core::Sae,
    prompt: &PatchPrompt,
    latent: usize,
    layer: usize,
    scale: f32,
    max_new_tokens: usize,
    sampling: Sampling,
) -> Result<ScaleGeneration> {
    let direction = decoder_row(sae, latent)?;
    let cfg = SweepConfig {
        layer,
        mode: PatchMode::Replace,
        kind: ScaleKind::Absolute,
        max_new_tokens,
        sampling,
        eos: None,
    };
    let mut v = sweep(model, tok, prompt, &direction, &[scale], &cfg)?;
    v.pop()
        .ok_or_else(|| crate::error::ScopingError::invalid("sweep", "one result", 0))
}

/// Row `latent` of the SAE's decoder.
pub fn decoder_row(sae: &sae_core::Sae, latent: usize) -> Result<Vec<f32>> {
    if latent >= sae.d_sae() {
        return Err(crate::error::ScopingError::invalid(
            "latent",
            format!("below d_sae = {}", sae.d_sae()),
            latent,
        ));
    }
    let row = sae.w_dec().narrow(0, latent, 1);
    Ok(sae_core::device::tensor_to_vec(row)?)
}
