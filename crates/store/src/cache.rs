//! A resumable on-disk activation cache: safetensors shards plus a JSON manifest.
//!
//! Layout of a cache directory:
//!
//! ```text
//! manifest.json          what the cache holds (model, hook, dataset, packing, …) and its shards
//! shard-00000.safetensors   `token_ids` i32 [n, context] and `{hook}` [n, context, d_in] in the
//!                           cache's dtype (f32 by default; bf16 or f16, see [`ActivationDtype`])
//! shard-00001.safetensors
//! ```
//!
//! Invariants: shard `i` holds windows `[i·S, i·S + n_i)` of the corpus's window stream (S =
//! `sequences_per_shard`); its activations are computed in model batches that start at the
//! shard's first window, so they never depend on where a run started. A shard is written to a
//! temporary file and renamed, then the manifest (also renamed into place) records it with its
//! SHA-256. A run killed at any moment leaves a manifest naming only complete shards; the next
//! run skips their windows (tokenising, not running the model) and carries on, ending with
//! shards byte-identical to an uninterrupted run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use gpt2_gemma_models::HookPoint;
use gpt2_gemma_models::model::LanguageModel;
use gpt2_gemma_models::source::AnyTokenizer;
use sae_core::safetensors_io::SafetensorsFile;

use crate::activation_dtype::ActivationDtype;
use crate::corpus::TextSource;
use crate::error::{Result, StoreError};
use crate::packing::PackingConfig;
use crate::store::{StoreConfig, compute_activations};
use crate::windows::TokenWindows;

/// The manifest's file name.
pub const MANIFEST_FILENAME: &str = "manifest.json";
/// The manifest format this crate writes.
pub const MANIFEST_VERSION: u32 = 1;
/// The token-id tensor in every shard.
pub const TOKEN_IDS_TENSOR: &str = "token_ids";

/// What a cache holds. A resumed run must ask for exactly the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpec {
    /// The model's name or path.
    pub model: String,
    /// The hook.
    pub hook: HookPoint,
    /// The corpus ([`TextSource::describe`]).
    pub dataset: String,
    /// How documents became windows.
    pub packing: PackingConfig,
    /// Activation width.
    pub d_in: usize,
    /// Windows per shard.
    pub sequences_per_shard: usize,
    /// Windows per model forward pass (fixes the numerics).
    pub model_batch_size: usize,
    /// At most this many windows (`None`: the whole corpus).
    pub max_sequences: Option<u64>,
    /// The dtype activations are stored in. Absent from manifests when `float32` (so caches
    /// written before this field keep their spec and its hash).
    #[serde(default, skip_serializing_if = "ActivationDtype::is_f32")]
    pub dtype: ActivationDtype,
}

impl CacheSpec {
    /// A stable hash of the spec (hex SHA-256 of its JSON).
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex(&Sha256::digest(json))
    }
}

/// One finished shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the cache directory.
    pub file: String,
    /// Windows in it.
    pub n_sequences: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// What the cache holds.
    pub spec: CacheSpec,
    /// [`CacheSpec::hash`] of `spec`.
    pub spec_hash: String,
    /// Finished shards, in order.
    pub shards: Vec<ShardInfo>,
    /// Tokens in the finished shards.
    pub n_tokens: u64,
    /// Whether the corpus (or `max_sequences`) was reached.
    pub complete: bool,
}

impl CacheManifest {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILENAME);
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let m: Self = serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(StoreError::Cache {
                path,
                message: format!(
                    "manifest version {} (this build reads {MANIFEST_VERSION})",
                    m.version
                ),
            });
        }
        m.validate(&path)?;
        Ok(m)
    }

    /// Checks every size and name a reader relies on: positive widths and counts, shard files
    /// named `shard-NNNNN.safetensors` in order (no path can leave the directory), each within
    /// `sequences_per_shard`, and token counts that add up.
    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| StoreError::Cache {
            path: path.to_path_buf(),
            message,
        };
        let spec = &self.spec;
        let ctx = spec.packing.context_size;
        for (field, v) in [
            ("spec.d_in", spec.d_in),
            ("spec.packing.context_size", ctx),
            ("spec.sequences_per_shard", spec.sequences_per_shard),
            ("spec.model_batch_size", spec.model_batch_size),
        ] {
            if v == 0 || v > 1 << 30 {
                return Err(bad(format!("{field} is {v}, expected 1..=2^30")));
            }
        }
        let mut tokens = 0u64;
        for (i, s) in self.shards.iter().enumerate() {
            if s.file != shard_name(i) {
                return Err(bad(format!(
                    "shard {i} is named `{}`, expected `{}`",
                    s.file,
                    shard_name(i)
                )));
            }
            if s.n_sequences == 0 || s.n_sequences > spec.sequences_per_shard {
                return Err(bad(format!(
                    "shard {i} holds {} windows, expected 1..={}",
                    s.n_sequences, spec.sequences_per_shard
                )));
            }
            tokens += (s.n_sequences * ctx) as u64;
        }
        if tokens != self.n_tokens {
            return Err(bad(format!(
                "n_tokens is {}, the shards hold {tokens}",
                self.n_tokens
            )));
        }
        Ok(())
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILENAME);
        let json = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        sae_core::atomic::write(&path, &json)?;
        Ok(())
    }

    /// Windows in the finished shards.
    pub fn n_sequences(&self) -> u64 {
        self.shards.iter().map(|s| s.n_sequences as u64).sum()
    }
}

/// The shape of a cache: what [`cache_activations`] writes besides the store's hook and windows.
/// Part of the cache's [`CacheSpec`], so a resumed run must ask for the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Windows per shard file.
    pub sequences_per_shard: usize,
    /// At most this many windows (`None`: the whole corpus).
    pub max_sequences: Option<u64>,
    /// The dtype activations are stored in.
    pub dtype: ActivationDtype,
}

impl CacheConfig {
    /// `sequences_per_shard` windows per shard, the whole corpus, float32.
    pub fn new(sequences_per_shard: usize) -> Self {
        Self {
            sequences_per_shard,
            max_sequences: None,
            dtype: ActivationDtype::F32,
        }
    }

    /// At most `n` windows.
    pub fn max_sequences(mut self, n: Option<u64>) -> Self {
        self.max_sequences = n;
        self
    }

    /// Activations stored in `dtype`.
    pub fn dtype(mut self, dtype: ActivationDtype) -> Self {
        self.dtype = dtype;
        self
    }
}

/// How a caching run behaves (not part of what the cache holds).
#[derive(Debug, Clone, Default)]
pub struct CacheRunOptions {
    /// Stop after writing this many new shards (time-sliced jobs; tests of resumption).
    pub stop_after_new_shards: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// Fills (or resumes) a cache directory with activations of `model` at `cfg.hook` over
/// `source`, laid out as `layout` says.
#[allow(clippy::too_many_arguments)]
pub fn cache_activations<M: LanguageModel + ?Sized>(
    model: &M,
    model_name: &str,
    tokenizer: &AnyTokenizer,
    source: TextSource,
    cfg: &StoreConfig,
    layout: &CacheConfig,
    dir: &Path,
    opts: &CacheRunOptions,
) -> Result<CacheManifest> {
    let CacheConfig {
        sequences_per_shard,
        max_sequences,
        dtype,
    } = *layout;
    if sequences_per_shard == 0 || cfg.store_batch_size_prompts == 0 {
        return Err(StoreError::invalid(
            "sequences_per_shard / store_batch_size_prompts",
            "positive numbers",
            format!("{sequences_per_shard} / {}", cfg.store_batch_size_prompts),
        ));
    }
    // One run per directory; then any temporary file in it is a killed run's, and only those
    // (never a user's `draft.tmp`) are removed, after the directory is known to be a cache.
    let _lock = sae_core::lock::OutputLock::acquire(dir)?;
    check_is_cache_dir(dir)?;
    sae_core::atomic::remove_temporaries(dir)?;
    let packing = cfg.packing(tokenizer);
    let probe = compute_activations(model, cfg.hook, &[vec![tokenizer.bos_id()]])?;
    let spec = CacheSpec {
        model: model_name.to_string(),
        hook: cfg.hook,
        dataset: source.describe(),
        packing,
        d_in: probe.1,
        sequences_per_shard,
        model_batch_size: cfg.store_batch_size_prompts,
        max_sequences,
        dtype,
    };
    let mut manifest = match CacheManifest::read(dir) {
        Ok(m) => {
            if m.spec != spec {
                return Err(StoreError::Cache {
                    path: dir.to_path_buf(),
                    message: format!(
                        "holds a different cache (manifest spec {}, asked for {}); use another directory",
                        serde_json::to_string(&m.spec).unwrap_or_default(),
                        serde_json::to_string(&spec).unwrap_or_default()
                    ),
                });
            }
            check_shard_files(dir, &m)?;
            m
        }
        Err(StoreError::Io { .. }) => CacheManifest {
            version: MANIFEST_VERSION,
            spec_hash: spec.hash(),
            spec: spec.clone(),
            shards: Vec::new(),
            n_tokens: 0,
            complete: false,
        },
        Err(e) => return Err(e),
    };
    if manifest.complete {
        tracing::info!(dir = %dir.display(), shards = manifest.shards.len(), "cache already complete");
        return Ok(manifest);
    }
    let mut windows = TokenWindows::new(source, tokenizer, packing)?;
    let done = manifest.n_sequences();
    if done > 0 {
        tracing::info!(
            shards = manifest.shards.len(),
            windows = done,
            "resuming: skipping cached windows"
        );
        let skipped = windows.skip(done)?;
        if skipped != done {
            return Err(StoreError::Cache {
                path: dir.to_path_buf(),
                message: format!(
                    "the corpus now yields {skipped} windows, the cache already holds {done}"
                ),
            });
        }
    }
    let bar = if opts.progress {
        let total = max_sequences.unwrap_or(0);
        let b = if total > 0 {
            ProgressBar::new(total)
        } else {
            ProgressBar::no_length()
        };
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} caching {pos}/{len} windows [{elapsed_precise}<{eta_precise}] {per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(done);
        b
    } else {
        ProgressBar::hidden()
    };
    let ctx = spec.packing.context_size;
    let mut new_shards = 0;
    loop {
        if opts.stop_after_new_shards.is_some_and(|n| new_shards >= n) {
            break;
        }
        let held = manifest.n_sequences();
        let want = match max_sequences {
            Some(m) => (m.saturating_sub(held)).min(sequences_per_shard as u64) as usize,
            None => sequences_per_shard,
        };
        let mut shard_windows = Vec::with_capacity(want);
        while shard_windows.len() < want {
            match windows.next_window()? {
                Some(w) => shard_windows.push(w),
                None => break,
            }
        }
        if shard_windows.is_empty() {
            manifest.complete = true;
            manifest.write(dir)?;
            break;
        }
        let mut acts = Vec::with_capacity(shard_windows.len() * ctx * spec.d_in);
        for batch in shard_windows.chunks(cfg.store_batch_size_prompts) {
            let (a, d) = compute_activations(model, cfg.hook, batch)?;
            if d != spec.d_in {
                return Err(StoreError::Shape {
                    what: format!("activations at {}", cfg.hook),
                    expected: vec![batch.len() * ctx, spec.d_in],
                    found: vec![batch.len() * ctx, d],
                });
            }
            acts.extend_from_slice(&a);
            bar.inc(batch.len() as u64);
        }
        let index = manifest.shards.len();
        let info = write_shard(dir, index, &spec, &shard_windows, &acts)?;
        manifest.n_tokens += (info.n_sequences * ctx) as u64;
        let short = info.n_sequences < want;
        manifest.shards.push(info);
        new_shards += 1;
        if short || max_sequences.is_some_and(|m| manifest.n_sequences() >= m) {
            manifest.complete = true;
        }
        manifest.write(dir)?;
        if manifest.complete {
            break;
        }
    }
    bar.finish_and_clear();
    tracing::info!(
        dir = %dir.display(),
        shards = manifest.shards.len(),
        tokens = manifest.n_tokens,
        complete = manifest.complete,
        "activation cache written"
    );
    Ok(manifest)
}

fn shard_name(index: usize) -> String {
    format!("shard-{index:05}.safetensors")
}

fn write_shard(
    dir: &Path,
    index: usize,
    spec: &CacheSpec,
    windows: &[Vec<u32>],
    acts: &[f32],
) -> Result<ShardInfo> {
    let (hook, d_in) = (spec.hook, spec.d_in);
    let n = windows.len();
    let ctx = windows.first().map_or(0, Vec::len);
    let ids: Vec<u8> = windows
        .iter()
        .flatten()
        .flat_map(|&t| (t as i32).to_le_bytes())
        .collect();
    let path = dir.join(shard_name(index));
    let encoded;
    let act_bytes: &[u8] = match spec.dtype {
        ActivationDtype::F32 => bytemuck::cast_slice(acts),
        narrow => {
            encoded = sae_core::safetensors_io::encode_f32(narrow.storage(), acts)
                .map_err(|e| sae_core::SaeError::OutOfRange {
                    path: path.clone(),
                    tensor: hook.to_string(),
                    index: e.index,
                    value: e.value,
                    dtype: narrow.as_str(),
                })?
                .1;
            &encoded
        }
    };
    let serr = |e: safetensors::SafeTensorError| StoreError::Cache {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut views = BTreeMap::new();
    views.insert(
        TOKEN_IDS_TENSOR.to_string(),
        TensorView::new(Dtype::I32, vec![n, ctx], &ids).map_err(serr)?,
    );
    views.insert(
        hook.to_string(),
        TensorView::new(spec.dtype.safetensors(), vec![n, ctx, d_in], act_bytes).map_err(serr)?,
    );
    let bytes = safetensors::tensor::serialize(views, None).map_err(serr)?;
    sae_core::atomic::write(&path, &bytes)?;
    Ok(ShardInfo {
        file: shard_name(index),
        n_sequences: n,
        bytes: bytes.len() as u64,
        sha256: hex(&Sha256::digest(&bytes)),
    })
}

/// A directory a cache may be written into: one with a manifest, or one holding nothing but
/// what a cache run writes (shards a killed first run left, temporaries, the lock).
fn check_is_cache_dir(dir: &Path) -> Result<()> {
    if dir.join(MANIFEST_FILENAME).is_file() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name == sae_core::lock::LOCK_FILENAME
            || sae_core::atomic::is_temporary(&name)
            || is_shard_name(&name);
        if !ours {
            return Err(StoreError::Cache {
                path: dir.to_path_buf(),
                message: format!(
                    "is not an activation cache (no {MANIFEST_FILENAME}) and holds `{name}`; \
                     use an empty or new directory"
                ),
            });
        }
    }
    Ok(())
}

fn is_shard_name(name: &str) -> bool {
    name.strip_prefix("shard-")
        .and_then(|s| s.strip_suffix(".safetensors"))
        .is_some_and(|d| d.len() == 5 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn check_shard_files(dir: &Path, m: &CacheManifest) -> Result<()> {
    for s in &m.shards {
        let p = dir.join(&s.file);
        let len = std::fs::metadata(&p)
            .map_err(|e| StoreError::io(&p, e))?
            .len();
        if len != s.bytes {
            return Err(StoreError::Cache {
                path: p,
                message: format!("{len} bytes, the manifest says {}", s.bytes),
            });
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A finished (or partly finished) cache, read shard by shard.
#[derive(Debug, Clone)]
pub struct ActivationCacheDir {
    dir: PathBuf,
    manifest: CacheManifest,
}

/// One shard in memory.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Its index.
    pub index: usize,
    /// Windows × context token ids, row-major.
    pub token_ids: Vec<u32>,
    /// Windows × context × d_in activations, row-major.
    pub activations: Vec<f32>,
    /// Windows in the shard.
    pub n_sequences: usize,
    /// Tokens per window.
    pub context_size: usize,
    /// Activation width.
    pub d_in: usize,
    /// Global index of the shard's first window.
    pub first_sequence: u64,
}

impl ActivationCacheDir {
    /// Opens a cache directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = CacheManifest::read(&dir)?;
        check_shard_files(&dir, &manifest)?;
        Ok(Self { dir, manifest })
    }

    /// The manifest.
    pub fn manifest(&self) -> &CacheManifest {
        &self.manifest
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.manifest.shards.len()
    }

    /// Whether there is no shard.
    pub fn is_empty(&self) -> bool {
        self.manifest.shards.is_empty()
    }

    /// Recomputes every shard's SHA-256 and compares it with the manifest.
    pub fn verify(&self) -> Result<()> {
        for s in &self.manifest.shards {
            let p = self.dir.join(&s.file);
            let bytes = std::fs::read(&p).map_err(|e| StoreError::io(&p, e))?;
            let h = hex(&Sha256::digest(&bytes));
            if h != s.sha256 {
                return Err(StoreError::Cache {
                    path: p,
                    message: format!("SHA-256 {h}, the manifest says {}", s.sha256),
                });
            }
        }
        Ok(())
    }

    /// Reads shard `index` (memory-mapped, then copied out).
    pub fn shard(&self, index: usize) -> Result<Shard> {
        let info = self
            .manifest
            .shards
            .get(index)
            .ok_or_else(|| StoreError::Cache {
                path: self.dir.clone(),
                message: format!("no shard {index} (the cache has {})", self.len()),
            })?;
        let path = self.dir.join(&info.file);
        let file = SafetensorsFile::open(&path)?;
        let spec = &self.manifest.spec;
        let ctx = spec.packing.context_size;
        let hook = spec.hook.to_string();
        let acts = {
            let tensors = file.tensors()?;
            let view = tensors.tensor(&hook).map_err(|e| StoreError::Cache {
                path: path.clone(),
                message: format!("tensor `{hook}`: {e}"),
            })?;
            if view.dtype() != spec.dtype.safetensors() {
                return Err(StoreError::Cache {
                    path: path.clone(),
                    message: format!(
                        "tensor `{hook}` is stored as {:?}, the manifest says {} ({:?})",
                        view.dtype(),
                        spec.dtype,
                        spec.dtype.safetensors()
                    ),
                });
            }
            sae_core::safetensors_io::view_to_f32(&path, &hook, &view)?
        };
        let expected = vec![info.n_sequences, ctx, spec.d_in];
        if acts.shape != expected {
            return Err(StoreError::Shape {
                what: format!("{}: {hook}", path.display()),
                expected,
                found: acts.shape,
            });
        }
        let (ids_shape, ids) = file.tensor_i64(TOKEN_IDS_TENSOR)?;
        let expected = vec![info.n_sequences, ctx];
        if ids_shape != expected {
            return Err(StoreError::Shape {
                what: format!("{}: {TOKEN_IDS_TENSOR}", path.display()),
                expected,
                found: ids_shape,
            });
        }
        let token_ids = ids
            .into_iter()
            .map(u32::try_from)
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|_| StoreError::Cache {
                path: path.clone(),
                message: format!("{TOKEN_IDS_TENSOR} holds a negative or oversized token id"),
            })?;
        let first_sequence = self.manifest.shards[..index]
            .iter()
            .map(|s| s.n_sequences as u64)
            .sum();
        Ok(Shard {
            index,
            token_ids,
            activations: acts.data,
            n_sequences: info.n_sequences,
            context_size: ctx,
            d_in: spec.d_in,
            first_sequence,
        })
    }

    /// Every shard in order, one in memory at a time.
    pub fn shards(&self) -> impl Iterator<Item = Result<Shard>> + '_ {
        (0..self.len()).map(|i| self.shard(i))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn spec(dtype: ActivationDtype) -> CacheSpec {
        CacheSpec {
            model: "m".into(),
            hook: HookPoint::ResidPost(3),
            dataset: "d".into(),
            packing: PackingConfig {
                context_size: 2,
                begin_batch_token: None,
                begin_sequence_token: None,
                separator_token: None,
                disable_concat: false,
            },
            d_in: 2,
            sequences_per_shard: 1,
            model_batch_size: 1,
            max_sequences: None,
            dtype,
        }
    }

    /// An activation float16 cannot hold stops the shard with an error naming the shard, the
    /// tensor and the value; nothing is written. bfloat16 and float32 take it.
    #[test]
    fn a_float16_overflow_names_the_shard_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let acts = [1.0, -2.0, 3.0, -70000.0];
        match write_shard(
            dir.path(),
            4,
            &spec(ActivationDtype::F16),
            &[vec![1, 2]],
            &acts,
        ) {
            Err(StoreError::Sae(sae_core::SaeError::OutOfRange {
                path,
                tensor,
                index,
                value,
                dtype,
            })) => {
                assert_eq!(path, dir.path().join("shard-00004.safetensors"));
                assert_eq!(tensor, "blocks.3.hook_resid_post");
                assert_eq!((index, value, dtype), (3, -70000.0, "float16"));
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        for dtype in [ActivationDtype::Bf16, ActivationDtype::F32] {
            let info = write_shard(dir.path(), 0, &spec(dtype), &[vec![1, 2]], &acts).unwrap();
            let file = SafetensorsFile::open(dir.path().join(&info.file)).unwrap();
            let back = file.tensor_f32("blocks.3.hook_resid_post").unwrap().data;
            let want: Vec<f32> = acts.iter().map(|&x| dtype.round(x)).collect();
            assert_eq!(back, want);
        }
    }
}
