//! Generation scoring (EleutherAI) and the tutorial's counter-example loop.
//!
//! From an explanation the judge writes sequences it expects to activate the latent; the
//! model and the SAE read each one ([`ActivationOracle`]); the fraction that really activate
//! is the explanation's precision, and the rest are its false positives. Optionally the false
//! positives go back to the explainer as counter-examples, the new explanation writes new
//! sequences, and its precision is measured the same way — so one can see whether the loop
//! helps.
//!
//! A sequence "really activates" when the latent's largest activation on it exceeds the
//! latent's `act_threshold` (`act_threshold_frac ×` its max over the corpus), the same
//! threshold detection scoring uses.

use serde::{Deserialize, Serialize};

use crate::data::LatentExamples;
use crate::example::Example;
use crate::judge::{Failure, Judge, Tally};
use crate::oracle::ActivationOracle;
use crate::run::Resumable;
use crate::score::DetectionScores;

/// Options of generation scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationScoringConfig {
    /// Sequences asked for per explanation.
    pub n_sequences: usize,
    /// Run the second round: re-explain with the first round's false positives as
    /// counter-examples and measure again.
    pub counter_example_round: bool,
}

impl Default for GenerationScoringConfig {
    fn default() -> Self {
        Self {
            n_sequences: 10,
            counter_example_round: false,
        }
    }
}

/// One written sequence and what the latent did on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSequence {
    /// The text as written.
    pub text: String,
    /// The latent's largest activation on it.
    pub max_activation: f32,
    /// Whether it exceeds the latent's threshold.
    pub active: bool,
}

/// An explanation's sequences and their precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequencePrecision {
    /// The explanation the sequences were written from.
    pub explanation: String,
    /// Each sequence, in the order written.
    pub sequences: Vec<ScoredSequence>,
    /// Active sequences / sequences (`None` when none was written).
    pub precision: Option<f64>,
}

impl SequencePrecision {
    /// The sequences that did not activate the latent.
    pub fn false_positives(&self) -> impl Iterator<Item = &ScoredSequence> {
        self.sequences.iter().filter(|s| !s.active)
    }
}

/// Active / total, `None` for no sequences.
pub fn precision(active: &[bool]) -> Option<f64> {
    (!active.is_empty()).then(|| active.iter().filter(|a| **a).count() as f64 / active.len() as f64)
}

/// Reads `texts` through the oracle and thresholds them: the precision, and every sequence as
/// an [`Example`] (for the counter-example prompt).
pub fn measure_sequences<O: ActivationOracle + ?Sized>(
    oracle: &O,
    latent: usize,
    act_threshold: f32,
    explanation: &str,
    texts: &[String],
) -> crate::Result<(SequencePrecision, Vec<Example>)> {
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| oracle.tokenize(t))
        .collect::<crate::Result<_>>()?;
    let acts = oracle.activations(latent, &ids)?;
    let mut sequences = Vec::with_capacity(texts.len());
    let mut examples = Vec::with_capacity(texts.len());
    for ((text, ids), acts) in texts.iter().zip(ids).zip(acts) {
        let ex = Example::new(ids.clone(), oracle.str_tokens(&ids)?, acts, act_threshold)?;
        sequences.push(ScoredSequence {
            text: text.clone(),
            max_activation: ex.max_act(),
            active: ex.is_active(),
        });
        examples.push(ex);
    }
    let active: Vec<bool> = sequences.iter().map(|s| s.active).collect();
    Ok((
        SequencePrecision {
            explanation: explanation.to_string(),
            precision: precision(&active),
            sequences,
        },
        examples,
    ))
}

/// One latent's generation scoring: a line of the results JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationScoringResult {
    /// The latent.
    pub latent: usize,
    /// The first explanation's sequences and precision.
    pub first: Option<SequencePrecision>,
    /// The explanation written with the first round's false positives as counter-examples,
    /// its sequences and precision (absent when the round was not asked for, or the first
    /// round had no false positive).
    pub second: Option<SequencePrecision>,
    /// Detection scores of the second explanation on the latent's usual scoring set, to see
    /// whether the narrower explanation lost recall.
    pub second_detection: Option<DetectionScores>,
    /// `second.precision − first.precision`, when both exist.
    pub precision_change: Option<f64>,
    /// Requests, cost and failure.
    #[serde(flatten)]
    pub tally: Tally,
}

impl Resumable for GenerationScoringResult {
    fn latent(&self) -> usize {
        self.latent
    }
    fn is_final(&self) -> bool {
        self.tally.is_final()
    }
}

/// Generation scoring of one latent whose (first) explanation is `explanation`. Nothing is
/// returned as an error: judge failures and oracle errors (a sequence the model cannot read)
/// are recorded in the result.
pub async fn score_by_generation<J: Judge, O: ActivationOracle + ?Sized>(
    judge: &J,
    oracle: &O,
    ex: &LatentExamples,
    explanation: &str,
    cfg: GenerationScoringConfig,
) -> GenerationScoringResult {
    let mut r = GenerationScoringResult {
        latent: ex.latent,
        first: None,
        second: None,
        second_detection: None,
        precision_change: None,
        tally: Tally::default(),
    };
    if let Err(e) = two_rounds(judge, oracle, ex, explanation, cfg, &mut r).await {
        r.tally.failure = Some(Failure::Model {
            message: e.to_string(),
        });
    }
    r
}

async fn two_rounds<J: Judge, O: ActivationOracle + ?Sized>(
    judge: &J,
    oracle: &O,
    ex: &LatentExamples,
    explanation: &str,
    cfg: GenerationScoringConfig,
    r: &mut GenerationScoringResult,
) -> crate::Result<()> {
    let written = judge
        .write_sequences(explanation, ex, cfg.n_sequences)
        .await;
    let Some(texts) = r.tally.take(written) else {
        return Ok(());
    };
    let (first, examples) =
        measure_sequences(oracle, ex.latent, ex.act_threshold, explanation, &texts)?;
    let negatives: Vec<Example> = examples.into_iter().filter(|e| !e.is_active()).collect();
    r.first = Some(first);
    if !cfg.counter_example_round || negatives.is_empty() {
        return Ok(());
    }
    let second = judge.explain_contrastive(ex, &negatives).await;
    let Some(explanation2) = r.tally.take(second) else {
        return Ok(());
    };
    let written = judge
        .write_sequences(&explanation2, ex, cfg.n_sequences)
        .await;
    let Some(texts2) = r.tally.take(written) else {
        return Ok(());
    };
    let (second, _) =
        measure_sequences(oracle, ex.latent, ex.act_threshold, &explanation2, &texts2)?;
    r.precision_change = match (r.first.as_ref().and_then(|f| f.precision), second.precision) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    r.second = Some(second);
    if !ex.scoring.is_empty() {
        r.second_detection = r
            .tally
            .detect(judge, &explanation2, &ex.scoring, &ex.scoring_truth())
            .await
            .map(|d| d.1);
    }
    Ok(())
}
