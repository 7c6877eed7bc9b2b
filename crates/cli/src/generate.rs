//! `sae-geometry generate`.

use gpt2_gemma_models::{BosPolicy, GenerateConfig, Hooks, SampleConfig, Sampling, generate};

use super::model_args::ModelArgs;

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Greedy decoding (the default unless --temperature is given).
    #[arg(long, conflicts_with = "temperature")]
    pub greedy: bool,
    /// Sample at this temperature.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// TransformerLens's frequency penalty (subtracted per earlier occurrence).
    #[arg(long, default_value_t = 0.0)]
    pub freq_penalty: f32,
    /// Sample from the k most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// RNG seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// New tokens to generate.
    #[arg(long, default_value_t = 20)]
    pub max_new_tokens: usize,
    /// Do not prepend BOS.
    #[arg(long)]
    pub no_bos: bool,
}

/// Runs `generate`: prints the prompt and its continuation.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let bos = if args.no_bos {
        BosPolicy::Keep
    } else {
        BosPolicy::Prepend
    };
    let prompt = tok.encode_with(&args.prompt, bos)?;
    let sampling = match args.temperature {
        Some(t) if !args.greedy && t > 0.0 => Sampling::Sample(SampleConfig {
            temperature: t,
            freq_penalty: args.freq_penalty,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        }),
        _ => Sampling::Greedy,
    };
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling,
        eos_token: Some(tok.eos_id()),
    };
    let new = generate(&model, &[prompt], &cfg, &mut Hooks::new())?;
    println!("{}{}", args.prompt, tok.decode(&new[0])?);
    Ok(())
}
