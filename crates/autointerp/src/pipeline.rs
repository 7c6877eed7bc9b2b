//! The whole autointerp workflow as one call: gather the latents' top and random windows from a
//! corpus pass of the model, explain each latent, score the explanations (detection, fuzzing),
//! and run the bonus scorers and baselines — resumable, with every result streamed to disk.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (model, tokenizer): (gpt2_gemma_models::AnyModel, gpt2_gemma_models::AnyTokenizer) = todo!();
//! # let (sae, corpus): (sae_core::Sae, activation_store::TextSource) = todo!();
//! use autointerp::pipeline::{PipelineConfig, PipelineInputs, RunIdentity, run_pipeline};
//! let mut cfg = PipelineConfig::new(vec![9, 11, 15]); // the tutorial's latents
//! cfg.config.scoring = true;
//! let inputs = PipelineInputs {
//!     model: &model,
//!     tokenizer: &tokenizer,
//!     sae,
//!     corpus,
//!     identity: RunIdentity::new("gpt2", "gpt2-small-res-jb/blocks.7.hook_resid_pre"),
//! };
//! let outcome = run_pipeline(inputs, &cfg, "runs/autointerp.jsonl".as_ref())?;
//! for r in &outcome.summary.results {
//!     println!("{} {:?} {:?}", r.latent, r.explanation, r.score);
//! }
//! # Ok(()) }
//! ```
//!
//! Files, beside `out` (the results JSONL, one line per latent, resumed by a rerun):
//! `out.stats.json` + `out.stats.fingerprint` (the gathered windows: a rerun with the same data
//! settings skips the model pass), `out.meta.json` (the configuration's fingerprint),
//! `out.summary.json` ([`PipelineOutcome::report`]), `out.cache/` (LLM replies, API judge only),
//! and when asked `out.random-explanations.jsonl`, `out.generation.jsonl`,
//! `out.neighbours.jsonl`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use activation_store::{LatentStats, TextSource};
use gpt2_gemma_models::{AnyTokenizer, HookPoint, LanguageModel};
use sae_core::Sae;
use serde::{Deserialize, Serialize};

use crate::{
    ActivationOracle, AutoInterpConfig, AutoInterpError, BaselineLatents, CachedBackend,
    ClientConfig, DetectionScores, GenerationScoringConfig, GenerationScoringResult, Judge,
    LatentExamples, LlmJudge, ModelOracle, Neighbour, NeighbourConfig, NeighbourScoringResult,
    OfflineJudge, OpenAiBackend, Pricing, PromptOptions, Result, RunOptions, RunSummary, Streamed,
    Usage, build_examples, score_by_generation,
};

/// An LLM behind an OpenAI-compatible API as the explainer and judge.
#[derive(Debug, Clone)]
pub struct ApiJudge {
    /// Where and how requests go (base URL, key, concurrency, timeouts, retries).
    pub client: ClientConfig,
    /// The model asked (default [`crate::DEFAULT_MODEL`], the tutorial's).
    pub model: String,
    /// Sampling temperature; `None` leaves the server's default, as the tutorial does.
    pub temperature: Option<f32>,
    /// Reply cache; `None`: `out.cache` beside the results.
    pub cache_dir: Option<PathBuf>,
}

/// Who explains and scores.
#[derive(Debug, Clone, Default)]
pub enum Judging {
    /// [`OfflineJudge`]: the most frequent active token as the explanation, detection by
    /// matching it (no network; a floor to read LLM scores against).
    #[default]
    Offline,
    /// An LLM through an OpenAI-compatible API.
    Api(ApiJudge),
}

impl Judging {
    /// The judge `OPENAI_BASE_URL` / `OPENAI_API_KEY` name: an [`ApiJudge`] with the tutorial's
    /// model when either is set (OpenAI's own endpoint when only the key is), else offline.
    pub fn from_env() -> Self {
        let key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|b| !b.is_empty());
        Self::api_or_offline(base, key)
    }

    /// An [`ApiJudge`] with default client settings when `base` or `key` is given, else
    /// [`Judging::Offline`].
    pub fn api_or_offline(base: Option<String>, key: Option<String>) -> Self {
        if base.is_none() && key.is_none() {
            return Self::Offline;
        }
        let base = base.unwrap_or_else(|| crate::openai::OPENAI_DEFAULT_BASE.to_string());
        Self::Api(ApiJudge {
            client: ClientConfig::new(base, key),
            model: crate::DEFAULT_MODEL.to_string(),
            temperature: None,
            cache_dir: None,
        })
    }
}

/// The model and SAE by name: part of the fingerprints that decide whether a results file may
/// be resumed and whether gathered data may be reused (the corpus is named by
/// [`TextSource::identity`]). Name things so that two different models or SAEs never share a
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The model (e.g. `gpt2`, or a GGUF path).
    pub model: String,
    /// The SAE (e.g. `RELEASE/SAE_ID`, or a directory).
    pub sae: String,
}

impl RunIdentity {
    /// Names the model and SAE.
    pub fn new(model: impl Into<String>, sae: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            sae: sae.into(),
        }
    }
}

/// Everything the workflow does, with the tutorial's defaults ([`PipelineConfig::new`]).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The latents explained (their decoder neighbours are gathered too when
    /// [`PipelineConfig::neighbours`] is on).
    pub latents: Vec<usize>,
    /// The tutorial's `AutoInterpConfig` (windows, example counts, `scoring`, tokens gathered).
    pub config: AutoInterpConfig,
    /// Prompt variants (default: the tutorial's prompts byte for byte).
    pub prompts: PromptOptions,
    /// Whose latents are explained: the SAE's, a random SAE's, or the model's neurons.
    pub baseline: BaselineLatents,
    /// The neuron baseline's hook (default: `blocks.L.hook_mlp_post` of the SAE's layer).
    pub neuron_hook: Option<HookPoint>,
    /// Window length; `None`: the SAE's `context_size`.
    pub context_size: Option<usize>,
    /// Windows per model forward pass (default 8).
    pub model_batch_size: usize,
    /// Also score by fuzzing (real versus decoy highlighting).
    pub fuzzing: bool,
    /// Also score each latent against another latent's explanation.
    pub random_explanation_baseline: bool,
    /// Generation scoring (EleutherAI's), when set.
    pub generation: Option<GenerationScoringConfig>,
    /// Neighbour scoring (hard negatives from the nearest latents by decoder cosine), when set.
    pub neighbours: Option<NeighbourConfig>,
    /// Who explains and scores.
    pub judging: Judging,
    /// Prices for the cost report (default gpt-4o-mini's).
    pub pricing: Pricing,
    /// Seed of the example split and shuffles.
    pub seed: u64,
    /// Show progress bars.
    pub progress: bool,
}

impl PipelineConfig {
    /// The tutorial's settings for `latents`: explanation only (set `config.scoring` to score),
    /// offline judge, seed 0.
    pub fn new(latents: Vec<usize>) -> Self {
        Self {
            latents,
            config: AutoInterpConfig::default(),
            prompts: PromptOptions::default(),
            baseline: BaselineLatents::Sae,
            neuron_hook: None,
            context_size: None,
            model_batch_size: 8,
            fuzzing: false,
            random_explanation_baseline: false,
            generation: None,
            neighbours: None,
            judging: Judging::Offline,
            pricing: Pricing::GPT_4O_MINI,
            seed: 0,
            progress: true,
        }
    }

    fn judge_name(&self) -> String {
        match &self.judging {
            Judging::Offline => "offline".into(),
            Judging::Api(a) => a.model.clone(),
        }
    }

    fn temperature(&self) -> Option<f32> {
        match &self.judging {
            Judging::Offline => None,
            Judging::Api(a) => a.temperature,
        }
    }

    /// Fingerprint of everything that shapes the results file.
    fn run_fingerprint(&self, id: &RunIdentity, weights: &str, corpus: &TextSource) -> String {
        fingerprint(&serde_json::json!({
            "config": self.config, "prompts": self.prompts, "model": id.model,
            "sae": id.sae, "sae_weights": weights, "latents": sae_core::latents::format_latents(&self.latents),
            "corpus": corpus.identity(), "seed": self.seed, "baseline": self.baseline,
            "context": self.context_size, "judge": self.judge_name(),
            "temperature": self.temperature(), "fuzzing": self.fuzzing,
        }))
    }

    /// Fingerprint of everything that shapes the gathered data.
    fn stats_fingerprint(&self, id: &RunIdentity, weights: &str, corpus: &TextSource) -> String {
        fingerprint(&serde_json::json!({
            "model": id.model, "sae": id.sae, "sae_weights": weights,
            "latents": sae_core::latents::format_latents(&self.latents),
            "corpus": corpus.identity(), "total_tokens": self.config.total_tokens,
            "stats": self.config.stats_config(self.seed), "baseline": self.baseline,
            "context": self.context_size, "neuron_hook": self.neuron_hook.map(|h| h.to_string()),
            "neighbours": self.neighbours.map_or(0, |n| n.n_neighbours),
        }))
    }

    fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if self.latents.is_empty() {
            return Err(AutoInterpError::invalid("latents", "at least one", "none"));
        }
        if self.neighbours.is_some() && self.baseline == BaselineLatents::Neurons {
            return Err(AutoInterpError::invalid(
                "neighbours",
                "decoder directions (neurons are orthogonal: they have no nearest neighbours)",
                "the neuron baseline",
            ));
        }
        if (self.generation.is_some() || self.neighbours.is_some()) && !self.config.scoring {
            return Err(AutoInterpError::invalid(
                "generation/neighbour scoring",
                "config.scoring on",
                "scoring off",
            ));
        }
        Ok(())
    }
}

/// What the workflow reads.
pub struct PipelineInputs<'a, M: ?Sized> {
    /// The model the SAE reads.
    pub model: &'a M,
    /// Its tokenizer.
    pub tokenizer: &'a AnyTokenizer,
    /// The SAE (replaced by the baseline's when [`PipelineConfig::baseline`] says so).
    pub sae: Sae,
    /// The corpus windows come from.
    pub corpus: TextSource,
    /// Names of the model and SAE, for the fingerprints.
    pub identity: RunIdentity,
}

/// One latent scored against another latent's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomExplanation {
    /// The latent scored.
    pub latent: usize,
    /// The other latent's explanation it was scored against.
    pub explanation: String,
    /// Its detection scores (`None` when scoring failed).
    pub detection: Option<DetectionScores>,
}

/// What the workflow produced (everything is also on disk, see the module docs).
#[derive(Debug, Clone)]
pub struct PipelineOutcome {
    /// Each latent's explanation and scores, with the run's usage.
    pub summary: RunSummary,
    /// The random-explanation baseline, when asked.
    pub random_explanations: Option<Vec<RandomExplanation>>,
    /// Generation scoring, when asked.
    pub generation: Option<Vec<Streamed<GenerationScoringResult>>>,
    /// Neighbour scoring, when asked.
    pub neighbours: Option<Vec<Streamed<NeighbourScoringResult>>>,
    /// The means and counts written to `out.summary.json`.
    pub report: serde_json::Value,
    /// Usage, requests sent and requests answered from the cache by this run, all scorers.
    pub tally: (Usage, u64, u64),
    /// Wall time of the explain/score phase.
    pub seconds: f64,
}

/// `out` with `suffix` appended to its file name.
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// SHA-256 of the SAE's config (as `cfg.json` holds it) and of every parameter (name, shape and
/// f32 bytes, in name order).
fn sae_digest(sae: &Sae) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(sae.config().to_json().to_string().as_bytes());
    for (name, t) in sae.to_host_tensors()? {
        h.update(format!("{name}{:?}", t.shape).as_bytes());
        for chunk in t.data.chunks(1 << 14) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    Ok(crate::cache::lower_hex(&h.finalize()))
}

/// A stable identifier of a configuration: SHA-256 of its JSON.
fn fingerprint(v: &serde_json::Value) -> String {
    crate::sha256_hex(v.to_string().as_bytes())
}

/// Runs the workflow, writing results to `out` (and its siblings) as they finish; a rerun with
/// the same configuration resumes. Blocks on its own tokio runtime: from async code, call it
/// inside `spawn_blocking`.
///
/// # Errors
/// An invalid configuration ([`AutoInterpError::InvalidOption`]), a results file made by another
/// configuration, and failures of the model, SAE, corpus or files. Failed requests are not
/// errors: they are recorded in the latent's result and retried by the next run.
pub fn run_pipeline<M: LanguageModel + ?Sized>(
    inputs: PipelineInputs<'_, M>,
    cfg: &PipelineConfig,
    out: &Path,
) -> Result<PipelineOutcome> {
    cfg.validate()?;
    let PipelineInputs {
        model,
        tokenizer: tok,
        sae,
        corpus,
        identity,
    } = inputs;
    let device = model.device();
    // The weights themselves, not only their name: a results file or gathered data made with
    // another SAE saved under the same directory or name is never continued.
    let weights = sae_digest(&sae)?;
    let run_fp = cfg.run_fingerprint(&identity, &weights, &corpus);
    // Refused before the corpus pass, which would also replace the gathered data.
    crate::run::refuse_other_run(out, &run_fp)?;
    let mut sae = sae;
    let mut store_cfg = activation_store::StoreConfig::for_reading(
        sae.config(),
        cfg.context_size,
        cfg.model_batch_size,
    )?;
    match cfg.baseline {
        BaselineLatents::Sae => {}
        BaselineLatents::RandomLatents => sae = crate::random_like(&sae, cfg.seed)?,
        BaselineLatents::Neurons => {
            let hook = cfg
                .neuron_hook
                .unwrap_or_else(|| HookPoint::MlpPost(store_cfg.hook.layer().unwrap_or(0)));
            store_cfg.hook = hook;
            let probe = activation_store::compute_activations(model, hook, &[vec![tok.bos_id()]])?;
            sae = crate::neurons(probe.1, &hook.to_string(), sae.config(), &device)?;
        }
    }
    if let Some(&l) = cfg.latents.iter().find(|&&l| l >= sae.d_sae()) {
        return Err(AutoInterpError::invalid(
            "latents",
            format!("below the SAE's width {}", sae.d_sae()),
            l,
        ));
    }
    let neighbour_map = decoder_neighbours(
        &sae,
        &cfg.latents,
        cfg.neighbours.map_or(0, |n| n.n_neighbours),
    )?;
    // The latents gathered: the requested ones and their neighbours.
    let mut gathered = cfg.latents.clone();
    gathered.extend(neighbour_map.values().flatten().map(|n| n.latent));
    gathered.sort_unstable();
    gathered.dedup();

    let stats = gather_or_reuse(
        model,
        tok,
        &sae,
        &corpus,
        &store_cfg,
        &gathered,
        cfg,
        &cfg.stats_fingerprint(&identity, &weights, &corpus),
        out,
    )?;
    let str_tokens = |ids: &[u32]| -> Result<Vec<String>> { Ok(tok.str_tokens(ids)?) };
    let all_examples = build_examples(&stats, &cfg.config, cfg.seed, &str_tokens)?;
    let mut examples: Vec<LatentExamples> = cfg
        .latents
        .iter()
        .filter_map(|l| all_examples.iter().find(|e| e.latent == *l).cloned())
        .collect();
    if cfg.prompts.logit_tokens && cfg.baseline != BaselineLatents::Neurons {
        add_logit_tokens(&mut examples, &sae, model, tok, &cfg.latents)?;
    }

    let opts = RunOptions {
        scoring: cfg.config.scoring,
        fuzzing: cfg.fuzzing,
        parallel_latents: match &cfg.judging {
            Judging::Offline => 16,
            Judging::Api(a) => (2 * a.client.concurrency).max(1),
        },
        fingerprint: run_fp,
        progress: cfg.progress,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AutoInterpError::Runtime)?;
    let started = std::time::Instant::now();
    // Neighbour windows are read in their corpus context: replay the sequences they came from.
    let contexts = if cfg.neighbours.is_some() {
        let wanted: BTreeSet<u64> = neighbour_map
            .values()
            .flatten()
            .filter_map(|n| stats.latents.iter().find(|s| s.latent == n.latent))
            .flat_map(|s| s.top.iter().map(|w| w.seq))
            .collect();
        activation_store::replay_sequences(model, tok, corpus.clone(), &store_cfg, &wanted)?
    } else {
        Default::default()
    };
    let oracle = ModelOracle {
        model,
        tokenizer: tok,
        sae: &sae,
        hook: store_cfg.hook,
        prepend_bos: store_cfg.prepend_bos,
        contexts: Some(&contexts),
    };
    let extras = Extras {
        cfg,
        neighbour_map: &neighbour_map,
        stats: &stats,
        oracle: &oracle,
        out,
    };
    let (summary, random, generation, neighbours) = match &cfg.judging {
        Judging::Api(a) => {
            let cache = a
                .cache_dir
                .clone()
                .unwrap_or_else(|| sibling(out, ".cache"));
            let judge = LlmJudge {
                backend: CachedBackend::new(OpenAiBackend::new(a.client.clone())?, cache)?,
                model: a.model.clone(),
                cfg: cfg.config.clone(),
                prompts: cfg.prompts.clone(),
                temperature: a.temperature,
            };
            tracing::info!("explaining {} latents with {}", examples.len(), a.model);
            rt.block_on(run_all(&judge, &examples, &opts, &extras))?
        }
        Judging::Offline => {
            tracing::info!(
                "explaining {} latents with the offline explainer (most frequent active token; detection by matching it)",
                examples.len()
            );
            rt.block_on(run_all(&OfflineJudge, &examples, &opts, &extras))?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(r) = &random {
        let mut text = String::new();
        for x in r {
            text.push_str(
                &serde_json::json!({"latent": x.latent, "explanation": x.explanation,
                    "detection": x.detection, "score": x.detection.map(|s| s.accuracy)})
                .to_string(),
            );
            text.push('\n');
        }
        sae_core::atomic::write(sibling(out, ".random-explanations.jsonl"), text)?;
    }
    let report = report(
        &summary,
        random.as_deref(),
        generation.as_deref(),
        neighbours.as_deref(),
        cfg,
        seconds,
    );
    sae_core::atomic::write(
        sibling(out, ".summary.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let (mut usage, mut sent, mut cached) = (
        summary.usage,
        summary.requests_sent,
        summary.requests_cached,
    );
    let fresh = |t: &crate::Tally| {
        (
            t.usage,
            u64::from(t.requests_sent),
            u64::from(t.requests_cached),
        )
    };
    for (u, n, c) in generation
        .iter()
        .flatten()
        .filter(|r| r.fresh)
        .map(|r| fresh(&r.value.tally))
        .chain(
            neighbours
                .iter()
                .flatten()
                .filter(|r| r.fresh)
                .map(|r| fresh(&r.value.tally)),
        )
    {
        usage += u;
        sent += n;
        cached += c;
    }
    Ok(PipelineOutcome {
        summary,
        random_explanations: random,
        generation,
        neighbours,
        report,
        tally: (usage, sent, cached),
        seconds,
    })
}

/// The gathered windows of `gathered`: read back when `out.stats.json` was made with the same
/// data settings, else one corpus pass (then saved).
#[allow(clippy::too_many_arguments)]
fn gather_or_reuse<M: LanguageModel + ?Sized>(
    model: &M,
    tok: &AnyTokenizer,
    sae: &Sae,
    corpus: &TextSource,
    store_cfg: &activation_store::StoreConfig,
    gathered: &[usize],
    cfg: &PipelineConfig,
    stats_fp: &str,
    out: &Path,
) -> Result<LatentStats> {
    let stats_path = sibling(out, ".stats.json");
    let stats_fp_path = sibling(out, ".stats.fingerprint");
    let cached = std::fs::read_to_string(&stats_fp_path)
        .ok()
        .filter(|f| f.trim() == stats_fp)
        .and_then(|_| LatentStats::load(&stats_path).ok());
    if let Some(s) = cached {
        tracing::info!("reusing gathered data from {}", stats_path.display());
        return Ok(s);
    }
    let s = activation_store::gather_stats(
        model,
        tok,
        sae,
        corpus.clone(),
        store_cfg,
        gathered,
        cfg.config.stats_config(cfg.seed),
        cfg.config.total_tokens,
        cfg.progress,
    )?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AutoInterpError::io(dir, e))?;
    }
    s.save(&stats_path)?;
    sae_core::atomic::write(&stats_fp_path, stats_fp)?;
    Ok(s)
}

/// The top logit-lens tokens of each latent, shown in the generation prompt.
fn add_logit_tokens<M: LanguageModel + ?Sized>(
    examples: &mut [LatentExamples],
    sae: &Sae,
    model: &M,
    tok: &AnyTokenizer,
    latents: &[usize],
) -> Result<()> {
    let lens = latent_geometry::logit_lens::logit_lens(
        &sae.w_dec(),
        &model.unembed(),
        Some(latents),
        latent_geometry::logit_lens::LogitLensConfig::default(),
    )?;
    for ex in examples.iter_mut() {
        if let Some(l) = latents.iter().zip(&lens).find(|(l, _)| **l == ex.latent) {
            ex.logit_tokens = Some(tok.str_tokens(&l.1.top_ids)?);
        }
    }
    Ok(())
}

/// Nearest latents of each of `latents` by decoder cosine (itself left out), `n` each.
pub fn decoder_neighbours(
    sae: &Sae,
    latents: &[usize],
    n: usize,
) -> Result<BTreeMap<usize, Vec<Neighbour>>> {
    if n == 0 {
        return Ok(BTreeMap::new());
    }
    let w = sae_core::device::tensor_to_vec(sae.w_dec())?;
    let near = latent_geometry::splitting::nearest_latents(&w, sae.d_in(), latents, None, n);
    Ok(latents
        .iter()
        .zip(near)
        .map(|(&l, m)| {
            let near = m
                .into_iter()
                .map(|(latent, cosine)| Neighbour { latent, cosine });
            (l, near.collect())
        })
        .collect())
}

/// What the bonus scorers need beside the judge.
struct Extras<'a, O> {
    cfg: &'a PipelineConfig,
    neighbour_map: &'a BTreeMap<usize, Vec<Neighbour>>,
    stats: &'a LatentStats,
    oracle: &'a O,
    out: &'a Path,
}

type AllResults = (
    RunSummary,
    Option<Vec<RandomExplanation>>,
    Option<Vec<Streamed<GenerationScoringResult>>>,
    Option<Vec<Streamed<NeighbourScoringResult>>>,
);

/// The main run, the random-explanation baseline and the bonus scorers, with one judge.
async fn run_all<J: Judge, O: ActivationOracle>(
    judge: &J,
    examples: &[LatentExamples],
    opts: &RunOptions,
    extras: &Extras<'_, O>,
) -> Result<AllResults> {
    let cfg = extras.cfg;
    let s = crate::run(judge, examples, extras.out, opts).await?;
    let random = if cfg.random_explanation_baseline {
        Some(
            crate::random_explanation_baseline(judge, examples, &s.results, cfg.seed)
                .await
                .into_iter()
                .map(|(latent, explanation, detection)| RandomExplanation {
                    latent,
                    explanation,
                    detection,
                })
                .collect(),
        )
    } else {
        None
    };
    let explained: BTreeMap<usize, String> = s
        .results
        .iter()
        .filter_map(|r| r.explanation.clone().map(|e| (r.latent, e)))
        .collect();
    let todo: Vec<LatentExamples> = examples
        .iter()
        .filter(|e| explained.contains_key(&e.latent))
        .cloned()
        .collect();
    let sub_opts = |what: &str, v: serde_json::Value| RunOptions {
        fingerprint: fingerprint(&serde_json::json!({"run": opts.fingerprint, what: v})),
        ..opts.clone()
    };
    let mut generation = None;
    if let Some(g) = cfg.generation {
        let o = sub_opts("generation", serde_json::to_value(g)?);
        let (r, _) = crate::run_resumable(
            &todo,
            &sibling(extras.out, ".generation.jsonl"),
            &o,
            "generation scoring",
            |ex| score_by_generation(judge, extras.oracle, ex, &explained[&ex.latent], g),
        )
        .await?;
        generation = Some(r);
    }
    let mut neighbours = None;
    if let Some(n) = cfg.neighbours {
        let o = sub_opts("neighbours", serde_json::to_value(n)?);
        let none = Vec::new();
        let (r, _) = crate::run_resumable(
            &todo,
            &sibling(extras.out, ".neighbours.jsonl"),
            &o,
            "neighbour scoring",
            |ex| {
                crate::neighbour_scoring(
                    judge,
                    extras.oracle,
                    extras.stats,
                    ex,
                    extras.neighbour_map.get(&ex.latent).unwrap_or(&none),
                    &explained[&ex.latent],
                    &n,
                )
            },
        )
        .await?;
        neighbours = Some(r);
    }
    Ok((s, random, generation, neighbours))
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The run's means and counts (`out.summary.json`).
fn report(
    s: &RunSummary,
    random: Option<&[RandomExplanation]>,
    generation: Option<&[Streamed<GenerationScoringResult>]>,
    neighbours: Option<&[Streamed<NeighbourScoringResult>]>,
    cfg: &PipelineConfig,
    seconds: f64,
) -> serde_json::Value {
    use crate::LatentStatus;
    let count = |st| s.results.iter().filter(|r| r.status == st).count();
    let scored = || s.results.iter().filter_map(|r| r.detection);
    let random_mean = |f: fn(&DetectionScores) -> f64| {
        random.and_then(|r| mean(r.iter().filter_map(|x| x.detection.as_ref().map(f))))
    };
    serde_json::json!({
        "latents": s.results.len(),
        "ok": count(LatentStatus::Ok),
        "dead": count(LatentStatus::Dead),
        "parse_failures": count(LatentStatus::ParseFailure),
        "request_failures": count(LatentStatus::RequestFailure),
        "judge": match cfg.judging { Judging::Offline => "offline", Judging::Api(_) => "llm" },
        "baseline_latents": cfg.baseline,
        "mean_score": mean(scored().map(|d| d.accuracy)),
        "mean_balanced_accuracy": mean(scored().map(|d| d.balanced_accuracy)),
        "mean_f1": mean(scored().filter_map(|d| d.f1)),
        "mean_none_floor": mean(scored().map(|d| d.none_floor)),
        "mean_fuzzing_accuracy": mean(s.results.iter().filter_map(|r| r.fuzzing.map(|f| f.accuracy))),
        "random_explanation_mean_score": random_mean(|d| d.accuracy),
        "random_explanation_mean_balanced_accuracy": random_mean(|d| d.balanced_accuracy),
        "resumed": s.resumed,
        "requests_sent": s.requests_sent,
        "requests_cached": s.requests_cached,
        "prompt_tokens": s.usage.prompt_tokens,
        "completion_tokens": s.usage.completion_tokens,
        "cost_usd": cfg.pricing.cost(s.usage),
        "seconds": seconds,
        "generation_scoring": generation.map(generation_summary),
        "neighbour_scoring": neighbours.map(neighbour_summary),
    })
}

/// Means of generation scoring (precision, and the counter-example round's change).
pub fn generation_summary(rs: &[Streamed<GenerationScoringResult>]) -> serde_json::Value {
    let v: Vec<&GenerationScoringResult> = rs.iter().map(|r| &r.value).collect();
    let first = || v.iter().filter_map(|r| r.first.as_ref()?.precision);
    let paired: Vec<(f64, f64)> = v
        .iter()
        .filter_map(|r| Some((r.first.as_ref()?.precision?, r.second.as_ref()?.precision?)))
        .collect();
    serde_json::json!({
        "latents": v.len(),
        "failures": v.iter().filter(|r| r.tally.failure.is_some()).count(),
        "mean_precision": mean(first()),
        "latents_with_false_positives": v.iter().filter(|r| r.first.as_ref().is_some_and(|f| f.false_positives().next().is_some())).count(),
        "second_round_latents": paired.len(),
        "second_round_mean_precision_before": mean(paired.iter().map(|p| p.0)),
        "second_round_mean_precision_after": mean(paired.iter().map(|p| p.1)),
        "second_round_improved": paired.iter().filter(|p| p.1 > p.0).count(),
        "second_round_worse": paired.iter().filter(|p| p.1 < p.0).count(),
        "second_round_mean_detection_score": mean(v.iter().filter_map(|r| r.second_detection.map(|d| d.accuracy))),
        "second_round_mean_balanced_accuracy": mean(v.iter().filter_map(|r| r.second_detection.map(|d| d.balanced_accuracy))),
    })
}

/// Means of neighbour scoring (plain and with hard negatives).
pub fn neighbour_summary(rs: &[Streamed<NeighbourScoringResult>]) -> serde_json::Value {
    let v: Vec<&NeighbourScoringResult> = rs.iter().map(|r| &r.value).collect();
    let det = || v.iter().filter_map(|r| r.detection);
    let con = || v.iter().filter_map(|r| r.contrastive_detection);
    serde_json::json!({
        "latents": v.len(),
        "failures": v.iter().filter(|r| r.tally.failure.is_some()).count(),
        "mean_examples": mean(v.iter().map(|r| r.n_examples as f64)),
        "mean_active_neighbour_windows": mean(v.iter().map(|r| r.neighbour_windows_active as f64)),
        "mean_accuracy": mean(det().map(|d| d.accuracy)),
        "mean_balanced_accuracy": mean(det().map(|d| d.balanced_accuracy)),
        "mean_precision": mean(det().filter_map(|d| d.precision)),
        "mean_none_floor": mean(det().map(|d| d.none_floor)),
        "contrastive_mean_accuracy": mean(con().map(|d| d.accuracy)),
        "contrastive_mean_balanced_accuracy": mean(con().map(|d| d.balanced_accuracy)),
        "contrastive_mean_precision": mean(con().filter_map(|d| d.precision)),
        "contrastive_standard_mean_balanced_accuracy": mean(v.iter().filter_map(|r| r.contrastive_standard_detection.map(|d| d.balanced_accuracy))),
    })
}
