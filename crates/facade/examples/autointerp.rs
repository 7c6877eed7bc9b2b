//! The tutorial's autointerp section as library calls: gather each latent's top and random
//! windows from a corpus pass of gemma-3-270m (the offline default model), have an LLM explain
//! the latent from its top windows, then score the explanation by detection.
//!
//! With `OPENAI_BASE_URL` or `OPENAI_API_KEY` set, an OpenAI-compatible API explains and
//! judges (the tutorial's gpt-4o-mini); without, the offline explainer does.
//!
//! ```sh
//! cargo run -p sae-geometry --example autointerp -- SAE_DIR CORPUS.jsonl --out autointerp.jsonl
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use sae_geometry::Sae;
use sae_geometry::autointerp::{
    Judging, PipelineConfig, PipelineInputs, RunIdentity, run_pipeline,
};
use sae_geometry::core::device::cpu;
use sae_geometry::models::gguf::GgufFile;
use sae_geometry::models::{AnyTokenizer, Gemma, GemmaTokenizer, offline};
use sae_geometry::store::TextSource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arguments: the SAE directory, the corpus, then `--out FILE`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sae_dir, corpus, ..] = &args[..] else {
        return Err("pass SAE_DIR CORPUS.jsonl [--out FILE]".into());
    };
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out FILE")?),
        None => PathBuf::from("autointerp-example/results.jsonl"),
    };

    // model = HookedSAETransformer.from_pretrained(...): here the offline GGUF.
    let file = GgufFile::open(offline::install_gemma3_270m_gguf()?)?;
    let device = cpu();
    let model = Gemma::load_gguf(&file, &device)?;
    let tokenizer = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let sae = Sae::load(sae_dir, &device)?;

    // cfg = AutoInterpConfig(latents=[...], scoring=True, ...): the tutorial's defaults, with
    // fewer tokens gathered than its 500 000 so that the example runs in seconds.
    let mut cfg = PipelineConfig::new(vec![0, 1, 2, 3]);
    cfg.config.total_tokens = 8192;
    cfg.config.scoring = true;
    cfg.judging = Judging::from_env();

    // results_df = autointerp(cfg, model, sae, ...): one call; rerunning resumes.
    let outcome = run_pipeline(
        PipelineInputs {
            model: &model,
            tokenizer: &tokenizer,
            sae,
            corpus: TextSource::from_path(corpus, None)?,
            identity: RunIdentity::new("gemma-3-270m", sae_dir.as_str()),
        },
        &cfg,
        &out,
    )?;

    // display(results_df)
    for r in &outcome.summary.results {
        let explanation = r.explanation.as_deref().unwrap_or("-");
        let score = r.score.map_or("-".into(), |s| format!("{s:.2}"));
        println!("{:>5}  {score:>5}  {explanation}", r.latent);
    }
    println!("→ {} (and {}.summary.json)", out.display(), out.display());
    Ok(())
}
