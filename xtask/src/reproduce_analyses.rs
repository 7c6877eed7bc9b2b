//! `cargo xtask reproduce-autointerp` and `cargo xtask reproduce-patch-scoping`: the tutorial's
//! autointerp and patch-scoping sections end to end, online as the tutorial (GPT-2 small with an
//! OpenAI-compatible API; gemma-2b-it with gemma-2b-res-jb) or offline (gemma-3-270m with an SAE
//! trained here, the offline explainer), each stage cached.

use std::path::{Path, PathBuf};

use anyhow::Context;

use activation_store::{HubDataset, TextSource};
use autointerp::{
    BaselineLatents, GenerationScoringConfig, Judging, NeighbourConfig, PipelineConfig,
    PipelineInputs, run_pipeline,
};
use gpt2_gemma_models::{AnyModel, AnyTokenizer, LanguageModel, ModelSource};
use patch_scoping::{Scales, StudyConfig, decoder_row, run_study};
use sae_core::SaeSource;
use sae_core::latents::parse_latents;

use crate::reproduce::{Mode, Profile, Stages, hub_reachable, s};

/// Arguments shared by both reproductions.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// Online, offline, or whichever works.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// The smaller profile: short for `--profile quick`.
    #[arg(long, conflicts_with = "profile")]
    quick: bool,
    /// How much runs (default: full). Autointerp: 500 000 tokens (full); quick 100 000 offline,
    /// 16 384 online (GPT-2 small on CPU); smoke 4096 tokens, two latents, the SAE's population only. Patch scoping:
    /// 50 new tokens (full), 20 (quick), 8 and only the relative sweep (smoke).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// The gemma-3-270m GGUF for the offline run (default: the PyPI package).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Offline: the SAE (default: the widest SAE of `cargo xtask reproduce-splitting`'s family
    /// under runs/reproduce-splitting/work/saes).
    #[arg(long)]
    sae: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Common {
    /// Online or not, the output directory (default `default`), and its stage record.
    fn setup(&self, default: &str) -> anyhow::Result<(bool, PathBuf, Stages)> {
        let out = self.out.clone().unwrap_or_else(|| PathBuf::from(default));
        let st = Stages::open(&out.join("work"))?;
        Ok((self.online(), out, st))
    }

    fn profile(&self) -> Profile {
        match (self.profile, self.quick) {
            (Some(p), _) => p,
            (None, true) => Profile::Quick,
            (None, false) => Profile::Full,
        }
    }

    fn online(&self) -> bool {
        match self.mode {
            Mode::Online => true,
            Mode::Offline => false,
            Mode::Auto => hub_reachable(),
        }
    }

    fn gguf(&self) -> anyhow::Result<PathBuf> {
        match &self.gguf {
            Some(g) => Ok(g.clone()),
            None => gpt2_gemma_models::offline::install_gemma3_270m_gguf()
                .context("finding the gemma-3-270m GGUF (pass --gguf FILE)"),
        }
    }

    fn offline_sae(&self) -> anyhow::Result<PathBuf> {
        if let Some(s) = &self.sae {
            return Ok(s.clone());
        }
        let dir = PathBuf::from("runs/reproduce-splitting/work/saes");
        let mut widest: Option<(usize, PathBuf)> = None;
        for e in std::fs::read_dir(&dir).with_context(|| {
            format!(
                "no --sae and no SAE family in {} (run `cargo xtask reproduce-splitting` first)",
                dir.display()
            )
        })? {
            let path = e?.path();
            let w = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("topk-"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(w) = w
                && path.join("cfg.json").exists()
                && widest.as_ref().is_none_or(|(b, _)| w > *b)
            {
                widest = Some((w, path));
            }
        }
        widest
            .map(|(_, p)| p)
            .context("no trained SAE found; pass --sae DIR")
    }
}

/// Arguments of `reproduce-autointerp`.
#[derive(Debug, clap::Args)]
pub(crate) struct AutointerpArgs {
    #[command(flatten)]
    common: Common,
    /// Corpus (JSONL) for the offline run, or for the online run instead of the hub dataset.
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    corpus: Option<PathBuf>,
    /// Latents (offline default 0-99; online, the tutorial's 9,11,15,16873).
    #[arg(long)]
    latents: Option<String>,
}

/// Arguments of `reproduce-patch-scoping`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScopingArgs {
    #[command(flatten)]
    common: Common,
    /// Latents to explain (offline default 15,35; online the tutorial's 607).
    #[arg(long, value_delimiter = ',')]
    latents: Vec<usize>,
}

/// The model, tokenizer and SAE a reproduction runs, loaded when the first stage that is not up
/// to date needs them.
struct Inputs {
    model: crate::reproduce::LazyModel,
    sae: SaeSource,
    loaded: std::cell::OnceCell<sae_core::Sae>,
}

impl Inputs {
    /// Online: the hub client from the environment; offline: never the network.
    fn new(online: bool, model: ModelSource, gguf: Option<PathBuf>, sae: SaeSource) -> Self {
        Self {
            model: crate::reproduce::LazyModel::new(online, model, gguf),
            sae,
            loaded: Default::default(),
        }
    }

    /// The model, its tokenizer and the SAE, loaded on first use.
    fn get(&self) -> anyhow::Result<(&AnyModel, &AnyTokenizer, &sae_core::Sae)> {
        let (model, tok) = self.model.get()?;
        if self.loaded.get().is_none() {
            let sae = self
                .sae
                .load(&self.model.hub, &model.device())
                .with_context(|| format!("loading SAE {}", self.sae))?;
            let _ = self.loaded.set(sae);
        }
        let sae = self.loaded.get().context("the SAE was just loaded")?;
        Ok((model, tok, sae))
    }
}

fn summary_of(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub(crate) fn autointerp(a: AutointerpArgs) -> anyhow::Result<()> {
    let (online, out, mut st) = a.common.setup("runs/reproduce-autointerp")?;
    let profile = a.common.profile();
    let tokens = match (profile, online) {
        (Profile::Full, _) => 500_000,
        (Profile::Quick, false) => 100_000,
        (Profile::Quick, true) => 16_384,
        (Profile::Smoke, _) => 4096,
    };
    // The tutorial: GPT-2 small, gpt2-small-res-jb layer 7, pile-10k, an OpenAI-compatible API;
    // offline: gemma-3-270m, the splitting study's widest SAE, the local corpus.
    let inputs = if online {
        Inputs::new(
            true,
            ModelSource::Gpt2Hub(s("gpt2")),
            None,
            SaeSource::Pretrained {
                release: s("gpt2-small-res-jb"),
                sae_id: s("blocks.7.hook_resid_pre"),
            },
        )
    } else {
        Inputs::new(
            false,
            ModelSource::Gemma3_270m,
            Some(a.common.gguf()?),
            SaeSource::Dir(a.common.offline_sae()?),
        )
    };
    let corpus = match (&a.corpus, online) {
        (Some(c), _) => TextSource::from_path(c, None)?,
        (None, true) => {
            let mut h = HubDataset::new("NeelNanda/pile-10k");
            h.offline = inputs.model.hub.is_offline();
            TextSource::Hub(h)
        }
        (None, false) => anyhow::bail!("the offline run needs --corpus or SAE_GEOMETRY_CORPUS"),
    };
    let identity =
        autointerp::RunIdentity::new(inputs.model.source.to_string(), inputs.sae.to_string());
    let latents: Vec<usize> = match &a.latents {
        Some(l) => parse_latents(l, usize::MAX)?.context("--latents must list latents")?,
        None => match (online, profile) {
            (true, Profile::Smoke) => vec![9, 11],
            (true, _) => vec![9, 11, 15, 16873],
            (false, Profile::Smoke) => vec![0, 1],
            (false, _) => (0..100).collect(),
        },
    };
    // Few random latents ever win a TopK slot: ask for more so as many fire as SAE latents.
    let random_latents = match (&a.latents, online) {
        (None, false) if profile != Profile::Smoke => (0..800).collect(),
        _ => latents.clone(),
    };
    // As many MLP neurons as latents: the same indices, folded into GPT-2 small's 3072 neurons
    // online (the tutorial's latent 16873 is neuron 1513).
    let neurons: Vec<usize> = if online {
        latents.iter().map(|l| l % 3072).collect()
    } else {
        latents.clone()
    };
    let mut rows = Vec::new();
    for (name, baseline, units) in [
        ("sae", BaselineLatents::Sae, latents.clone()),
        (
            "random-latents",
            BaselineLatents::RandomLatents,
            random_latents,
        ),
        ("neurons", BaselineLatents::Neurons, neurons),
    ] {
        // The smoke profile scores the SAE's latents only.
        if profile == Profile::Smoke && name != "sae" {
            continue;
        }
        let res = out.join(format!("{name}.jsonl"));
        let mut cfg = PipelineConfig::new(units);
        cfg.config.total_tokens = tokens;
        cfg.config.scoring = true;
        cfg.fuzzing = true;
        cfg.random_explanation_baseline = true;
        cfg.baseline = baseline;
        cfg.judging = Judging::from_env();
        if baseline == BaselineLatents::Sae {
            // The tutorial's bonus list on the SAE's own latents.
            cfg.generation = Some(GenerationScoringConfig {
                n_sequences: 10,
                counter_example_round: true,
            });
            cfg.neighbours = Some(NeighbourConfig {
                hard_negatives: true,
                ..NeighbourConfig::default()
            });
        }
        // The results file resumes by itself; the stage only skips a finished run.
        let summary = PathBuf::from(format!("{}.summary.json", res.display()));
        let fingerprint = [
            format!("{cfg:?}"),
            format!("{identity:?}"),
            corpus.identity(),
        ];
        st.run(
            &format!("autointerp-{name}"),
            &fingerprint,
            std::slice::from_ref(&summary),
            || {
                let (model, tok, sae) = inputs.get()?;
                let inputs = PipelineInputs {
                    model,
                    tokenizer: tok,
                    sae: sae.clone(),
                    corpus: corpus.clone(),
                    identity: identity.clone(),
                };
                run_pipeline(inputs, &cfg, &res)?;
                Ok(())
            },
        )?;
        rows.push((name, summary_of(&summary)));
    }
    let mut md = String::from(
        "| latents | fired | score | none floor | balanced accuracy | F1 | fuzzing | random-explanation score / balanced accuracy |\n|---|---|---|---|---|---|---|---|\n",
    );
    let f =
        |v: &serde_json::Value, k: &str| v[k].as_f64().map_or("–".into(), |x| format!("{x:.3}"));
    for (name, v) in &rows {
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
            v["ok"],
            f(v, "mean_score"),
            f(v, "mean_none_floor"),
            f(v, "mean_balanced_accuracy"),
            f(v, "mean_f1"),
            f(v, "mean_fuzzing_accuracy"),
            f(v, "random_explanation_mean_score"),
            f(v, "random_explanation_mean_balanced_accuracy"),
        ));
    }
    // Generation and neighbour scoring of the SAE's latents.
    if let Some((_, v)) = rows.iter().find(|r| r.0 == "sae") {
        let (g, n) = (&v["generation_scoring"], &v["neighbour_scoring"]);
        md.push_str(&format!(
            "\n| generation scoring: precision | latents with false positives | second round: precision before → after (improved / worse) |\n|---|---|---|\n| {} | {} of {} | {} → {} ({} / {}) |\n",
            f(g, "mean_precision"),
            g["latents_with_false_positives"],
            g["latents"],
            f(g, "second_round_mean_precision_before"),
            f(g, "second_round_mean_precision_after"),
            g["second_round_improved"],
            g["second_round_worse"],
        ));
        md.push_str(&format!(
            "\n| neighbour scoring: accuracy | balanced accuracy | none floor | with hard negatives: balanced accuracy (neighbours / random windows) |\n|---|---|---|---|\n| {} | {} | {} | {} / {} |\n",
            f(n, "mean_accuracy"),
            f(n, "mean_balanced_accuracy"),
            f(n, "mean_none_floor"),
            f(n, "contrastive_mean_balanced_accuracy"),
            f(n, "contrastive_standard_mean_balanced_accuracy"),
        ));
    }
    if profile == Profile::Smoke {
        sae_core::atomic::write(out.join("summary.md"), &md)?;
        println!("{md}");
        return Ok(());
    }
    // The three populations side by side on the same number of units.
    let compare = out.join("compare");
    let runs: Vec<(String, PathBuf)> = ["sae", "neurons", "random-latents"]
        .into_iter()
        .map(|name| (s(name), out.join(format!("{name}.jsonl"))))
        .collect();
    let fingerprint: Vec<String> = runs.iter().map(|r| format!("{r:?}")).collect();
    st.run(
        "autointerp-compare",
        &fingerprint,
        &[compare.join("compare.csv")],
        || Ok(autointerp::compare::compare_runs(&runs, None)?.save(&compare)?),
    )?;
    md.push_str(&format!(
        "\nPopulations side by side: {}\n",
        compare.join("compare.png").display()
    ));
    sae_core::atomic::write(out.join("summary.md"), &md)?;
    println!("{md}");
    Ok(())
}

pub(crate) fn patch_scoping(a: ScopingArgs) -> anyhow::Result<()> {
    let (online, out, mut st) = a.common.setup("runs/reproduce-patch-scoping")?;
    let profile = a.common.profile();
    let max_new = match profile {
        Profile::Full => 50,
        Profile::Quick => 20,
        Profile::Smoke => 8,
    };
    let (inputs, latents) = if online {
        // The tutorial: gemma-2b-it with gemma-2b-res-jb's layer-6 SAE, latent 607.
        (
            Inputs::new(
                true,
                ModelSource::GemmaHub(s("gemma-2b-it")),
                None,
                SaeSource::Pretrained {
                    release: s("gemma-2b-res-jb"),
                    sae_id: s("blocks.6.hook_resid_post"),
                },
            ),
            if a.latents.is_empty() {
                vec![607]
            } else {
                a.latents.clone()
            },
        )
    } else {
        (
            Inputs::new(
                false,
                ModelSource::Gemma3_270m,
                Some(a.common.gguf()?),
                SaeSource::Dir(a.common.offline_sae()?),
            ),
            if a.latents.is_empty() {
                vec![15, 35]
            } else {
                a.latents.clone()
            },
        )
    };
    for latent in latents {
        // The tutorial's absolute scales, then the sweep relative to the model's residual norm.
        for (tag, scales) in [
            (
                "tutorial-scales",
                Some(Scales::Absolute(vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0])),
            ),
            ("relative-sweep", None),
        ] {
            if profile == Profile::Smoke && scales.is_some() {
                continue;
            }
            let res = out.join(format!("latent-{latent}-{tag}.json"));
            let mut cfg = StudyConfig::new(2);
            cfg.max_new_tokens = max_new;
            if let Some(sc) = scales {
                cfg.scales = sc;
            }
            let fingerprint = [
                format!("{cfg:?}"),
                inputs.model.source.to_string(),
                inputs.sae.to_string(),
                s(latent),
            ];
            st.run(
                &format!("patch-scope-{latent}-{tag}"),
                &fingerprint,
                std::slice::from_ref(&res),
                || {
                    let (model, tok, sae) = inputs.get()?;
                    let direction = decoder_row(sae, latent)?;
                    let study = run_study(model, tok, &direction, &cfg)?;
                    let json = study.to_json(Some(latent), Some(&inputs.sae.to_string()));
                    study.save_as(&res, &format!("latent {latent}"), &json)?;
                    Ok(())
                },
            )?;
            let v = summary_of(&res);
            println!(
                "latent {latent}, {tag}: chosen scale {} (absolute {}), explanation {}",
                v["chosen_scale"], v["chosen_absolute_scale"], v["chosen_explanation"]
            );
        }
    }
    Ok(())
}
