//! Patch-scoping prompts: text in Gemma's turn format with a placeholder token whose positions
//! are found by id.

use gpt2_gemma_models::{AnyTokenizer, BosPolicy};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScopingError};

/// The tutorial's prompt with `{X}` standing for the placeholder's text:
/// a user turn asking the meaning of the word, and the model's turn begun with the answer's
/// opening quote.
pub const TUTORIAL_TEMPLATE: &str = "<start_of_turn>user\nWhat is the meaning of the word \"{X}\"?<end_of_turn>\n<start_of_turn>model\nThe meaning of the word \"{X}\" is \"";

/// A tokenised prompt and where its placeholder is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchPrompt {
    /// The text.
    pub text: String,
    /// Token ids, BOS first.
    pub ids: Vec<u32>,
    /// The placeholder's id.
    pub placeholder: u32,
    /// Every position holding the placeholder.
    pub positions: Vec<usize>,
}

impl PatchPrompt {
    /// `template` with `{X}` replaced by the placeholder's text (the tokenizer's unknown token
    /// unless `placeholder` is given), tokenised with BOS.
    pub fn new(tok: &AnyTokenizer, template: &str, placeholder: Option<u32>) -> Result<Self> {
        let placeholder = match placeholder {
            Some(p) => p,
            None => tok.unk_id().ok_or(ScopingError::NoUnkToken)?,
        };
        let ph_text = tok.decode(&[placeholder])?;
        let text = template.replace("{X}", &ph_text);
        let ids = tok.encode_with(&text, BosPolicy::Prepend)?;
        let positions: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == placeholder)
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            return Err(ScopingError::NoPlaceholder {
                placeholder,
                prompt: text,
            });
        }
        Ok(Self {
            text,
            ids,
            placeholder,
            positions,
        })
    }

    /// The tutorial's prompt.
    pub fn tutorial(tok: &AnyTokenizer) -> Result<Self> {
        Self::new(tok, TUTORIAL_TEMPLATE, None)
    }
}

/// The tutorial's post-processing of a generation: the text up to the closing quote, trimmed,
/// without a final period.
pub fn explanation_of(generated: &str) -> String {
    generated
        .split('"')
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_string()
}
