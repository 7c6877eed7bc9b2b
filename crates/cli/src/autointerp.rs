//! `sae-geometry autointerp`: explain (and score) latents through an LLM API, or offline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use activation_store::LatentStats;
use anyhow::Context;
use std::collections::BTreeMap;

use autointerp::{
    ActivationOracle, AutoInterpConfig, BaselineLatents, CachedBackend, ClientConfig,
    ExplainerStyle, GenerationScoringConfig, GenerationScoringResult, LatentExamples, LatentResult,
    LlmJudge, ModelOracle, Neighbour, NeighbourConfig, NeighbourScoringResult, OfflineJudge,
    OpenAiBackend, Pricing, PromptOptions, RunOptions, RunSummary, Streamed, build_examples,
    score_by_generation,
};
use gpt2_gemma_models::{AnyTokenizer, HookPoint, LanguageModel};
use sae_core::SaeSource;

use super::corpus_args::CorpusArgs;
use super::model_args::ModelArgs;
use sae_core::latents::parse_latents;

/// Prompt style, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StyleArg {
    /// The tutorial's single-sentence prompt.
    Tutorial,
    /// The tutorial's bonus chain of thought.
    ChainOfThought,
}

/// Baseline latents, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaselineArg {
    /// The SAE's own latents.
    None,
    /// A random SAE of the same shape and sparsity mechanism.
    RandomLatents,
    /// The model's MLP neurons (identity encoder at --neuron-hook).
    Neurons,
}

/// Arguments of `autointerp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The corpus the examples come from (--corpus or --dataset).
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// The SAE: a directory or RELEASE/SAE_ID.
    #[arg(long)]
    pub sae: SaeSource,
    /// Latents: indices and ranges such as `9,11,15` or `0-99`.
    #[arg(long)]
    pub latents: String,
    /// Tokens of corpus gathered over (the tutorial's total_tokens).
    #[arg(long, default_value_t = 500_000)]
    pub total_tokens: u64,
    /// Window length; default: the SAE's context_size.
    #[arg(long)]
    pub context_size: Option<usize>,
    /// Windows per model forward pass.
    #[arg(long, default_value_t = 8)]
    pub model_batch_size: usize,
    /// Tokens each side of an example's centre.
    #[arg(long, default_value_t = 10)]
    pub buffer: usize,
    /// No two top windows of a latent overlap.
    #[arg(long)]
    pub no_overlap: bool,
    /// A token is active above this fraction of the latent's max activation.
    #[arg(long, default_value_t = 0.1)]
    pub act_threshold_frac: f32,
    /// Score the explanations by detection (the tutorial's scoring phase).
    #[arg(long)]
    pub scoring: bool,
    /// Also score by fuzzing (real versus decoy highlighting).
    #[arg(long)]
    pub fuzzing: bool,
    /// Top examples shown to the explainer.
    #[arg(long, default_value_t = 10)]
    pub n_top_ex_for_generation: usize,
    /// Held-out top examples in the scoring set.
    #[arg(long, default_value_t = 4)]
    pub n_top_ex_for_scoring: usize,
    /// Random examples in the scoring set.
    #[arg(long, default_value_t = 8)]
    pub n_random_ex_for_scoring: usize,
    /// max_tokens of an explanation.
    #[arg(long, default_value_t = 25)]
    pub max_tokens_in_explanation: u32,
    /// Leave out the three example explanations from the generation prompt.
    #[arg(long)]
    pub no_examples_in_explanation_prompt: bool,
    /// Generation prompt style.
    #[arg(long, value_enum, default_value = "tutorial")]
    pub style: StyleArg,
    /// Prepend worked few-shot examples to the generation prompt.
    #[arg(long)]
    pub few_shot: bool,
    /// Show the latent's top 10 logit-lens tokens in the generation prompt.
    #[arg(long)]
    pub logit_tokens: bool,
    /// Show each example's active tokens with activations quantised to 0–9.
    #[arg(long)]
    pub quantised_activations: bool,
    /// Explain baseline latents instead of the SAE's, to read scores against a floor.
    #[arg(long, value_enum, default_value = "none")]
    pub baseline: BaselineArg,
    /// Hook of the neuron baseline (default: blocks.L.hook_mlp_post of the SAE's layer).
    #[arg(long)]
    pub neuron_hook: Option<HookPoint>,
    /// Also score every latent against another latent's explanation (random-explanation
    /// baseline), written to OUT.random-explanations.jsonl.
    #[arg(long)]
    pub random_explanation_baseline: bool,
    /// Generation scoring (EleutherAI): from each explanation the judge writes sequences it
    /// expects to activate the latent; the model and SAE read them; the fraction that fire is
    /// the explanation's precision. Written to OUT.generation.jsonl (resumable).
    #[arg(long)]
    pub generation_scoring: bool,
    /// Sequences written per explanation for generation scoring.
    #[arg(long, default_value_t = 10)]
    pub n_generated: usize,
    /// With --generation-scoring: re-explain with the false positives as counter-examples,
    /// measure the new explanation's precision and detection score, and report the change.
    #[arg(long)]
    pub counter_example_round: bool,
    /// Neighbour scoring: score each explanation on its latent's held-out top windows against
    /// the top windows of its N nearest latents by decoder cosine (hard negatives). 0: off.
    /// Written to OUT.neighbours.jsonl (resumable).
    #[arg(long, default_value_t = 0)]
    pub neighbours: usize,
    /// Top windows taken from each neighbour for neighbour scoring.
    #[arg(long, default_value_t = 2)]
    pub neighbour_windows: usize,
    /// With --neighbours: also explain each latent with its neighbours' next top windows as
    /// hard negatives, and score that explanation on both scoring sets.
    #[arg(long)]
    pub neighbour_negatives: bool,
    /// OpenAI-compatible API base URL (else OPENAI_BASE_URL). Without it and without
    /// OPENAI_API_KEY the offline explainer is used.
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub api_base: Option<String>,
    /// Model asked.
    #[arg(long, default_value = autointerp::DEFAULT_MODEL)]
    pub api_model: String,
    /// Sampling temperature (server default when unset, as the tutorial).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds one request attempt may take (positive).
    #[arg(long, default_value = "60", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub request_timeout: Duration,
    /// Retries of a failing request (429, 5xx, timeouts, malformed replies).
    #[arg(long, default_value_t = 6)]
    pub max_retries: u32,
    /// Response cache directory (default: OUT.cache).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// USD per million prompt tokens, for the cost report.
    #[arg(long, default_value_t = Pricing::GPT_4O_MINI.input_per_million)]
    pub price_input: f64,
    /// USD per million completion tokens.
    #[arg(long, default_value_t = Pricing::GPT_4O_MINI.output_per_million)]
    pub price_output: f64,
    /// Seed of the example split and shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Results: one JSON object per latent, appended as each finishes; an interrupted run
    /// resumes from it. Beside it: OUT.stats.json (the gathered data), OUT.summary.json.
    #[arg(long)]
    pub out: PathBuf,
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A stable identifier of a configuration: SHA-256 of its JSON.
fn fingerprint(v: &serde_json::Value) -> String {
    autointerp::sha256_hex(v.to_string().as_bytes())
}

/// Runs `autointerp`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = AutoInterpConfig {
        buffer: args.buffer,
        no_overlap: args.no_overlap,
        act_threshold_frac: args.act_threshold_frac,
        total_tokens: args.total_tokens,
        scoring: args.scoring,
        max_tokens_in_explanation: args.max_tokens_in_explanation,
        use_examples_in_explanation_prompt: !args.no_examples_in_explanation_prompt,
        n_top_ex_for_generation: args.n_top_ex_for_generation,
        n_top_ex_for_scoring: args.n_top_ex_for_scoring,
        n_random_ex_for_scoring: args.n_random_ex_for_scoring,
    };
    cfg.validate()?;
    let prompts = PromptOptions {
        style: match args.style {
            StyleArg::Tutorial => ExplainerStyle::Tutorial,
            StyleArg::ChainOfThought => ExplainerStyle::ChainOfThought,
        },
        few_shot: args.few_shot,
        logit_tokens: args.logit_tokens,
        quantised_activations: args.quantised_activations,
    };
    let baseline = match args.baseline {
        BaselineArg::None => BaselineLatents::Sae,
        BaselineArg::RandomLatents => BaselineLatents::RandomLatents,
        BaselineArg::Neurons => BaselineLatents::Neurons,
    };
    let api_key = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let online = args.api_base.is_some() || api_key.is_some();
    let fp = fingerprint(&serde_json::json!({
        "config": cfg, "prompts": prompts, "model": args.model.model.to_string(),
        "sae": args.sae.to_string(), "latents": args.latents, "corpus": format!("{:?}", args.corpus.dataset),
        "hub_dataset": args.corpus.hub_dataset, "seed": args.seed, "baseline": baseline,
        "context": args.context_size, "judge": if online { args.api_model.clone() } else { "offline".into() },
        "temperature": args.temperature, "fuzzing": args.fuzzing,
    }));
    let stats_fp = fingerprint(&serde_json::json!({
        "model": args.model.model.to_string(), "sae": args.sae.to_string(), "latents": args.latents,
        "corpus": format!("{:?}", args.corpus.dataset), "hub_dataset": args.corpus.hub_dataset,
        "total_tokens": cfg.total_tokens, "stats": cfg.stats_config(args.seed), "baseline": baseline,
        "context": args.context_size, "neuron_hook": args.neuron_hook.map(|h| h.to_string()),
        "neighbours": args.neighbours,
    }));

    let (model, tok) = args.model.load()?;
    let device = model.device();
    let mut sae = args
        .sae
        .load(&args.model.hub(), &device)
        .with_context(|| format!("loading SAE {}", args.sae))?;
    let mut store_cfg = activation_store::StoreConfig::for_reading(
        sae.config(),
        args.context_size,
        args.model_batch_size,
    )?;
    match baseline {
        BaselineLatents::Sae => {}
        BaselineLatents::RandomLatents => sae = autointerp::random_like(&sae, args.seed)?,
        BaselineLatents::Neurons => {
            let hook = match args.neuron_hook {
                Some(h) => h,
                None => HookPoint::MlpPost(store_cfg.hook.layer().unwrap_or(0)),
            };
            store_cfg.hook = hook;
            let probe = activation_store::compute_activations(&model, hook, &[vec![tok.bos_id()]])?;
            sae = autointerp::neurons(probe.1, &hook.to_string(), sae.config(), &device)?;
        }
    }
    let latents = parse_latents(&args.latents, sae.d_sae())?
        .ok_or_else(|| anyhow::anyhow!("--latents must list latents (not `all`)"))?;
    if args.neighbours > 0 && baseline == BaselineLatents::Neurons {
        anyhow::bail!(
            "--neighbours needs decoder directions: neurons are orthogonal, so they have no nearest neighbours"
        );
    }
    if (args.generation_scoring || args.neighbours > 0) && !cfg.scoring {
        anyhow::bail!("--generation-scoring and --neighbours need --scoring");
    }
    let neighbour_map = decoder_neighbours(&sae, &latents, args.neighbours)?;
    // The latents gathered: the requested ones and their neighbours.
    let mut gathered = latents.clone();
    gathered.extend(neighbour_map.values().flatten().map(|n| n.latent));
    gathered.sort_unstable();
    gathered.dedup();

    // Data: gathered once and kept beside the results, so a rerun skips the model pass.
    let stats_path = sibling(&args.out, ".stats.json");
    let stats_fp_path = sibling(&args.out, ".stats.fingerprint");
    let cached_stats = std::fs::read_to_string(&stats_fp_path)
        .ok()
        .filter(|f| f.trim() == stats_fp)
        .and_then(|_| LatentStats::load(&stats_path).ok());
    let stats = match cached_stats {
        Some(s) => {
            tracing::info!("reusing gathered data from {}", stats_path.display());
            s
        }
        None => {
            let s = activation_store::gather_stats(
                &model,
                &tok,
                &sae,
                args.corpus.source(args.model.offline)?,
                &store_cfg,
                &gathered,
                cfg.stats_config(args.seed),
                cfg.total_tokens,
                true,
            )?;
            if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            s.save(&stats_path)?;
            sae_core::atomic::write(&stats_fp_path, &stats_fp)?;
            s
        }
    };
    let str_tokens = |ids: &[u32]| -> autointerp::Result<Vec<String>> { Ok(tok.str_tokens(ids)?) };
    let all_examples = build_examples(&stats, &cfg, args.seed, &str_tokens)?;
    let mut examples: Vec<LatentExamples> = latents
        .iter()
        .filter_map(|l| all_examples.iter().find(|e| e.latent == *l).cloned())
        .collect();
    if args.logit_tokens && baseline != BaselineLatents::Neurons {
        add_logit_tokens(&mut examples, &sae, &model, &tok, &latents)?;
    }

    let opts = RunOptions {
        scoring: cfg.scoring,
        fuzzing: args.fuzzing,
        parallel_latents: (2 * args.concurrency).max(1),
        fingerprint: fp,
        progress: true,
    };
    let pricing = Pricing {
        input_per_million: args.price_input,
        output_per_million: args.price_output,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    // Neighbour windows are read in their corpus context: replay the sequences they came from.
    let contexts = if args.neighbours > 0 {
        let wanted: std::collections::BTreeSet<u64> = neighbour_map
            .values()
            .flatten()
            .filter_map(|n| stats.latents.iter().find(|s| s.latent == n.latent))
            .flat_map(|s| s.top.iter().map(|w| w.seq))
            .collect();
        activation_store::replay_sequences(
            &model,
            &tok,
            args.corpus.source(args.model.offline)?,
            &store_cfg,
            &wanted,
        )?
    } else {
        Default::default()
    };
    let oracle = ModelOracle {
        model: &model,
        tokenizer: &tok,
        sae: &sae,
        hook: store_cfg.hook,
        prepend_bos: store_cfg.prepend_bos,
        contexts: Some(&contexts),
    };
    let extras = Extras {
        generation: args.generation_scoring.then_some(GenerationScoringConfig {
            n_sequences: args.n_generated,
            counter_example_round: args.counter_example_round,
        }),
        neighbours: (args.neighbours > 0).then_some(NeighbourConfig {
            n_neighbours: args.neighbours,
            windows_per_neighbour: args.neighbour_windows,
            hard_negatives: args.neighbour_negatives,
            seed: args.seed,
        }),
        neighbour_map: &neighbour_map,
        stats: &stats,
        oracle: &oracle,
    };
    let (summary, random_expl, extra) = if online {
        let base = args
            .api_base
            .clone()
            .unwrap_or_else(|| async_openai_default_base().to_string());
        let mut c = ClientConfig::new(base, api_key);
        c.concurrency = args.concurrency;
        c.request_timeout = args.request_timeout;
        c.max_retries = args.max_retries;
        let cache = args
            .cache_dir
            .clone()
            .unwrap_or_else(|| sibling(&args.out, ".cache"));
        let judge = LlmJudge {
            backend: CachedBackend::new(OpenAiBackend::new(c)?, cache)?,
            model: args.api_model.clone(),
            cfg: cfg.clone(),
            prompts,
            temperature: args.temperature,
        };
        eprintln!(
            "explaining {} latents with {} …",
            examples.len(),
            args.api_model
        );
        rt.block_on(run_all(&judge, &examples, &args, &opts, &extras))?
    } else {
        eprintln!(
            "no --api-base or OPENAI_API_KEY: using the offline explainer (most frequent active token; detection by matching it)"
        );
        rt.block_on(run_all(&OfflineJudge, &examples, &args, &opts, &extras))?
    };
    let secs = started.elapsed().as_secs_f64();
    if let Some(r) = &random_expl {
        let path = sibling(&args.out, ".random-explanations.jsonl");
        let mut text = String::new();
        for (latent, expl, s) in r {
            text.push_str(&serde_json::json!({"latent": latent, "explanation": expl, "detection": s, "score": s.map(|s| s.accuracy)}).to_string());
            text.push('\n');
        }
        sae_core::atomic::write(&path, text)?;
    }
    write_summary(
        &args.out,
        &summary,
        random_expl.as_deref(),
        &extra,
        pricing,
        online,
        secs,
        baseline,
    )?;
    print_table(&summary.results, cfg.scoring);
    Ok(())
}

/// OpenAI's own endpoint, used when only OPENAI_API_KEY is set.
fn async_openai_default_base() -> &'static str {
    autointerp::openai::OPENAI_DEFAULT_BASE
}

fn add_logit_tokens(
    examples: &mut [LatentExamples],
    sae: &sae_core::Sae,
    model: &gpt2_gemma_models::AnyModel,
    tok: &AnyTokenizer,
    latents: &[usize],
) -> anyhow::Result<()> {
    let lens = latent_geometry::logit_lens::logit_lens(
        &sae.w_dec(),
        &model.unembed(),
        Some(latents),
        latent_geometry::logit_lens::LogitLensConfig::default(),
    )?;
    for (ex, l) in examples.iter_mut().zip(lens) {
        ex.logit_tokens = Some(tok.str_tokens(&l.top_ids)?);
    }
    Ok(())
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

#[allow(clippy::too_many_arguments)]
fn write_summary(
    out: &Path,
    s: &RunSummary,
    random_expl: Option<&[(usize, String, Option<autointerp::DetectionScores>)]>,
    extra: &ExtraResults,
    pricing: Pricing,
    online: bool,
    secs: f64,
    baseline: BaselineLatents,
) -> anyhow::Result<()> {
    let count = |st| s.results.iter().filter(|r| r.status == st).count();
    let scored = || s.results.iter().filter_map(|r| r.detection);
    let v = serde_json::json!({
        "latents": s.results.len(),
        "ok": count(autointerp::LatentStatus::Ok),
        "dead": count(autointerp::LatentStatus::Dead),
        "parse_failures": count(autointerp::LatentStatus::ParseFailure),
        "request_failures": count(autointerp::LatentStatus::RequestFailure),
        "judge": if online { "llm" } else { "offline" },
        "baseline_latents": baseline,
        "mean_score": mean(scored().map(|d| d.accuracy)),
        "mean_balanced_accuracy": mean(scored().map(|d| d.balanced_accuracy)),
        "mean_f1": mean(scored().filter_map(|d| d.f1)),
        "mean_none_floor": mean(scored().map(|d| d.none_floor)),
        "mean_fuzzing_accuracy": mean(s.results.iter().filter_map(|r| r.fuzzing.map(|f| f.accuracy))),
        "random_explanation_mean_score": random_expl.and_then(|r| mean(r.iter().filter_map(|x| x.2.map(|d| d.accuracy)))),
        "random_explanation_mean_balanced_accuracy": random_expl.and_then(|r| mean(r.iter().filter_map(|x| x.2.map(|d| d.balanced_accuracy)))),
        "resumed": s.resumed,
        "requests_sent": s.requests_sent,
        "requests_cached": s.requests_cached,
        "prompt_tokens": s.usage.prompt_tokens,
        "completion_tokens": s.usage.completion_tokens,
        "cost_usd": pricing.cost(s.usage),
        "seconds": secs,
        "generation_scoring": extra.generation.as_deref().map(generation_summary),
        "neighbour_scoring": extra.neighbours.as_deref().map(neighbour_summary),
    });
    sae_core::atomic::write(
        sibling(out, ".summary.json"),
        serde_json::to_string_pretty(&v)?,
    )?;
    let (mut usage, mut sent, mut cached) = (s.usage, s.requests_sent, s.requests_cached);
    for (u, n, c) in extra.new_usage() {
        usage += u;
        sent += u64::from(n);
        cached += u64::from(c);
    }
    eprintln!(
        "{} latents ({} resumed), {} requests sent, {} cached, {} + {} tokens, ${:.4}",
        s.results.len(),
        s.resumed,
        sent,
        cached,
        usage.prompt_tokens,
        usage.completion_tokens,
        pricing.cost(usage)
    );
    if let Some(g) = &extra.generation {
        eprintln!("generation scoring: {}", generation_summary(g));
    }
    if let Some(n) = &extra.neighbours {
        eprintln!("neighbour scoring: {}", neighbour_summary(n));
    }
    Ok(())
}

/// The tutorial's table: latent, explanation, predictions, correct seqs, score.
fn print_table(results: &[LatentResult], scoring: bool) {
    let fmt_list = |v: &[usize]| {
        format!(
            "[{}]",
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut rows: Vec<Vec<String>> = vec![
        if scoring {
            vec![
                "Latent",
                "explanation",
                "predictions",
                "correct seqs",
                "score",
            ]
        } else {
            vec!["Latent", "explanation"]
        }
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for r in results {
        let expl = match (&r.explanation, &r.status) {
            (Some(e), _) => e.clone(),
            (None, st) => format!(
                "<{}>",
                serde_json::to_value(st)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ),
        };
        let mut row = vec![r.latent.to_string(), expl];
        if scoring {
            row.push(
                r.predictions
                    .as_deref()
                    .map(fmt_list)
                    .unwrap_or_else(|| "-".into()),
            );
            row.push(fmt_list(&r.correct_seqs));
            row.push(
                r.score
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let line = |l: &str, m: &str, r: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}", parts.join(m))
    };
    println!("{}", line("┌", "┬", "┐"));
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        println!("│{}│", cells.join("│"));
        if i == 0 {
            println!("{}", line("├", "┼", "┤"));
        }
    }
    println!("{}", line("└", "┴", "┘"));
}

/// Nearest latents of each of `latents` by decoder cosine (itself left out), `n` each.
fn decoder_neighbours(
    sae: &sae_core::Sae,
    latents: &[usize],
    n: usize,
) -> anyhow::Result<BTreeMap<usize, Vec<Neighbour>>> {
    if n == 0 {
        return Ok(BTreeMap::new());
    }
    let d = sae.d_in();
    let w = sae_core::device::tensor_to_vec(sae.w_dec())?;
    let rows: Vec<f32> = latents
        .iter()
        .flat_map(|&l| w[l * d..(l + 1) * d].iter().copied())
        .collect();
    let near = latent_geometry::splitting::match_latents(&rows, &w, d, n + 1);
    Ok(latents
        .iter()
        .zip(near)
        .map(|(&l, m)| {
            (
                l,
                m.into_iter()
                    .filter(|(j, _)| *j != l)
                    .take(n)
                    .map(|(latent, cosine)| Neighbour { latent, cosine })
                    .collect(),
            )
        })
        .collect())
}

/// What the bonus scorers need beside the judge.
struct Extras<'a, O> {
    generation: Option<GenerationScoringConfig>,
    neighbours: Option<NeighbourConfig>,
    neighbour_map: &'a BTreeMap<usize, Vec<Neighbour>>,
    stats: &'a LatentStats,
    oracle: &'a O,
}

/// The bonus scorers' results (each also streamed to its own JSONL).
#[derive(Default)]
struct ExtraResults {
    generation: Option<Vec<Streamed<GenerationScoringResult>>>,
    neighbours: Option<Vec<Streamed<NeighbourScoringResult>>>,
}

impl ExtraResults {
    /// Usage, requests sent and requests cached of the results this run made.
    fn new_usage(&self) -> Vec<(autointerp::Usage, u32, u32)> {
        let g = self
            .generation
            .iter()
            .flatten()
            .filter(|r| r.fresh)
            .map(|r| &r.value.tally);
        let n = self
            .neighbours
            .iter()
            .flatten()
            .filter(|r| r.fresh)
            .map(|r| &r.value.tally);
        g.chain(n)
            .map(|t| (t.usage, t.requests_sent, t.requests_cached))
            .collect()
    }
}

type RandomExplanations = Vec<(usize, String, Option<autointerp::DetectionScores>)>;

/// The main run, the random-explanation baseline and the bonus scorers, with one judge.
async fn run_all<J: autointerp::Judge, O: ActivationOracle>(
    judge: &J,
    examples: &[LatentExamples],
    args: &Args,
    opts: &RunOptions,
    extras: &Extras<'_, O>,
) -> anyhow::Result<(RunSummary, Option<RandomExplanations>, ExtraResults)> {
    let s = autointerp::run(judge, examples, &args.out, opts).await?;
    let random = if args.random_explanation_baseline {
        Some(autointerp::random_explanation_baseline(judge, examples, &s.results, args.seed).await)
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
    let sub_opts = |what: &str, cfg: serde_json::Value| RunOptions {
        fingerprint: fingerprint(&serde_json::json!({"run": opts.fingerprint, what: cfg})),
        ..opts.clone()
    };
    let mut extra = ExtraResults::default();
    if let Some(g) = extras.generation {
        let o = sub_opts("generation", serde_json::to_value(g)?);
        let (r, _) = autointerp::run_resumable(
            &todo,
            &sibling(&args.out, ".generation.jsonl"),
            &o,
            "generation scoring",
            |ex| score_by_generation(judge, extras.oracle, ex, &explained[&ex.latent], g),
        )
        .await?;
        extra.generation = Some(r);
    }
    if let Some(n) = extras.neighbours {
        let o = sub_opts("neighbours", serde_json::to_value(n)?);
        let none = Vec::new();
        let (r, _) = autointerp::run_resumable(
            &todo,
            &sibling(&args.out, ".neighbours.jsonl"),
            &o,
            "neighbour scoring",
            |ex| {
                autointerp::neighbour_scoring(
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
        extra.neighbours = Some(r);
    }
    Ok((s, random, extra))
}

fn generation_summary(rs: &[Streamed<GenerationScoringResult>]) -> serde_json::Value {
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

fn neighbour_summary(rs: &[Streamed<NeighbourScoringResult>]) -> serde_json::Value {
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

/// A positive, finite number of seconds that a `Duration` can hold (`-1`, `NaN`, `0` and `1e20`
/// are flag errors, not panics).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("expected a positive number of seconds, found {s}"));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s} seconds is longer than a timeout can be"))
}
