//! SAEs spliced into the forward pass, as SAELens's `HookedSAETransformer` attaches them.
//!
//! A [`Splice`] puts an [`Sae`] at a hook point (its *site*): from there on the model continues
//! with the SAE's reconstruction — or, with [`SpliceOutput::ReconstructionPlusError`], with the
//! reconstruction plus the error term `x − decode(encode(x))` computed without hooks, so that the
//! model is unchanged until a hook edits a latent. The SAE's own hook points
//! (`{site}.hook_sae_input`, `.hook_sae_acts_pre`, `.hook_sae_acts_post`, `.hook_sae_recons`,
//! `.hook_sae_error`, `.hook_sae_output`; [`HookPoint::sae`]) take hooks and caching like any
//! other point, so a latent can be read, ablated or steered.
//!
//! Order at the site: hooks added at the site itself and its cache entry see the activation
//! *entering* the SAE (the same tensor as `hook_sae_input` before that hook's edits); then the
//! SAE runs with its hooks; its output replaces the activation. (SAELens replaces the site's hook
//! point by the SAE, so there the site name is no longer cached at all.)

use sae_core::Sae;
use sae_core::burn::tensor::{Bool, Tensor};

use crate::error::{ModelError, Result};
use crate::hook::{HookPoint, SaeHook};
use crate::hooks::{Hooks, Pass};

/// What a spliced SAE passes on to the rest of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpliceOutput {
    /// The reconstruction `decode(encode(x))` (SAELens's default).
    #[default]
    Reconstruction,
    /// The reconstruction plus `x − decode(encode(x))` computed without hooks (SAELens's
    /// `use_error_term=True`): the model's outputs are unchanged unless a hook edits the SAE's
    /// internals, and then they change by exactly the edit's effect on the reconstruction.
    ReconstructionPlusError,
}

/// An SAE attached at a hook point for a run.
#[derive(Debug, Clone)]
pub struct Splice<'a> {
    sae: &'a Sae,
    site: HookPoint,
    output: SpliceOutput,
    exclude_tokens: Vec<u32>,
    bypass: Option<Tensor<2, Bool>>,
}

impl<'a> Splice<'a> {
    /// The SAE at the hook its config names (`metadata.hook_name`).
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] when the config names no hook, or one this crate does not
    /// know, or one an SAE cannot sit at.
    pub fn new(sae: &'a Sae) -> Result<Self> {
        let name = sae.config().hook_name().ok_or_else(|| {
            ModelError::InvalidInput(
                "the SAE's cfg.json names no hook_name: give the site with Splice::at".into(),
            )
        })?;
        let site: HookPoint = name
            .parse()
            .map_err(|e: crate::hook::UnknownHookPoint| ModelError::InvalidInput(e.to_string()))?;
        Self::at(sae, site)
    }

    /// The SAE at `site`.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for sites an SAE cannot sit at: a point inside another SAE,
    /// attention scores and patterns (`[batch, head, query, key]`).
    pub fn at(sae: &'a Sae, site: HookPoint) -> Result<Self> {
        if matches!(
            site,
            HookPoint::Sae(_) | HookPoint::AttnScores(_) | HookPoint::AttnPattern(_)
        ) {
            return Err(ModelError::InvalidInput(format!(
                "an SAE cannot be spliced at {site} (residual, MLP, attention-output and per-head \
                 q/k/v/z points can hold one)"
            )));
        }
        Ok(Self {
            sae,
            site,
            output: SpliceOutput::default(),
            exclude_tokens: Vec::new(),
            bypass: None,
        })
    }

    /// Sets what the SAE passes on.
    pub fn output(mut self, output: SpliceOutput) -> Self {
        self.output = output;
        self
    }

    /// Bypasses the SAE at the positions holding any of these tokens (SAELens's
    /// `exclude_special_tokens`, usually BOS, EOS and pad): the original activation flows on
    /// there and the error term is zero. Applied by [`crate::LanguageModel::run_with_saes`] and
    /// its siblings, which see the tokens; for generation, whose decode passes see one position,
    /// prefer [`Splice::bypass_at`] on the prefill.
    pub fn exclude_tokens(mut self, tokens: impl IntoIterator<Item = u32>) -> Self {
        self.exclude_tokens = tokens.into_iter().collect();
        self
    }

    /// Bypasses the SAE where `mask` (`[batch, pos]`) is true (SAELens's `set_token_mask`). A
    /// pass of another shape is an error.
    pub fn bypass_at(mut self, mask: Tensor<2, Bool>) -> Self {
        self.bypass = Some(mask);
        self
    }

    /// The tokens at which the SAE is bypassed.
    pub fn excluded_tokens(&self) -> &[u32] {
        &self.exclude_tokens
    }

    /// The hook point the SAE sits at.
    pub fn site(&self) -> HookPoint {
        self.site
    }

    /// The SAE.
    pub fn sae(&self) -> &'a Sae {
        self.sae
    }

    /// Sets the bypass mask from the run's tokens when tokens are excluded.
    pub(crate) fn resolve_bypass(&mut self, tokens: &Tensor<2, sae_core::burn::tensor::Int>) {
        if self.exclude_tokens.is_empty() {
            return;
        }
        let mut mask = tokens.clone().equal_elem(i64::from(self.exclude_tokens[0]));
        for &t in &self.exclude_tokens[1..] {
            mask = mask.bool_or(tokens.clone().equal_elem(i64::from(t)));
        }
        self.bypass = Some(mask);
    }

    /// Runs the SAE on the activation `x` (`[batch, pos, d_in]`) arriving at the site, with
    /// `hooks` at the SAE's internal points.
    pub(crate) fn forward(
        &self,
        hooks: &mut Hooks<'a>,
        pass: Pass,
        x: Tensor<3>,
    ) -> Result<Tensor<3>> {
        let sae = self.sae;
        let [b, p, d] = x.dims();
        let (n, d_sae) = (b * p, sae.d_sae());
        if d != sae.d_in() {
            return Err(ModelError::ShapeMismatch {
                path: "<input>".into(),
                tensor: format!("activation at {} (the SAE's input)", self.site),
                expected: vec![b, p, sae.d_in()],
                found: vec![b, p, d],
            });
        }
        let at = |h: SaeHook| self.site.sae(h);
        // Without hooks that may edit the SAE's internals, the hooked pass is the clean one and
        // the error term needs no second encode.
        let edited = [
            SaeHook::Input,
            SaeHook::ActsPre,
            SaeHook::ActsPost,
            SaeHook::Recons,
        ]
        .into_iter()
        .any(|h| hooks.edits_at(at(h)));
        let x_in = hooks.apply3(at(SaeHook::Input), pass, x.clone());
        let (sae_in, state) = sae.process_input(x_in.reshape([n, d]))?;
        let pre = sae.pre_activation(sae_in.clone())?;
        let pre = hooks
            .apply3(at(SaeHook::ActsPre), pass, pre.reshape([b, p, d_sae]))
            .reshape([n, d_sae]);
        let post = sae.activate(pre, sae_in);
        let post = hooks
            .apply3(at(SaeHook::ActsPost), pass, post.reshape([b, p, d_sae]))
            .reshape([n, d_sae]);
        let recons = sae.decode_affine(post)?;
        let recons = hooks
            .apply3(at(SaeHook::Recons), pass, recons.reshape([b, p, d]))
            .reshape([n, d]);
        let mut out = sae.denormalize(recons, &state).reshape([b, p, d]);
        let bypass = match &self.bypass {
            None => None,
            Some(mask) => {
                let [mb, mp] = mask.dims();
                if [mb, mp] != [b, p] {
                    return Err(ModelError::ShapeMismatch {
                        path: "<input>".into(),
                        tensor: format!("bypass mask of the SAE at {}", self.site),
                        expected: vec![b, p],
                        found: vec![mb, mp],
                    });
                }
                Some(mask.clone().unsqueeze_dim::<3>(2).expand([b, p, d]))
            }
        };
        if self.output == SpliceOutput::ReconstructionPlusError {
            let clean = if edited {
                sae.forward(x.clone().reshape([n, d]))?.reshape([b, p, d])
            } else {
                out.clone()
            };
            let mut error = x.clone() - clean;
            if let Some(m) = &bypass {
                error = error.mask_fill(m.clone(), 0.0);
            }
            out = out + hooks.apply3(at(SaeHook::Error), pass, error);
        }
        if let Some(m) = bypass {
            out = out.mask_where(m, x);
        }
        Ok(hooks.apply3(at(SaeHook::Output), pass, out))
    }
}
