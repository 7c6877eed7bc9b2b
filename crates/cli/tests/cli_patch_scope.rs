//! `sae-geometry patch-scope` on gemma-3-270m (offline GGUF): the tutorial's printed lines, the
//! results JSON contract, and the tuning plots.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::process::Command;

#[test]
fn patch_scope_writes_the_contracted_outputs() {
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A direction instead of an SAE: the embedding-like unit vector e_0.
    let dir = tmp.path().join("d.npy");
    let mut v = vec![0f32; 640];
    v[0] = 1.0;
    v[5] = -0.5;
    sae_core::npy::write_f32(&dir, &[640], &v).unwrap();
    let out = tmp.path().join("r/results.json");
    let o = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args([
            "--log",
            "warn",
            "patch-scope",
            "--model",
            "gemma-3-270m",
            "--offline",
            "--gguf",
        ])
        .arg(&gguf)
        .arg("--direction")
        .arg(&dir)
        .args([
            "--layer",
            "2",
            "--scales",
            "0,400,1500",
            "--greedy",
            "--max-new-tokens",
            "6",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("scale ")).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("scale 00 | '") || lines[0].starts_with("scale 00 | \""),
        "{stdout}"
    );
    assert!(stdout.contains("chosen scale:"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let scales = v["scales"].as_array().unwrap();
    assert_eq!(scales.len(), 3);
    for s in scales {
        for k in [
            "scale",
            "generated_ids",
            "text",
            "self_similarity",
            "entropy",
        ] {
            assert!(s.get(k).is_some(), "{k} missing");
        }
        assert!(s["generated_ids"].as_array().unwrap().len() <= 6);
    }
    assert_eq!(scales[0]["self_similarity"].as_f64().unwrap(), 0.0);
    assert!(v["chosen_scale"].as_f64().unwrap() > 0.0);
    assert!((v["residual_norm"].as_f64().unwrap() - 919.0).abs() < 2.0);
    let png = std::fs::read(out.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let html = std::fs::read_to_string(out.with_extension("html")).unwrap();
    assert_eq!(html.matches("class=\"pt\"").count(), 4 * 3);
    assert!(!html.contains("<script src"));
}
