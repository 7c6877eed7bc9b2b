//! Caching and editing activations at hook points (`run_with_cache`, `run_with_hooks`).

use std::collections::BTreeMap;

use sae_core::burn::tensor::Tensor;

use crate::error::ModelError;
use crate::hook::HookPoint;
use crate::splice::Splice;

/// An activation at a hook point: rank 3 (`[batch, pos, d]`) or rank 4 (per-head tensors and
/// attention patterns).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Activation {
    /// `[batch, pos, d]`.
    Rank3(Tensor<3>),
    /// `[batch, pos, n_heads, d_head]` or `[batch, n_heads, query, key]`.
    Rank4(Tensor<4>),
}

impl Activation {
    /// The rank-3 tensor, if this is one.
    pub fn rank3(&self) -> Option<&Tensor<3>> {
        match self {
            Activation::Rank3(t) => Some(t),
            Activation::Rank4(_) => None,
        }
    }

    /// The rank-4 tensor, if this is one.
    pub fn rank4(&self) -> Option<&Tensor<4>> {
        match self {
            Activation::Rank4(t) => Some(t),
            Activation::Rank3(_) => None,
        }
    }

    /// The shape.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Activation::Rank3(t) => t.dims().to_vec(),
            Activation::Rank4(t) => t.dims().to_vec(),
        }
    }
}

/// Activations recorded by `run_with_cache`, by hook point.
#[derive(Debug, Clone, Default)]
pub struct ActivationCache {
    map: BTreeMap<HookPoint, Activation>,
}

impl ActivationCache {
    /// The activation at a hook point.
    pub fn get(&self, point: HookPoint) -> Option<&Activation> {
        self.map.get(&point)
    }

    /// A rank-3 activation (residual stream, MLP, embeddings).
    pub fn get3(&self, point: HookPoint) -> Option<Tensor<3>> {
        self.map.get(&point).and_then(Activation::rank3).cloned()
    }

    /// A rank-4 activation (q, k, v, z, scores, pattern).
    pub fn get4(&self, point: HookPoint) -> Option<Tensor<4>> {
        self.map.get(&point).and_then(Activation::rank4).cloned()
    }

    /// Every recorded hook point, in order.
    pub fn points(&self) -> impl Iterator<Item = HookPoint> + '_ {
        self.map.keys().copied()
    }

    /// Number of recorded activations.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn insert(&mut self, point: HookPoint, act: Activation) {
        self.map.insert(point, act);
    }
}

/// Which pass of a generation a hook sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pass {
    /// The whole prompt (a plain forward, or generation's first pass).
    Prefill,
    /// One new position per sequence, the KV cache holding the earlier ones (`step` from 1).
    Decode {
        /// Which decode step.
        step: usize,
    },
}

/// Which positions' logits a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogitRows {
    /// Every position (`[batch, pos, vocab]`).
    All,
    /// Each sequence's last position (`[batch, 1, vocab]`): generation.
    Last,
}

impl LogitRows {
    /// `x` (`[batch, pos, d]`) narrowed to the positions whose logits are wanted.
    pub(crate) fn select(
        self,
        x: sae_core::burn::tensor::Tensor<3>,
    ) -> sae_core::burn::tensor::Tensor<3> {
        match self {
            LogitRows::All => x,
            LogitRows::Last => {
                let t = x.dims()[1];
                x.narrow(1, t - 1, 1)
            }
        }
    }
}

/// Each sequence's last-position logits, `[batch, vocab]`, from a forward pass's logits
/// (`[batch, pos, vocab]`, or `[batch, 1, vocab]` from [`LogitRows::Last`]); an error when the pass
/// stopped before the logits.
pub(crate) fn last_logits(
    logits: Option<sae_core::burn::tensor::Tensor<3>>,
) -> crate::error::Result<sae_core::burn::tensor::Tensor<2>> {
    let logits = logits.ok_or_else(|| {
        crate::error::ModelError::InvalidInput("the forward pass stopped early".into())
    })?;
    let [b, _, vocab] = logits.dims();
    Ok(LogitRows::Last.select(logits).reshape([b, vocab]))
}

/// A hook that reads and may replace an activation. Return the input unchanged to only read.
pub type HookFn<'a> = Box<dyn FnMut(HookPoint, Pass, Activation) -> Activation + 'a>;

/// Hooks, caching and spliced SAEs for one run.
#[derive(Default)]
pub struct Hooks<'a> {
    edits: Vec<(HookPoint, HookFn<'a>)>,
    cache_filter: Option<CacheFilter>,
    cache: ActivationCache,
    splices: Vec<Splice<'a>>,
    error: Option<ModelError>,
}

/// Which activations `run_with_cache` keeps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CacheFilter {
    /// Every hook point.
    All,
    /// Only these.
    Only(Vec<HookPoint>),
}

impl<'a> Hooks<'a> {
    /// No hooks, no caching.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook at a point (several may share a point; they run in insertion order).
    pub fn add(
        mut self,
        point: HookPoint,
        f: impl FnMut(HookPoint, Pass, Activation) -> Activation + 'a,
    ) -> Self {
        self.edits.push((point, Box::new(f)));
        self
    }

    /// Records activations passing the filter (after any edit at the same point).
    pub fn cache(mut self, filter: CacheFilter) -> Self {
        self.cache_filter = Some(filter);
        self
    }

    /// Splices an SAE in at its site (SAELens's `add_sae`): from there the run continues with
    /// the SAE's output ([`crate::splice`]). One SAE per site; a second at the same site makes
    /// the run fail.
    pub fn splice(mut self, splice: Splice<'a>) -> Self {
        if self.splices.iter().any(|s| s.site() == splice.site()) {
            self.error.get_or_insert(ModelError::InvalidInput(format!(
                "two SAEs spliced at {}",
                splice.site()
            )));
        } else {
            self.splices.push(splice);
        }
        self
    }

    /// The spliced SAEs.
    pub fn splices(&self) -> &[Splice<'a>] {
        &self.splices
    }

    pub(crate) fn splices_mut(&mut self) -> &mut [Splice<'a>] {
        &mut self.splices
    }

    /// The recorded activations.
    pub fn into_cache(self) -> ActivationCache {
        self.cache
    }

    /// The first misuse a hook made during the run (a wrong rank), or the first failure of a
    /// spliced SAE, if any.
    pub(crate) fn take_error(&mut self) -> Option<ModelError> {
        self.error.take()
    }

    fn fail(&mut self, e: ModelError) {
        self.error.get_or_insert(e);
    }

    fn splice_at(&self, point: HookPoint) -> Option<Splice<'a>> {
        self.splices.iter().find(|s| s.site() == point).cloned()
    }

    /// Whether anything listens at this point (so the caller may skip building the tensor).
    /// Whether a hook may edit the activation at this point (caching alone does not).
    pub(crate) fn edits_at(&self, point: HookPoint) -> bool {
        self.edits.iter().any(|(p, _)| *p == point)
    }

    pub(crate) fn wants(&self, point: HookPoint) -> bool {
        self.edits.iter().any(|(p, _)| *p == point)
            || self.splices.iter().any(|s| s.site() == point)
            || match &self.cache_filter {
                Some(CacheFilter::All) => true,
                Some(CacheFilter::Only(v)) => v.contains(&point),
                None => false,
            }
    }

    pub(crate) fn apply(
        &mut self,
        point: HookPoint,
        pass: Pass,
        mut act: Activation,
    ) -> Activation {
        for (p, f) in self.edits.iter_mut() {
            if *p == point {
                act = f(point, pass, act);
            }
        }
        let keep = match &self.cache_filter {
            Some(CacheFilter::All) => true,
            Some(CacheFilter::Only(v)) => v.contains(&point),
            None => false,
        };
        if keep {
            self.cache.insert(point, act.clone());
        }
        act
    }

    pub(crate) fn apply3(&mut self, point: HookPoint, pass: Pass, t: Tensor<3>) -> Tensor<3> {
        if !self.wants(point) {
            return t;
        }
        let t = match self.apply(point, pass, Activation::Rank3(t.clone())) {
            Activation::Rank3(t) => t,
            Activation::Rank4(_) => {
                self.fail(ModelError::InvalidInput(format!(
                    "the hook at {point} returned a rank-4 tensor for a rank-3 point"
                )));
                t
            }
        };
        match self.splice_at(point) {
            None => t,
            Some(splice) => match splice.forward(self, pass, t.clone()) {
                Ok(out) => out,
                Err(e) => {
                    self.fail(e);
                    t
                }
            },
        }
    }

    pub(crate) fn apply4(&mut self, point: HookPoint, pass: Pass, t: Tensor<4>) -> Tensor<4> {
        if !self.wants(point) {
            return t;
        }
        let t = match self.apply(point, pass, Activation::Rank4(t.clone())) {
            Activation::Rank4(t) => t,
            Activation::Rank3(_) => {
                self.fail(ModelError::InvalidInput(format!(
                    "the hook at {point} returned a rank-3 tensor for a rank-4 point"
                )));
                t
            }
        };
        match self.splice_at(point) {
            None => t,
            // Per-head points (q, k, v, z: `[batch, pos, head, d_head]`) enter the SAE with the
            // heads flattened, as SAELens's hook_z SAEs.
            Some(splice) => {
                let [b, p, h, dh] = t.dims();
                match splice.forward(self, pass, t.clone().reshape([b, p, h * dh])) {
                    Ok(out) => out.reshape([b, p, h, dh]),
                    Err(e) => {
                        self.fail(e);
                        t
                    }
                }
            }
        }
    }
}
