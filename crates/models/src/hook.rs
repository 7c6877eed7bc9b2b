//! TransformerLens hook points as a typed enum that round-trips to TransformerLens's names.

use std::fmt;
use std::str::FromStr;

/// A hook point: a named activation inside the model, as TransformerLens names it.
///
/// `Display` writes TransformerLens's name (`blocks.8.hook_resid_pre`); `FromStr` parses it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HookPoint {
    /// `hook_embed`: token embeddings, `[batch, pos, d_model]`.
    Embed,
    /// `hook_pos_embed`: positional embeddings, `[batch, pos, d_model]`.
    PosEmbed,
    /// `blocks.{L}.hook_resid_pre`: the residual stream entering block L.
    ResidPre(usize),
    /// `blocks.{L}.hook_resid_mid`: after attention, before the MLP.
    ResidMid(usize),
    /// `blocks.{L}.hook_resid_post`: leaving block L (before the final norm for the last block).
    ResidPost(usize),
    /// `blocks.{L}.attn.hook_q`: `[batch, pos, n_heads, d_head]`.
    AttnQ(usize),
    /// `blocks.{L}.attn.hook_k`: `[batch, pos, n_heads, d_head]`.
    AttnK(usize),
    /// `blocks.{L}.attn.hook_v`: `[batch, pos, n_heads, d_head]`.
    AttnV(usize),
    /// `blocks.{L}.attn.hook_attn_scores`: `[batch, n_heads, query_pos, key_pos]`, masked.
    AttnScores(usize),
    /// `blocks.{L}.attn.hook_pattern`: softmaxed scores, `[batch, n_heads, query_pos, key_pos]`.
    AttnPattern(usize),
    /// `blocks.{L}.attn.hook_z`: the heads' mixed values, `[batch, pos, n_heads, d_head]`.
    AttnZ(usize),
    /// `blocks.{L}.hook_attn_out`: attention output, `[batch, pos, d_model]`.
    AttnOut(usize),
    /// `blocks.{L}.mlp.hook_pre`: MLP pre-activation, `[batch, pos, d_mlp]`.
    MlpPre(usize),
    /// `blocks.{L}.mlp.hook_post`: MLP activation, `[batch, pos, d_mlp]`.
    MlpPost(usize),
    /// `blocks.{L}.hook_mlp_out`: MLP output, `[batch, pos, d_model]`.
    MlpOut(usize),
    /// `ln_final.hook_normalized`: the final norm's output before its weights (TransformerLens's
    /// convention), `[batch, pos, d_model]`.
    LnFinalNormalized,
    /// `{site}.hook_sae_{…}`: a hook point inside an SAE spliced in at `site`
    /// ([`crate::splice`]), as SAELens's `HookedSAETransformer` names them.
    Sae(SaeHookPoint),
}

/// The hook points inside a spliced SAE, in the order a forward pass meets them (SAELens's
/// `SAE.hook_sae_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SaeHook {
    /// `hook_sae_input`: the activation entering the SAE, `[batch, pos, d_in]`.
    Input,
    /// `hook_sae_acts_pre`: the latents' pre-activations, `[batch, pos, d_sae]`.
    ActsPre,
    /// `hook_sae_acts_post`: the latent activations, `[batch, pos, d_sae]`.
    ActsPost,
    /// `hook_sae_recons`: the reconstruction (before any output de-normalisation),
    /// `[batch, pos, d_in]`.
    Recons,
    /// `hook_sae_error`: input − reconstruction, computed without hooks (only with the error
    /// term), `[batch, pos, d_in]`.
    Error,
    /// `hook_sae_output`: what continues into the model, `[batch, pos, d_in]`.
    Output,
}

impl SaeHook {
    /// Every SAE hook, in execution order.
    pub const ALL: [SaeHook; 6] = [
        SaeHook::Input,
        SaeHook::ActsPre,
        SaeHook::ActsPost,
        SaeHook::Recons,
        SaeHook::Error,
        SaeHook::Output,
    ];

    /// SAELens's name (`hook_sae_acts_post`).
    pub fn name(self) -> &'static str {
        match self {
            SaeHook::Input => "hook_sae_input",
            SaeHook::ActsPre => "hook_sae_acts_pre",
            SaeHook::ActsPost => "hook_sae_acts_post",
            SaeHook::Recons => "hook_sae_recons",
            SaeHook::Error => "hook_sae_error",
            SaeHook::Output => "hook_sae_output",
        }
    }
}

/// A hook point inside an SAE spliced at a model hook point (`blocks.6.hook_resid_post`
/// `.hook_sae_acts_post`). Build it with [`HookPoint::sae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaeHookPoint {
    // The site is stored as (variant code, layer) so that `HookPoint` stays `Copy` and
    // non-recursive; `site()` rebuilds it.
    site_code: u8,
    site_layer: usize,
    hook: SaeHook,
}

impl SaeHookPoint {
    /// The model hook point the SAE is spliced at.
    pub fn site(self) -> HookPoint {
        HookPoint::from_code(self.site_code, self.site_layer)
    }

    /// Which of the SAE's hooks.
    pub fn hook(self) -> SaeHook {
        self.hook
    }
}

impl HookPoint {
    /// The block a per-layer hook belongs to.
    pub fn layer(self) -> Option<usize> {
        use HookPoint::*;
        match self {
            ResidPre(l) | ResidMid(l) | ResidPost(l) | AttnQ(l) | AttnK(l) | AttnV(l)
            | AttnScores(l) | AttnPattern(l) | AttnZ(l) | AttnOut(l) | MlpPre(l) | MlpPost(l)
            | MlpOut(l) => Some(l),
            Embed | PosEmbed | LnFinalNormalized => None,
            Sae(p) => p.site().layer(),
        }
    }

    /// The hook point `hook` inside an SAE spliced here:
    /// `HookPoint::ResidPost(6).sae(SaeHook::ActsPost)` is
    /// `blocks.6.hook_resid_post.hook_sae_acts_post`. On a point that is already inside an SAE
    /// it names another hook of the same SAE.
    pub fn sae(self, hook: SaeHook) -> HookPoint {
        let (site_code, site_layer) = match self {
            HookPoint::Sae(p) => (p.site_code, p.site_layer),
            site => site.code(),
        };
        HookPoint::Sae(SaeHookPoint {
            site_code,
            site_layer,
            hook,
        })
    }

    /// The model hook point an SAE hook point belongs to, or the point itself.
    pub fn site(self) -> HookPoint {
        match self {
            HookPoint::Sae(p) => p.site(),
            p => p,
        }
    }

    /// (variant code, layer) of a model hook point; SAE points are never passed here.
    fn code(self) -> (u8, usize) {
        use HookPoint::*;
        match self {
            Embed => (0, 0),
            PosEmbed => (1, 0),
            LnFinalNormalized => (2, 0),
            ResidPre(l) => (3, l),
            ResidMid(l) => (4, l),
            ResidPost(l) => (5, l),
            AttnQ(l) => (6, l),
            AttnK(l) => (7, l),
            AttnV(l) => (8, l),
            AttnScores(l) => (9, l),
            AttnPattern(l) => (10, l),
            AttnZ(l) => (11, l),
            AttnOut(l) => (12, l),
            MlpPre(l) => (13, l),
            MlpPost(l) => (14, l),
            MlpOut(l) => (15, l),
            Sae(p) => (p.site_code, p.site_layer),
        }
    }

    fn from_code(code: u8, l: usize) -> HookPoint {
        use HookPoint::*;
        match code {
            0 => Embed,
            1 => PosEmbed,
            2 => LnFinalNormalized,
            3 => ResidPre(l),
            4 => ResidMid(l),
            5 => ResidPost(l),
            6 => AttnQ(l),
            7 => AttnK(l),
            8 => AttnV(l),
            9 => AttnScores(l),
            10 => AttnPattern(l),
            11 => AttnZ(l),
            12 => AttnOut(l),
            13 => MlpPre(l),
            14 => MlpPost(l),
            _ => MlpOut(l),
        }
    }

    /// Every hook point of a model with `n_layers` blocks, in execution order.
    pub fn all(n_layers: usize) -> Vec<HookPoint> {
        use HookPoint::*;
        let mut v = vec![Embed, PosEmbed];
        for l in 0..n_layers {
            v.extend([
                ResidPre(l),
                AttnQ(l),
                AttnK(l),
                AttnV(l),
                AttnScores(l),
                AttnPattern(l),
                AttnZ(l),
                AttnOut(l),
                ResidMid(l),
                MlpPre(l),
                MlpPost(l),
                MlpOut(l),
                ResidPost(l),
            ]);
        }
        v.push(LnFinalNormalized);
        v
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HookPoint::*;
        match self {
            Embed => f.write_str("hook_embed"),
            PosEmbed => f.write_str("hook_pos_embed"),
            LnFinalNormalized => f.write_str("ln_final.hook_normalized"),
            ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            ResidMid(l) => write!(f, "blocks.{l}.hook_resid_mid"),
            ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
            AttnQ(l) => write!(f, "blocks.{l}.attn.hook_q"),
            AttnK(l) => write!(f, "blocks.{l}.attn.hook_k"),
            AttnV(l) => write!(f, "blocks.{l}.attn.hook_v"),
            AttnScores(l) => write!(f, "blocks.{l}.attn.hook_attn_scores"),
            AttnPattern(l) => write!(f, "blocks.{l}.attn.hook_pattern"),
            AttnZ(l) => write!(f, "blocks.{l}.attn.hook_z"),
            AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            MlpPre(l) => write!(f, "blocks.{l}.mlp.hook_pre"),
            MlpPost(l) => write!(f, "blocks.{l}.mlp.hook_post"),
            MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            Sae(p) => write!(f, "{}.{}", p.site(), p.hook.name()),
        }
    }
}

/// The error of parsing a hook name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown hook point `{0}` (e.g. blocks.8.hook_resid_pre, blocks.0.attn.hook_z, hook_embed, ln_final.hook_normalized)"
)]
pub struct UnknownHookPoint(pub String);

impl FromStr for HookPoint {
    type Err = UnknownHookPoint;
    fn from_str(s: &str) -> Result<Self, UnknownHookPoint> {
        use HookPoint::*;
        let err = || UnknownHookPoint(s.to_string());
        if let Some(i) = s.rfind(".hook_sae_") {
            let hook = SaeHook::ALL
                .into_iter()
                .find(|h| h.name() == &s[i + 1..])
                .ok_or_else(err)?;
            let site: HookPoint = s[..i].parse().map_err(|_| err())?;
            if matches!(site, Sae(_)) {
                return Err(err());
            }
            return Ok(site.sae(hook));
        }
        match s {
            "hook_embed" => return Ok(Embed),
            "hook_pos_embed" => return Ok(PosEmbed),
            "ln_final.hook_normalized" => return Ok(LnFinalNormalized),
            _ => {}
        }
        let rest = s.strip_prefix("blocks.").ok_or_else(err)?;
        let (layer, name) = rest.split_once('.').ok_or_else(err)?;
        let l: usize = layer.parse().map_err(|_| err())?;
        if layer != l.to_string() {
            return Err(err());
        }
        Ok(match name {
            "hook_resid_pre" => ResidPre(l),
            "hook_resid_mid" => ResidMid(l),
            "hook_resid_post" => ResidPost(l),
            "attn.hook_q" => AttnQ(l),
            "attn.hook_k" => AttnK(l),
            "attn.hook_v" => AttnV(l),
            "attn.hook_attn_scores" => AttnScores(l),
            "attn.hook_pattern" => AttnPattern(l),
            "attn.hook_z" => AttnZ(l),
            "hook_attn_out" => AttnOut(l),
            "mlp.hook_pre" => MlpPre(l),
            "mlp.hook_post" => MlpPost(l),
            "hook_mlp_out" => MlpOut(l),
            _ => return Err(err()),
        })
    }
}

impl serde::Serialize for HookPoint {
    /// As TransformerLens's name.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HookPoint {
    /// From TransformerLens's name.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: UnknownHookPoint| serde::de::Error::custom(e.to_string()))
    }
}
