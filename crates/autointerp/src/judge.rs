//! Judges: who writes explanations and predictions — an LLM through a [`ChatBackend`], or the
//! offline heuristic that needs none.

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::client::{ChatBackend, ChatRequest, Usage};
use crate::config::AutoInterpConfig;
use crate::data::LatentExamples;
use crate::example::Example;
use crate::parse::{parse_explanation, parse_predictions, parse_sequences};
use crate::prompts::{
    COT_MAX_TOKENS, ExplainerStyle, PromptOptions, SEQUENCE_TOKENS, contrastive_generation_prompt,
    fuzzing_prompt, scoring_prompt, sequence_prompt,
};
use crate::score::{DetectionScores, score_predictions};

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
    /// The model or the SAE could not read a sequence the judge wrote (final).
    Model {
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

/// What a latent's requests cost, and the failure that stopped its work, if any — the
/// bookkeeping every per-latent result of the bonus scorers carries (flattened into its JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tally {
    /// What failed, when something did (a request failure is redone by the next run).
    pub failure: Option<Failure>,
    /// Tokens used by requests sent.
    pub usage: Usage,
    /// Requests sent.
    pub requests_sent: u32,
    /// Requests answered from the cache.
    pub requests_cached: u32,
}

impl Tally {
    /// The value of a judged step, counting what it cost; a failure is recorded and `None`
    /// returned.
    pub fn take<T>(&mut self, j: Result<Judged<T>, Failure>) -> Option<T> {
        match j {
            Ok(j) => {
                self.usage += j.usage;
                self.requests_sent += j.sent;
                self.requests_cached += j.cached;
                Some(j.value)
            }
            Err(f) => {
                self.failure = Some(f);
                None
            }
        }
    }

    /// Detection by `judge` of `examples` from `explanation`, counted here: the predictions and
    /// their scores against `truth`, or `None` after recording a failure.
    pub async fn detect<J: Judge>(
        &mut self,
        judge: &J,
        explanation: &str,
        examples: &[Example],
        truth: &[bool],
    ) -> Option<(Vec<usize>, DetectionScores)> {
        let p = self.take(judge.detect(explanation, examples).await)?;
        let scores = score_predictions(&p, truth);
        Some((p, scores))
    }

    /// Whether the work is final (not a request failure, which the next run redoes).
    pub fn is_final(&self) -> bool {
        !matches!(self.failure, Some(Failure::Request { .. }))
    }
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

    /// `n` new sequences the explanation says should activate the latent (EleutherAI's
    /// generation scoring). `latent` gives the offline writer text to write into.
    fn write_sequences(
        &self,
        explanation: &str,
        latent: &LatentExamples,
        n: usize,
    ) -> impl Future<Output = Result<Judged<Vec<String>>, Failure>> + Send;

    /// An explanation of the latent from its generation examples and `negatives`: sequences
    /// that look related but do not activate it (false positives of an earlier explanation,
    /// or neighbouring latents' top windows).
    fn explain_contrastive(
        &self,
        latent: &LatentExamples,
        negatives: &[Example],
    ) -> impl Future<Output = Result<Judged<String>, Failure>> + Send;
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

impl<B: ChatBackend> LlmJudge<B> {
    /// Asks for a list of 1-based example numbers out of `n`.
    async fn ask_numbers(
        &self,
        messages: crate::prompts::Messages,
        max_tokens: u32,
        n: usize,
    ) -> Result<Judged<Vec<usize>>, Failure> {
        self.ask(messages, max_tokens, |raw| {
            parse_predictions(raw, n).map_err(|e| e.to_string())
        })
        .await
    }

    async fn explain_with(
        &self,
        latent: &LatentExamples,
        negatives: &[Example],
    ) -> Result<Judged<String>, Failure> {
        let messages = contrastive_generation_prompt(
            &self.cfg,
            &self.prompts,
            &latent.generation,
            latent.logit_tokens.as_deref(),
            negatives,
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
}

impl<B: ChatBackend> Judge for LlmJudge<B> {
    async fn explain(&self, latent: &LatentExamples) -> Result<Judged<String>, Failure> {
        self.explain_with(latent, &[]).await
    }

    async fn explain_contrastive(
        &self,
        latent: &LatentExamples,
        negatives: &[Example],
    ) -> Result<Judged<String>, Failure> {
        self.explain_with(latent, negatives).await
    }

    async fn write_sequences(
        &self,
        explanation: &str,
        _latent: &LatentExamples,
        n: usize,
    ) -> Result<Judged<Vec<String>>, Failure> {
        self.ask(
            sequence_prompt(explanation, n),
            (SEQUENCE_TOKENS * n) as u32,
            |raw| parse_sequences(raw, n).map_err(|e| e.to_string()),
        )
        .await
    }

    async fn detect(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        self.ask_numbers(
            scoring_prompt(&self.cfg, explanation, examples),
            self.cfg.max_tokens_in_prediction(),
            examples.len(),
        )
        .await
    }

    async fn fuzz(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        let n = examples.len();
        self.ask_numbers(fuzzing_prompt(explanation, examples), (2 * n + 5) as u32, n)
            .await
    }
}

/// The offline judge: explains a latent by its most frequent active token, and predicts the
/// examples that contain that token. Needs no LLM; the baseline any LLM explanation should
/// beat, and the default when no API is configured.
///
/// Given negatives (false positives of an earlier round, or neighbours' windows), it narrows
/// the explanation to the token after its most frequent preceding token in the generation
/// examples — `the token " X" after " Y"` — when the token occurs in a negative. It writes
/// sequences by inserting the explained token (after its context token, if any) into the
/// middle of the latent's inactive random windows.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineJudge;

const OFFLINE_PREFIX: &str = "the token ";
const OFFLINE_AFTER: &str = " after ";

/// What an offline explanation says: a token, optionally only right after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineExplanation {
    /// The token.
    pub token: String,
    /// The token right before it, when the explanation is narrowed to a context.
    pub after: Option<String>,
}

impl OfflineExplanation {
    /// `the token "…"` or `the token "…" after "…"` (JSON-quoted).
    pub fn render(&self) -> String {
        let q = |t: &str| serde_json::to_string(t).unwrap_or_default();
        match &self.after {
            None => format!("{OFFLINE_PREFIX}{}", q(&self.token)),
            Some(a) => format!("{OFFLINE_PREFIX}{}{OFFLINE_AFTER}{}", q(&self.token), q(a)),
        }
    }

    /// Reads what [`render`](Self::render) wrote.
    pub fn parse(explanation: &str) -> Option<Self> {
        let rest = explanation.strip_prefix(OFFLINE_PREFIX)?;
        let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        let token = de.next()?.ok()?;
        let tail = rest[de.byte_offset()..].to_string();
        if tail.is_empty() {
            return Some(Self { token, after: None });
        }
        let after: String = serde_json::from_str(tail.strip_prefix(OFFLINE_AFTER)?).ok()?;
        Some(Self {
            token,
            after: Some(after),
        })
    }

    /// Whether `tokens[i]` is what the explanation names.
    pub fn matches_at(&self, tokens: &[String], i: usize) -> bool {
        tokens[i] == self.token
            && match &self.after {
                None => true,
                Some(a) => i > 0 && tokens[i - 1] == *a,
            }
    }

    /// Whether any token of `tokens` matches.
    pub fn matches(&self, tokens: &[String]) -> bool {
        (0..tokens.len()).any(|i| self.matches_at(tokens, i))
    }
}

/// The most frequent item; ties go to the one seen first.
fn most_common<'a>(items: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for (order, t) in items.enumerate() {
        counts.entry(t).or_insert((0, order)).0 += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .map(|(t, _)| t.to_string())
}

impl OfflineJudge {
    /// The offline explanation of `examples`: `the token "…"` (JSON-quoted), or `None` when no
    /// token is active.
    pub fn explanation(examples: &[Example]) -> Option<String> {
        Self::most_frequent(examples)
            .map(|token| OfflineExplanation { token, after: None }.render())
    }

    fn most_frequent(examples: &[Example]) -> Option<String> {
        most_common(examples.iter().flat_map(Example::active_str_tokens))
    }

    /// The explanation given `negatives`: the plain one, narrowed to the most frequent
    /// preceding token of its token's active occurrences when the token occurs in a negative.
    pub fn contrastive_explanation(examples: &[Example], negatives: &[Example]) -> Option<String> {
        let token = Self::most_frequent(examples)?;
        let plain = OfflineExplanation {
            token: token.clone(),
            after: None,
        };
        if !negatives.iter().any(|n| plain.matches(&n.str_tokens)) {
            return Some(plain.render());
        }
        // The token right before each active occurrence of the explained token.
        let after = most_common(examples.iter().flat_map(|ex| {
            let active = ex.toks_are_active();
            let token = &token;
            ex.str_tokens
                .windows(2)
                .enumerate()
                .filter(move |(i, pair)| active[i + 1] && pair[1] == *token)
                .map(|(_, pair)| pair[0].as_str())
        }));
        Some(OfflineExplanation { token, after }.render())
    }

    /// The token an offline explanation names.
    pub fn token_of(explanation: &str) -> Option<String> {
        OfflineExplanation::parse(explanation).map(|e| e.token)
    }

    /// Sequences for an offline explanation: the explained token (after its context token)
    /// inserted in the middle of the latent's scoring windows — inactive ones first, active
    /// ones with their active tokens cut out, so no sequence fires by what was already in it —
    /// up to `n`, cycling through the windows at other insertion points when there are fewer
    /// than `n`.
    pub fn sequences(e: &OfflineExplanation, latent: &LatentExamples, n: usize) -> Vec<String> {
        let mut bases: Vec<Vec<&str>> = Vec::new();
        for want_active in [false, true] {
            for x in latent
                .scoring
                .iter()
                .filter(|x| x.is_active() == want_active)
            {
                let active = x.toks_are_active();
                bases.push(
                    x.str_tokens
                        .iter()
                        .zip(active)
                        .filter(|(_, a)| !a)
                        .map(|(t, _)| t.as_str())
                        .collect(),
                );
            }
        }
        let mut out = Vec::with_capacity(n);
        if bases.is_empty() {
            return out;
        }
        for k in 0..n {
            let mut toks = bases[k % bases.len()].clone();
            let round = k / bases.len();
            let at = toks.len() * (round % 3 + 1) / 4;
            let mut insert = Vec::new();
            if let Some(a) = &e.after {
                insert.push(a.as_str());
            }
            insert.push(e.token.as_str());
            toks.splice(at..at, insert);
            out.push(toks.concat());
        }
        out
    }

    fn parsed(explanation: &str) -> Result<OfflineExplanation, Failure> {
        OfflineExplanation::parse(explanation).ok_or_else(|| Failure::Parse {
            message: "not an offline explanation".into(),
            raw: explanation.to_string(),
        })
    }

    fn judged<T>(value: T) -> Judged<T> {
        Judged {
            value,
            raw: String::new(),
            usage: Usage::default(),
            sent: 0,
            cached: 0,
        }
    }
}

impl Judge for OfflineJudge {
    async fn explain(&self, latent: &LatentExamples) -> Result<Judged<String>, Failure> {
        self.explain_contrastive(latent, &[]).await
    }

    async fn explain_contrastive(
        &self,
        latent: &LatentExamples,
        negatives: &[Example],
    ) -> Result<Judged<String>, Failure> {
        let value =
            Self::contrastive_explanation(&latent.generation, negatives).ok_or_else(|| {
                Failure::Parse {
                    message: "no active token".into(),
                    raw: String::new(),
                }
            })?;
        Ok(Judged {
            raw: value.clone(),
            ..Self::judged(value)
        })
    }

    async fn detect(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        let e = Self::parsed(explanation)?;
        Ok(Self::judged(
            examples
                .iter()
                .enumerate()
                .filter(|(_, ex)| e.matches(&ex.str_tokens))
                .map(|(i, _)| i + 1)
                .collect(),
        ))
    }

    async fn fuzz(
        &self,
        explanation: &str,
        examples: &[Example],
    ) -> Result<Judged<Vec<usize>>, Failure> {
        // Real highlighting marks the token the explanation names.
        let e = Self::parsed(explanation)?;
        Ok(Self::judged(
            examples
                .iter()
                .enumerate()
                .filter(|(_, ex)| {
                    let active = ex.toks_are_active();
                    (0..ex.str_tokens.len()).any(|i| active[i] && e.matches_at(&ex.str_tokens, i))
                })
                .map(|(i, _)| i + 1)
                .collect(),
        ))
    }

    async fn write_sequences(
        &self,
        explanation: &str,
        latent: &LatentExamples,
        n: usize,
    ) -> Result<Judged<Vec<String>>, Failure> {
        let e = Self::parsed(explanation)?;
        let seqs = Self::sequences(&e, latent, n);
        if seqs.is_empty() {
            return Err(Failure::Parse {
                message: "no scoring window to write into (run with scoring on)".into(),
                raw: explanation.to_string(),
            });
        }
        Ok(Self::judged(seqs))
    }
}
