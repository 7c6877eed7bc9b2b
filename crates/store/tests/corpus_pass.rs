//! The corpus pass behind autointerp's examples and the dashboards: `gather_stats` reads the
//! corpus in order through the model and the SAE; `replay_sequences` gives back the sequences
//! its top windows came from, token for token, and the SAE re-run on a replayed sequence gives
//! the recorded activation.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::collections::BTreeSet;

use activation_store::{StatsConfig, StoreConfig, TextSource, gather_stats, replay_sequences};
use gpt2_gemma_models::HookPoint;
use sae_core::Sae;
use sae_core::config::{Architecture, SaeConfig};

fn random_sae(d_in: usize, d_sae: usize) -> Sae {
    let mut cfg = SaeConfig::new(d_in, d_sae, Architecture::Standard);
    cfg.metadata.hook_name = Some("blocks.1.hook_resid_pre".into());
    cfg.metadata.context_size = Some(32);
    cfg.metadata.prepend_bos = Some(true);
    sae_core::testing::random_sae(cfg, 5, &sae_core::device::from_env().unwrap()).unwrap()
}

#[test]
fn replayed_sequences_are_the_gathered_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let sae = random_sae(64, 24);
    let source =
        || TextSource::from_path(common::fixtures().join("packing/docs.jsonl"), None).unwrap();
    let store = StoreConfig::for_reading(sae.config(), None, 3).unwrap();
    assert_eq!(store.hook, HookPoint::ResidPre(1));
    assert_eq!(
        (store.context_size, store.train_batch_size_tokens),
        (32, 96)
    );
    let latents: Vec<usize> = (0..24).step_by(3).collect();
    let cfg = StatsConfig {
        k: 4,
        buffer: 2,
        ..StatsConfig::default()
    };
    let stats = gather_stats(
        &model,
        &tok,
        &sae,
        source(),
        &store,
        &latents,
        cfg,
        960,
        false,
    )
    .unwrap();
    assert_eq!(stats.n_tokens, 960);
    let wanted: BTreeSet<u64> = stats
        .latents
        .iter()
        .flat_map(|l| l.top.iter().map(|w| w.seq))
        .collect();
    assert!(!wanted.is_empty());
    let seqs = replay_sequences(&model, &tok, source(), &store, &wanted).unwrap();
    assert_eq!(seqs.keys().copied().collect::<BTreeSet<_>>(), wanted);
    let mut checked = 0;
    for (slot, l) in stats.latents.iter().enumerate() {
        for w in &l.top {
            let seq = &seqs[&w.seq];
            assert_eq!(seq.len(), 32);
            let pos = w.pos as usize;
            // The window's tokens are the sequence's around `pos` (clipped at its ends).
            let start = pos.saturating_sub(2);
            let end = (pos + 3).min(seq.len());
            let tokens: Vec<u32> = w
                .tokens
                .iter()
                .copied()
                .filter(|&t| t != u32::MAX)
                .collect();
            assert!(
                seq[start..end] == tokens[..end - start],
                "latent {}: window {:?} vs sequence {:?}",
                l.latent,
                w.tokens,
                &seq[start..end]
            );
            // The SAE on the replayed sequence gives the recorded activation.
            let acts = activation_store::stats::latent_activations(
                &model,
                &sae,
                store.hook,
                std::slice::from_ref(seq),
                &latents,
            )
            .unwrap();
            let got = acts[0][pos * latents.len() + slot];
            assert!(
                (got - w.value).abs() <= 1e-5 * w.value.abs().max(1.0),
                "{got} vs {}",
                w.value
            );
            checked += 1;
        }
    }
    assert!(checked >= latents.len(), "{checked}");
    // The corpus is read round and round (SAELens's epochs): a far sequence is replayed too.
    let far: BTreeSet<u64> = [1_000].into();
    assert_eq!(
        replay_sequences(&model, &tok, source(), &store, &far).unwrap()[&1_000].len(),
        32
    );
    // An empty corpus is an error, not an endless loop.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::File::create(&empty).unwrap();
    let empty = TextSource::from_path(&empty, None).unwrap();
    assert!(replay_sequences(&model, &tok, empty, &store, &[0].into()).is_err());
}
