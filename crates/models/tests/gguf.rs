//! GGUF parsing and dequantisation: bit for bit against the `gguf` Python package on slices of
//! the real gemma-3-270m file (`fixtures/gguf/gen_fixtures.py`), and no panics on mutated files.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::PathBuf;

use gpt2_gemma_models::ModelError;
use gpt2_gemma_models::gguf::{GgmlType, GgufFile, GgufValue};
use proptest::prelude::*;
use sae_core::safetensors_io::SafetensorsFile;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn bytes() -> Vec<u8> {
    std::fs::read(dir().join("slices.gguf")).unwrap()
}

#[test]
fn every_quantisation_type_dequantises_bit_for_bit() {
    let f = GgufFile::open(dir().join("slices.gguf")).unwrap();
    let expected = SafetensorsFile::open(dir().join("expected.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let mut types = Vec::new();
    for (name, want) in &expected {
        let got = f.dequantize(name).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        let same = got
            .data
            .iter()
            .zip(&want.data)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: not bit-identical to the gguf package");
        types.push(f.tensor_info(name).unwrap().ggml_type);
    }
    for t in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        assert!(types.contains(&t), "fixture lacks {t}");
    }
}

#[test]
fn metadata_of_every_value_type() {
    let f = GgufFile::open(dir().join("slices.gguf")).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.architecture(), Some("gemma3"));
    assert_eq!(f.get("test.u32"), Some(&GgufValue::U32(7)));
    assert_eq!(f.get("test.i32"), Some(&GgufValue::I32(-7)));
    assert_eq!(f.get("test.f32"), Some(&GgufValue::F32(0.5)));
    assert_eq!(f.get("test.bool"), Some(&GgufValue::Bool(true)));
    assert_eq!(
        f.get("test.string").and_then(GgufValue::as_str),
        Some("héllo")
    );
    assert_eq!(f.get("test.u64"), Some(&GgufValue::U64(1 << 40)));
    assert_eq!(f.get("test.i64"), Some(&GgufValue::I64(-(1 << 40))));
    assert_eq!(f.get("test.f64"), Some(&GgufValue::F64(0.25)));
    assert_eq!(f.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("test.i8"), Some(&GgufValue::I8(-100)));
    assert_eq!(f.get("test.u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(f.get("test.i16"), Some(&GgufValue::I16(-30000)));
    let arr = f
        .get("test.array_str")
        .and_then(GgufValue::as_array)
        .unwrap();
    assert_eq!(
        arr.iter().filter_map(GgufValue::as_str).collect::<Vec<_>>(),
        ["a", "bb", "<unk>"]
    );
    let t = f.tensor_info("q8_0.token_embd.weight").unwrap();
    assert_eq!(t.shape(), vec![3, 640]);
}

#[test]
fn truncated_and_corrupt_files_are_errors() {
    let b = bytes();
    for cut in [0, 3, 4, 8, 16, 24, 100, 500, b.len() / 2, b.len() - 1] {
        let e = GgufFile::from_bytes("cut.gguf", b[..cut].to_vec()).unwrap_err();
        assert!(matches!(e, ModelError::Gguf { .. }), "cut {cut}: {e}");
    }
    let mut bad = b.clone();
    bad[0] = b'X';
    assert!(
        GgufFile::from_bytes("magic.gguf", bad)
            .unwrap_err()
            .to_string()
            .contains("bad magic")
    );
    let mut v1 = b.clone();
    v1[4] = 1;
    assert!(
        GgufFile::from_bytes("v1.gguf", v1)
            .unwrap_err()
            .to_string()
            .contains("version 1")
    );
}

#[test]
fn unsupported_quantisation_and_missing_tensor() {
    let f = GgufFile::open(dir().join("slices.gguf")).unwrap();
    assert!(matches!(
        f.dequantize("nope"),
        Err(ModelError::MissingTensor { .. })
    ));
    // Rewrite one tensor's type id in memory to a type with no block layout here: an
    // i-quant, a ternary type, an unknown id. The error names the tensor and the type.
    for (id, shown) in [
        (23u32, "IQ4_XS (ggml type 23)"),
        (35, "TQ2_0 (ggml type 35)"),
        (99, "ggml type 99"),
    ] {
        let mut b = bytes();
        let name = b"f16.random";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        // rank u32, then dims (u64 each), then the type u32.
        let rank = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let ty_at = at + 4 + 8 * rank;
        b[ty_at..ty_at + 4].copy_from_slice(&id.to_le_bytes());
        match GgufFile::from_bytes("q.gguf", b) {
            Err(ModelError::UnsupportedQuantization {
                tensor, ggml_type, ..
            }) => {
                assert_eq!(tensor, "f16.random");
                assert_eq!(ggml_type, shown);
            }
            other => panic!("{other:?}"),
        }
    }
}

proptest! {
    // A fixed seed: CI runs the same cases every time (and records no flaky failures).
    #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(20261125), ..ProptestConfig::default() })]

    /// Any mutation of the header or tables gives Ok or an error — never a panic — and whatever
    /// parses also dequantises without panicking.
    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((0usize..2000, any::<u8>()), 1..8),
        cut in prop::option::of(0usize..12000),
    ) {
        let mut b = bytes();
        for (pos, v) in edits {
            let p = pos % b.len();
            b[p] = v;
        }
        if let Some(c) = cut {
            b.truncate(c.min(b.len()));
        }
        if let Ok(f) = GgufFile::from_bytes("fuzz.gguf", b) {
            for t in f.tensors.clone() {
                let _ = f.dequantize(&t.name);
            }
        }
    }
}

/// Sizes and divisors from a GGUF header are checked before they size an allocation or divide:
/// `block_count = 0xFFFFFFFF`, `head_count_kv = 0` and `key_length = 1` used to reach
/// `Vec::with_capacity`, a division by zero and an empty RoPE.
#[test]
fn hostile_gguf_model_metadata_is_a_config_error() {
    let dev = sae_core::device::cpu();
    // The sane header passes validation and stops at the first missing tensor.
    let f = GgufFile::from_bytes(
        "ok.gguf",
        gpt2_gemma_models::testing::gemma3_metadata_gguf(&[]),
    )
    .unwrap();
    assert!(matches!(
        gpt2_gemma_models::Gemma::load_gguf(&f, &dev),
        Err(ModelError::MissingTensor { .. })
    ));
    for (key, value, says) in [
        (
            "block_count",
            0xFFFF_FFFF,
            "num_hidden_layers is 4294967295",
        ),
        ("block_count", 0, "num_hidden_layers is 0"),
        ("head_count_kv", 0, "num_key_value_heads is 0"),
        (
            "head_count_kv",
            3,
            "not a multiple of num_key_value_heads 3",
        ),
        ("key_length", 1, "head_dim 1 is odd"),
        ("key_length", 0, "head_dim is 0"),
        ("embedding_length", u64::MAX, "hidden_size is"),
        ("sliding_window", 0, "sliding_window"),
    ] {
        let f = GgufFile::from_bytes(
            "bad.gguf",
            gpt2_gemma_models::testing::gemma3_metadata_gguf(&[(key, value)]),
        )
        .unwrap();
        match gpt2_gemma_models::Gemma::load_gguf(&f, &dev) {
            Err(ModelError::Config { path, message }) => {
                assert_eq!(path, PathBuf::from("bad.gguf"));
                assert!(message.contains(says), "{key}={value}: {message}");
            }
            Err(e) => panic!("{key}={value}: {e}"),
            Ok(_) => panic!("{key}={value}: loaded"),
        }
    }
}

/// The same checks on `config.json`.
#[test]
fn hostile_config_json_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("config.json");
    let base = serde_json::json!({
        "model_type": "gemma3_text", "vocab_size": 16, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 16, "sliding_window": 32,
    });
    std::fs::write(&p, base.to_string()).unwrap();
    gpt2_gemma_models::GemmaConfig::from_file(&p).unwrap();
    for (key, value, says) in [
        (
            "sliding_window_pattern",
            serde_json::json!(0),
            "sliding_window_pattern",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(1_000_000_000_000u64),
            "num_hidden_layers is 1000000000000",
        ),
        ("num_hidden_layers", serde_json::json!(1e12), "Gemma config"),
        (
            "num_attention_heads",
            serde_json::json!(0),
            "num_attention_heads is 0",
        ),
        (
            "layer_types",
            serde_json::json!(["full_attention"]),
            "layer_types has 1 entries",
        ),
    ] {
        let mut v = base.clone();
        v[key] = value.clone();
        std::fs::write(&p, v.to_string()).unwrap();
        let e = gpt2_gemma_models::GemmaConfig::from_file(&p).unwrap_err();
        assert!(
            matches!(&e, ModelError::Config { .. }) && e.to_string().contains(says),
            "{key}={value}: {e}"
        );
    }
    // n_embd near usize::MAX: the derived MLP width (4 · n_embd) overflowed inside validation
    // (found by `cargo xtask fuzz`).
    let gpt2 = serde_json::json!({ "n_embd": 4611686018427387904u64, "n_head": 1 });
    std::fs::write(&p, gpt2.to_string()).unwrap();
    let e = gpt2_gemma_models::Gpt2Config::from_file(&p).unwrap_err();
    assert!(
        e.to_string().contains("n_embd is 4611686018427387904"),
        "{e}"
    );
    let gpt2 = serde_json::json!({ "n_layer": 1_000_000_000_000u64 });
    std::fs::write(&p, gpt2.to_string()).unwrap();
    let e = gpt2_gemma_models::Gpt2Config::from_file(&p).unwrap_err();
    assert!(e.to_string().contains("n_layer is 1000000000000"), "{e}");
}
