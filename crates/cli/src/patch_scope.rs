//! `sae-geometry patch-scope`: the model explains a latent patched into its own residual stream,
//! over a sweep of scales, with scale tuning and plots.

use std::path::PathBuf;

use gpt2_gemma_models::{SampleConfig, Sampling};
use patch_scoping::{PatchMode, Scales, StudyConfig, decoder_row, run_study};
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

/// Runs `patch-scope`: the flags as a [`StudyConfig`], one [`run_study`] call, the outputs.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = StudyConfig::new(args.layer);
    cfg.scales = if args.scales.is_empty() {
        Scales::RelativeSweep {
            points: args.points,
            max: args.relative_max,
        }
    } else {
        match args.scale_kind {
            ScaleArg::Absolute => Scales::Absolute(args.scales.clone()),
            ScaleArg::Relative => Scales::Relative(args.scales.clone()),
            ScaleArg::PerPosition => Scales::PerPosition(args.scales.clone()),
        }
    };
    cfg.mode = match args.mode {
        ModeArg::Replace => PatchMode::Replace,
        ModeArg::Add => PatchMode::Add,
    };
    cfg.sampling = if args.greedy {
        Sampling::Greedy
    } else {
        Sampling::Sample(SampleConfig {
            temperature: args.temperature,
            freq_penalty: args.freq_penalty,
            seed: args.seed,
            ..SampleConfig::default()
        })
    };
    cfg.max_new_tokens = args.max_new_tokens;
    if let Some(t) = &args.prompt {
        cfg.template = t.clone();
    }
    cfg.placeholder_id = args.placeholder_id;
    cfg.tuning = (!args.no_tuning).then_some(args.probe_layer);

    let (model, tok) = args.model.load()?;
    let direction = match (&args.direction, &args.sae, args.latent) {
        (Some(p), _, _) => sae_core::npy::read_f32(p)?.data,
        (None, Some(src), Some(latent)) => decoder_row(&args.model.load_sae(src, &model)?, latent)?,
        _ => anyhow::bail!("give --sae and --latent, or --direction"),
    };
    let study = run_study(&model, &tok, &direction, &cfg)?;
    for (g, r) in study.generations.iter().zip(&study.requested) {
        println!("scale {} | {}", fmt_scale(*r), py_repr(&g.explanation));
    }
    if let Some(c) = study.chosen() {
        println!(
            "chosen scale: {} ({}; absolute {:.1}, residual norm {:.1})",
            fmt_scale(study.requested[c]),
            study.scale_meaning,
            study.absolute[c],
            study.residual_norm
        );
    }
    let sae = args.sae.as_ref().map(ToString::to_string);
    let json = study.to_json(args.latent, sae.as_deref());
    let what = args
        .latent
        .map(|l| format!("latent {l}"))
        .unwrap_or_default();
    study.save_as(&args.out, &what, &json)?;
    tracing::info!(out = %args.out.display(), seconds = study.generation_seconds, "patch scoping done");
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
