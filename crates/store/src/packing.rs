//! Packing token streams into fixed-length context windows, exactly as SAELens's
//! `concat_and_batch_sequences` (sae_lens/tokenization_and_batching.py).
//!
//! Documents are concatenated; a window may start with a begin-batch token (BOS when
//! `prepend_bos`), documents inside a window are joined by a separator token (BOS by default in
//! SAELens ≥ 6), and a document may be prefixed by a begin-sequence token. A token equal to the
//! one that would be inserted is not duplicated. With `disable_concat`, each document gives at
//! most one window and shorter ones are dropped.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// How documents become windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackingConfig {
    /// Tokens per window.
    pub context_size: usize,
    /// Token at position 0 of every window (SAELens: BOS when `prepend_bos`).
    pub begin_batch_token: Option<u32>,
    /// Token before every document.
    pub begin_sequence_token: Option<u32>,
    /// Token between documents concatenated into one window (SAELens default: BOS).
    pub separator_token: Option<u32>,
    /// One window per document, shorter documents dropped.
    pub disable_concat: bool,
}

impl PackingConfig {
    /// SAELens's defaults for a tokenizer with this BOS: BOS-prefixed windows when
    /// `prepend_bos`, BOS separators, no begin-sequence token, concatenation on.
    pub fn saelens(context_size: usize, bos: u32, prepend_bos: bool) -> Self {
        Self {
            context_size,
            begin_batch_token: prepend_bos.then_some(bos),
            begin_sequence_token: None,
            separator_token: Some(bos),
            disable_concat: false,
        }
    }

    fn check(&self) -> Result<()> {
        if self.context_size == 0 {
            return Err(StoreError::invalid("context_size", "a positive number", 0));
        }
        Ok(())
    }
}

/// Turns documents into windows, holding the partly filled window between documents.
#[derive(Debug, Clone)]
pub struct Packer {
    cfg: PackingConfig,
    batch: Option<Vec<u32>>,
}

impl Packer {
    /// A packer; fails on a zero context size.
    pub fn new(cfg: PackingConfig) -> Result<Self> {
        cfg.check()?;
        Ok(Self { cfg, batch: None })
    }

    /// The configuration.
    pub fn config(&self) -> &PackingConfig {
        &self.cfg
    }

    /// Feeds one tokenised document; appends every completed window to `out`.
    pub fn push(&mut self, tokens: &[u32], out: &mut Vec<Vec<u32>>) {
        if self.cfg.disable_concat {
            self.push_unconcatenated(tokens, out);
            return;
        }
        let ctx = self.cfg.context_size;
        let mut offset = 0;
        let mut is_start = true;
        while tokens.len() > offset {
            let (batch, new_offset, start) = self.add_tokens(tokens, offset, is_start);
            offset = new_offset;
            is_start = start;
            if batch.len() == ctx {
                out.push(batch);
            } else {
                self.batch = Some(batch);
            }
        }
    }

    fn push_unconcatenated(&mut self, tokens: &[u32], out: &mut Vec<Vec<u32>>) {
        let ctx = self.cfg.context_size;
        if tokens.is_empty() {
            return;
        }
        let begin = self.cfg.begin_sequence_token.or(self.cfg.begin_batch_token);
        let seq: Vec<u32> = match begin {
            Some(b) if tokens.len() + 1 >= ctx && tokens[0] != b => std::iter::once(b)
                .chain(tokens[..tokens.len().min(ctx - 1)].iter().copied())
                .collect(),
            _ => tokens.to_vec(),
        };
        if seq.len() >= ctx {
            out.push(seq[..ctx].to_vec());
        }
    }

    /// SAELens's `_add_tokens_to_batch`.
    fn add_tokens(
        &mut self,
        tokens: &[u32],
        offset: usize,
        is_start: bool,
    ) -> (Vec<u32>, usize, bool) {
        let ctx = self.cfg.context_size;
        let mut prefix: Vec<u32> = Vec::new();
        let mut start_pending = false;
        let mut first = tokens[offset];
        if let (true, Some(b)) = (is_start, self.cfg.begin_sequence_token)
            && first != b
        {
            prefix.insert(0, b);
            start_pending = true;
            first = b;
        }
        let take =
            |from: usize, n: usize| &tokens[from.min(tokens.len())..(from + n).min(tokens.len())];
        match self.batch.take() {
            None => {
                if let Some(b) = self.cfg.begin_batch_token
                    && first != b
                {
                    prefix.insert(0, b);
                }
                let needed = ctx.saturating_sub(prefix.len());
                let mut batch: Vec<u32> = prefix[..prefix.len().min(ctx)].to_vec();
                batch.extend_from_slice(take(offset, needed));
                (batch, offset + needed, start_pending && prefix.len() > ctx)
            }
            Some(mut batch) => {
                if let Some(s) = self.cfg.separator_token
                    && first != s
                {
                    prefix.insert(0, s);
                }
                let needed = ctx.saturating_sub(batch.len() + prefix.len());
                let prefix_needed = ctx.saturating_sub(batch.len());
                batch.extend_from_slice(&prefix[..prefix.len().min(prefix_needed)]);
                batch.extend_from_slice(take(offset, needed));
                (
                    batch,
                    offset + needed,
                    start_pending && prefix.len() > prefix_needed,
                )
            }
        }
    }
}

/// A pre-tokenised row as a window (SAELens: `row[:context_size]`); shorter rows are an error.
pub fn pretokenized_window(row: &[u32], context_size: usize, index: usize) -> Result<Vec<u32>> {
    if row.len() < context_size {
        return Err(StoreError::Shape {
            what: format!("pre-tokenised row {index}"),
            expected: vec![context_size],
            found: vec![row.len()],
        });
    }
    Ok(row[..context_size].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(cfg: PackingConfig, docs: &[&[u32]]) -> Vec<Vec<u32>> {
        let mut p = Packer::new(cfg).unwrap();
        let mut out = Vec::new();
        for d in docs {
            p.push(d, &mut out);
        }
        out
    }

    #[test]
    fn bos_and_separators() {
        let cfg = PackingConfig::saelens(4, 0, true);
        let out = pack(cfg, &[&[1, 2], &[3, 4, 5, 6, 7], &[0, 9]]);
        // [BOS 1 2 SEP] [BOS 3 4 5] [BOS 6 7 (doc starting with BOS: no separator) 0] ...
        assert_eq!(
            out,
            vec![vec![0, 1, 2, 0], vec![0, 3, 4, 5], vec![0, 6, 7, 0]]
        );
    }

    #[test]
    fn zero_context_is_an_error() {
        assert!(Packer::new(PackingConfig::saelens(0, 0, true)).is_err());
    }
}
