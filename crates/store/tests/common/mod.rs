//! Shared test helpers: the tiny GPT-2 fixture with GPT-2's real tokenizer.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use gpt2_gemma_models::Processing;
use gpt2_gemma_models::source::{AnyModel, AnyTokenizer, ModelSource};
use sae_core::HubClient;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures")
}

/// The tiny GPT-2 (2 layers, d_model 64, 64 positions) widened to GPT-2's 50 257-token
/// vocabulary, beside GPT-2's real tokenizer, in `tmp/tiny`.
pub fn tiny_model_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("tiny");
    gpt2_gemma_models::testing::widen_gpt2_vocab(
        &models().join("gpt2-tiny/model"),
        &models().join("gpt2-tokenizer"),
        &d,
        50257,
    )
    .unwrap();
    d
}

pub fn tiny_model(tmp: &Path) -> (AnyModel, AnyTokenizer) {
    let dir = tiny_model_dir(tmp);
    ModelSource::Dir(dir)
        .load(
            &HubClient::from_env().offline(true),
            Processing::TransformerLens,
            None,
            &sae_core::device::from_env().unwrap(),
        )
        .unwrap()
}
