//! Judges: who writes explanations and predictions — an LLM through a [`ChatBackend`], or the
//! offline heuristic that needs none.

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::client::{ChatBackend, ChatRequest, Usage};
use crate::config::AutoInterpConfig;
use crate::data::LatentExamples;
use crate::example::Example;
use crate::parse::{parse_explanation, parse_predictions};
use crate::prompts::{
    COT_MAX_TOKENS, ExplainerStyle, PromptOptions, fuzzing_prompt, generation_prompt,
    scoring_prompt,
};

/// Why a step produced no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The reply came but could not be read.
    Parse {
        /// What the parser said.
        message: String,
        /// The raw reply.
        raw: String,
    },
    /// No reply after every retry.
    Request {
        /// What went wrong.
        message: String,
    },
}

/// A judged value with the raw reply and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged<T> {
    /// The parsed value.
    pub value: T,
    /// The raw reply.
    pub raw: String,
    /// Tokens used by requests actually sent.
    pub usage: Usage,
    /// Requests sent.
    pub sent: u32,
    /// Requests answered from the cache.
    pub cached: u32,
}

/// Writes explanations and detection predictions.
pub trait Judge: Send + Sync {
    /// An explanation of the latent from its generation examples.
    fn explain(
        &self,
        latent: &LatentExamples,
    ) -> impl Future<Output = Result<Judged<String>, Failure>> + Send;

    /// 1-based numbers of the examples predicted active, given an explanation.
    fn detect(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> impl Future<Output = Result<Judged<Vec<usize>>, Failure>> + Send;

    /// 1-based numbers of the examples whose highlighting is predicted to be the real one.
    fn fuzz(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> impl Future<Output = Result<Judged<Vec<usize>>, Failure>> + Send;
}

/// An LLM judge: the tutorial's prompts (or the chosen variants) through a backend.
#[derive(Debug)]
pub struct LlmJudge<B> {
    /// Where requests go.
    pub backend: B,
    /// Model name.
    pub model: String,
    /// The configuration (prompt sizes, `max_tokens`).
    pub cfg: AutoInterpConfig,
    /// Prompt options.
    pub prompts: PromptOptions,
    /// Sampling temperature (server default when `None`, as the tutorial).
    pub temperature: Option<f32>,
}

impl<B: ChatBackend> LlmJudge<B> {
    async fn ask<T>(
        &self,
        messages: crate::prompts::Messages,
        max_tokens: u32,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Judged<T>, Failure> {
        let request = ChatRequest {
            model: self.model.clone(),
            messages,
            max_tokens,
            temperature: self.temperature,
        };
        let reply = self
            .backend
            .complete(&request)
            .await
            .map_err(|e| Failure::Request { message: e.message })?;
        let (usage, sent, cached) = if reply.cached {
            (Usage::default(), 0, 1)
        } else {
            (reply.usage, 1, 0)
        };
        match parse(&reply.content) {
            Ok(value) => Ok(Judged {
                value,
                raw: reply.content,
                usage,
                sent,
                cached,
            }),
            Err(message) => Err(Failure::Parse {
                message,
                raw: reply.content,
            }),
        }
    }
}

impl<B: ChatBackend> Judge for LlmJudge<B> {
    async fn explain(&self, latent: &LatentExamples) -> Result<Judged<String>, Failure> {
        let messages = generation_prompt(
            &self.cfg,
            &self.prompts,
            &latent.generation,
            latent.logit_tokens.as_deref(),
        );
        let max_tokens = match self.prompts.style {
            ExplainerStyle::Tutorial => self.cfg.max_tokens_in_explanation,
            ExplainerStyle::ChainOfThought => COT_MAX_TOKENS,
        };
        self.ask(messages, max_tokens, |raw| {
            let e = parse_explanation(raw);
            if e.is_empty() {
                Err(format!("empty explanation in {raw:?}"))
            } else {
                Ok(e)
            }
        })
        .await
    }

    async fn detect(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        let n = examples.len();
        self.ask(
            scoring_prompt(&self.cfg, explanation, examples),
            self.cfg.max_tokens_in_prediction(),
            |raw| parse_predictions(raw, n).map_err(|e| e.to_string()),
        )
        .await
    }

    async fn fuzz(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        let n = examples.len();
        self.ask(
            fuzzing_prompt(explanation, examples),
            (2 * n + 5) as u32,
            |raw| parse_predictions(raw, n).map_err(|e| e.to_string()),
        )
        .await
    }
}

/// The offline judge: explains a latent by its most frequent active token, and predicts the
/// examples that contain that token. Needs no LLM; the baseline any LLM explanation should
/// beat, and the default when no API is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineJudge;

const OFFLINE_PREFIX: &str = "the token ";

impl OfflineJudge {
    /// The offline explanation of `examples`: `the token "…"` (JSON-quoted), or `None` when no
    /// token is active.
    pub fn explanation(examples: &[Example]) -> Option<String> {
        let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut order = 0;
        for ex in examples {
            for t in ex.active_str_tokens() {
                let e = counts.entry(t).or_insert((0, order));
                e.0 += 1;
                order += 1;
            }
        }
        // Most frequent; ties to the first seen.
        let best = counts
            .into_iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))?;
        Some(format!(
            "{OFFLINE_PREFIX}{}",
            serde_json::to_string(best.0).unwrap_or_default()
        ))
    }

    /// The token an offline explanation names.
    pub fn token_of(explanation: &str) -> Option<String> {
        serde_json::from_str(explanation.strip_prefix(OFFLINE_PREFIX)?).ok()
    }

    fn matching(explanation: &str, examples: &[Example]) -> Result<Judged<Vec<usize>>, Failure> {
        let token = Self::token_of(explanation).ok_or_else(|| Failure::Parse {
            message: "not an offline explanation".into(),
            raw: explanation.to_string(),
        })?;
        let value = examples
            .iter()
            .enumerate()
            .filter(|(_, ex)| ex.str_tokens.contains(&token))
            .map(|(i, _)| i + 1)
            .collect();
        Ok(Judged {
            value,
            raw: String::new(),
            usage: Usage::default(),
            sent: 0,
            cached: 0,
        })
    }
}

impl Judge for OfflineJudge {
    async fn explain(&self, latent: &LatentExamples) -> Result<Judged<String>, Failure> {
        let value = Self::explanation(&latent.generation).ok_or_else(|| Failure::Parse {
            message: "no active token".into(),
            raw: String::new(),
        })?;
        Ok(Judged {
            raw: value.clone(),
            value,
            usage: Usage::default(),
            sent: 0,
            cached: 0,
        })
    }

    async fn detect(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        Self::matching(explanation, examples)
    }

    async fn fuzz(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        // Real highlighting marks the token the explanation names.
        let token = Self::token_of(explanation).ok_or_else(|| Failure::Parse {
            message: "not an offline explanation".into(),
            raw: explanation.to_string(),
        })?;
        let value = examples
            .iter()
            .enumerate()
            .filter(|(_, ex)| ex.active_str_tokens().any(|t| t == token))
            .map(|(i, _)| i + 1)
            .collect();
        Ok(Judged {
            value,
            raw: String::new(),
            usage: Usage::default(),
            sent: 0,
            cached: 0,
        })
    }
}
