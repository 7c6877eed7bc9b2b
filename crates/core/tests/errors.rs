//! Every kind of bad input gives its own error variant, never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::Path;

use common::*;
use sae_core::device::{from_env, tensor_from_vec};
use sae_core::{Architecture, NormalizeActivations, Sae, SaeConfig, SaeError};

fn copy_case(case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["cfg.json", "sae_weights.safetensors"] {
        std::fs::copy(fixtures().join(case).join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

fn edit_cfg(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("cfg.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

fn load_err(dir: &Path) -> SaeError {
    Sae::load(dir, &from_env().unwrap()).expect_err("bad input must not load")
}

#[test]
fn truncated_safetensors() {
    let tmp = copy_case("standard__none");
    let p = tmp.path().join("sae_weights.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_err(tmp.path());
        assert!(
            matches!(e, SaeError::CorruptSafetensors { .. }),
            "cut {cut}: {e}"
        );
        assert!(e.to_string().contains("sae_weights.safetensors"));
    }
}

#[test]
fn corrupt_safetensors_header() {
    let tmp = copy_case("standard__none");
    let p = tmp.path().join("sae_weights.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[9] = 0xff; // not UTF-8: the JSON header cannot parse
    std::fs::write(&p, &bytes).unwrap();
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::CorruptSafetensors { .. }
    ));
    std::fs::write(&p, b"not safetensors at all, just text").unwrap();
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::CorruptSafetensors { .. }
    ));
}

#[test]
fn wrong_shape_names_tensor_expected_and_found() {
    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| v["d_sae"] = 47.into());
    match load_err(tmp.path()) {
        SaeError::ShapeMismatch {
            tensor,
            expected,
            found,
            path,
        } => {
            assert_eq!(tensor, "W_enc");
            assert_eq!(expected, vec![16, 47]);
            assert_eq!(found, vec![16, 48]);
            assert!(path.ends_with("sae_weights.safetensors"));
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn missing_tensor() {
    // A standard SAE's weights presented as jumprelu: `threshold` is missing.
    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| v["architecture"] = "jumprelu".into());
    match load_err(tmp.path()) {
        SaeError::MissingTensor {
            tensor,
            architecture,
            ..
        } => {
            assert_eq!(tensor, "threshold");
            assert_eq!(architecture, "jumprelu");
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn unexpected_tensor() {
    let tmp = copy_case("jumprelu__none");
    edit_cfg(tmp.path(), |v| v["architecture"] = "standard".into());
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::UnexpectedTensor { tensor, .. } if tensor == "threshold"
    ));
}

#[test]
fn unknown_architecture() {
    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| {
        v["architecture"] = "matryoshka_wizard".into()
    });
    match load_err(tmp.path()) {
        SaeError::UnknownArchitecture {
            found, supported, ..
        } => {
            assert_eq!(found, "matryoshka_wizard");
            assert!(supported.contains("jumprelu"));
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn malformed_cfg_json() {
    let tmp = copy_case("standard__none");
    std::fs::write(tmp.path().join("cfg.json"), "{\"d_in\": 16, ").unwrap();
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::MalformedConfig { .. }
    ));
    std::fs::write(tmp.path().join("cfg.json"), "[1, 2]").unwrap();
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::MalformedConfig { .. }
    ));
}

#[test]
fn missing_and_invalid_config_fields() {
    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| {
        v.as_object_mut().unwrap().remove("d_in");
    });
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::MissingConfigField { field: "d_in", .. }
    ));

    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| {
        v.as_object_mut().unwrap().remove("architecture");
    });
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::MissingConfigField {
            field: "architecture",
            ..
        }
    ));

    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| {
        v["normalize_activations"] = "sometimes".into()
    });
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::InvalidConfigField {
            field: "normalize_activations",
            ..
        }
    ));

    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| v["d_in"] = (-3).into());
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::InvalidConfigField { field: "d_in", .. }
    ));

    let tmp = copy_case("topk__none");
    edit_cfg(tmp.path(), |v| v["k"] = 1000.into());
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::InvalidConfigField { field: "k", .. }
    ));
}

#[test]
fn unknown_fields_are_tolerated() {
    let tmp = copy_case("standard__none");
    edit_cfg(tmp.path(), |v| {
        v["some_future_field"] = 3.into();
        v["metadata"]["another"] = "x".into();
    });
    let sae = Sae::load(tmp.path(), &from_env().unwrap()).unwrap();
    assert_eq!(sae.config().metadata.extra["another"], "x");
}

#[test]
fn missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(load_err(tmp.path()), SaeError::Io { .. }));
    let tmp = copy_case("standard__none");
    std::fs::remove_file(tmp.path().join("sae_weights.safetensors")).unwrap();
    match load_err(tmp.path()) {
        SaeError::Io { path, .. } => assert!(path.ends_with("sae_weights.safetensors")),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn unsupported_dtype_and_non_finite_weights() {
    use safetensors::tensor::{Dtype, TensorView};
    let tmp = copy_case("standard__none");
    let cfg = SaeConfig::from_file(tmp.path()).unwrap();
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let f32s = |n: usize, v: f32| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
    let w_enc = f32s(d_in * d_sae, 0.1);
    let w_dec = f32s(d_in * d_sae, 0.1);
    let b_dec = f32s(d_in, 0.0);
    let b_enc_i32: Vec<u8> = (0..d_sae).flat_map(|_| 1i32.to_le_bytes()).collect();
    let write = |b_enc: (Dtype, &[u8])| {
        let views = vec![
            (
                "W_enc",
                TensorView::new(Dtype::F32, vec![d_in, d_sae], &w_enc).unwrap(),
            ),
            (
                "W_dec",
                TensorView::new(Dtype::F32, vec![d_sae, d_in], &w_dec).unwrap(),
            ),
            (
                "b_dec",
                TensorView::new(Dtype::F32, vec![d_in], &b_dec).unwrap(),
            ),
            (
                "b_enc",
                TensorView::new(b_enc.0, vec![d_sae], b_enc.1).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).unwrap();
        std::fs::write(tmp.path().join("sae_weights.safetensors"), bytes).unwrap();
    };
    write((Dtype::I32, &b_enc_i32));
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::UnsupportedDtype { tensor, .. } if tensor == "b_enc"
    ));
    let mut nan = f32s(d_sae, 0.0);
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    write((Dtype::F32, &nan));
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::NonFinite { tensor, count: 1, .. } if tensor == "b_enc"
    ));
}

#[test]
fn finetuning_scaling_factor_is_refused() {
    use safetensors::tensor::{Dtype, TensorView};
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("legacy_flat");
    std::fs::copy(src.join("cfg.json"), tmp.path().join("cfg.json")).unwrap();
    let mut all =
        sae_core::safetensors_io::SafetensorsFile::open(src.join("sae_weights.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
    all.get_mut("scaling_factor").unwrap().data[0] = 2.0;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = all
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.shape.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        tmp.path().join("sae_weights.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        load_err(tmp.path()),
        SaeError::UnsupportedScalingFactor { .. }
    ));
}

#[test]
fn wrong_input_width_and_missing_norm_state() {
    let sae = random_sae(config(Architecture::Standard, 8, 16), 1);
    let x = tensor_from_vec(vec![0.5; 3 * 7], [3, 7], &from_env().unwrap());
    match sae.encode(x).unwrap_err() {
        SaeError::ShapeMismatch {
            tensor,
            expected,
            found,
            ..
        } => {
            assert_eq!(tensor, "input");
            assert_eq!(expected, vec![3, 8]);
            assert_eq!(found, vec![3, 7]);
        }
        e => panic!("wrong error {e}"),
    }
    let f = tensor_from_vec(vec![0.5; 3 * 15], [3, 15], &from_env().unwrap());
    assert!(
        matches!(sae.decode(f).unwrap_err(), SaeError::ShapeMismatch { tensor, .. } if tensor == "features")
    );

    let mut cfg = config(Architecture::Standard, 8, 16);
    cfg.normalize_activations = NormalizeActivations::LayerNorm;
    let sae = random_sae(cfg, 2);
    let f = tensor_from_vec(vec![0.5; 3 * 16], [3, 16], &from_env().unwrap());
    assert!(matches!(
        sae.decode(f).unwrap_err(),
        SaeError::NormStateRequired { .. }
    ));
}

#[test]
fn from_parts_checks_params() {
    let sae = random_sae(config(Architecture::JumpRelu, 8, 16), 3);
    let params = sae.clone().into_params();
    let err = Sae::from_parts(config(Architecture::Standard, 8, 16), params, None).unwrap_err();
    assert!(matches!(err, SaeError::UnexpectedTensor { tensor, .. } if tensor == "threshold"));
    let params = sae.into_params();
    let err = Sae::from_parts(config(Architecture::JumpRelu, 8, 17), params, None).unwrap_err();
    assert!(matches!(err, SaeError::ShapeMismatch { .. }));
    let _ = Path::new("");
}

/// A `.npy` header is trusted by nothing: a shape whose product overflows, or promises more data
/// than the file holds, is an error before any allocation (it used to pass the length check
/// after a wrapping product, or to reach a multi-exabyte allocation).
#[test]
fn npy_header_shapes_are_checked_before_allocation() {
    fn npy(shape: &str, descr: &str, data: &[u8]) -> Vec<u8> {
        let mut dict =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(data);
        b
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.npy");
    let ok = npy("(2, 2)", "<f4", &[0u8; 16]);
    std::fs::write(&p, &ok).unwrap();
    assert_eq!(sae_core::npy::read_f32(&p).unwrap().shape, vec![2, 2]);
    for (shape, descr) in [
        ("(4611686018427387904, 4)", "<f4"), // 2^62 × 4: the product wraps to 0
        ("(4294967296, 4294967296)", "<f4"), // 2^64: overflows u64
        ("(1000000000000,)", "<f4"),         // fits u64, not the file
        ("(1000000000000,)", "<f8"),
        ("(4611686018427387904, 4)", "<i8"),
    ] {
        std::fs::write(&p, npy(shape, descr, &[0u8; 16])).unwrap();
        let e = if descr == "<i8" {
            sae_core::npy::read_i64(&p).unwrap_err()
        } else {
            sae_core::npy::read_f32(&p).map(|_| ()).unwrap_err()
        };
        assert!(
            matches!(&e, SaeError::Npy { path, message } if path == &p && message.contains("header shape")),
            "{shape} {descr}: {e}"
        );
    }
}
