//! Neighbour-based scoring (EleutherAI): does an explanation tell its latent's top windows
//! apart from the top windows of the latents nearest to it by decoder cosine? Random windows
//! are easy negatives; neighbours' windows are the hard ones an explanation that is too broad
//! ("fires on nouns") fails on.
//!
//! The scoring set of a latent is its held-out top windows and, from each of its nearest
//! latents, that latent's strongest top windows that overlap none of this latent's top
//! windows. Every window's truth is this latent's activation on it in its corpus context: the
//! gathered activations for its own windows, and for the neighbours' windows the
//! [`ActivationOracle`]'s [`window_activations`](ActivationOracle::window_activations) (the
//! model run on the window's whole corpus sequence) — so a neighbour's window on which this
//! latent fires counts as active. Optionally the next windows of each neighbour (disjoint from the scoring ones) are
//! shown to the explainer as hard negatives, and the resulting explanation is scored too.

use activation_store::LatentStats;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{LatentExamples, overlaps};
use crate::example::Example;
use crate::judge::{Failure, Judge, Tally};
use crate::oracle::ActivationOracle;
use crate::run::Resumable;
use crate::score::DetectionScores;

/// Options of neighbour scoring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NeighbourConfig {
    /// Nearest latents by decoder cosine used per latent.
    pub n_neighbours: usize,
    /// Top windows taken from each neighbour for the scoring set.
    pub windows_per_neighbour: usize,
    /// Also explain each latent with its neighbours' next windows as hard negatives, and
    /// score that explanation.
    pub hard_negatives: bool,
    /// Seed of the scoring set's shuffle.
    pub seed: u64,
}

impl Default for NeighbourConfig {
    /// 4 neighbours × 2 windows: with the 4 held-out top windows, the tutorial's 12 examples.
    fn default() -> Self {
        Self {
            n_neighbours: 4,
            windows_per_neighbour: 2,
            hard_negatives: false,
            seed: 0,
        }
    }
}

/// A latent near another by decoder cosine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Its index.
    pub latent: usize,
    /// Decoder cosine with the latent scored.
    pub cosine: f32,
}

/// A latent's neighbour scoring set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NeighbourSet {
    /// Held-out top windows (with their gathered activations) and neighbours' windows (with
    /// this latent's activations read by the oracle in context), shuffled.
    pub examples: Vec<Example>,
    /// Where each example came from: `None` for a held-out top window, the neighbour's index
    /// otherwise.
    pub sources: Vec<Option<usize>>,
    /// Neighbours' further windows on which this latent is inactive (hard negatives for
    /// generation), when asked for.
    pub hard_negatives: Vec<Example>,
}

impl NeighbourSet {
    /// Whether each example is active.
    pub fn truth(&self) -> Vec<bool> {
        self.examples.iter().map(Example::is_active).collect()
    }
}

/// Builds `ex`'s neighbour set from the gathered `stats` (which must hold the latent and its
/// neighbours), reading truths through `oracle`. Deterministic in `cfg.seed`.
pub fn neighbour_set<O: ActivationOracle + ?Sized>(
    ex: &LatentExamples,
    neighbours: &[Neighbour],
    stats: &LatentStats,
    cfg: &NeighbourConfig,
    oracle: &O,
) -> crate::Result<NeighbourSet> {
    let seed = cfg.seed;
    let buffer = stats.config.buffer;
    let summary = |l: usize| {
        stats.latents.iter().find(|s| s.latent == l).ok_or_else(|| {
            crate::AutoInterpError::invalid(
                "neighbour scoring statistics",
                format!("latent {l} gathered"),
                "missing",
            )
        })
    };
    let own = summary(ex.latent)?;
    let mut picked: Vec<(&activation_store::Window, usize)> = Vec::new();
    let mut hard: Vec<&activation_store::Window> = Vec::new();
    for n in neighbours.iter().take(cfg.n_neighbours) {
        let theirs = summary(n.latent)?;
        let mut usable = theirs.top.iter().filter(|w| {
            w.value > 0.0 && !own.top.iter().any(|o| overlaps(o, w.seq, w.pos, buffer))
        });
        for w in usable.by_ref().take(cfg.windows_per_neighbour) {
            picked.push((w, n.latent));
        }
        if cfg.hard_negatives {
            hard.extend(usable.take(cfg.windows_per_neighbour));
        }
    }
    // One oracle pass over the scoring windows and the hard negatives.
    let ws: Vec<&activation_store::Window> = picked
        .iter()
        .map(|p| p.0)
        .chain(hard.iter().copied())
        .collect();
    let acts = oracle.window_activations(ex.latent, &ws)?;
    let mut read = ws
        .iter()
        .zip(acts)
        .map(|(w, a)| {
            let s = oracle.str_tokens(&w.tokens)?;
            Example::new(w.tokens.clone(), s, a, ex.act_threshold)
        })
        .collect::<crate::Result<Vec<Example>>>()?;
    let hard_negatives: Vec<Example> = read
        .split_off(picked.len())
        .into_iter()
        .filter(|e| !e.is_active())
        .collect();
    // Held-out top windows carry this latent's in-context activations already.
    let mut pairs: Vec<(Example, Option<usize>)> =
        ex.held_out.iter().map(|e| (e.clone(), None)).collect();
    pairs.extend(read.into_iter().zip(picked.iter().map(|p| Some(p.1))));
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ (ex.latent as u64).wrapping_mul(0x9E37_79B9));
    pairs.shuffle(&mut rng);
    let (examples, sources) = pairs.into_iter().unzip();
    Ok(NeighbourSet {
        examples,
        sources,
        hard_negatives,
    })
}

/// One latent's neighbour scoring: a line of the results JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourScoringResult {
    /// The latent.
    pub latent: usize,
    /// Its neighbours, nearest first.
    pub neighbours: Vec<Neighbour>,
    /// Examples in the set.
    pub n_examples: usize,
    /// Active examples: held-out windows above the threshold, plus neighbours' windows on
    /// which this latent fires.
    pub n_active: usize,
    /// Neighbours' windows on which this latent fires.
    pub neighbour_windows_active: usize,
    /// The explanation scored.
    pub explanation: String,
    /// 1-based predictions on the neighbour set.
    pub predictions: Option<Vec<usize>>,
    /// Detection scores on the neighbour set.
    pub detection: Option<DetectionScores>,
    /// The explanation written with neighbours' windows as hard negatives.
    pub contrastive_explanation: Option<String>,
    /// Its detection scores on the neighbour set.
    pub contrastive_detection: Option<DetectionScores>,
    /// Its detection scores on the latent's usual scoring set (random negatives).
    pub contrastive_standard_detection: Option<DetectionScores>,
    /// Requests, cost and failure.
    #[serde(flatten)]
    pub tally: Tally,
}

impl Resumable for NeighbourScoringResult {
    fn latent(&self) -> usize {
        self.latent
    }
    fn is_final(&self) -> bool {
        self.tally.is_final()
    }
}

/// Builds `ex`'s neighbour set and scores `explanation` on it ([`neighbour_set`] then
/// [`score_against_neighbours`]); an oracle error is recorded in the result.
pub async fn neighbour_scoring<J: Judge, O: ActivationOracle + ?Sized>(
    judge: &J,
    oracle: &O,
    stats: &LatentStats,
    ex: &LatentExamples,
    neighbours: &[Neighbour],
    explanation: &str,
    cfg: &NeighbourConfig,
) -> NeighbourScoringResult {
    match neighbour_set(ex, neighbours, stats, cfg, oracle) {
        Ok(set) => score_against_neighbours(judge, ex, neighbours, &set, explanation, cfg).await,
        Err(e) => {
            let mut r = result_for(ex, neighbours, &NeighbourSet::default(), explanation, cfg);
            r.tally.failure = Some(Failure::Model {
                message: e.to_string(),
            });
            r
        }
    }
}

fn result_for(
    ex: &LatentExamples,
    neighbours: &[Neighbour],
    set: &NeighbourSet,
    explanation: &str,
    cfg: &NeighbourConfig,
) -> NeighbourScoringResult {
    let truth = set.truth();
    NeighbourScoringResult {
        latent: ex.latent,
        neighbours: neighbours.iter().take(cfg.n_neighbours).copied().collect(),
        n_examples: set.examples.len(),
        n_active: truth.iter().filter(|t| **t).count(),
        neighbour_windows_active: set
            .sources
            .iter()
            .zip(&truth)
            .filter(|(s, t)| s.is_some() && **t)
            .count(),
        explanation: explanation.to_string(),
        predictions: None,
        detection: None,
        contrastive_explanation: None,
        contrastive_detection: None,
        contrastive_standard_detection: None,
        tally: Tally::default(),
    }
}

/// Scores `explanation` (the latent's usual one) on its neighbour set, and with
/// `cfg.hard_negatives` a contrastive explanation too.
pub async fn score_against_neighbours<J: Judge>(
    judge: &J,
    ex: &LatentExamples,
    neighbours: &[Neighbour],
    set: &NeighbourSet,
    explanation: &str,
    cfg: &NeighbourConfig,
) -> NeighbourScoringResult {
    let truth = set.truth();
    let mut r = result_for(ex, neighbours, set, explanation, cfg);
    if set.examples.is_empty() {
        return r;
    }
    let Some((p, scores)) = r
        .tally
        .detect(judge, explanation, &set.examples, &truth)
        .await
    else {
        return r;
    };
    r.detection = Some(scores);
    r.predictions = Some(p);
    if !cfg.hard_negatives || set.hard_negatives.is_empty() {
        return r;
    }
    let explained = judge.explain_contrastive(ex, &set.hard_negatives).await;
    let Some(e2) = r.tally.take(explained) else {
        return r;
    };
    r.contrastive_detection = r
        .tally
        .detect(judge, &e2, &set.examples, &truth)
        .await
        .map(|d| d.1);
    if !ex.scoring.is_empty() {
        r.contrastive_standard_detection = r
            .tally
            .detect(judge, &e2, &ex.scoring, &ex.scoring_truth())
            .await
            .map(|d| d.1);
    }
    r.contrastive_explanation = Some(e2);
    r
}
