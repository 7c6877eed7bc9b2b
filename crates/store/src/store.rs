//! `ActivationStore`: batches of model activations at one hook, with SAELens's semantics.

use serde::{Deserialize, Serialize};

use gpt2_gemma_models::HookPoint;
use gpt2_gemma_models::hooks::{Activation, CacheFilter};
use gpt2_gemma_models::model::LanguageModel;
use gpt2_gemma_models::source::AnyTokenizer;
use sae_core::SaeConfig;
use sae_core::burn::tensor::Tensor;
use sae_core::device::{int_tensor_from_vec, tensor_to_vec};

use crate::corpus::TextSource;
use crate::error::{Result, StoreError};
use crate::mixing::MixingBuffer;
use crate::packing::PackingConfig;
use crate::windows::{SeparatorToken, TokenWindows};

/// What an [`ActivationStore`] reads and how it batches (SAELens's names and defaults for
/// `ActivationsStore.from_sae`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// The hook whose activations are collected.
    pub hook: HookPoint,
    /// Tokens per window.
    pub context_size: usize,
    /// Start every window with BOS.
    pub prepend_bos: bool,
    /// Token between packed documents.
    pub separator: SeparatorToken,
    /// One window per document (shorter ones dropped).
    pub disable_concat: bool,
    /// Windows per model forward pass.
    pub store_batch_size_prompts: usize,
    /// Model batches the shuffle buffer holds (its size is this × prompts × context tokens).
    pub n_batches_in_buffer: usize,
    /// Rows per training batch.
    pub train_batch_size_tokens: usize,
    /// Share of the buffer kept back to mix with later activations.
    pub mixing_fraction: f64,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl StoreConfig {
    /// SAELens's `from_sae` defaults at a hook.
    pub fn new(hook: HookPoint, context_size: usize) -> Self {
        Self {
            hook,
            context_size,
            prepend_bos: true,
            separator: SeparatorToken::Bos,
            disable_concat: false,
            store_batch_size_prompts: 8,
            n_batches_in_buffer: 8,
            train_batch_size_tokens: 4096,
            mixing_fraction: 0.5,
            seed: 42,
        }
    }

    /// Hook, context size and BOS from an SAE's config (`metadata.hook_name`,
    /// `metadata.context_size`, `metadata.prepend_bos`), as SAELens's `from_sae`; a missing
    /// field is an error.
    pub fn from_sae(cfg: &SaeConfig, context_size: Option<usize>) -> Result<Self> {
        let hook_name =
            cfg.metadata.hook_name.as_deref().ok_or_else(|| {
                StoreError::invalid("SAE metadata.hook_name", "a hook name", "none")
            })?;
        let hook: HookPoint = hook_name.parse().map_err(|_| {
            StoreError::invalid(
                "SAE metadata.hook_name",
                "a TransformerLens hook name",
                hook_name,
            )
        })?;
        let context_size = context_size.or(cfg.metadata.context_size).ok_or_else(|| {
            StoreError::invalid("SAE metadata.context_size", "a context size", "none")
        })?;
        let prepend_bos = cfg.metadata.prepend_bos.ok_or_else(|| {
            StoreError::invalid("SAE metadata.prepend_bos", "true or false", "none")
        })?;
        Ok(Self {
            prepend_bos,
            ..Self::new(hook, context_size)
        })
    }

    /// The packing for a tokenizer.
    pub fn packing(&self, tok: &AnyTokenizer) -> PackingConfig {
        PackingConfig {
            context_size: self.context_size,
            begin_batch_token: self.prepend_bos.then(|| tok.bos_id()),
            begin_sequence_token: None,
            separator_token: self.separator.resolve(tok),
            disable_concat: self.disable_concat,
        }
    }

    /// TransformerLens's `stop_at_layer` for the hook: the block after it (nothing later runs).
    pub fn stop_at_layer(&self) -> Option<usize> {
        self.hook.layer().map(|l| l + 1)
    }
}

/// Activations at `hook` for a batch of equal-length windows, flattened row-major to
/// `[windows × context, d]`, with `d`. Blocks after the hook are not run. The host copy of
/// [`compute_activation_tensor`].
pub fn compute_activations<M: LanguageModel + ?Sized>(
    model: &M,
    hook: HookPoint,
    windows: &[Vec<u32>],
) -> Result<(Vec<f32>, usize)> {
    match compute_activation_tensor(model, hook, windows)? {
        None => Ok((Vec::new(), 0)),
        Some(t) => {
            let d = t.dims()[1];
            Ok((tensor_to_vec(t)?, d))
        }
    }
}

/// Activations at `hook` for a batch of equal-length windows, left on the model's device
/// (`None` for no windows or empty ones). Blocks after the hook are not run.
///
/// # Shapes
/// - returns `[windows × context, d]` (attention hooks' `[.., heads, d_head]` flattened to
///   `heads × d_head`).
pub fn compute_activation_tensor<M: LanguageModel + ?Sized>(
    model: &M,
    hook: HookPoint,
    windows: &[Vec<u32>],
) -> Result<Option<Tensor<2>>> {
    let n = windows.len();
    let ctx = windows.first().map_or(0, Vec::len);
    if let Some((i, w)) = windows.iter().enumerate().find(|(_, w)| w.len() != ctx) {
        return Err(StoreError::Shape {
            what: format!("window {i}"),
            expected: vec![ctx],
            found: vec![w.len()],
        });
    }
    if n == 0 || ctx == 0 {
        return Ok(None);
    }
    let ids: Vec<i64> = windows.iter().flatten().map(|&t| i64::from(t)).collect();
    let tokens = int_tensor_from_vec(ids, [n, ctx], &model.device());
    let (_, cache) = model.run_with_cache(
        tokens,
        CacheFilter::Only(vec![hook]),
        hook.layer().map(|l| l + 1),
    )?;
    let act = cache.get(hook).ok_or_else(|| StoreError::Shape {
        what: format!("activation at {hook}"),
        expected: vec![n, ctx],
        found: vec![],
    })?;
    let t = match act {
        Activation::Rank3(t) => t.clone(),
        Activation::Rank4(t) => {
            let [b, p, h, d] = t.dims();
            t.clone().reshape([b, p, h * d])
        }
        other => {
            return Err(StoreError::Shape {
                what: format!("activation at {hook}"),
                expected: vec![n, ctx, 0],
                found: other.dims(),
            });
        }
    };
    let d = t.dims()[2];
    Ok(Some(t.reshape([n * ctx, d])))
}

/// Streams activations at one hook from a corpus through a model, batched and shuffled like
/// SAELens's `ActivationsStore`.
pub struct ActivationStore<'a, M: LanguageModel + ?Sized> {
    model: &'a M,
    cfg: StoreConfig,
    windows: TokenWindows<'a>,
    buffer: MixingBuffer,
    d_in: usize,
}

impl<'a, M: LanguageModel + ?Sized> ActivationStore<'a, M> {
    /// A store over `source` tokenised by `tokenizer`.
    pub fn new(
        model: &'a M,
        tokenizer: &'a AnyTokenizer,
        source: TextSource,
        cfg: StoreConfig,
    ) -> Result<Self> {
        let windows = TokenWindows::new(source, tokenizer, cfg.packing(tokenizer))?;
        let d_in = hook_width(model, cfg.hook);
        let buffer_rows = cfg.n_batches_in_buffer * cfg.store_batch_size_prompts * cfg.context_size;
        let buffer = MixingBuffer::new(
            d_in,
            buffer_rows,
            cfg.train_batch_size_tokens,
            cfg.mixing_fraction,
            cfg.seed,
        )?;
        Ok(Self {
            model,
            cfg,
            windows,
            buffer,
            d_in,
        })
    }

    /// SAELens's `from_sae`: hook, context size and BOS from the SAE's config.
    pub fn from_sae(
        model: &'a M,
        tokenizer: &'a AnyTokenizer,
        sae: &SaeConfig,
        source: TextSource,
        context_size: Option<usize>,
    ) -> Result<Self> {
        Self::new(
            model,
            tokenizer,
            source,
            StoreConfig::from_sae(sae, context_size)?,
        )
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Width of the activations.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// The window stream (for its counters).
    pub fn windows(&self) -> &TokenWindows<'a> {
        &self.windows
    }

    /// `store_batch_size_prompts` windows (SAELens's `get_batch_tokens`), restarting the corpus
    /// at its end.
    pub fn get_batch_tokens(&mut self) -> Result<Vec<Vec<u32>>> {
        (0..self.cfg.store_batch_size_prompts)
            .map(|_| self.windows.next_window_cycling())
            .collect()
    }

    /// Activations for windows, `[windows × context, d_in]` (SAELens's `get_activations`).
    pub fn get_activations(&self, windows: &[Vec<u32>]) -> Result<Vec<f32>> {
        Ok(compute_activations(self.model, self.cfg.hook, windows)?.0)
    }

    /// [`Self::get_activations`] left on the model's device: `[windows × context, d_in]`
    /// (`None` for no windows).
    pub fn get_activation_tensor(&self, windows: &[Vec<u32>]) -> Result<Option<Tensor<2>>> {
        compute_activation_tensor(self.model, self.cfg.hook, windows)
    }

    /// The next shuffled training batch, `[train_batch_size_tokens, d_in]` row-major.
    pub fn next_batch(&mut self) -> Result<Vec<f32>> {
        loop {
            if let Some(b) = self.buffer.pop() {
                return Ok(b);
            }
            let windows = self.get_batch_tokens()?;
            let acts = self.get_activations(&windows)?;
            self.buffer.push(&acts);
        }
    }
}

/// The width of a hook's activation, from the model's shape (run on one token when unknown).
fn hook_width<M: LanguageModel + ?Sized>(model: &M, hook: HookPoint) -> usize {
    match hook {
        HookPoint::ResidPre(_)
        | HookPoint::ResidMid(_)
        | HookPoint::ResidPost(_)
        | HookPoint::AttnOut(_)
        | HookPoint::MlpOut(_)
        | HookPoint::Embed
        | HookPoint::PosEmbed
        | HookPoint::LnFinalNormalized => model.d_model(),
        _ => compute_activations(model, hook, &[vec![0]])
            .map(|(_, d)| d)
            .unwrap_or(0),
    }
}
