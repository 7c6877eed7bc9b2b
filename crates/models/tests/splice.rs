//! SAEs spliced into the tiny GPT-2 against SAELens's HookedSAETransformer
//! (`fixtures/splice/gen_fixtures.py`).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use common::{fixtures, max_diff, tokens};
use std::collections::BTreeMap;

use gpt2_gemma_models::{
    Activation, CacheFilter, Gpt2, HookPoint, Hooks, LanguageModel, ModelError, Processing,
    SaeHook, Splice, SpliceOutput,
};
use sae_core::Sae;
use sae_core::burn::tensor::Tensor;
use sae_core::device::{from_env, tensor_to_vec};
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};

const SAES: [&str; 5] = [
    "std_resid_pre1",
    "topk_resid_post0",
    "jump_mlp_out1",
    "gated_resid_mid1",
    "std_z0",
];

fn io() -> BTreeMap<String, HostTensor> {
    SafetensorsFile::open(fixtures().join("splice/io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap()
}

fn model() -> Gpt2 {
    Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::TransformerLens,
        &from_env().unwrap(),
    )
    .unwrap()
}

fn sae(name: &str) -> Sae {
    Sae::load(fixtures().join("splice").join(name), &from_env().unwrap()).unwrap()
}

fn vec3(t: Option<Tensor<3>>) -> Vec<f32> {
    tensor_to_vec(t.unwrap()).unwrap()
}

fn assert_close(ours: &[f32], theirs: &[f32], tol: f32, what: &str) {
    let d = max_diff(ours, theirs);
    assert!(d <= tol, "{what}: max |diff| {d} > {tol}");
}

#[test]
fn sae_hook_names_round_trip() {
    for site in HookPoint::all(2) {
        for h in SaeHook::ALL {
            let p = site.sae(h);
            let name = p.to_string();
            assert_eq!(name, format!("{site}.{}", h.name()));
            assert_eq!(name.parse::<HookPoint>().unwrap(), p, "{name}");
            assert_eq!(p.site(), site);
            assert_eq!(p.layer(), site.layer());
            // Another hook of the same SAE, not a nested one.
            assert_eq!(p.sae(SaeHook::Output), site.sae(SaeHook::Output));
        }
    }
    for bad in [
        "hook_sae_input",
        "blocks.1.hook_resid_pre.hook_sae_nope",
        "blocks.1.hook_resid_pre.hook_sae_input.hook_sae_output",
        "blocks.x.hook_resid_pre.hook_sae_input",
    ] {
        assert!(bad.parse::<HookPoint>().is_err(), "{bad}");
    }
}

#[test]
fn spliced_runs_match_saelens() {
    let io = io();
    let model = model();
    let toks = tokens(&io);
    let clean = tensor_to_vec(model.forward(toks.clone()).unwrap()).unwrap();
    assert_close(&clean, &io["clean.logits"].data, 1e-4, "clean logits");
    for name in SAES {
        let sae = sae(name);
        let splice = Splice::new(&sae).unwrap();
        let site = splice.site();
        let points: Vec<HookPoint> = [
            SaeHook::Input,
            SaeHook::ActsPre,
            SaeHook::ActsPost,
            SaeHook::Recons,
            SaeHook::Output,
        ]
        .into_iter()
        .map(|h| site.sae(h))
        .collect();
        let (logits, cache) = model
            .run_with_cache_with_saes(
                toks.clone(),
                std::slice::from_ref(&splice),
                CacheFilter::Only(points.clone()),
                None,
            )
            .unwrap();
        assert_close(
            &vec3(logits),
            &io[&format!("{name}.splice.logits")].data,
            1e-4,
            &format!("{name}: logits with the SAE"),
        );
        for p in points {
            let key = format!("{name}.splice.{}", p.sae_hook_name());
            assert_close(&vec3(cache.get3(p)), &io[&key].data, 1e-4, &key);
        }

        // The error term: SAELens's logits, ours unchanged from the clean run to 1e-5, and the
        // error hook's value.
        let with_error = splice.clone().output(SpliceOutput::ReconstructionPlusError);
        let (logits, cache) = model
            .run_with_cache_with_saes(
                toks.clone(),
                std::slice::from_ref(&with_error),
                CacheFilter::Only(vec![site.sae(SaeHook::Error)]),
                None,
            )
            .unwrap();
        let logits = vec3(logits);
        assert_close(
            &logits,
            &clean,
            1e-5,
            &format!("{name}: error-term logits vs clean"),
        );
        assert_close(
            &logits,
            &io[&format!("{name}.error.logits")].data,
            1e-4,
            &format!("{name}: error-term logits"),
        );
        assert_close(
            &vec3(cache.get3(site.sae(SaeHook::Error))),
            &io[&format!("{name}.error.hook_sae_error")].data,
            1e-4,
            &format!("{name}: hook_sae_error"),
        );

        // Ablating latents 0..8 with the error term on; steering latent 3 without it.
        let ablate = Hooks::new().splice(with_error.clone()).add(
            site.sae(SaeHook::ActsPost),
            |_, _, act| {
                let t = act.rank3().unwrap().clone();
                let [b, p, _] = t.dims();
                Activation::Rank3(t.slice_assign(
                    [0..b, 0..p, 0..8],
                    Tensor::zeros([b, p, 8], &from_env().unwrap()),
                ))
            },
        );
        let (logits, _) = model.run_with_hooks(toks.clone(), ablate, None).unwrap();
        assert_close(
            &vec3(logits),
            &io[&format!("{name}.ablate.logits")].data,
            1e-4,
            &format!("{name}: ablated"),
        );
        let steer =
            Hooks::new()
                .splice(splice.clone())
                .add(site.sae(SaeHook::ActsPost), |_, _, act| {
                    let t = act.rank3().unwrap().clone();
                    let [b, p, _] = t.dims();
                    let cur = t.clone().slice([0..b, 0..p, 3..4]);
                    Activation::Rank3(t.slice_assign([0..b, 0..p, 3..4], cur.add_scalar(4.0)))
                });
        let (logits, _) = model.run_with_hooks(toks.clone(), steer, None).unwrap();
        assert_close(
            &vec3(logits),
            &io[&format!("{name}.steer.logits")].data,
            1e-4,
            &format!("{name}: steered"),
        );

        // Bypassed at BOS (SAELens's exclude_special_tokens).
        let logits = model
            .run_with_saes(toks.clone(), &[splice.clone().exclude_tokens([999])], None)
            .unwrap();
        assert_close(
            &vec3(logits),
            &io[&format!("{name}.exclude.logits")].data,
            1e-4,
            &format!("{name}: BOS excluded"),
        );
    }
}

trait SaeHookName {
    fn sae_hook_name(self) -> &'static str;
}

impl SaeHookName for HookPoint {
    fn sae_hook_name(self) -> &'static str {
        match self {
            HookPoint::Sae(p) => p.hook().name(),
            _ => unreachable!(),
        }
    }
}

#[test]
fn two_saes_at_once_match_saelens() {
    let io = io();
    let (a, b) = (sae("std_resid_pre1"), sae("topk_resid_post0"));
    let logits = model()
        .run_with_saes(
            tokens(&io),
            &[Splice::new(&a).unwrap(), Splice::new(&b).unwrap()],
            None,
        )
        .unwrap();
    assert_close(&vec3(logits), &io["pair.logits"].data, 1e-4, "two SAEs");
}

#[test]
fn splicing_equals_replacing_the_activation_with_the_reconstruction() {
    let io = io();
    let model = model();
    for name in ["std_resid_pre1", "jump_mlp_out1", "gated_resid_mid1"] {
        let sae = sae(name);
        let splice = Splice::new(&sae).unwrap();
        let site = splice.site();
        let spliced = vec3(model.run_with_saes(tokens(&io), &[splice], None).unwrap());
        let replace = Hooks::new().add(site, |_, _, act| {
            let t = act.rank3().unwrap().clone();
            let [b, p, d] = t.dims();
            let recon = sae.forward(t.reshape([b * p, d])).unwrap();
            Activation::Rank3(recon.reshape([b, p, d]))
        });
        let (replaced, _) = model.run_with_hooks(tokens(&io), replace, None).unwrap();
        assert_close(&spliced, &vec3(replaced), 1e-6, name);
    }
}

#[test]
fn stop_at_layer_keeps_the_sae_caches() {
    let io = io();
    let model = model();
    let sae = sae("topk_resid_post0");
    let splice = Splice::new(&sae).unwrap();
    let acts = HookPoint::ResidPost(0).sae(SaeHook::ActsPost);
    let filter = || CacheFilter::Only(vec![acts]);
    let (full_logits, full) = model
        .run_with_cache_with_saes(tokens(&io), std::slice::from_ref(&splice), filter(), None)
        .unwrap();
    assert!(full_logits.is_some());
    let (logits, early) = model
        .run_with_cache_with_saes(tokens(&io), &[splice], filter(), Some(1))
        .unwrap();
    assert!(logits.is_none());
    assert_eq!(vec3(early.get3(acts)), vec3(full.get3(acts)));
    let acts = vec3(early.get3(acts));
    let l0 = acts.iter().filter(|a| **a != 0.0).count();
    assert_eq!(l0, 2 * 16 * 6, "TopK k=6 at every position");
}

#[test]
fn bad_splices_are_typed_errors() {
    let io = io();
    let model = model();
    let sae = sae("std_resid_pre1");
    // A site past the last block.
    let far = Splice::at(&sae, HookPoint::ResidPost(7)).unwrap();
    let e = model.run_with_saes(tokens(&io), &[far], None).unwrap_err();
    assert!(
        matches!(e, ModelError::InvalidInput(ref m) if m.contains("2 blocks")),
        "{e}"
    );
    // A site whose width differs from d_in (MLP hidden is 256 wide).
    let wide = Splice::at(&sae, HookPoint::MlpPost(0)).unwrap();
    let e = model.run_with_saes(tokens(&io), &[wide], None).unwrap_err();
    assert!(
        matches!(e, ModelError::ShapeMismatch { ref expected, ref found, .. }
            if expected[2] == 64 && found[2] == 256),
        "{e}"
    );
    // Two SAEs at one site.
    let one = Splice::new(&sae).unwrap();
    let e = model
        .run_with_saes(tokens(&io), &[one.clone(), one], None)
        .unwrap_err();
    assert!(
        matches!(e, ModelError::InvalidInput(ref m) if m.contains("two SAEs")),
        "{e}"
    );
    // Sites an SAE cannot sit at.
    for site in [
        HookPoint::AttnPattern(0),
        HookPoint::ResidPre(0).sae(SaeHook::Output),
    ] {
        assert!(Splice::at(&sae, site).is_err(), "{site}");
    }
}
