//! # autointerp
//!
//! The tutorial's automated interpretability — explanation generation and detection scoring
//! through an LLM — made resumable and robust, with more scorers and baselines:
//!
//! 1. data: [`build_examples`] turns activation-store's one-pass [`LatentStats`] into each
//!    latent's generation and scoring [`Example`]s (disjoint; random windows with their real
//!    activations);
//! 2. prompts: [`generation_prompt`] and [`scoring_prompt`] are the tutorial's byte for byte
//!    by default; [`PromptOptions`] adds few-shot turns, chain of thought, logit-lens tokens
//!    and quantised activations;
//! 3. judges: [`LlmJudge`] over any [`ChatBackend`] ([`OpenAiBackend`] for OpenAI-compatible
//!    servers, wrapped in a [`CachedBackend`] so reruns cost nothing), or [`OfflineJudge`];
//! 4. [`run`](fn@run) streams [`LatentResult`]s to JSONL and resumes after an interruption;
//! 5. [`run_pipeline`] is the whole workflow in one call: a corpus pass of the model, then
//!    explanation, scoring, the bonus scorers and baselines ([`PipelineConfig`]).
//!
//! [`LatentStats`]: activation_store::LatentStats

pub mod baselines;
pub mod cache;
pub mod client;
pub mod compare;
pub mod config;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod example;
pub mod generation_scoring;
pub mod judge;
#[cfg(feature = "mock-server")]
pub mod mock;
pub mod neighbours;
pub mod openai;
pub mod oracle;
pub mod parse;
pub mod pipeline;
pub mod prompts;
pub mod run;
pub mod score;

pub use baselines::{BaselineLatents, neurons, random_like};
pub use cache::{CachedBackend, request_key, sha256_hex};
pub use client::{ChatBackend, ChatReply, ChatRequest, RequestFailure, Usage};
pub use compare::{Distribution, Population, population, scored_units};
pub use config::AutoInterpConfig;
pub use dashboard::{DashboardConfig, DashboardInputs, dashboard_pages};
pub use data::{LatentExamples, build_examples};
pub use error::{AutoInterpError, Result};
pub use example::Example;
pub use generation_scoring::{
    GenerationScoringConfig, GenerationScoringResult, ScoredSequence, SequencePrecision,
    measure_sequences, score_by_generation,
};
pub use judge::{Failure, Judge, Judged, LlmJudge, OfflineExplanation, OfflineJudge, Tally};
pub use neighbours::{
    Neighbour, NeighbourConfig, NeighbourScoringResult, NeighbourSet, neighbour_scoring,
    neighbour_set, score_against_neighbours,
};
pub use openai::{ClientConfig, DEFAULT_MODEL, OpenAiBackend};
pub use oracle::{ActivationOracle, ModelOracle};
pub use parse::{
    PredictionParseError, SequenceParseError, parse_explanation, parse_predictions, parse_sequences,
};
pub use pipeline::{
    ApiJudge, Judging, PipelineConfig, PipelineInputs, PipelineOutcome, RandomExplanation,
    RunIdentity, run_pipeline,
};
pub use prompts::{
    ExplainerStyle, Message, Messages, PromptOptions, Role, contrastive_generation_prompt,
    fuzzing_prompt, generation_prompt, scoring_prompt, sequence_prompt,
};
pub use run::{
    LatentResult, LatentStatus, Pricing, Resumable, RunOptions, RunSummary, Streamed, meta_path,
    random_explanation_baseline, read_lines, read_results, run, run_latent, run_resumable,
};
pub use score::{DetectionScores, score_predictions};
