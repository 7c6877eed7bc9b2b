//! SAE evaluation against SAELens's `sae_lens.evals` on the tiny GPT-2 with the spliced-SAE
//! fixtures (`crates/models/tests/fixtures/splice/gen_fixtures.py` writes `eval.json`).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use activation_store::eval::{EvalConfig, evaluate_sae};
use gpt2_gemma_models::{Gpt2, HookPoint, Processing};
use sae_core::Sae;
use sae_core::device::from_env;
use sae_core::safetensors_io::SafetensorsFile;

#[test]
fn evaluation_matches_saelens() {
    let dir = common::models().join("splice");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    let model = Gpt2::load(
        common::models().join("gpt2-tiny/model"),
        Processing::TransformerLens,
        &from_env().unwrap(),
    )
    .unwrap();
    let toks = SafetensorsFile::open(dir.join("eval_tokens.safetensors"))
        .unwrap()
        .read_all()
        .unwrap()
        .remove("eval_tokens")
        .unwrap();
    let ctx = toks.shape[1];
    let windows: Vec<Vec<u32>> = toks
        .data
        .chunks(ctx)
        .map(|r| r.iter().map(|v| *v as u32).collect())
        .collect();
    let config = EvalConfig {
        batch_size: 4,
        ignore_tokens: vec![999],
        ..EvalConfig::default()
    };
    for (name, hook) in [
        ("std_resid_pre1", HookPoint::ResidPre(1)),
        ("topk_resid_post0", HookPoint::ResidPost(0)),
    ] {
        let sae = Sae::load(dir.join(name), &from_env().unwrap()).unwrap();
        let ev = evaluate_sae(&model, &sae, hook, &windows, &config).unwrap();
        let want = &expected["saes"][name];
        let f = |k: &str| want[k].as_f64().unwrap();
        assert_eq!(ev.n_tokens, 12 * 15, "BOS left out");
        assert_eq!(ev.n_predictions, 12 * 14);
        for (ours, theirs, rel) in [
            (ev.ce_clean, "ce_loss_without_sae", 1e-5),
            (ev.ce_with_sae, "ce_loss_with_sae", 1e-5),
            (ev.ce_zero_ablation, "ce_loss_with_ablation", 1e-5),
            (ev.ce_loss_recovered, "ce_loss_score", 1e-3),
            (ev.kl_with_sae, "kl_div_with_sae", 1e-4),
            (ev.kl_zero_ablation, "kl_div_with_ablation", 1e-4),
            (ev.kl_div_score, "kl_div_score", 1e-3),
            (ev.mse, "mse", 1e-5),
            (ev.explained_variance, "explained_variance", 1e-5),
            (
                ev.explained_variance_legacy,
                "explained_variance_legacy",
                1e-5,
            ),
            (ev.cossim, "cossim", 1e-4),
            (ev.l2_norm_in, "l2_norm_in", 1e-5),
            (ev.l2_norm_out, "l2_norm_out", 1e-5),
            (ev.l2_ratio, "l2_ratio", 1e-5),
            (
                ev.relative_reconstruction_bias,
                "relative_reconstruction_bias",
                1e-4,
            ),
            (ev.l0, "l0", 1e-6),
            (ev.l1, "l1", 1e-5),
        ] {
            let t = f(theirs);
            let err = (ours - t).abs() / t.abs().max(1e-3);
            assert!(
                err <= rel,
                "{name} {theirs}: ours {ours} SAELens {t} (rel {err:.2e})"
            );
        }
        let density: Vec<f64> = want["feature_density"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ev.feature_density.len(), density.len());
        for (i, (a, b)) in ev.feature_density.iter().zip(&density).enumerate() {
            assert!(
                (a - b).abs() < 1e-6,
                "{name} latent {i}: density {a} vs {b}"
            );
        }
        let dead = density.iter().filter(|d| **d == 0.0).count();
        assert_eq!(ev.dead_latents, dead);
        let dense = density.iter().filter(|d| **d > 0.1).count();
        assert_eq!(ev.dense_latents, dense);
    }
}
