//! `cache-activations`, `train-sae`, `latent-stats` and `meta-sae` end to end on the tiny GPT-2
//! (kills and resumption: `kill_resume.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::Path;

use common::bin;

#[test]
fn train_stats_and_meta_sae_from_a_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let text = common::corpus(tmp.path(), 3);
    let cache = tmp.path().join("cache");
    assert!(
        common::cache_cmd(&model, &text, &cache)
            .status()
            .unwrap()
            .success()
    );

    let out = tmp.path().join("saes");
    let train = |extra: &[&str]| {
        bin()
            .args(["--log", "warn", "train-sae", "--cache"])
            .arg(&cache)
            .args([
                "--architecture",
                "topk",
                "--k",
                "4",
                "--steps",
                "40",
                "--batch-size",
                "64",
                "--normalize-activations",
                "--eval-windows",
                "4",
                "--eval-dataset",
            ])
            .arg(&text)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = ["--widths", "32,64", "--lr", "3e-3"];
    assert!(train(&first).status.success());
    let sae_bytes = |w: &str| common::kill::files(&out.join(format!("topk-{w}")));
    let (a32, a64) = (sae_bytes("32"), sae_bytes("64"));

    // Killed after the last checkpoint, before the SAEs were saved: the rerun has nothing left
    // to train and still writes every width, identical to the first run's.
    std::fs::remove_dir_all(out.join("topk-32")).unwrap();
    std::fs::remove_dir_all(out.join("topk-64")).unwrap();
    std::fs::remove_file(out.join("summary.json")).unwrap();
    assert!(train(&first).status.success());
    assert_eq!(sae_bytes("32"), a32);
    assert_eq!(sae_bytes("64"), a64);
    assert!(out.join("summary.json").exists());

    // A rerun asking for another configuration is refused and says what differs.
    for (other, says) in [
        (
            ["--widths", "32,64", "--lr", "1e-3"],
            "lr: recorded 0.003, requested 0.001",
        ),
        (
            ["--widths", "32,64,128", "--lr", "3e-3"],
            "configs: recorded 2 entries, requested 3",
        ),
        (
            ["--widths", "64,32", "--lr", "3e-3"],
            "d_sae: recorded 32, requested 64",
        ),
    ] {
        let o = train(&other);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(says),
            "{other:?}: {err}"
        );
    }

    // A second run on an output in use fails at once, naming the holder.
    {
        let _held = sae_core::lock::OutputLock::acquire(&out).unwrap();
        let o = train(&first);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success()
                && err.contains(&format!(
                    "in use by another run (pid {})",
                    std::process::id()
                )),
            "{err}"
        );
    }
    assert_eq!(sae_bytes("32"), a32);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let saes = summary["saes"].as_array().unwrap();
    assert_eq!(saes.len(), 2);
    for s in saes {
        let ev = &s["eval"];
        assert!(ev["ce_clean"].as_f64().unwrap() > 0.0, "{s}");
        assert!(ev["l0"].as_f64().unwrap() <= 4.0 + 1e-9, "{s}");
    }
    // The saved SAE loads in sae-core with the cache's metadata.
    let sae = sae_core::Sae::load(out.join("topk-64"), &sae_core::device::cpu()).unwrap();
    assert_eq!(sae.d_sae(), 64);
    assert_eq!(
        sae.config().metadata.hook_name.as_deref(),
        Some("blocks.1.hook_resid_pre")
    );
    assert_eq!(sae.config().metadata.context_size, Some(16));

    // Statistics over two halves, merged, equal one pass.
    let whole = tmp.path().join("whole.json");
    let sae_dir = out.join("topk-64");
    let stats = |extra: &[&str], out: &Path| {
        let st = bin()
            .args(["--log", "warn", "latent-stats", "--cache"])
            .arg(&cache)
            .arg("--sae")
            .arg(&sae_dir)
            .args(["--k", "5", "--buffer", "3", "--latents", "0-15"])
            .args(extra)
            .arg("--out")
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success());
    };
    stats(&[], &whole);
    let n = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(cache.join("manifest.json")).unwrap(),
    )
    .unwrap()["shards"]
        .as_array()
        .unwrap()
        .len();
    let (p1, p2) = (tmp.path().join("p1.json"), tmp.path().join("p2.json"));
    stats(&["--shards", &format!("0..{}", n / 2)], &p1);
    stats(&["--shards", &format!("{}..{n}", n / 2)], &p2);
    let merged = tmp.path().join("merged.json");
    let st = bin()
        .args(["--log", "warn", "latent-stats", "--merge"])
        .arg(&p2)
        .arg(&p1)
        .arg("--out")
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success());
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&whole).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(a, b);
    let csv = std::fs::read_to_string(whole.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 17);

    let meta = tmp.path().join("meta");
    let st = bin()
        .args(["--log", "warn", "meta-sae", "--sae"])
        .arg(out.join("topk-64"))
        .args([
            "--d-meta",
            "8",
            "--k",
            "2",
            "--steps",
            "30",
            "--batch-size",
            "32",
            "--out",
        ])
        .arg(&meta)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(meta.join("decomposition.jsonl"))
            .unwrap()
            .lines()
            .count(),
        64
    );
    assert!(meta.join("cfg.json").exists());
}

/// `cache-activations --dtype bfloat16` writes a bfloat16 cache that `train-sae` reads;
/// `activation-dtypes` reports each hook and dtype's cost as CSV and JSON; a dtype the cache
/// cannot take is refused by the parser.
#[test]
fn bfloat16_cache_and_activation_dtypes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let text = common::corpus(tmp.path(), 3);
    let cache = tmp.path().join("cache-bf16");
    let out = common::cache_cmd(&model, &text, &cache)
        .args(["--dtype", "bfloat16", "--max-tokens", "96"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["dtype"], "bfloat16");
    let shard = std::fs::read(cache.join("shard-00000.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(shard[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&shard[8..8 + header_len]).into_owned();
    assert!(header.contains("\"BF16\""), "{header}");
    let trained = tmp.path().join("saes");
    let out = bin()
        .args(["--log", "warn", "train-sae", "--cache"])
        .arg(&cache)
        .args(["--architecture", "topk", "--k", "4", "--widths", "32"])
        .args(["--steps", "5", "--batch-size", "32", "--out"])
        .arg(&trained)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(trained.join("topk-32/sae_weights.safetensors").exists());

    let refused = common::cache_cmd(&model, &text, &tmp.path().join("c64"))
        .args(["--dtype", "float64"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("float64"));

    let report = tmp.path().join("dtypes");
    let dtypes = |extra: &[&str]| {
        bin()
            .args(["--log", "warn", "activation-dtypes", "--offline", "--model"])
            .arg(&model)
            .arg("--dataset")
            .arg(&text)
            .args([
                "--hook",
                "blocks.1.hook_resid_pre",
                "--hook",
                "blocks.0.attn.hook_z",
            ])
            .args(["--context-size", "16", "--out"])
            .arg(&report)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = dtypes(&["--windows", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(report.join("activation_dtypes.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[0].starts_with("hook,dtype,"));
    assert!(
        rows[1].starts_with("blocks.1.hook_resid_pre,bfloat16,64,"),
        "{csv}"
    );
    assert!(
        rows[4].starts_with("blocks.0.attn.hook_z,float16,64,"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("activation_dtypes.json")).unwrap())
            .unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        let e = r["relative_error"].as_f64().unwrap();
        let u = if r["dtype"] == "bfloat16" {
            2f64.powi(-8)
        } else {
            2f64.powi(-11)
        };
        assert!(e > 0.0 && e <= u, "{r}");
        assert!(r["kl"].as_f64().unwrap() >= 0.0, "{r}");
    }
    // A rerun keeps what is measured and measures only what is missing; other settings are
    // refused, naming the difference.
    let before = std::fs::read(report.join("activation_dtypes.json")).unwrap();
    let out = dtypes(&["--windows", "4"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("already measured")
            .count(),
        4
    );
    assert_eq!(
        std::fs::read(report.join("activation_dtypes.json")).unwrap(),
        before
    );
    let out = dtypes(&["--windows", "4", "--hook", "blocks.1.hook_resid_post"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv2 = std::fs::read_to_string(report.join("activation_dtypes.csv")).unwrap();
    assert_eq!(csv2.lines().count(), 7, "{csv2}");
    assert!(csv2.starts_with(&csv), "{csv2}");
    let out = dtypes(&["--windows", "3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("windows: recorded 4, requested 3"), "{err}");
}

#[test]
fn help_shows_defaults() {
    for cmd in [
        "cache-activations",
        "activation-dtypes",
        "train-sae",
        "latent-stats",
        "meta-sae",
    ] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success());
        assert!(
            text.contains("[default:"),
            "{cmd} --help shows no defaults:\n{text}"
        );
    }
}

#[test]
fn umap_and_feature_splitting_commands() {
    use std::collections::BTreeMap;
    let tmp = tempfile::tempdir().unwrap();
    // `umap` on the UMAP fixture: bit-identical with a seed.
    let pts = common::fixtures().join("geometry/tests/fixtures/umap/points.npy");
    let run = |out: &Path| {
        let st = bin()
            .args(["--log", "warn", "umap", "--input"])
            .arg(&pts)
            .args([
                "--n-components",
                "2",
                "--n-neighbors",
                "15",
                "--min-dist",
                "0.05",
                "--metric",
                "cosine",
                "--seed",
                "0",
                "--out",
            ])
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(out).unwrap()
    };
    let (a, b) = (
        run(&tmp.path().join("a.npy")),
        run(&tmp.path().join("b.npy")),
    );
    assert_eq!(a, b);
    let y = sae_core::npy::read_f32(tmp.path().join("a.npy")).unwrap();
    assert_eq!(y.shape, vec![1000, 2]);

    // `feature-splitting` on the tiny model with two SAEs (widths 48 and 96) and an export.
    let model = common::tiny_model(tmp.path());
    let mut dirs = Vec::new();
    for (w, seed) in [(48usize, 1u64), (96, 2)] {
        let mut t = BTreeMap::new();
        let vals = |n: usize, s: u64| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    (((i as u64).wrapping_mul(2_654_435_761).wrapping_add(s * 97)) % 1000) as f32
                        / 500.0
                        - 1.0
                })
                .collect()
        };
        t.insert(
            "W_enc".to_string(),
            sae_core::HostTensor::new(vec![64, w], vals(64 * w, seed)),
        );
        t.insert(
            "W_dec".to_string(),
            sae_core::HostTensor::new(vec![w, 64], vals(64 * w, seed + 10)),
        );
        t.insert(
            "b_enc".to_string(),
            sae_core::HostTensor::new(vec![w], vec![0.0; w]),
        );
        t.insert(
            "b_dec".to_string(),
            sae_core::HostTensor::new(vec![64], vec![0.0; 64]),
        );
        let cfg = sae_core::SaeConfig::new(64, w, sae_core::Architecture::Standard);
        let (sae, _) =
            sae_core::Sae::from_host_tensors(cfg, t, Path::new("<test>"), &sae_core::device::cpu())
                .unwrap();
        let d = tmp.path().join(format!("sae{w}"));
        sae.save(&d).unwrap();
        dirs.push(d);
    }
    let export = tmp.path().join("export.json");
    std::fs::write(
        &export,
        r#"[{"index": "3", "description": "dogs"}, {"index": "3", "description": "dup"}]"#,
    )
    .unwrap();
    let empty = tmp.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let out = tmp.path().join("split");
    let st = bin()
        .args(["--log", "warn", "feature-splitting", "--offline", "--model"])
        .arg(&model)
        .arg("--saes")
        .arg(format!("{},{}", dirs[0].display(), dirs[1].display()))
        .arg("--explanations")
        .arg(format!("{},{}", export.display(), empty.display()))
        .args(["--find-clusters", "--seed", "0", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let csv = std::fs::read_to_string(out.join("splitting.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 48 + 96);
    assert!(csv.lines().nth(4).unwrap().starts_with("48,3,") && csv.contains(",dogs,"));
    for f in [
        "splitting.parquet",
        "families.json",
        "splitting.html",
        "splitting.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let fam: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("families.json")).unwrap()).unwrap();
    assert_eq!(fam.as_array().unwrap().len(), 48);
}
