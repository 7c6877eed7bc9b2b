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
