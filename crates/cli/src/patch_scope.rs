//! `sae-geometry patch-scope`: the model explains a latent patched into its own residual stream,
//! over a sweep of scales, with scale tuning and plots.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::{LanguageModel, SampleConfig, Sampling};
use patch_scoping::{
    PatchMode, PatchPrompt, ScaleKind, SweepConfig, TUTORIAL_TEMPLATE, TuningConfig, decoder_row,
    residual_norm, sweep, tune_scales,
};
use sae_core::SaeSource;

use super::model_args::ModelArgs;

/// Replace or add, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Replace the residual at the placeholder (the tutorial).
    Replace,
    /// Add to it.
    Add,
}

/// What the scales mean, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleArg {
    /// The patched vector's L2 norm (the tutorial's scales).
    Absolute,
    /// Multiples of the model's typical residual norm entering the layer (measured on the
    /// prompt at the placeholder), turned into absolute scales.
    Relative,
    /// Per position, multiples of the norm of the residual being replaced (‖h‖·c).
    PerPosition,
}

/// Arguments of `patch-scope`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAE whose decoder row is patched (a directory or RELEASE/SAE_ID).
    #[arg(long, required_unless_present = "direction")]
    pub sae: Option<SaeSource>,
    /// The latent.
    #[arg(long, required_unless_present = "direction")]
    pub latent: Option<usize>,
    /// Patch this direction (.npy, d_model floats) instead of an SAE latent.
    #[arg(long, conflicts_with_all = ["sae", "latent"])]
    pub direction: Option<PathBuf>,
    /// blocks.LAYER.hook_resid_pre is patched.
    #[arg(long, default_value_t = 2)]
    pub layer: usize,
    /// Scales, comma-separated (their meaning: --scale-kind). Default: 64 points from 0 to
    /// --relative-max times the residual norm entering the layer.
    #[arg(long, value_delimiter = ',')]
    pub scales: Vec<f32>,
    /// What --scales mean.
    #[arg(long, value_enum, default_value = "absolute")]
    pub scale_kind: ScaleArg,
    /// Points of the default sweep.
    #[arg(long, default_value_t = 64)]
    pub points: usize,
    /// Largest default scale, as a multiple of the residual norm.
    #[arg(long, default_value_t = 2.0)]
    pub relative_max: f32,
    /// Replace or add.
    #[arg(long, value_enum, default_value = "replace")]
    pub mode: ModeArg,
    /// Greedy decoding instead of the tutorial's sampling (temperature 0.5, freq_penalty 2.0).
    #[arg(long)]
    pub greedy: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.5)]
    pub temperature: f32,
    /// Frequency penalty.
    #[arg(long, default_value_t = 2.0)]
    pub freq_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// New tokens per scale.
    #[arg(long, default_value_t = 50)]
    pub max_new_tokens: usize,
    /// Prompt template; `{X}` is the placeholder (default: the tutorial's Gemma-turn prompt).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Placeholder token id (default: the tokenizer's unknown token).
    #[arg(long)]
    pub placeholder_id: Option<u32>,
    /// Probe layer of the self-similarity (default: about 2/3 of the depth).
    #[arg(long)]
    pub probe_layer: Option<usize>,
    /// Skip the scale-tuning metrics.
    #[arg(long)]
    pub no_tuning: bool,
    /// Results JSON (one object per scale and the chosen scale); OUT.png and OUT.html beside it
    /// plot the tuning curves.
    #[arg(long)]
    pub out: PathBuf,
}

/// Python's `repr` of a string (the tutorial prints `{output!r}`).
fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn fmt_scale(s: f32) -> String {
    if s.fract() == 0.0 && s.abs() < 1e7 {
        format!("{:02}", s as i64)
    } else {
        format!("{s:.2}")
    }
}

/// Runs `patch-scope`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let dev = model.device();
    let direction = match (&args.direction, &args.sae, args.latent) {
        (Some(p), _, _) => sae_core::npy::read_f32(p)?.data,
        (None, Some(src), Some(latent)) => {
            let sae = src
                .load(&args.model.hub(), &dev)
                .with_context(|| format!("loading SAE {src}"))?;
            decoder_row(&sae, latent)?
        }
        _ => anyhow::bail!("give --sae and --latent, or --direction"),
    };
    anyhow::ensure!(
        direction.len() == model.d_model(),
        "the direction has {} values but the model's d_model is {}",
        direction.len(),
        model.d_model()
    );
    let template = args.prompt.as_deref().unwrap_or(TUTORIAL_TEMPLATE);
    let prompt = PatchPrompt::new(&tok, template, args.placeholder_id)?;
    let norm = residual_norm(&model, &prompt, args.layer)?;
    // Absolute scales actually patched, and what the user asked for.
    let (requested, kind, absolute): (Vec<f32>, ScaleKind, Vec<f32>) = if args.scales.is_empty() {
        let n = args.points.max(2);
        let rel: Vec<f32> = (0..n)
            .map(|i| args.relative_max * i as f32 / (n - 1) as f32)
            .collect();
        let abs = rel.iter().map(|r| r * norm).collect();
        (rel, ScaleKind::Absolute, abs)
    } else {
        match args.scale_kind {
            ScaleArg::Absolute => (
                args.scales.clone(),
                ScaleKind::Absolute,
                args.scales.clone(),
            ),
            ScaleArg::Relative => (
                args.scales.clone(),
                ScaleKind::Absolute,
                args.scales.iter().map(|r| r * norm).collect(),
            ),
            ScaleArg::PerPosition => (
                args.scales.clone(),
                ScaleKind::RelativeToResidual,
                args.scales.clone(),
            ),
        }
    };
    let scale_meaning = if args.scales.is_empty() {
        "relative (default sweep: multiples of the residual norm)"
    } else {
        match args.scale_kind {
            ScaleArg::Absolute => "absolute",
            ScaleArg::Relative => "relative",
            ScaleArg::PerPosition => "per-position relative",
        }
    };
    let mode = match args.mode {
        ModeArg::Replace => PatchMode::Replace,
        ModeArg::Add => PatchMode::Add,
    };
    let sampling = if args.greedy {
        Sampling::Greedy
    } else {
        Sampling::Sample(SampleConfig {
            temperature: args.temperature,
            freq_penalty: args.freq_penalty,
            seed: args.seed,
            ..SampleConfig::default()
        })
    };
    let cfg = SweepConfig {
        layer: args.layer,
        mode,
        kind,
        max_new_tokens: args.max_new_tokens,
        sampling,
        eos: None,
    };
    let t0 = std::time::Instant::now();
    let gens = sweep(&model, &tok, &prompt, &direction, &absolute, &cfg)?;
    let gen_s = t0.elapsed().as_secs_f64();
    let tuning = if args.no_tuning {
        None
    } else {
        let mut tc = TuningConfig::new(args.layer, model.n_layers());
        if let Some(p) = args.probe_layer {
            tc.probe_layer = p;
        }
        tc.mode = mode;
        tc.kind = kind;
        Some((
            tune_scales(&model, &prompt, &direction, &absolute, &tc)?,
            tc.probe_layer,
        ))
    };
    for (g, r) in gens.iter().zip(&requested) {
        println!("scale {} | {}", fmt_scale(*r), py_repr(&g.explanation));
    }
    let chosen = tuning.as_ref().map(|((_, c), _)| *c);
    if let Some(c) = chosen {
        println!(
            "chosen scale: {} ({scale_meaning}; absolute {:.1}, residual norm {:.1})",
            fmt_scale(requested[c]),
            absolute[c],
            norm
        );
    }
    let per_scale: Vec<serde_json::Value> = gens
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut o = serde_json::json!({
                "scale": requested[i],
                "absolute_scale": absolute[i],
                "generated_ids": g.generated_ids,
                "text": g.text,
                "explanation": g.explanation,
            });
            if let Some(((m, _), _)) = &tuning {
                o["self_similarity"] = serde_json::json!(m[i].self_similarity);
                o["entropy"] = serde_json::json!(m[i].entropy);
                o["entropy_change"] = serde_json::json!(m[i].entropy_change);
                o["cross_entropy"] = serde_json::json!(m[i].cross_entropy);
                o["score"] = serde_json::json!(m[i].score);
            }
            o
        })
        .collect();
    let out = serde_json::json!({
        "prompt": prompt.text,
        "placeholder_positions": prompt.positions,
        "layer": args.layer,
        "probe_layer": tuning.as_ref().map(|(_, p)| *p),
        "latent": args.latent,
        "sae": args.sae.as_ref().map(ToString::to_string),
        "mode": mode,
        "scale_kind": scale_meaning,
        "residual_norm": norm,
        "sampling": if args.greedy { "greedy".to_string() } else { format!("temperature {} freq_penalty {} seed {}", args.temperature, args.freq_penalty, args.seed) },
        "chosen_index": chosen,
        "chosen_scale": chosen.map(|c| requested[c]),
        "chosen_absolute_scale": chosen.map(|c| absolute[c]),
        "chosen_explanation": chosen.map(|c| gens[c].explanation.clone()),
        "generation_seconds": gen_s,
        "scales": per_scale,
    });
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    sae_core::atomic::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    if let Some(((m, c), _)) = &tuning {
        let title = match args.latent {
            Some(l) => format!(
                "patch scoping: latent {l}, layer {} — scale tuning",
                args.layer
            ),
            None => format!("patch scoping: layer {} — scale tuning", args.layer),
        };
        patch_scoping::plot::write_html(m, *c, &title, &args.out.with_extension("html"))?;
        patch_scoping::plot::write_png(m, *c, &args.out.with_extension("png"))?;
    }
    tracing::info!(out = %args.out.display(), seconds = gen_s, "patch scoping done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr() {
        assert_eq!(py_repr("a seed"), "'a seed'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(fmt_scale(0.0), "00");
        assert_eq!(fmt_scale(50.0), "50");
    }
}
