//! Every hook site of Gemma 1, 2 and 3 against transformers on the committed tiny checkpoints
//! (`fixtures/gemma-hooks/gen_fixtures.py`, forward hooks on transformers' modules): q, k, v,
//! the attention pattern, z, attn_out (after Gemma 2/3's post norm), mlp pre/post, mlp_out,
//! every resid_pre, ln_final's normalised input and the logits, to 1e-4 relative in f32; and for
//! Gemma 1 and 2 every hook against TransformerLens 3.9's HookedTransformer as well. Hook names
//! are TransformerLens's, parsed from the fixtures' keys.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use common::max_diff;
use gpt2_gemma_models::{Activation, CacheFilter, Gemma, HookPoint, LanguageModel};
use sae_core::device::{from_env, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

#[test]
fn every_gemma_hook_equals_transformers_and_transformer_lens() {
    let dev = from_env().unwrap();
    for (name, model_dir, file, n_points) in [
        ("gemma1", "gemma12-tiny/gemma1", "gemma1.safetensors", 10),
        ("gemma2", "gemma12-tiny/gemma2", "gemma2.safetensors", 10),
        ("gemma3", "gemma3-tiny/model", "gemma3.safetensors", 10),
        (
            "gemma1 (TransformerLens)",
            "gemma12-tiny/gemma1",
            "gemma1.tl.safetensors",
            12,
        ),
        (
            "gemma2 (TransformerLens)",
            "gemma12-tiny/gemma2",
            "gemma2.tl.safetensors",
            12,
        ),
    ] {
        let io = SafetensorsFile::open(common::fixtures().join("gemma-hooks").join(file))
            .unwrap()
            .read_all()
            .unwrap();
        let model = Gemma::load(common::fixtures().join(model_dir), &dev).unwrap();
        let points: Vec<(HookPoint, String)> = io
            .keys()
            .filter(|k| *k != "tokens" && *k != "logits")
            .map(|k| {
                (
                    k.parse::<HookPoint>()
                        .unwrap_or_else(|e| panic!("{k}: {e}")),
                    k.clone(),
                )
            })
            .collect();
        assert!(
            points.len() > n_points * model.n_layers(),
            "{name}: {}",
            points.len()
        );
        let (logits, cache) = model
            .run_with_cache(
                common::tokens(&io),
                CacheFilter::Only(points.iter().map(|(p, _)| *p).collect()),
                None,
            )
            .unwrap();
        let rel = |ours: &[f32], theirs: &[f32]| {
            max_diff(ours, theirs) / theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()))
        };
        let d = rel(&tensor_to_vec(logits.unwrap()).unwrap(), &io["logits"].data);
        assert!(d <= 1e-4, "{name}: logits differ by {d}");
        for (p, key) in points {
            let ours = match cache.get(p).unwrap() {
                Activation::Rank3(t) => tensor_to_vec(t.clone()).unwrap(),
                Activation::Rank4(t) => tensor_to_vec(t.clone()).unwrap(),
                other => panic!("{other:?}"),
            };
            let d = rel(&ours, &io[&key].data);
            assert!(d <= 1e-4, "{name}: {key} differs by {d}");
        }
    }
}
