//! The first-letter probing dataset of feature absorption (Chanin et al., "A is for
//! Absorption"; SAEBench): single-token words of the model's vocabulary, each read at the end of
//! an in-context prompt `"{word} has the first letter: {L}\n" × icl_examples` + `" {word}"`, and
//! the residual stream at that last position.
//!
//! The residuals stay on the model's device through the forward pass; only each prompt's last
//! position comes to the host.

use gpt2_gemma_models::{AnyTokenizer, BosPolicy, CacheFilter, HookPoint, LanguageModel};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// How the dataset is drawn, with SAEBench's defaults ([`FirstLetterConfig::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstLetterConfig {
    /// Words evaluated (3000).
    pub words: usize,
    /// In-context examples before each word (5).
    pub icl_examples: usize,
    /// Prompts per forward pass (32).
    pub batch_size: usize,
    /// Seed of the word sample (0).
    pub seed: u64,
}

impl Default for FirstLetterConfig {
    fn default() -> Self {
        Self {
            words: 3000,
            icl_examples: 5,
            batch_size: 32,
            seed: 0,
        }
    }
}

/// The words and the prompt prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstLetterPrompts {
    /// The in-context examples, each `"{word} has the first letter: {L}\n"`.
    pub prefix: String,
    /// The words evaluated: token id and text (a leading space, then ASCII letters).
    pub words: Vec<(u32, String)>,
}

impl FirstLetterPrompts {
    /// Each word's first letter, lowercase.
    pub fn first_letters(&self) -> Vec<char> {
        self.words
            .iter()
            .map(|(_, w)| {
                w.trim_start()
                    .chars()
                    .next()
                    .unwrap_or('a')
                    .to_ascii_lowercase()
            })
            .collect()
    }
}

/// A word token: a leading space then at least two ASCII letters.
pub fn is_word_token(s: &str) -> bool {
    s.strip_prefix(' ')
        .is_some_and(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Draws the words (shuffled by `cfg.seed`) and builds the in-context prefix from the first
/// `cfg.icl_examples` of them.
///
/// # Errors
/// [`StoreError::InvalidOption`] when the vocabulary has too few word tokens.
pub fn first_letter_prompts(
    tok: &AnyTokenizer,
    vocab_size: usize,
    cfg: &FirstLetterConfig,
) -> Result<FirstLetterPrompts> {
    let mut vocab: Vec<(u32, String)> = (0..vocab_size as u32)
        .filter_map(|i| tok.decode(&[i]).ok().map(|s| (i, s)))
        .filter(|(_, s)| is_word_token(s))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    vocab.shuffle(&mut rng);
    if vocab.len() <= cfg.icl_examples + 26 {
        return Err(StoreError::invalid(
            "vocabulary",
            format!("more than {} word tokens", cfg.icl_examples + 26),
            vocab.len(),
        ));
    }
    let (icl, rest) = vocab.split_at(cfg.icl_examples);
    let prefix: String = icl
        .iter()
        .map(|(_, w)| {
            let first = w
                .trim_start()
                .chars()
                .next()
                .unwrap_or('?')
                .to_ascii_uppercase();
            format!("{w} has the first letter: {first}\n")
        })
        .collect();
    Ok(FirstLetterPrompts {
        prefix,
        words: rest.iter().take(cfg.words).cloned().collect(),
    })
}

/// The residual at `hook` at each word's position (the prompt ends there: the model is causal),
/// `[words, d_model]` row-major on the host. The forward pass stops after `hook`'s block.
///
/// # Errors
/// A hook outside the model's blocks, and model failures.
pub fn first_letter_residuals<M: LanguageModel + ?Sized>(
    model: &M,
    tok: &AnyTokenizer,
    hook: HookPoint,
    prompts: &FirstLetterPrompts,
    cfg: &FirstLetterConfig,
    progress: bool,
) -> Result<Vec<f32>> {
    let layer = hook
        .layer()
        .ok_or_else(|| StoreError::invalid("hook", "a hook inside a block", hook))?;
    let prefix_ids = tok.encode_with(&prompts.prefix, BosPolicy::Prepend)?;
    let t = prefix_ids.len() + 1;
    let d = model.d_model();
    let bar = crate::stats::progress_bar(prompts.words.len() as u64, "words", progress);
    let mut x = Vec::with_capacity(prompts.words.len() * d);
    for chunk in prompts.words.chunks(cfg.batch_size.max(1)) {
        let ids: Vec<i64> = chunk
            .iter()
            .flat_map(|(w, _)| {
                prefix_ids
                    .iter()
                    .map(|&i| i64::from(i))
                    .chain([i64::from(*w)])
            })
            .collect();
        let tokens = sae_core::device::int_tensor_from_vec(ids, [chunk.len(), t], &model.device());
        let (_, cache) =
            model.run_with_cache(tokens, CacheFilter::Only(vec![hook]), Some(layer + 1))?;
        let a = cache
            .get3(hook)
            .ok_or_else(|| StoreError::invalid("hook", "a cached activation", hook))?;
        let last = a
            .slice([0..chunk.len(), t - 1..t, 0..d])
            .reshape([chunk.len(), d]);
        x.extend(sae_core::device::tensor_to_vec(last)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(x)
}
