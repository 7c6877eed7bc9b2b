//! Packing, BOS and batching equal SAELens's ActivationsStore.get_batch_tokens on the same
//! documents and GPT-2's real tokenizer (fixtures/packing/gen_fixtures.py).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use activation_store::{SeparatorToken, StoreConfig, TextSource, TokenWindows};
use gpt2_gemma_models::HookPoint;
use gpt2_gemma_models::source::AnyTokenizer;
use gpt2_gemma_models::tokenizer::Gpt2Tokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packing")
}

pub fn gpt2_tokenizer() -> AnyTokenizer {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/gpt2-tokenizer");
    AnyTokenizer::Gpt2(
        Gpt2Tokenizer::from_vocab_merges(dir.join("encoder.json"), dir.join("vocab.bpe")).unwrap(),
    )
}

#[test]
fn windows_and_batches_match_saelens() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let tok = gpt2_tokenizer();
    let per_batch = expected["store_batch_size_prompts"].as_u64().unwrap() as usize;
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut cfg = StoreConfig::new(
            HookPoint::ResidPre(0),
            case["context_size"].as_u64().unwrap() as usize,
        );
        cfg.prepend_bos = case["prepend_bos"].as_bool().unwrap();
        cfg.separator = match case["sep"].as_str() {
            Some(s) => s.parse().unwrap(),
            None => SeparatorToken::None,
        };
        cfg.disable_concat = case["disable_concat"].as_bool().unwrap();
        let source = TextSource::from_path(fixtures().join("docs.jsonl"), None).unwrap();
        let mut windows = TokenWindows::new(source, &tok, cfg.packing(&tok)).unwrap();
        let mut all = Vec::new();
        while let Some(w) = windows.next_window().unwrap() {
            all.push(w);
        }
        // SAELens's get_batch_tokens(raise_at_epoch_end=True) drops a final partial batch.
        let ours: Vec<Vec<Vec<u32>>> = all
            .chunks_exact(per_batch)
            .map(<[Vec<u32>]>::to_vec)
            .collect();
        let theirs: Vec<Vec<Vec<u32>>> = serde_json::from_value(case["batches"].clone()).unwrap();
        assert!(!theirs.is_empty(), "{name}: empty reference");
        assert_eq!(ours.len(), theirs.len(), "{name}: batch count");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{name}: batch {i}");
        }
        assert_eq!(windows.documents_read(), 9, "{name}: documents read");
    }
}
