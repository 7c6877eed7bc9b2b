//! Meta-SAEs (Bussmann et al., "Showing SAE latents are not atomic using meta-SAEs", described in
//! the tutorial): a BatchTopK SAE trained on another SAE's decoder rows, which decomposes each
//! latent's direction into a few "meta-latents" shared across latents.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use sae_core::device::{tensor_from_vec, tensor_to_vec};
use sae_core::{Sae, SaeMetadata};

use crate::batches::BatchSource;
use crate::error::{Result, StoreError};
use crate::train::family::{FamilyOptions, train_family};
use crate::train::{StepMetrics, TrainArchitecture, TrainConfig, Trainer};

/// How to train a meta-SAE (the paper's defaults: k = 4, a dictionary about 1/20 of the SAE's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetaSaeConfig {
    /// Meta-latents.
    pub d_meta: usize,
    /// Mean active meta-latents per decoder row.
    pub k: f64,
    /// Optimisation steps.
    pub steps: usize,
    /// Decoder rows per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the initialisation and the row shuffling.
    pub seed: u64,
}

impl MetaSaeConfig {
    /// Defaults for an SAE with `d_sae` latents.
    pub fn for_sae(d_sae: usize) -> Self {
        Self {
            d_meta: (d_sae / 20).max(8),
            k: 4.0,
            steps: 2000,
            batch_size: 1024,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// Unit-normalised decoder rows, reshuffled every epoch.
struct DecoderRows {
    rows: Vec<f32>,
    d: usize,
    order: Vec<usize>,
    at: usize,
    batch: usize,
    rng: StdRng,
}

impl BatchSource for DecoderRows {
    fn d_in(&self) -> usize {
        self.d
    }

    fn next_batch(&mut self) -> Result<Option<Vec<f32>>> {
        let mut out = Vec::with_capacity(self.batch * self.d);
        for _ in 0..self.batch {
            if self.at == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.at = 0;
            }
            let r = self.order[self.at];
            self.at += 1;
            out.extend_from_slice(&self.rows[r * self.d..(r + 1) * self.d]);
        }
        Ok(Some(out))
    }
}

fn unit_rows(sae: &Sae) -> Result<(Vec<f32>, usize)> {
    let d = sae.config().d_in;
    let mut rows = tensor_to_vec(sae.w_dec())?;
    for r in rows.chunks_mut(d) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|v| *v /= n);
        }
    }
    Ok((rows, d))
}

/// Trains a BatchTopK meta-SAE on `sae`'s unit-normalised decoder rows; returns it (as a
/// JumpReLU SAE in SAELens's format) and its last metrics.
pub fn train_meta_sae(sae: &Sae, cfg: MetaSaeConfig, progress: bool) -> Result<(Sae, StepMetrics)> {
    let (rows, d) = unit_rows(sae)?;
    let n = rows.len() / d;
    if n == 0 {
        return Err(StoreError::invalid("SAE", "at least one latent", 0));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut source = DecoderRows {
        rows,
        d,
        order,
        at: 0,
        batch: cfg.batch_size.min(n).max(1),
        rng,
    };
    let arch = TrainArchitecture::BatchTopK {
        k: cfg.k,
        aux_coefficient: 1.0 / 32.0,
        threshold_lr: 0.01,
    };
    let mut tc = TrainConfig::new(d, cfg.d_meta, arch, cfg.steps);
    tc.lr = cfg.lr;
    tc.seed = cfg.seed;
    tc.dead_feature_window = 100;
    let mut trainers = vec![Trainer::new(tc, &sae.device())?];
    let opts = FamilyOptions {
        steps: cfg.steps,
        progress,
        ..FamilyOptions::default()
    };
    let last = train_family(&mut source, &mut trainers, &opts, |_| {})?;
    let meta = trainers[0].to_sae(SaeMetadata::default())?;
    let metrics = last
        .first()
        .copied()
        .ok_or_else(|| StoreError::invalid("steps", "at least 1", 0))?;
    Ok((meta, metrics))
}

/// One latent's decomposition into meta-latents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaDecomposition {
    /// The latent.
    pub latent: usize,
    /// `(meta-latent, activation)`, largest first.
    pub components: Vec<(usize, f32)>,
    /// Cosine between the latent's unit decoder row and the meta-SAE's reconstruction of it.
    pub reconstruction_cosine: f32,
}

/// Each latent's meta-latents: the meta-SAE's encoding of its unit decoder row.
pub fn decompose(sae: &Sae, meta: &Sae) -> Result<Vec<MetaDecomposition>> {
    let (rows, d) = unit_rows(sae)?;
    if meta.config().d_in != d {
        return Err(StoreError::Shape {
            what: "meta-SAE d_in vs SAE d_in".into(),
            expected: vec![d],
            found: vec![meta.config().d_in],
        });
    }
    let n = rows.len() / d;
    let mut out = Vec::with_capacity(n);
    const CHUNK: usize = 4096;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let x = tensor_from_vec(
            rows[start * d..end * d].to_vec(),
            [end - start, d],
            &meta.device(),
        );
        let (f, recon) = meta.encode_decode(x)?;
        let f = tensor_to_vec(f)?;
        let recon = tensor_to_vec(recon)?;
        let m = meta.d_sae();
        for i in 0..end - start {
            let mut comps: Vec<(usize, f32)> = f[i * m..(i + 1) * m]
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(j, v)| (j, *v))
                .collect();
            comps.sort_by(|a, b| b.1.total_cmp(&a.1));
            let row = &rows[(start + i) * d..(start + i + 1) * d];
            let rec = &recon[i * d..(i + 1) * d];
            let dot: f32 = row.iter().zip(rec).map(|(a, b)| a * b).sum();
            let nr = rec.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            out.push(MetaDecomposition {
                latent: start + i,
                components: comps,
                reconstruction_cosine: dot / nr,
            });
        }
    }
    Ok(out)
}
