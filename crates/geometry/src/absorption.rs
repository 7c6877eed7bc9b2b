//! Feature absorption (Chanin et al., "A is for Absorption"), on the first-letter task, with
//! SAEBench's absorption metrics.
//!
//! Input: the residual-stream activation at each word token of a first-letter prompt (the CLI
//! `sae-geometry absorption` builds them from a model) and each word's first letter.
//!
//! 1. **Probes.** Per letter a one-vs-rest logistic-regression probe on the activations
//!    ([`fit_logistic`]: scikit-learn's `LogisticRegression` objective, solved by Newton's
//!    method; class-balanced by default), trained on a seeded train split.
//! 2. **Main latents (k-sparse probing).** Latents ranked by the class-balanced difference of
//!    their mean activation on the letter's words versus the others; for k = 1, 2, … a
//!    logistic probe on the top-k latents' activations; the main latents are the top k while
//!    the test F1 rises by more than `f1_jump` per step (SAEBench's `add_feature_splits`).
//!    SAEBench ranks by an L1-regularised probe's weights; the mean difference is the ranking of
//!    Gurnee et al.'s k-sparse probing and needs no training run.
//! 3. **Absorption** on the test words of the letter that the probe gets right (a positive
//!    probe logit). With p̂ the unit probe direction and each latent's probe projection
//!    `a_j · (W_dec[j] · p̂)` (SAEBench's `activation · cos` for unit-norm decoders; it is also
//!    the latent's ablation effect on the probe, which reads the same layer: removing latent j
//!    from the reconstruction moves the probe's logit by −a_j · W_dec\[j\] · w):
//!    - *full absorption*: no main latent fires, the top-projecting latent has
//!      cos(W_dec\[j\], p̂) ≥ `full_cos`, the activation's own projection x · p̂ is positive and the
//!      top latent carries at least `proportion` of it;
//!    - *absorption fraction*: the share of x · p̂ carried by up to `max_absorbing` non-main
//!      latents with cos ≥ `fraction_cos` and positive projection, when the main latents fall
//!      short of it (SAEBench's formula).
//!
//! Rates per letter: full absorptions / probe true positives, and the mean absorption fraction
//! over them; per SAE, the means over letters.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use sae_core::Sae;
use sae_core::device::{tensor_from_vec, tensor_to_vec};

use crate::error::{GeometryError, Result};

/// The 26 letters, in label order.
pub const LETTERS: [char; 26] = [
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z',
];

/// Sample weights of a logistic regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum ClassWeight {
    /// Every sample weighs 1.
    None,
    /// Each class weighs n / (2 · n_class) (scikit-learn's `"balanced"`).
    #[default]
    Balanced,
}

/// A logistic regression's settings: scikit-learn's objective
/// `C · Σ_i s_i · logloss_i + ½‖w‖²` (intercept not penalised).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticConfig {
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub c: f64,
    /// Sample weights.
    pub class_weight: ClassWeight,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Stop when the largest gradient component falls below this.
    pub tol: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self {
            c: 1.0,
            class_weight: ClassWeight::Balanced,
            max_iter: 50,
            tol: 1e-8,
        }
    }
}

/// A fitted binary logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Coefficients, one per input column.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
}

impl Logistic {
    /// The decision function (logit) of a row.
    pub fn logit(&self, row: &[f32]) -> f64 {
        self.bias
            + self
                .weights
                .iter()
                .zip(row)
                .map(|(w, x)| w * f64::from(*x))
                .sum::<f64>()
    }
}

fn check_rows(x: &[f32], n: usize, d: usize, what: &str) -> Result<()> {
    if x.len() != n * d {
        return Err(GeometryError::InvalidInput {
            what: what.to_string(),
            message: format!("expected [{n}, {d}] = {} values, found {}", n * d, x.len()),
        });
    }
    Ok(())
}

/// Fits a binary logistic regression on `x` (`[n, d]`, row-major) and labels `y` by Newton's
/// method. Xᵀ S X products run as burn matrix products.
///
/// # Errors
/// [`GeometryError::InvalidInput`] when `x` and `y` disagree, one class is absent or the Hessian
/// is not positive definite.
pub fn fit_logistic(
    x: &[f32],
    n: usize,
    d: usize,
    y: &[bool],
    cfg: &LogisticConfig,
) -> Result<Logistic> {
    check_rows(x, n, d, "logistic-regression inputs")?;
    if y.len() != n {
        return Err(GeometryError::InvalidInput {
            what: "logistic-regression labels".into(),
            message: format!("expected {n} labels (one per row), found {}", y.len()),
        });
    }
    let n_pos = y.iter().filter(|v| **v).count();
    if n_pos == 0 || n_pos == n {
        return Err(GeometryError::InvalidInput {
            what: "logistic-regression labels".into(),
            message: format!("both classes are needed ({n_pos} positives of {n})"),
        });
    }
    let s: Vec<f64> = y
        .iter()
        .map(|&v| match cfg.class_weight {
            ClassWeight::None => 1.0,
            ClassWeight::Balanced => n as f64 / (2.0 * if v { n_pos } else { n - n_pos } as f64),
        })
        .collect();
    let p = d + 1;
    let dev = sae_core::device::cpu();
    // Augmented design [x, 1].
    let mut xa = Vec::with_capacity(n * p);
    for row in x.chunks(d) {
        xa.extend_from_slice(row);
        xa.push(1.0);
    }
    let xt = tensor_from_vec(xa.clone(), [n, p], &dev);
    let objective = |theta: &[f64]| -> f64 {
        let mut j = 0.5 * theta[..d].iter().map(|w| w * w).sum::<f64>();
        for (i, r) in xa.chunks(p).enumerate() {
            let z: f64 = r.iter().zip(theta).map(|(a, t)| f64::from(*a) * t).sum();
            // log(1 + e^z) − y·z, computed stably.
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            j += cfg.c * s[i] * (softplus - if y[i] { z } else { 0.0 });
        }
        j
    };
    let mut theta = vec![0.0f64; p];
    let mut current = objective(&theta);
    for _ in 0..cfg.max_iter {
        let z: Vec<f64> = xa
            .chunks(p)
            .map(|r| r.iter().zip(&theta).map(|(a, t)| f64::from(*a) * t).sum())
            .collect();
        let prob: Vec<f64> = z.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
        let mut grad: Vec<f64> = theta.clone();
        grad[d] = 0.0;
        let mut curv = Vec::with_capacity(n);
        for i in 0..n {
            let r = cfg.c * s[i] * (prob[i] - if y[i] { 1.0 } else { 0.0 });
            for (g, a) in grad.iter_mut().zip(&xa[i * p..(i + 1) * p]) {
                *g += r * f64::from(*a);
            }
            curv.push((cfg.c * s[i] * prob[i] * (1.0 - prob[i])) as f32);
        }
        if grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) < cfg.tol {
            break;
        }
        let scaled = xt.clone() * tensor_from_vec(curv, [n, 1], &dev);
        let h = tensor_to_vec(xt.clone().transpose().matmul(scaled))?;
        let mut hess: Vec<f64> = h.iter().map(|v| f64::from(*v)).collect();
        for j in 0..d {
            hess[j * p + j] += 1.0;
        }
        // A tiny ridge on the intercept keeps separable data's Hessian invertible.
        hess[d * p + d] += 1e-10;
        let step = damped_solve(&hess, &grad, p).ok_or_else(|| GeometryError::InvalidInput {
            what: "logistic-regression inputs".into(),
            message: "the Hessian is not positive definite, even with a ridge of 1e-2 of its \
                      largest diagonal entry (non-finite inputs?)"
                .into(),
        })?;
        // Backtracking line search: Newton's full step overshoots on (nearly) separable data.
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..40 {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, b)| a - t * b).collect();
            let value = objective(&trial);
            if value <= current {
                theta = trial;
                improved = value < current;
                current = value;
                break;
            }
            t *= 0.5;
        }
        if !improved {
            break;
        }
    }
    Ok(Logistic {
        bias: theta[d],
        weights: theta[..d].to_vec(),
    })
}

/// The Newton step `h⁻¹ · g`, damped when needed: on (nearly) separable data the curvature of
/// every sample underflows in the f32 product Xᵀ S X, and rounding can leave the intercept's
/// pivot at or below zero; then a ridge of 1e-10, 1e-8, … 1e-2 times the largest diagonal entry
/// is added until the factorisation succeeds (a damped step; the line search keeps descent).
/// Undamped first, so well-conditioned fits are exact Newton steps.
fn damped_solve(h: &[f64], g: &[f64], p: usize) -> Option<Vec<f64>> {
    let scale = (0..p)
        .map(|j| h[j * p + j].abs())
        .fold(0.0f64, f64::max)
        .max(1.0);
    [0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2]
        .into_iter()
        .find_map(|ridge| {
            let mut a = h.to_vec();
            for j in 0..p {
                a[j * p + j] += ridge * scale;
            }
            cholesky_solve(&mut a, g, p)
        })
}

/// Solves `a · v = b` for symmetric positive-definite `a` (`[p, p]`, overwritten).
fn cholesky_solve(a: &mut [f64], b: &[f64], p: usize) -> Option<Vec<f64>> {
    for j in 0..p {
        let mut diag = a[j * p + j];
        for k in 0..j {
            diag -= a[j * p + k] * a[j * p + k];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let l = diag.sqrt();
        a[j * p + j] = l;
        for i in j + 1..p {
            let mut v = a[i * p + j];
            for k in 0..j {
                v -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = v / l;
        }
    }
    let mut z = b.to_vec();
    for i in 0..p {
        for k in 0..i {
            z[i] -= a[i * p + k] * z[k];
        }
        z[i] /= a[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            z[i] -= a[k * p + i] * z[k];
        }
        z[i] /= a[i * p + i];
    }
    Some(z)
}

/// Precision, recall and F1 of predictions (scikit-learn's, 0 where undefined).
pub fn precision_recall_f1(truth: &[bool], pred: &[bool]) -> (f64, f64, f64) {
    let tp = truth.iter().zip(pred).filter(|(t, p)| **t && **p).count() as f64;
    let fp = truth.iter().zip(pred).filter(|(t, p)| !**t && **p).count() as f64;
    let fneg = truth.iter().zip(pred).filter(|(t, p)| **t && !**p).count() as f64;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if 2.0 * tp + fp + fneg > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fneg)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// The absorption analysis's settings (SAEBench's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsorptionConfig {
    /// The probes' logistic regression.
    pub probe: LogisticConfig,
    /// Fraction of the words held out for testing.
    pub test_fraction: f64,
    /// Seed of the train/test split.
    pub seed: u64,
    /// Largest k tried for the k-sparse probes.
    pub max_k: usize,
    /// A step from k to k + 1 latents must raise the test F1 by more than this.
    pub f1_jump: f64,
    /// Full absorption: cos(W_dec, probe) of the top-projecting latent at least this.
    pub full_cos: f64,
    /// Absorption fraction: cos(W_dec, probe) of a potential absorber at least this.
    pub fraction_cos: f64,
    /// Absorbers must carry at least this share of the activation's probe projection.
    pub proportion: f64,
    /// Absorption fraction: at most this many absorbing latents.
    pub max_absorbing: usize,
    /// Letters with fewer training or test words than this are skipped.
    pub min_words: usize,
}

impl Default for AbsorptionConfig {
    fn default() -> Self {
        Self {
            probe: LogisticConfig::default(),
            test_fraction: 0.2,
            seed: 0,
            max_k: 5,
            f1_jump: 0.03,
            full_cos: 0.025,
            fraction_cos: 0.1,
            proportion: 0.4,
            max_absorbing: 3,
            min_words: 5,
        }
    }
}

/// Words' activations and first letters, split into train and test.
#[derive(Debug, Clone)]
pub struct LetterData {
    /// Activations `[n, d]`, row-major.
    pub x: Vec<f32>,
    /// d_model.
    pub d: usize,
    /// Each word's letter index (0 = 'a').
    pub labels: Vec<u8>,
    /// Row indices of the training words.
    pub train: Vec<usize>,
    /// Row indices of the test words.
    pub test: Vec<usize>,
}

impl LetterData {
    /// Splits `n = labels.len()` words with a seeded shuffle.
    ///
    /// # Errors
    /// [`GeometryError::InvalidInput`] when `x` is not `[labels.len(), d]` or a label is ≥ 26.
    pub fn new(x: Vec<f32>, d: usize, labels: Vec<u8>, cfg: &AbsorptionConfig) -> Result<Self> {
        let n = labels.len();
        check_rows(&x, n, d, "word activations")?;
        if let Some(l) = labels.iter().find(|l| **l >= 26) {
            return Err(GeometryError::InvalidInput {
                what: "word letters".into(),
                message: format!("letter index {l}, expected 0..26"),
            });
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(cfg.seed));
        let n_test = ((n as f64) * cfg.test_fraction).round() as usize;
        let test = idx[..n_test].to_vec();
        let train = idx[n_test..].to_vec();
        Ok(Self {
            x,
            d,
            labels,
            train,
            test,
        })
    }

    fn rows(&self, idx: &[usize]) -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| self.x[i * self.d..(i + 1) * self.d].iter().copied())
            .collect()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

/// The first-letter probe of one letter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LetterProbe {
    /// The letter.
    pub letter: char,
    /// The probe.
    pub probe: Logistic,
    /// Test precision, recall and F1.
    pub test_f1: f64,
    /// Test precision.
    pub test_precision: f64,
    /// Test recall.
    pub test_recall: f64,
}

/// Trains the first-letter probes on the training words (letters with too few words skipped).
///
/// # Errors
/// From [`fit_logistic`].
pub fn train_letter_probes(data: &LetterData, cfg: &AbsorptionConfig) -> Result<Vec<LetterProbe>> {
    let xtr = data.rows(&data.train);
    let mut out = Vec::new();
    for (li, &letter) in LETTERS.iter().enumerate() {
        let ytr: Vec<bool> = data
            .train
            .iter()
            .map(|&i| data.labels[i] as usize == li)
            .collect();
        let yte: Vec<bool> = data
            .test
            .iter()
            .map(|&i| data.labels[i] as usize == li)
            .collect();
        let (n_tr, n_te) = (
            ytr.iter().filter(|v| **v).count(),
            yte.iter().filter(|v| **v).count(),
        );
        if n_tr < cfg.min_words || n_te < cfg.min_words {
            continue;
        }
        let probe = fit_logistic(&xtr, data.train.len(), data.d, &ytr, &cfg.probe)?;
        let pred: Vec<bool> = data
            .test
            .iter()
            .map(|&i| probe.logit(data.row(i)) > 0.0)
            .collect();
        let (p, r, f1) = precision_recall_f1(&yte, &pred);
        out.push(LetterProbe {
            letter,
            probe,
            test_f1: f1,
            test_precision: p,
            test_recall: r,
        });
    }
    Ok(out)
}

/// One letter's absorption in one SAE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LetterAbsorption {
    /// The letter.
    pub letter: char,
    /// The probe's test F1.
    pub probe_f1: f64,
    /// The main latents (k-sparse probing).
    pub main_latents: Vec<usize>,
    /// cos(W_dec, probe) of each main latent.
    pub main_latents_cos: Vec<f64>,
    /// Test F1 of the k-sparse probe on the main latents.
    pub main_f1: f64,
    /// Test F1 of the k-sparse probes for k = 1..=max_k.
    pub k_sparse_f1: Vec<f64>,
    /// Test words of this letter the probe gets right.
    pub probe_true_positives: usize,
    /// …of which no main latent fires on.
    pub main_false_negatives: usize,
    /// …of which are fully absorbed.
    pub full_absorptions: usize,
    /// full_absorptions / probe_true_positives.
    pub full_absorption_rate: f64,
    /// Mean absorption fraction over the probe's true positives.
    pub mean_absorption_fraction: f64,
    /// The latents that absorbed most often (latent, count), most first (at most 5).
    pub top_absorbers: Vec<(usize, usize)>,
}

/// An SAE's absorption over the letters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbsorptionReport {
    /// Per letter.
    pub letters: Vec<LetterAbsorption>,
    /// Mean full-absorption rate over letters (SAEBench's `mean_full_absorption_score`).
    pub mean_full_absorption_rate: f64,
    /// Mean absorption fraction over letters (SAEBench's `mean_absorption_fraction_score`).
    pub mean_absorption_fraction: f64,
    /// Mean number of main latents per letter.
    pub mean_main_latents: f64,
}

/// Feature absorption of `sae` given the probes trained on the same data.
///
/// # Errors
/// The SAE's d_in differs from the activations' width; SAE failures.
pub fn absorption(
    sae: &Sae,
    data: &LetterData,
    probes: &[LetterProbe],
    cfg: &AbsorptionConfig,
) -> Result<AbsorptionReport> {
    if sae.d_in() != data.d {
        return Err(GeometryError::InvalidInput {
            what: "SAE".into(),
            message: format!(
                "d_in {} but the activations are {} wide",
                sae.d_in(),
                data.d
            ),
        });
    }
    let dev = sae.device();
    let n = data.labels.len();
    let d_sae = sae.d_sae();
    let f = tensor_to_vec(sae.encode(tensor_from_vec(data.x.clone(), [n, data.d], &dev))?)?;
    let w_dec = tensor_to_vec(sae.w_dec())?;
    let dec_norms: Vec<f64> = w_dec
        .chunks(data.d)
        .map(|r| {
            r.iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let acts = |i: usize| &f[i * d_sae..(i + 1) * d_sae];
    let mut letters = Vec::new();
    for lp in probes {
        let li = LETTERS.iter().position(|c| *c == lp.letter).unwrap_or(0);
        let is_l = |i: usize| data.labels[i] as usize == li;
        // Rank latents by the balanced mean difference on the training words.
        let (mut pos, mut neg) = (vec![0f64; d_sae], vec![0f64; d_sae]);
        let (mut np_, mut nn) = (0f64, 0f64);
        for &i in &data.train {
            let (acc, cnt) = if is_l(i) {
                (&mut pos, &mut np_)
            } else {
                (&mut neg, &mut nn)
            };
            *cnt += 1.0;
            for (a, v) in acc.iter_mut().zip(acts(i)) {
                *a += f64::from(*v);
            }
        }
        let mut order: Vec<usize> = (0..d_sae).collect();
        let diff: Vec<f64> = (0..d_sae).map(|j| pos[j] / np_ - neg[j] / nn).collect();
        order.sort_by(|a, b| diff[*b].total_cmp(&diff[*a]).then(a.cmp(b)));
        let ytr: Vec<bool> = data.train.iter().map(|&i| is_l(i)).collect();
        let yte: Vec<bool> = data.test.iter().map(|&i| is_l(i)).collect();
        let mut k_sparse_f1 = Vec::new();
        let (mut main, mut main_f1, mut prev) = (Vec::new(), 0.0, f64::NEG_INFINITY);
        let mut growing = true;
        for k in 1..=cfg.max_k.min(d_sae) {
            let feats = &order[..k];
            let f_ref = &f;
            let sub = |idx: &[usize]| -> Vec<f32> {
                idx.iter()
                    .flat_map(|&i| feats.iter().map(move |&j| f_ref[i * d_sae + j]))
                    .collect()
            };
            let f1 = match fit_logistic(&sub(&data.train), data.train.len(), k, &ytr, &cfg.probe) {
                Ok(pr) => {
                    let xte = sub(&data.test);
                    let pred: Vec<bool> = xte.chunks(k).map(|r| pr.logit(r) > 0.0).collect();
                    precision_recall_f1(&yte, &pred).2
                }
                // Latents that never fire on one class make the k-sparse probe degenerate.
                Err(_) => 0.0,
            };
            k_sparse_f1.push(f1);
            if growing && f1 > prev + cfg.f1_jump {
                prev = f1;
                main = feats.to_vec();
                main_f1 = f1;
            } else {
                growing = false;
            }
        }
        let norm = lp
            .probe
            .weights
            .iter()
            .map(|w| w * w)
            .sum::<f64>()
            .sqrt()
            .max(1e-30);
        let phat: Vec<f64> = lp.probe.weights.iter().map(|w| w / norm).collect();
        let dec_dot: Vec<f64> = w_dec
            .chunks(data.d)
            .map(|r| r.iter().zip(&phat).map(|(a, b)| f64::from(*a) * b).sum())
            .collect();
        let dec_cos: Vec<f64> = dec_dot
            .iter()
            .zip(&dec_norms)
            .map(|(dot, n)| if *n > 0.0 { dot / n } else { 0.0 })
            .collect();
        let (mut tp, mut fneg, mut full, mut frac_sum) = (0usize, 0usize, 0usize, 0.0f64);
        let mut absorbers: std::collections::BTreeMap<usize, usize> = Default::default();
        for &i in data.test.iter().filter(|&&i| is_l(i)) {
            if lp.probe.logit(data.row(i)) <= 0.0 {
                continue;
            }
            tp += 1;
            let a = acts(i);
            let x_proj: f64 = data
                .row(i)
                .iter()
                .zip(&phat)
                .map(|(x, p)| f64::from(*x) * p)
                .sum();
            let proj = |j: usize| f64::from(a[j]) * dec_dot[j];
            let main_fires = main.iter().any(|&j| a[j] > 1e-8);
            let main_proj: f64 = main.iter().map(|&j| proj(j)).sum();
            if !main_fires {
                fneg += 1;
            }
            // Full absorption: the top-projecting latent.
            let top = (0..d_sae)
                .filter(|&j| a[j] != 0.0)
                .max_by(|&p, &q| proj(p).total_cmp(&proj(q)).then(q.cmp(&p)));
            if let Some(j) = top
                && !main_fires
                && dec_cos[j] >= cfg.full_cos
                && x_proj >= 0.0
                && proj(j) / x_proj >= cfg.proportion
            {
                full += 1;
                *absorbers.entry(j).or_default() += 1;
            }
            // Absorption fraction.
            let mut cands: Vec<f64> = (0..d_sae)
                .filter(|j| a[*j] != 0.0 && !main.contains(j) && dec_cos[*j] >= cfg.fraction_cos)
                .map(proj)
                .filter(|p| *p > 0.0)
                .collect();
            cands.sort_by(|a, b| b.total_cmp(a));
            let absorbed: f64 = cands.iter().take(cfg.max_absorbing).sum();
            let fraction = if main_proj >= x_proj || absorbed / x_proj < cfg.proportion {
                0.0
            } else if main_proj <= 0.0 {
                1.0
            } else {
                let part = absorbed.min(x_proj - main_proj);
                (part / (part + main_proj)).clamp(0.0, 1.0)
            };
            frac_sum += fraction;
        }
        let mut top_absorbers: Vec<(usize, usize)> = absorbers.into_iter().collect();
        top_absorbers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top_absorbers.truncate(5);
        let denom = tp.max(1) as f64;
        letters.push(LetterAbsorption {
            letter: lp.letter,
            probe_f1: lp.test_f1,
            main_latents_cos: main.iter().map(|&j| dec_cos[j]).collect(),
            main_latents: main,
            main_f1,
            k_sparse_f1,
            probe_true_positives: tp,
            main_false_negatives: fneg,
            full_absorptions: full,
            full_absorption_rate: full as f64 / denom,
            mean_absorption_fraction: frac_sum / denom,
            top_absorbers,
        });
    }
    let m = letters.len().max(1) as f64;
    Ok(AbsorptionReport {
        mean_full_absorption_rate: letters.iter().map(|l| l.full_absorption_rate).sum::<f64>() / m,
        mean_absorption_fraction: letters
            .iter()
            .map(|l| l.mean_absorption_fraction)
            .sum::<f64>()
            / m,
        mean_main_latents: letters
            .iter()
            .map(|l| l.main_latents.len() as f64)
            .sum::<f64>()
            / m,
        letters,
    })
}

/// Absorption of several SAEs (e.g. a family of widths) on one probing dataset.
#[derive(Debug, Clone)]
pub struct AbsorptionStudy {
    /// The settings.
    pub config: AbsorptionConfig,
    /// Words, d_model, letters and the train/test split.
    pub data: LetterData,
    /// The first-letter probes.
    pub probes: Vec<LetterProbe>,
    /// Mean test F1 of the probes.
    pub mean_probe_f1: f64,
    /// Each SAE's name, width and report, in the order given.
    pub saes: Vec<(String, usize, AbsorptionReport)>,
}

/// The letter index (0 = 'a') of a word's first letter; `None` for a non-ASCII letter.
pub fn letter_index(c: char) -> Option<u8> {
    LETTERS
        .iter()
        .position(|l| *l == c.to_ascii_lowercase())
        .map(|i| i as u8)
}

/// Trains the first-letter probes on `x` (`[first_letters.len(), d]`, the residuals at each
/// word) and measures each SAE's absorption against them.
///
/// # Errors
/// A first letter outside a–z, `x` of the wrong size, an SAE of another width than `d`.
pub fn absorption_study(
    x: Vec<f32>,
    d: usize,
    first_letters: &[char],
    saes: &[(String, &Sae)],
    cfg: &AbsorptionConfig,
) -> Result<AbsorptionStudy> {
    let labels = first_letters
        .iter()
        .map(|&c| {
            letter_index(c).ok_or_else(|| GeometryError::InvalidInput {
                what: "word letters".into(),
                message: format!("first letter {c:?}, expected a–z"),
            })
        })
        .collect::<Result<Vec<u8>>>()?;
    let data = LetterData::new(x, d, labels, cfg)?;
    let probes = train_letter_probes(&data, cfg)?;
    let mean_probe_f1 = probes.iter().map(|p| p.test_f1).sum::<f64>() / probes.len().max(1) as f64;
    let mut out = Vec::new();
    for (name, sae) in saes {
        let r = absorption(sae, &data, &probes, cfg).map_err(|e| match e {
            GeometryError::InvalidInput { what, message } => GeometryError::InvalidInput {
                what: format!("{what} {name}"),
                message,
            },
            other => other,
        })?;
        out.push((name.clone(), sae.d_sae(), r));
    }
    Ok(AbsorptionStudy {
        config: cfg.clone(),
        data,
        probes,
        mean_probe_f1,
        saes: out,
    })
}

impl AbsorptionStudy {
    /// A row per SAE × letter (`absorption.csv`).
    pub fn csv(&self) -> String {
        use std::fmt::Write as _;
        let mut csv = String::from(
            "sae,d_sae,letter,probe_f1,main_latents,main_f1,probe_true_positives,main_false_negatives,full_absorptions,full_absorption_rate,mean_absorption_fraction,top_absorbers\n",
        );
        for (name, d_sae, r) in &self.saes {
            for l in &r.letters {
                let main: Vec<String> = l.main_latents.iter().map(ToString::to_string).collect();
                let top: Vec<String> = l
                    .top_absorbers
                    .iter()
                    .map(|(j, c)| format!("{j}:{c}"))
                    .collect();
                let _ = writeln!(
                    csv,
                    "\"{}\",{d_sae},{},{},{},{},{},{},{},{},{},{}",
                    name.replace('"', "\"\""),
                    l.letter,
                    l.probe_f1,
                    main.join(" "),
                    l.main_f1,
                    l.probe_true_positives,
                    l.main_false_negatives,
                    l.full_absorptions,
                    l.full_absorption_rate,
                    l.mean_absorption_fraction,
                    top.join(" "),
                );
            }
        }
        csv
    }

    /// The per-SAE means and letters, with the configuration (`summary.json`); `model` and
    /// `hook` name where the residuals were read.
    pub fn summary(&self, model: &str, hook: &str) -> serde_json::Value {
        let saes: Vec<serde_json::Value> = self
            .saes
            .iter()
            .map(|(name, d_sae, r)| {
                serde_json::json!({
                    "sae": name,
                    "d_sae": d_sae,
                    "mean_full_absorption_rate": r.mean_full_absorption_rate,
                    "mean_absorption_fraction": r.mean_absorption_fraction,
                    "mean_main_latents": r.mean_main_latents,
                    "letters": r.letters,
                })
            })
            .collect();
        serde_json::json!({
            "model": model,
            "hook": hook,
            "n_words": self.data.labels.len(),
            "n_test": self.data.test.len(),
            "mean_probe_f1": self.mean_probe_f1,
            "config": self.config,
            "saes": saes,
        })
    }

    /// Writes `dir`/absorption.csv and `dir`/summary.json ([`AbsorptionStudy::summary`]).
    pub fn save(&self, dir: &std::path::Path, model: &str, hook: &str) -> Result<()> {
        let io = |path: std::path::PathBuf, e: &dyn std::fmt::Display| GeometryError::Io {
            path,
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir.to_path_buf(), &e))?;
        sae_core::atomic::write(dir.join("absorption.csv"), self.csv())?;
        let summary = serde_json::to_string_pretty(&self.summary(model, hook))
            .map_err(|e| io(dir.join("summary.json"), &e))?;
        sae_core::atomic::write(dir.join("summary.json"), summary)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_singular_hessian_gets_a_damped_step_not_an_error() {
        // Positive semi-definite with a rounding-negative pivot, as separable data leaves the
        // intercept's: the plain factorisation refuses it, the damped one solves it.
        let h = [1.0, 1.0, 1.0, 1.0 - 1e-12];
        assert!(cholesky_solve(&mut h.to_vec(), &[1.0, 1.0], 2).is_none());
        let step = damped_solve(&h, &[1.0, 1.0], 2).unwrap();
        assert!(step.iter().all(|v| v.is_finite()));
        // A positive-definite Hessian gets the exact Newton step.
        let h = [4.0, 1.0, 1.0, 3.0];
        let step = damped_solve(&h, &[1.0, 2.0], 2).unwrap();
        assert!((4.0 * step[0] + step[1] - 1.0).abs() < 1e-12);
        assert!((step[0] + 3.0 * step[1] - 2.0).abs() < 1e-12);
        // Non-finite entries stay an error.
        assert!(damped_solve(&[f64::NAN, 0.0, 0.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn separable_words_fit_without_error() {
        // Two far-apart clusters, labels perfectly separable: the curvature of every sample
        // underflows after a few steps; the fit must still end with a separating probe.
        let (n, d) = (400, 8);
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let pos = i % 7 == 0;
            for j in 0..d {
                let jitter = ((i * 31 + j * 17) % 13) as f32 / 13.0;
                x.push(if pos { 50.0 + jitter } else { -50.0 - jitter } * (1.0 + j as f32));
            }
            y.push(pos);
        }
        let cfg = LogisticConfig {
            c: 1e6,
            ..LogisticConfig::default()
        };
        let m = fit_logistic(&x, n, d, &y, &cfg).unwrap();
        for (row, &label) in x.chunks(d).zip(&y) {
            assert_eq!(m.logit(row) > 0.0, label);
        }
    }
}
