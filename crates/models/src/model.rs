//! What every language model here offers: a hooked forward pass with an optional KV cache.

use sae_core::burn::tensor::{Device, Int, Tensor};

use crate::error::Result;
use crate::hooks::{Hooks, Pass};
use crate::kv::KvCache;

/// A causal language model with TransformerLens-style hook points.
pub trait LanguageModel {
    /// The hooked forward pass. Blocks from `stop_at_layer` on are not computed; with any
    /// `stop_at_layer` no logits are returned (as TransformerLens).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, pos]` → logits `[batch, pos, vocab]`.
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>>;

    /// The hooked forward pass to the end, returning only each sequence's last-position logits:
    /// what generation reads. Every hook sees what [`Self::run`] shows it; only the unembedding
    /// runs on one row per sequence instead of `pos` (for gemma-3's 262 144-wide W_U, a
    /// 20-token prompt's prefill computes 1/20 of the logits).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, pos]` → logits `[batch, vocab]`.
    fn run_last(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Tensor<2>> {
        crate::hooks::last_logits(self.run(tokens, hooks, None, kv, pass)?)
    }

    /// Vocabulary size (the logits' width).
    fn vocab_size(&self) -> usize;

    /// Number of blocks.
    fn n_layers(&self) -> usize;

    /// d_model.
    fn d_model(&self) -> usize;

    /// The device the weights live on.
    fn device(&self) -> Device;

    /// The unembedding `[d_model, vocab]` the logits are computed with (for GPT-2 in
    /// TransformerLens's processed space, the centred W_U).
    fn unembed(&self) -> Tensor<2>;

    /// Logits for a batch of token sequences.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, pos]` → `[batch, pos, vocab]`.
    fn forward(&self, tokens: Tensor<2, Int>) -> Result<Tensor<3>> {
        self.run(tokens, &mut Hooks::new(), None, None, Pass::Prefill)?
            .ok_or_else(|| {
                crate::error::ModelError::InvalidInput("the forward pass stopped early".into())
            })
    }

    /// TransformerLens's `run_with_cache`: logits (when the run reaches the end) and the
    /// activations passing `filter`. `stop_at_layer` is exclusive: nothing from that block on is
    /// computed.
    fn run_with_cache(
        &self,
        tokens: Tensor<2, Int>,
        filter: crate::hooks::CacheFilter,
        stop_at_layer: Option<usize>,
    ) -> Result<(Option<Tensor<3>>, crate::hooks::ActivationCache)> {
        let mut hooks = Hooks::new().cache(filter);
        let logits = self.run(tokens, &mut hooks, stop_at_layer, None, Pass::Prefill)?;
        Ok((logits, hooks.into_cache()))
    }

    /// TransformerLens's `run_with_hooks`: hooks may read and replace activations.
    fn run_with_hooks(
        &self,
        tokens: Tensor<2, Int>,
        mut hooks: Hooks<'_>,
        stop_at_layer: Option<usize>,
    ) -> Result<(Option<Tensor<3>>, crate::hooks::ActivationCache)> {
        let logits = self.run(tokens, &mut hooks, stop_at_layer, None, Pass::Prefill)?;
        Ok((logits, hooks.into_cache()))
    }

    /// SAELens's `run_with_saes`: logits with `saes` spliced in ([`crate::splice`]).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, pos]` → logits `[batch, pos, vocab]` (none with `stop_at_layer`).
    fn run_with_saes(
        &self,
        tokens: Tensor<2, Int>,
        saes: &[crate::splice::Splice<'_>],
        stop_at_layer: Option<usize>,
    ) -> Result<Option<Tensor<3>>> {
        let mut hooks = Hooks::new();
        for s in saes {
            hooks = hooks.splice(s.clone());
        }
        self.run_with_spliced_hooks(tokens, hooks, stop_at_layer)
            .map(|(logits, _)| logits)
    }

    /// SAELens's `run_with_cache_with_saes`: logits and the activations passing `filter` —
    /// which may name the SAEs' own points (`blocks.6.hook_resid_post.hook_sae_acts_post`) —
    /// with `saes` spliced in.
    fn run_with_cache_with_saes(
        &self,
        tokens: Tensor<2, Int>,
        saes: &[crate::splice::Splice<'_>],
        filter: crate::hooks::CacheFilter,
        stop_at_layer: Option<usize>,
    ) -> Result<(Option<Tensor<3>>, crate::hooks::ActivationCache)> {
        let mut hooks = Hooks::new().cache(filter);
        for s in saes {
            hooks = hooks.splice(s.clone());
        }
        self.run_with_spliced_hooks(tokens, hooks, stop_at_layer)
    }

    /// [`LanguageModel::run_with_hooks`] for hooks with spliced SAEs: checks every SAE's site
    /// exists in this model (a site past the last block would otherwise be silently skipped) and
    /// turns each SAE's excluded tokens into its bypass mask.
    fn run_with_spliced_hooks(
        &self,
        tokens: Tensor<2, Int>,
        mut hooks: Hooks<'_>,
        stop_at_layer: Option<usize>,
    ) -> Result<(Option<Tensor<3>>, crate::hooks::ActivationCache)> {
        for s in hooks.splices_mut() {
            s.resolve_bypass(&tokens);
        }
        for s in hooks.splices() {
            if let Some(l) = s.site().layer()
                && l >= self.n_layers()
            {
                return Err(crate::error::ModelError::InvalidInput(format!(
                    "an SAE is spliced at {} but the model has {} blocks",
                    s.site(),
                    self.n_layers()
                )));
            }
        }
        self.run_with_hooks(tokens, hooks, stop_at_layer)
    }
}
