//! `sae-geometry tokenize`.

use gpt2_gemma_models::BosPolicy;

use super::model_args::ModelArgs;

/// Arguments of `tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose tokenizer to use.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text.
    #[arg(long)]
    pub text: String,
    /// Do not prepend BOS (TransformerLens prepends it by default; transformers does not).
    #[arg(long)]
    pub no_bos: bool,
}

/// Runs `tokenize`: prints the ids as a JSON array.
pub fn run(args: Args) -> anyhow::Result<()> {
    let tok = args.model.load_tokenizer()?;
    let bos = if args.no_bos {
        BosPolicy::Keep
    } else {
        BosPolicy::Prepend
    };
    println!(
        "{}",
        serde_json::to_string(&tok.encode_with(&args.text, bos)?)?
    );
    Ok(())
}
