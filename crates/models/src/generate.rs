//! KV-cached generation: greedy or sampled, batched, with hooks that see the prompt on the
//! prefill pass and one position per later step (as in TransformerLens).

use sae_core::device::tensor_to_vec;

use crate::error::{ModelError, Result};
use crate::hooks::{Hooks, Pass};
use crate::kv::KvCache;
use crate::model::LanguageModel;
use crate::sampling::{Sampler, Sampling};

/// Generation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// New tokens per prompt at most.
    pub max_new_tokens: usize,
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// Stop a sequence at this token (included in the output); `None` never stops early.
    pub eos_token: Option<u32>,
}

impl GenerateConfig {
    /// Greedy decoding of `max_new_tokens`, stopping at `eos_token`.
    pub fn greedy(max_new_tokens: usize, eos_token: Option<u32>) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            eos_token,
        }
    }
}

/// Generates continuations of equal-length prompts as one batch; returns the new tokens of each
/// (a sequence that met EOS stops growing, the others continue). Hooks fire on every pass.
///
/// # Shapes
/// - `prompts`: `batch` sequences of the same length.
pub fn generate<M: LanguageModel + ?Sized>(
    model: &M,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    hooks: &mut Hooks<'_>,
) -> Result<Vec<Vec<u32>>> {
    let b = prompts.len();
    let t = prompts.first().map_or(0, Vec::len);
    if b == 0 || t == 0 {
        return Err(ModelError::InvalidInput(
            "generate needs at least one non-empty prompt".into(),
        ));
    }
    if let Some(p) = prompts.iter().find(|p| p.len() != t) {
        return Err(ModelError::InvalidInput(format!(
            "prompts in one batch must have equal lengths (found {t} and {}); use generate_many",
            p.len()
        )));
    }
    let dev = model.device();
    let vocab = model.vocab_size();
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    let mut new: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let mut kv = KvCache::new();
    let mut sampler = Sampler::new(config.sampling.clone());
    let mut input: Vec<i64> = prompts.iter().flatten().map(|&x| i64::from(x)).collect();
    let mut width = t;
    for step in 0..config.max_new_tokens {
        let tokens = sae_core::device::int_tensor_from_vec(input, [b, width], &dev);
        let pass = if step == 0 {
            Pass::Prefill
        } else {
            Pass::Decode { step }
        };
        let last = model.run_last(tokens, hooks, Some(&mut kv), pass)?;
        let rows = tensor_to_vec(last)?;
        let mut next = Vec::with_capacity(b);
        for (i, row) in rows.chunks(vocab).enumerate() {
            let tok = if done[i] {
                config.eos_token.unwrap_or(0)
            } else {
                let mut row = row.to_vec();
                sampler.next_token(&mut row, &seqs[i])
            };
            if !done[i] {
                new[i].push(tok);
                seqs[i].push(tok);
                done[i] = config.eos_token == Some(tok);
            }
            next.push(i64::from(tok));
        }
        if done.iter().all(|d| *d) {
            break;
        }
        input = next;
        width = 1;
    }
    Ok(new)
}

/// Generates for prompts of any lengths: prompts are grouped by length, each group runs as one
/// batch, and results come back in the input order.
pub fn generate_many<M: LanguageModel + ?Sized>(
    model: &M,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
) -> Result<Vec<Vec<u32>>> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].len());
    let mut out = vec![Vec::new(); prompts.len()];
    let mut start = 0;
    while start < order.len() {
        let len = prompts[order[start]].len();
        let end = order[start..]
            .iter()
            .position(|&i| prompts[i].len() != len)
            .map_or(order.len(), |p| start + p);
        let group: Vec<Vec<u32>> = order[start..end]
            .iter()
            .map(|&i| prompts[i].clone())
            .collect();
        let res = generate(model, &group, config, &mut Hooks::new())?;
        for (k, &i) in order[start..end].iter().enumerate() {
            out[i] = res[k].clone();
        }
        start = end;
    }
    Ok(out)
}
