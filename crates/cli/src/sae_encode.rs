//! `sae-geometry sae-encode`.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sae_core::npy::{NpyStreamWriter, read_f32_matrix};
use sae_core::{ComputeDevice, HubClient, SaeSource, device};

/// Arguments of `sae-encode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SAE: a directory in SAELens's layout (cfg.json + sae_weights.safetensors) or
    /// RELEASE/SAE_ID from the pretrained registry, any layout (e.g.
    /// gpt2-small-res-jb/blocks.8.hook_resid_pre,
    /// gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical). A temporal SAE
    /// (temporal-sae-*) reads the input's rows as one sequence, in order.
    #[arg(long)]
    pub sae: SaeSource,
    /// Input activations: float32 (or float64) .npy of shape [rows, d_in].
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the latent activations: float32 .npy of shape [rows, d_sae].
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the reconstruction: float32 .npy of shape [rows, d_in] (for a transcoder,
    /// its output at the other hook: [rows, d_out]).
    #[arg(long)]
    pub recon: Option<PathBuf>,
    /// Rows encoded at once (bounds memory: batch × d_sae floats).
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Never use the network (same as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

/// Runs `sae-encode`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be positive");
    let dev = args.device.burn_device()?;
    let hub = HubClient::from_env().offline(args.offline || HubClient::from_env().is_offline());
    if let SaeSource::Pretrained { release, sae_id } = &args.sae
        && sae_core::Registry::get()?
            .release(release)?
            .conversion_func
            .is_some_and(|c| !c.is_per_position())
    {
        return run_temporal(&args, release, sae_id, &hub, &dev);
    }
    let sae = args
        .sae
        .load(&hub, &dev)
        .with_context(|| format!("loading SAE {}", args.sae))?;
    let (d_in, d_sae) = (sae.d_in(), sae.d_sae());
    let x = read_f32_matrix(&args.input, Some(d_in))?;
    let rows = x.shape[0];
    tracing::info!(sae = %args.sae, architecture = %sae.config().architecture, d_in, d_sae, rows, "encoding");
    let mut feats_out = NpyStreamWriter::create(&args.out, &[rows, d_sae])?;
    let mut recon_out = match &args.recon {
        Some(p) => Some(NpyStreamWriter::create(
            p,
            &[rows, sae.config().output_width()],
        )?),
        None => None,
    };
    let bar = ProgressBar::new(rows as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if rows < 4 * args.batch_size {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for start in (0..rows).step_by(args.batch_size) {
        let n = args.batch_size.min(rows - start);
        let chunk = x.data[start * d_in..(start + n) * d_in].to_vec();
        let t = device::tensor_from_vec(chunk, [n, d_in], &dev);
        let (f, r) = sae.encode_decode(t)?;
        feats_out.push(&device::tensor_to_vec(f)?)?;
        if let Some(w) = recon_out.as_mut() {
            w.push(&device::tensor_to_vec(r)?)?;
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    feats_out.finish()?;
    if let Some(w) = recon_out {
        w.finish()?;
    }
    tracing::info!(out = %args.out.display(), "wrote latent activations");
    Ok(())
}

/// A temporal SAE reads the input's rows as one sequence (positions in order): features are its
/// novel codes, `--recon` its full reconstruction (novel + predicted codes decoded).
fn run_temporal(
    args: &Args,
    release: &str,
    sae_id: &str,
    hub: &HubClient,
    dev: &sae_core::burn::tensor::Device,
) -> anyhow::Result<()> {
    let sae = sae_core::temporal_from_pretrained(release, sae_id, hub, dev)
        .with_context(|| format!("loading temporal SAE {release}/{sae_id}"))?;
    let (d_in, d_sae) = (sae.config().d_in, sae.config().d_sae);
    let x = read_f32_matrix(&args.input, Some(d_in))?;
    let rows = x.shape[0];
    tracing::info!(
        release,
        sae_id,
        d_in,
        d_sae,
        rows,
        "encoding one sequence with a temporal SAE"
    );
    let t = device::tensor_from_vec(x.data, [1, rows, d_in], dev);
    let (novel, pred) = sae.encode_with_predictions(t)?;
    let mut out = NpyStreamWriter::create(&args.out, &[rows, d_sae])?;
    out.push(&device::tensor_to_vec(novel.clone())?)?;
    out.finish()?;
    if let Some(p) = &args.recon {
        let recon = sae.decode(novel + pred)?;
        let mut w = NpyStreamWriter::create(p, &[rows, d_in])?;
        w.push(&device::tensor_to_vec(recon)?)?;
        w.finish()?;
    }
    Ok(())
}
