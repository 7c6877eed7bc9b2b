//! `forward`, `tokenize` and `generate` end to end on the tiny GPT-2 fixture.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::{Path, PathBuf};

use gpt2_gemma_models::{GenerateConfig, Gpt2, Gpt2Tokenizer, Hooks, Processing, generate};
use sae_core::device::cpu;
use sae_core::npy::read_f32;
use sae_core::safetensors_io::SafetensorsFile;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures")
}

mod common;

use common::bin;

/// The tiny model beside GPT-2's real tokenizer files.
fn model_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("tiny");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(models().join("gpt2-tiny/model").join(f), d.join(f)).unwrap();
    }
    for f in ["encoder.json", "vocab.bpe"] {
        std::fs::copy(models().join("gpt2-tokenizer").join(f), d.join(f)).unwrap();
    }
    d
}

#[test]
fn forward_writes_hooks_and_logits_matching_transformer_lens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let io = SafetensorsFile::open(models().join("gpt2-tiny/io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let toks: Vec<Vec<i64>> = io["tokens"]
        .data
        .chunks(12)
        .map(|r| r.iter().map(|v| *v as i64).collect())
        .collect();
    let ids = tmp.path().join("ids.json");
    std::fs::write(&ids, serde_json::to_string(&toks).unwrap()).unwrap();
    let out = tmp.path().join("out");
    let st = bin()
        .args(["forward", "--model"])
        .arg(&dir)
        .arg("--tokens")
        .arg(&ids)
        .args([
            "--hooks",
            "blocks.1.hook_resid_pre,blocks.0.attn.hook_pattern",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    for (file, key) in [
        ("blocks.1.hook_resid_pre.npy", "tl.blocks.1.hook_resid_pre"),
        (
            "blocks.0.attn.hook_pattern.npy",
            "tl.blocks.0.attn.hook_pattern",
        ),
        ("logits.npy", "tl.logits"),
    ] {
        let got = read_f32(out.join(file)).unwrap();
        assert_eq!(got.shape, io[key].shape, "{file}");
        let d = got
            .data
            .iter()
            .zip(&io[key].data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-4, "{file}: {d}");
    }
    // --stop-at-layer: the hook before the stop is written, no logits.
    let out2 = tmp.path().join("out2");
    let st = bin()
        .args(["forward", "--model"])
        .arg(&dir)
        .arg("--tokens")
        .arg(&ids)
        .args([
            "--hooks",
            "blocks.0.hook_resid_post",
            "--stop-at-layer",
            "1",
            "--no-processing",
            "--out",
        ])
        .arg(&out2)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(out2.join("blocks.0.hook_resid_post.npy").exists());
    assert!(!out2.join("logits.npy").exists());
}

#[test]
fn tokenize_prints_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let out = bin()
        .args(["tokenize", "--model"])
        .arg(&dir)
        .args(["--text", "Hello world"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids, vec![50256, 15496, 995]);
    let out = bin()
        .args(["tokenize", "--model"])
        .arg(&dir)
        .args(["--text", "Hello world", "--no-bos"])
        .output()
        .unwrap();
    let ids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids, vec![15496, 995]);
}

#[test]
fn generate_prints_the_greedy_continuation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let out = bin()
        .args(["generate", "--model"])
        .arg(&dir)
        .args([
            "--prompt",
            "a",
            "--no-bos",
            "--greedy",
            "--max-new-tokens",
            "6",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = Gpt2::load(&dir, Processing::TransformerLens, &cpu()).unwrap();
    let tok = Gpt2Tokenizer::from_dir(&dir).unwrap();
    let want = generate(
        &model,
        &[vec![64]],
        &GenerateConfig::greedy(6, Some(50256)),
        &mut Hooks::new(),
    )
    .unwrap();
    let text = format!("a{}\n", tok.decode(&want[0]).unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}

#[test]
fn gemma_3_270m_from_gguf_through_the_cli() {
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap();
    let out = bin()
        .args(["tokenize", "--model", "gemma-3-270m", "--gguf"])
        .arg(&gguf)
        .args(["--text", "<start_of_turn>user\n<unk><end_of_turn>"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids, vec![2, 105, 2364, 107, 3, 106]);
    let out = bin()
        .args(["generate", "--model", "gemma-3-270m", "--gguf"])
        .arg(&gguf)
        .args([
            "--prompt",
            "The capital of France is",
            "--greedy",
            "--max-new-tokens",
            "8",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("The capital of France is "), "{text}");
    assert!(
        text.trim().len() > "The capital of France is".len() + 8,
        "{text}"
    );
}

#[test]
fn logit_lens_cli_writes_jsonl() {
    use sae_core::safetensors_io::HostTensor;
    use sae_core::{Architecture, Sae, SaeConfig};
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let mut m = std::collections::BTreeMap::new();
    let mut s = 3u64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    m.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![64, 32], rnd(64 * 32)),
    );
    m.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![32, 64], rnd(32 * 64)),
    );
    m.insert("b_enc".to_string(), HostTensor::new(vec![32], rnd(32)));
    m.insert("b_dec".to_string(), HostTensor::new(vec![64], rnd(64)));
    let (sae, _) = Sae::from_host_tensors(
        SaeConfig::new(64, 32, Architecture::Standard),
        m,
        Path::new("<t>"),
        &cpu(),
    )
    .unwrap();
    let sae_dir = tmp.path().join("sae");
    sae.save(&sae_dir).unwrap();
    let out = tmp.path().join("lens.jsonl");
    let st = bin()
        .args(["logit-lens", "--model"])
        .arg(&dir)
        .arg("--sae")
        .arg(&sae_dir)
        .args(["--latents", "0-3,7", "--k", "4", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["latent"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 7]
    );
    let model = Gpt2::load(&dir, Processing::TransformerLens, &cpu()).unwrap();
    let want = latent_geometry::logit_lens(
        &sae.w_dec(),
        &model.w_u(),
        Some(&[7]),
        latent_geometry::LogitLensConfig { k: 4, batch: 8 },
    )
    .unwrap();
    let got: Vec<u32> = lines[4]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, want[0].top_ids);
    assert!(lines[4]["bottom"][0]["token"].is_string());

    // An SAE that does not write d_model vectors is refused, naming both widths.
    let mut m = std::collections::BTreeMap::new();
    m.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![48, 8], rnd(48 * 8)),
    );
    m.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![8, 48], rnd(8 * 48)),
    );
    m.insert("b_enc".to_string(), HostTensor::new(vec![8], rnd(8)));
    m.insert("b_dec".to_string(), HostTensor::new(vec![48], rnd(48)));
    let (narrow, _) = Sae::from_host_tensors(
        SaeConfig::new(48, 8, Architecture::Standard),
        m,
        Path::new("<t>"),
        &cpu(),
    )
    .unwrap();
    let narrow_dir = tmp.path().join("narrow");
    narrow.save(&narrow_dir).unwrap();
    let o = bin()
        .args(["logit-lens", "--model"])
        .arg(&dir)
        .arg("--sae")
        .arg(&narrow_dir)
        .arg("--out")
        .arg(tmp.path().join("narrow.jsonl"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reads d_in = 48 but the model's d_model is 64"),
        "{err}"
    );
}

#[test]
fn a_llama_gguf_file_runs_through_the_cli() {
    // `--model FILE.gguf`: architecture from the file, tokenizer rebuilt from its metadata; the
    // prompt's ids and logits equal transformers' GGUF tokenizer and loader on the same file
    // (crates/models/tests/fixtures/llama-gguf/gen_fixtures.py).
    let dir = models().join("llama-gguf/llama");
    let refs = SafetensorsFile::open(dir.join("logits.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["forward", "--model"])
        .arg(dir.join("llama-F32.gguf"))
        .args([
            "--text",
            "the cat sat on the mat",
            "--hooks",
            "blocks.1.hook_resid_post",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logits = sae_core::npy::read_f32(tmp.path().join("logits.npy")).unwrap();
    let want = &refs["prompt.logits"];
    assert_eq!(logits.shape, want.shape);
    let scale = want.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let d = logits
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
        / scale;
    assert!(d <= 1e-4, "logits differ by {d}");
    assert!(tmp.path().join("blocks.1.hook_resid_post.npy").exists());
}
