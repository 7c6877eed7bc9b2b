//! `sae-geometry autointerp`: explain (and score) latents through an LLM API, or offline.

use std::path::PathBuf;
use std::time::Duration;

use autointerp::{
    AutoInterpConfig, BaselineLatents, ExplainerStyle, GenerationScoringConfig, Judging,
    LatentResult, NeighbourConfig, PipelineConfig, PipelineInputs, Pricing, PromptOptions,
    RunIdentity, run_pipeline,
};
use gpt2_gemma_models::HookPoint;
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

/// Runs `autointerp`: the flags as a [`PipelineConfig`], one [`run_pipeline`] call, the table.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = PipelineConfig::new(Vec::new());
    cfg.config = AutoInterpConfig {
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
    cfg.config.validate()?;
    cfg.prompts = PromptOptions {
        style: match args.style {
            StyleArg::Tutorial => ExplainerStyle::Tutorial,
            StyleArg::ChainOfThought => ExplainerStyle::ChainOfThought,
        },
        few_shot: args.few_shot,
        logit_tokens: args.logit_tokens,
        quantised_activations: args.quantised_activations,
    };
    cfg.baseline = match args.baseline {
        BaselineArg::None => BaselineLatents::Sae,
        BaselineArg::RandomLatents => BaselineLatents::RandomLatents,
        BaselineArg::Neurons => BaselineLatents::Neurons,
    };
    cfg.neuron_hook = args.neuron_hook;
    cfg.context_size = args.context_size;
    cfg.model_batch_size = args.model_batch_size;
    cfg.fuzzing = args.fuzzing;
    cfg.random_explanation_baseline = args.random_explanation_baseline;
    cfg.generation = args.generation_scoring.then_some(GenerationScoringConfig {
        n_sequences: args.n_generated,
        counter_example_round: args.counter_example_round,
    });
    cfg.neighbours = (args.neighbours > 0).then_some(NeighbourConfig {
        n_neighbours: args.neighbours,
        windows_per_neighbour: args.neighbour_windows,
        hard_negatives: args.neighbour_negatives,
        seed: args.seed,
    });
    let api_key = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    cfg.judging = match Judging::api_or_offline(args.api_base.clone(), api_key) {
        Judging::Api(mut a) => {
            a.client.concurrency = args.concurrency;
            a.client.request_timeout = args.request_timeout;
            a.client.max_retries = args.max_retries;
            a.model = args.api_model.clone();
            a.temperature = args.temperature;
            a.cache_dir = args.cache_dir.clone();
            eprintln!("explaining with {} …", a.model);
            Judging::Api(a)
        }
        Judging::Offline => {
            eprintln!(
                "no --api-base or OPENAI_API_KEY: using the offline explainer (most frequent active token; detection by matching it)"
            );
            Judging::Offline
        }
    };
    cfg.pricing = Pricing {
        input_per_million: args.price_input,
        output_per_million: args.price_output,
    };
    cfg.seed = args.seed;
    if cfg.neighbours.is_some() && cfg.baseline == BaselineLatents::Neurons {
        anyhow::bail!(
            "--neighbours needs decoder directions: neurons are orthogonal, so they have no nearest neighbours"
        );
    }
    if (cfg.generation.is_some() || cfg.neighbours.is_some()) && !cfg.config.scoring {
        anyhow::bail!("--generation-scoring and --neighbours need --scoring");
    }

    let (model, tok) = args.model.load()?;
    let sae = args.model.load_sae(&args.sae, &model)?;
    cfg.latents = parse_latents(&args.latents, sae.d_sae())?
        .ok_or_else(|| anyhow::anyhow!("--latents must list latents (not `all`)"))?;
    let inputs = PipelineInputs {
        model: &model,
        tokenizer: &tok,
        sae,
        corpus: args.corpus.source(args.model.offline)?,
        identity: RunIdentity::new(args.model.model.to_string(), args.sae.to_string()),
    };
    let o = run_pipeline(inputs, &cfg, &args.out)?;
    let (usage, sent, cached) = o.tally;
    eprintln!(
        "{} latents ({} resumed), {} requests sent, {} cached, {} + {} tokens, ${:.4}",
        o.summary.results.len(),
        o.summary.resumed,
        sent,
        cached,
        usage.prompt_tokens,
        usage.completion_tokens,
        cfg.pricing.cost(usage)
    );
    if let Some(g) = &o.report.get("generation_scoring").filter(|v| !v.is_null()) {
        eprintln!("generation scoring: {g}");
    }
    if let Some(n) = &o.report.get("neighbour_scoring").filter(|v| !v.is_null()) {
        eprintln!("neighbour scoring: {n}");
    }
    print_table(&o.summary.results, cfg.config.scoring);
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
