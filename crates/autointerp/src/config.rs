//! [`AutoInterpConfig`]: the tutorial's configuration, field for field, with its defaults.

use serde::{Deserialize, Serialize};

/// Controls data gathering, generation and scoring — the tutorial's `AutoInterpConfig`.
///
/// The latents themselves are passed to the run, not stored here, so one configuration serves
/// several runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoInterpConfig {
    /// Tokens each side of a window's centre token (windows are `2·buffer + 1` tokens).
    pub buffer: usize,
    /// No two top windows of a latent may overlap within one sequence.
    pub no_overlap: bool,
    /// A token counts as active above `act_threshold_frac × max activation` of the latent.
    pub act_threshold_frac: f32,
    /// Tokens of corpus gathered over.
    pub total_tokens: u64,
    /// Run the detection-scoring phase after generation.
    pub scoring: bool,
    /// `max_tokens` of an explanation request.
    pub max_tokens_in_explanation: u32,
    /// Append the tutorial's three example explanations to the generation system prompt.
    pub use_examples_in_explanation_prompt: bool,
    /// Top windows shown to the explainer.
    pub n_top_ex_for_generation: usize,
    /// Top windows (disjoint from the generation ones) in the scoring set.
    pub n_top_ex_for_scoring: usize,
    /// Random windows in the scoring set.
    pub n_random_ex_for_scoring: usize,
}

impl Default for AutoInterpConfig {
    fn default() -> Self {
        Self {
            buffer: 10,
            no_overlap: false,
            act_threshold_frac: 0.1,
            total_tokens: 500_000,
            scoring: false,
            max_tokens_in_explanation: 25,
            use_examples_in_explanation_prompt: true,
            n_top_ex_for_generation: 10,
            n_top_ex_for_scoring: 4,
            n_random_ex_for_scoring: 8,
        }
    }
}

impl AutoInterpConfig {
    /// Top windows gathered per latent: generation and scoring ones together.
    pub fn n_top_ex(&self) -> usize {
        self.n_top_ex_for_generation + self.n_top_ex_for_scoring
    }

    /// Examples in one scoring prompt.
    pub fn n_ex_for_scoring(&self) -> usize {
        self.n_top_ex_for_scoring + self.n_random_ex_for_scoring
    }

    /// `max_tokens` of a scoring request: comma-separated numbers are single tokens.
    pub fn max_tokens_in_prediction(&self) -> u32 {
        (2 * self.n_ex_for_scoring() + 5) as u32
    }

    /// What to gather with activation-store for this configuration: the top `n_top_ex()`
    /// windows per latent with this buffer, and a pool of random windows large enough to draw
    /// `n_random_ex_for_scoring` per latent after excluding those near its top windows.
    pub fn stats_config(&self, seed: u64) -> activation_store::StatsConfig {
        activation_store::StatsConfig {
            // Twice the top windows used: spares replace held-out windows that overlap a
            // generation window.
            k: 2 * self.n_top_ex(),
            buffer: self.buffer,
            no_overlap: self.no_overlap,
            n_samples: 0,
            n_quantiles: 1,
            n_random: (8 * self.n_random_ex_for_scoring).max(64),
            seed,
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> crate::Result<()> {
        if self.n_top_ex_for_generation == 0 {
            return Err(crate::AutoInterpError::invalid(
                "n_top_ex_for_generation",
                "at least 1",
                0,
            ));
        }
        if !(0.0..=1.0).contains(&self.act_threshold_frac) {
            return Err(crate::AutoInterpError::invalid(
                "act_threshold_frac",
                "in [0, 1]",
                self.act_threshold_frac,
            ));
        }
        if self.scoring && self.n_ex_for_scoring() == 0 {
            return Err(crate::AutoInterpError::invalid(
                "scoring examples",
                "at least 1 with scoring on",
                0,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_derived_values_are_the_tutorials() {
        let c = AutoInterpConfig::default();
        assert_eq!(c.n_top_ex(), 14);
        assert_eq!(c.n_ex_for_scoring(), 12);
        assert_eq!(c.max_tokens_in_prediction(), 29);
        assert_eq!(c.total_tokens, 500_000);
        assert!(!c.scoring && !c.no_overlap && c.use_examples_in_explanation_prompt);
    }
}
