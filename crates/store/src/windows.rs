//! The stream of context windows: documents → tokens → packed windows.

use std::collections::VecDeque;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use gpt2_gemma_models::BosPolicy;
use gpt2_gemma_models::source::AnyTokenizer;

use crate::corpus::{Document, TextSource};
use crate::error::Result;
use crate::packing::{Packer, PackingConfig, pretokenized_window};

/// Which token separates documents packed into one window (SAELens's
/// `sequence_separator_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SeparatorToken {
    /// The tokenizer's BOS (SAELens's default).
    #[default]
    Bos,
    /// The tokenizer's EOS.
    Eos,
    /// Nothing: documents run into each other.
    None,
    /// A given token id.
    Id(u32),
}

impl SeparatorToken {
    /// The id, for a tokenizer.
    pub fn resolve(self, tok: &AnyTokenizer) -> Option<u32> {
        match self {
            SeparatorToken::Bos => Some(tok.bos_id()),
            SeparatorToken::Eos => Some(tok.eos_id()),
            SeparatorToken::None => None,
            SeparatorToken::Id(i) => Some(i),
        }
    }
}

impl std::str::FromStr for SeparatorToken {
    type Err = String;
    /// `bos`, `eos`, `none` or a token id.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bos" => Ok(SeparatorToken::Bos),
            "eos" => Ok(SeparatorToken::Eos),
            "none" => Ok(SeparatorToken::None),
            _ => s
                .parse()
                .map(SeparatorToken::Id)
                .map_err(|_| format!("`{s}`: expected bos, eos, none or a token id")),
        }
    }
}

/// Documents tokenised together (in parallel) before packing.
const TOKENIZE_CHUNK: usize = 32;

/// Packed context windows from a text source, in a fixed order (so any run over the same source
/// and tokenizer sees the same windows). Counts documents and windows, and can fast-forward.
pub struct TokenWindows<'t> {
    source: TextSource,
    docs: Box<dyn Iterator<Item = Result<Document>> + Send>,
    tokenizer: &'t AnyTokenizer,
    packer: Packer,
    ready: VecDeque<Vec<u32>>,
    documents_read: u64,
    windows_served: u64,
    exhausted: bool,
    epoch: u64,
}

impl<'t> TokenWindows<'t> {
    /// Windows of `source` tokenised by `tokenizer` and packed per `packing`.
    pub fn new(
        source: TextSource,
        tokenizer: &'t AnyTokenizer,
        packing: PackingConfig,
    ) -> Result<Self> {
        let docs = source.documents()?;
        Ok(Self {
            source,
            docs,
            tokenizer,
            packer: Packer::new(packing)?,
            ready: VecDeque::new(),
            documents_read: 0,
            windows_served: 0,
            exhausted: false,
            epoch: 0,
        })
    }

    /// Documents consumed so far (SAELens's `n_dataset_processed`).
    pub fn documents_read(&self) -> u64 {
        self.documents_read
    }

    /// Windows handed out so far.
    pub fn windows_served(&self) -> u64 {
        self.windows_served
    }

    /// How many times the corpus was restarted.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn fill(&mut self) -> Result<()> {
        while self.ready.is_empty() && !self.exhausted {
            let mut chunk = Vec::with_capacity(TOKENIZE_CHUNK);
            for _ in 0..TOKENIZE_CHUNK {
                match self.docs.next() {
                    Some(d) => chunk.push(d?),
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            let tok = self.tokenizer;
            let ctx = self.packer.config().context_size;
            let base = self.documents_read;
            let encoded: Vec<Result<Encoded>> = chunk
                .into_par_iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Document::Text(t) => Ok(Encoded::Text(tok.encode_with(&t, BosPolicy::Keep)?)),
                    Document::Tokens(t) => Ok(Encoded::Window(pretokenized_window(
                        &t,
                        ctx,
                        (base as usize) + i,
                    )?)),
                })
                .collect();
            for e in encoded {
                self.documents_read += 1;
                match e? {
                    Encoded::Text(ids) => {
                        let mut out = Vec::new();
                        self.packer.push(&ids, &mut out);
                        self.ready.extend(out);
                    }
                    Encoded::Window(w) => self.ready.push_back(w),
                }
            }
        }
        Ok(())
    }

    /// The next window, or `None` at the end of the corpus.
    pub fn next_window(&mut self) -> Result<Option<Vec<u32>>> {
        self.fill()?;
        let w = self.ready.pop_front();
        if w.is_some() {
            self.windows_served += 1;
        }
        Ok(w)
    }

    /// The next window, restarting the corpus at its end as SAELens does (a new epoch, with a
    /// warning). Fails only when the corpus yields no window at all.
    pub fn next_window_cycling(&mut self) -> Result<Vec<u32>> {
        if let Some(w) = self.next_window()? {
            return Ok(w);
        }
        tracing::warn!("all samples in the corpus have been used; beginning a new epoch");
        self.docs = self.source.documents()?;
        self.exhausted = false;
        self.packer = Packer::new(*self.packer.config())?;
        self.epoch += 1;
        self.next_window()?
            .ok_or(crate::error::StoreError::EmptyCorpus {
                context_size: self.packer.config().context_size,
            })
    }

    /// Skips `n` windows without running anything on them (resuming a cache).
    pub fn skip(&mut self, n: u64) -> Result<u64> {
        let mut skipped = 0;
        while skipped < n && self.next_window()?.is_some() {
            skipped += 1;
        }
        Ok(skipped)
    }
}

enum Encoded {
    Text(Vec<u32>),
    Window(Vec<u32>),
}
