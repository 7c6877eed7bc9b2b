//! The ground truth for scorers that write or pick new text: what a latent really does on a
//! sequence, read by running the model and the SAE on it.
//!
//! Generation scoring (an explanation's sequences) and neighbour scoring (other latents'
//! windows) both need a latent's activations on text that was not in the gathered
//! statistics. New text is read on its own, after BOS. A corpus window is read in its corpus
//! context when the oracle knows it (the whole packed sequence it came from, replayed from the
//! corpus) — as the gathered activations were — because a TopK latent that fires weakly in
//! context is often out of the top k when 21 tokens are read alone.

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

    /// `latent`'s activation on each token of each corpus window, read in the window's corpus
    /// context when the oracle knows it; by default each window is read alone
    /// ([`activations`](Self::activations) on its tokens).
    fn window_activations(
        &self,
        latent: usize,
        windows: &[&activation_store::Window],
    ) -> crate::Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = windows.iter().map(|w| w.tokens.clone()).collect();
        self.activations(latent, &ids)
    }
}

/// Whole corpus sequences by their global index (`Window::seq`), as the statistics pass saw
/// them.
pub type Contexts = std::collections::HashMap<u64, Vec<u32>>;

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
    /// The corpus sequences windows come from, to read windows in context: windows are read
    /// alone when `None`; a window whose sequence is missing or differs is an error.
    pub contexts: Option<&'a Contexts>,
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

    fn window_activations(
        &self,
        latent: usize,
        windows: &[&activation_store::Window],
    ) -> crate::Result<Vec<Vec<f32>>> {
        let Some(contexts) = self.contexts else {
            let ids: Vec<Vec<u32>> = windows.iter().map(|w| w.tokens.clone()).collect();
            return self.activations(latent, &ids);
        };
        // Each distinct sequence once, as the statistics pass ran it (BOS already in it).
        let mut seqs: Vec<u64> = windows.iter().map(|w| w.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut full = Vec::with_capacity(seqs.len());
        for s in &seqs {
            full.push(contexts.get(s).cloned().ok_or_else(|| {
                crate::AutoInterpError::invalid(
                    "window context",
                    format!("corpus sequence {s} replayed"),
                    "missing",
                )
            })?);
        }
        let acts = activation_store::latent_activations(
            self.model,
            self.sae,
            self.hook,
            &full,
            &[latent],
        )?;
        windows
            .iter()
            .map(|w| {
                let i = seqs.binary_search(&w.seq).unwrap_or_default();
                let half = w.tokens.len() / 2;
                let (p, seq) = (w.pos as usize, &full[i]);
                let range = p.checked_sub(half).map(|a| a..p + half + 1);
                match range {
                    Some(r) if r.end <= seq.len() && seq[r.clone()] == w.tokens[..] => {
                        Ok(acts[i][r].to_vec())
                    }
                    _ => Err(crate::AutoInterpError::invalid(
                        "window context",
                        format!(
                            "the window's tokens at position {p} of corpus sequence {}",
                            w.seq
                        ),
                        "other tokens (the corpus replay differs from the statistics pass)",
                    )),
                }
            })
            .collect()
    }
}
