//! SAELens's pretrained SAE registry, as data: `data/pretrained_saes.yaml` (generated from the
//! copy inside the sae-lens wheel by `data/gen_registry.py`), parsed once into types. Every
//! release is listed, those SAELens converts from third-party layouts with their
//! [`Conversion`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::convert::Conversion;
use crate::error::{Result, SaeError};

const REGISTRY_YAML: &str = include_str!("../data/pretrained_saes.yaml");

/// One SAE of a release.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PretrainedSae {
    /// The id used with `from_pretrained`, e.g. `blocks.8.hook_resid_pre_768`.
    pub id: String,
    /// The folder inside the hub repository.
    pub path: String,
    /// The Neuronpedia id, e.g. `gpt2-small/8-res_fs768-jb`.
    #[serde(default)]
    pub neuronpedia: Option<String>,
    /// Expected L0 (mean active latents per token), as SAELens lists it.
    #[serde(default)]
    pub l0: Option<f64>,
    /// Expected fraction of variance explained.
    #[serde(default)]
    pub variance_explained: Option<f64>,
    /// For `expected_average_only_in` SAEs: the factor SAELens folds into the weights on load.
    #[serde(default)]
    pub norm_scaling_factor: Option<f64>,
}

/// A release: a hub repository holding a set of SAEs, in SAELens's layout or in a third-party
/// layout that [`crate::convert`] converts on load.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Release {
    /// The HuggingFace repository.
    pub repo_id: String,
    /// SAELens's conversion function for a third-party layout; `None` for SAELens's own.
    #[serde(default)]
    pub conversion_func: Option<Conversion>,
    /// The model the SAEs read (TransformerLens name), e.g. `gpt2-small`.
    #[serde(default)]
    pub model: Option<String>,
    /// Config fields SAELens overrides on load (e.g. `model_from_pretrained_kwargs`).
    #[serde(default)]
    pub config_overrides: Option<BTreeMap<String, Value>>,
    /// The Neuronpedia dashboard for the release.
    #[serde(default)]
    pub dashboards: Option<String>,
    /// The SAEs.
    pub saes: Vec<PretrainedSae>,
}

impl Release {
    /// The SAE of that id.
    pub fn sae(&self, release: &str, sae_id: &str) -> Result<&PretrainedSae> {
        self.saes
            .iter()
            .find(|s| s.id == sae_id)
            .ok_or_else(|| SaeError::UnknownSaeId {
                release: release.to_string(),
                sae_id: sae_id.to_string(),
                valid: self
                    .saes
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The whole registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Registry {
    /// Where the data came from (the SAELens version).
    pub source: String,
    /// Every release of SAELens's registry, by name.
    pub releases: BTreeMap<String, Release>,
}

static REGISTRY: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();

impl Registry {
    /// The embedded registry, parsed on first use.
    pub fn get() -> Result<&'static Registry> {
        REGISTRY
            .get_or_init(|| serde_yaml_ng::from_str(REGISTRY_YAML).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| SaeError::Registry(e.clone()))
    }

    /// A release by name; an unknown name is an error listing the valid ones.
    pub fn release(&self, name: &str) -> Result<&Release> {
        if let Some(r) = self.releases.get(name) {
            return Ok(r);
        }
        Err(SaeError::UnknownRelease {
            release: name.to_string(),
            valid: self
                .releases
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A release and one of its SAEs.
    pub fn lookup(&self, release: &str, sae_id: &str) -> Result<(&Release, &PretrainedSae)> {
        let r = self.release(release)?;
        Ok((r, r.sae(release, sae_id)?))
    }
}
