//! The ground truth for scorers that write or pick new text: what a latent really does on a
//! sequence, read by running the model and the SAE on it.
//!
//! Generation scoring (an explanation's sequences) and neighbour scoring (other latents'
//! windows) both need a latent's activations on text that was not in the gathered
//! statistics. Every such sequence is read the same way — on its own, after BOS — so the
//! truth of all examples in one scoring set comes from one procedure.

use gpt2_gemma_models::{AnyTokenizer, BosPolicy, HookPoint, LanguageModel};
use sae_core::Sae;

/// Reads latents' activations on new sequences.
pub trait ActivationOracle {
    /// Token ids of `text` (no BOS).
    fn tokenize(&self, text: &str) -> crate::Result<Vec<u32>>;

    /// Each token's text.
    fn str_tokens(&self, ids: &[u32]) -> crate::Result<Vec<String>>;

    /// `latent`'s activation on each token of each sequence (ids without BOS; each sequence
    /// is read on its own, after BOS when the model uses one). One vector per sequence, one
    /// value per token.
    fn activations(&self, latent: usize, sequences: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>>;
}

/// The oracle of a language model and an SAE at its hook.
pub struct ModelOracle<'a, M: ?Sized> {
    /// The model.
    pub model: &'a M,
    /// Its tokenizer.
    pub tokenizer: &'a AnyTokenizer,
    /// The SAE (or baseline "SAE") whose latents are read.
    pub sae: &'a Sae,
    /// Where the SAE reads the model.
    pub hook: HookPoint,
    /// Prepend BOS to each sequence (its activation is not returned).
    pub prepend_bos: bool,
}

impl<M: LanguageModel + ?Sized> ActivationOracle for ModelOracle<'_, M> {
    fn tokenize(&self, text: &str) -> crate::Result<Vec<u32>> {
        Ok(self.tokenizer.encode_with(text, BosPolicy::Keep)?)
    }

    fn str_tokens(&self, ids: &[u32]) -> crate::Result<Vec<String>> {
        Ok(self.tokenizer.str_tokens(ids)?)
    }

    fn activations(&self, latent: usize, sequences: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>> {
        let bos = self.tokenizer.bos_id();
        let windows: Vec<Vec<u32>> = sequences
            .iter()
            .map(|s| {
                let mut w = Vec::with_capacity(s.len() + 1);
                if self.prepend_bos {
                    w.push(bos);
                }
                w.extend_from_slice(s);
                w
            })
            .collect();
        let acts = activation_store::latent_activations(
            self.model,
            self.sae,
            self.hook,
            &windows,
            &[latent],
        )?;
        let skip = usize::from(self.prepend_bos);
        Ok(acts
            .into_iter()
            .map(|a| a.into_iter().skip(skip).collect())
            .collect())
    }
}
