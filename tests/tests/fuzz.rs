//! The fuzz campaign, on stable Rust: every parser of the workspace is fed mutated copies of
//! valid files (bit flips, byte overwrites, truncations, splices, duplicated runs, huge counts
//! written over integers) and must return — `Ok` or a typed error — never panic or abort.
//!
//! Each target runs for `SAE_GEOMETRY_FUZZ_SECONDS` seconds, or `SAE_GEOMETRY_FUZZ_CASES`
//! inputs (default 48: CI), from seed `SAE_GEOMETRY_FUZZ_SEED`. `cargo xtask fuzz --minutes N`
//! runs it with a time budget and reports the inputs tried per target. A panicking input is
//! written to `$SAE_GEOMETRY_FUZZ_OUT` (default the system temp dir) for reproduction; an abort
//! (e.g. an allocation of an absurd size) kills the binary, which fails the run as well.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sae_geometry::core::device::cpu;

static LAST_PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// How long (or how many inputs) each target runs.
#[derive(Clone, Copy)]
struct Budget {
    cases: u64,
    time: Option<Duration>,
    seed: u64,
}

fn budget() -> Budget {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    Budget {
        cases: env("SAE_GEOMETRY_FUZZ_CASES").map_or(48, |c| c as u64),
        time: env("SAE_GEOMETRY_FUZZ_SECONDS").map(Duration::from_secs_f64),
        seed: env("SAE_GEOMETRY_FUZZ_SEED").map_or(20261204, |s| s as u64),
    }
}

/// One mutation of `seed` (`donor` supplies spliced bytes).
fn mutate(rng: &mut StdRng, seed: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.random_range(0..4u32);
    for _ in 0..rounds {
        let n = b.len();
        match rng.random_range(0..8u32) {
            // Flip a few bits.
            0 if n > 0 => {
                for _ in 0..rng.random_range(1..8u32) {
                    let i = rng.random_range(0..n);
                    b[i] ^= 1 << rng.random_range(0..8u32);
                }
            }
            // Overwrite a byte with an edge value.
            1 if n > 0 => {
                let i = rng.random_range(0..n);
                b[i] = [0x00, 0xFF, 0x7F, 0x80, b'"', b'{', b'0', b'-'][rng.random_range(0..8)];
            }
            // Truncate.
            2 if n > 0 => b.truncate(rng.random_range(0..n)),
            // Splice a run of the donor in.
            3 if !donor.is_empty() && n > 0 => {
                let a = rng.random_range(0..donor.len());
                let len = rng.random_range(1..=(donor.len() - a).min(64));
                let at = rng.random_range(0..n);
                let end = (at + len).min(n);
                b.splice(at..end, donor[a..a + len].iter().copied());
            }
            // Write a huge or degenerate integer (little-endian or decimal) over the bytes.
            4 if n >= 8 => {
                let at = rng.random_range(0..n - 7);
                let v: u64 =
                    [u64::MAX, 0xFFFF_FFFF, 0, 1, 1 << 62, 0x8000_0000][rng.random_range(0..6)];
                if rng.random_bool(0.5) {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    let digits = v.to_string();
                    let end = (at + digits.len()).min(n);
                    b.splice(at..end, digits.bytes());
                }
            }
            // Duplicate a run.
            5 if n > 0 => {
                let a = rng.random_range(0..n);
                let len = rng.random_range(1..=(n - a).min(256));
                let run: Vec<u8> = b[a..a + len].to_vec();
                let at = rng.random_range(0..=n);
                b.splice(at..at, run);
            }
            // Replace a decimal number by another (JSON counts, shapes, sizes).
            6 => {
                let digits: Vec<usize> = (0..n).filter(|&i| b[i].is_ascii_digit()).collect();
                if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                    let mut j = i;
                    while j < n && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    let repl = ["0", "-1", "1e12", "18446744073709551615", "4294967295", "3"]
                        [rng.random_range(0..6)];
                    b.splice(i..j, repl.bytes());
                }
            }
            // Drop a run.
            _ if n > 0 => {
                let a = rng.random_range(0..n);
                let len = rng.random_range(1..=(n - a).min(32));
                b.drain(a..a + len);
            }
            _ => {}
        }
    }
    b
}

/// Runs `target` on mutated seeds within the budget; returns the inputs tried. Panics (after
/// saving the input) if any input panicked.
fn campaign(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> u64 {
    let b = budget();
    let mut rng = StdRng::seed_from_u64(
        b.seed
            ^ name
                .bytes()
                .fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c))),
    );
    let start = Instant::now();
    let mut tried = 0u64;
    // The unmutated seeds first: they must parse without panicking too.
    let mut inputs: Box<dyn Iterator<Item = Vec<u8>>> = Box::new(seeds.iter().cloned());
    let prev = std::panic::take_hook();
    // Quiet, but keep where the parser panicked (the message alone rarely says).
    std::panic::set_hook(Box::new(|info| {
        if let Some(l) = info.location() {
            *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) =
                format!("{}:{}:{}", l.file(), l.line(), l.column());
        }
    }));
    let mut failure = None;
    loop {
        let input = match inputs.next() {
            Some(i) => i,
            None => {
                let done = match b.time {
                    Some(t) => start.elapsed() >= t,
                    None => tried >= b.cases + seeds.len() as u64,
                };
                if done {
                    break;
                }
                inputs = Box::new(std::iter::empty());
                let s = &seeds[rng.random_range(0..seeds.len())];
                let d = &seeds[rng.random_range(0..seeds.len())];
                mutate(&mut rng, s, d)
            }
        };
        tried += 1;
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            let at = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
            failure = Some((input, format!("{msg} (at {at})")));
            break;
        }
    }
    std::panic::set_hook(prev);
    println!(
        "FUZZ {name} inputs={tried} panics={}",
        u8::from(failure.is_some())
    );
    if let Some((input, msg)) = failure {
        let dir = std::env::var_os("SAE_GEOMETRY_FUZZ_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("fuzz-{name}-{}.bin", std::process::id()));
        std::fs::write(&p, &input).unwrap();
        panic!("{name}: input {} panicked: {msg}", p.display());
    }
    tried
}

fn root() -> PathBuf {
    sae_geometry_tests::workspace_root()
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

#[test]
fn fuzz_gguf() {
    use sae_geometry::models::gguf::GgufFile;
    let seeds = vec![read(
        root().join("crates/models/tests/fixtures/gguf/slices.gguf"),
    )];
    campaign("gguf", &seeds, |b| {
        if let Ok(f) = GgufFile::from_bytes("fuzz.gguf", b.to_vec()) {
            let names: Vec<String> = f.tensors().iter().map(|t| t.name.clone()).collect();
            for n in names {
                let _ = f.dequantize(&n);
            }
            let _ = sae_geometry::models::Gemma::load_gguf(&f, &cpu());
        }
    });
}

#[test]
fn fuzz_gguf_model_metadata() {
    use sae_geometry::models::gguf::GgufFile;
    campaign(
        "gguf-model-metadata",
        &[sae_geometry::models::testing::gemma3_metadata_gguf(&[])],
        |b| {
            if let Ok(f) = GgufFile::from_bytes("fuzz.gguf", b.to_vec()) {
                let _ = sae_geometry::models::Gemma::load_gguf(&f, &cpu());
            }
        },
    );
}

#[test]
fn fuzz_model_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("config.json");
    let seeds = vec![
        read(root().join("crates/models/tests/fixtures/gpt2-tiny/model/config.json")),
        serde_json::json!({
            "model_type": "gemma3_text", "vocab_size": 16, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 16, "sliding_window": 32,
            "sliding_window_pattern": 6, "layer_types": ["sliding_attention", "full_attention"],
        })
        .to_string()
        .into_bytes(),
    ];
    campaign("config-json", &seeds, |b| {
        std::fs::write(&p, b).unwrap();
        if let Ok(c) = sae_geometry::models::GemmaConfig::from_file(&p) {
            let v = c.variant(&p).unwrap();
            let _ = c.layer_attention(v);
            let _ = (c.head_dim(), c.n_kv_heads(), c.eos());
        }
        if let Ok(c) = sae_geometry::models::Gpt2Config::from_file(&p) {
            let _ = (c.d_head(), c.d_mlp());
        }
    });
}

#[test]
fn fuzz_sae_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fx = sae_geometry_tests::saelens_fixtures();
    let cases = [
        "standard__none",
        "topk__none",
        "jumprelu__none",
        "gated__layer_norm",
    ];
    // One seed per file kind; the other file is taken intact from the same case.
    let mut seeds = Vec::new();
    for c in cases {
        let cfg = read(fx.join(c).join("cfg.json"));
        let w = read(fx.join(c).join("sae_weights.safetensors"));
        // Tag byte: 0 = mutate cfg.json, 1 = mutate the weights; then the case index.
        for (tag, body) in [(0u8, cfg), (1u8, w)] {
            let mut s = vec![tag, seeds.len() as u8 / 2];
            s.extend(body);
            seeds.push(s);
        }
    }
    let dev = cpu();
    campaign("sae-dir", &seeds, |b| {
        if b.len() < 2 {
            return;
        }
        let case = cases[usize::from(b[1]) % cases.len()];
        let (cfg, w) = if b[0] % 2 == 0 {
            (
                b[2..].to_vec(),
                read(fx.join(case).join("sae_weights.safetensors")),
            )
        } else {
            (read(fx.join(case).join("cfg.json")), b[2..].to_vec())
        };
        std::fs::write(dir.join("cfg.json"), cfg).unwrap();
        std::fs::write(dir.join("sae_weights.safetensors"), w).unwrap();
        if let Ok(sae) = sae_geometry::core::Sae::load(dir, &dev) {
            let x = sae_geometry::core::device::tensor_from_vec(
                vec![0.5; 2 * sae.d_in()],
                [2, sae.d_in()],
                &dev,
            );
            let _ = sae.forward(x);
        }
    });
}

#[test]
fn fuzz_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.npy");
    sae_geometry::core::npy::write_f32(&p, &[3, 4], &[0.25; 12]).unwrap();
    let f32s = read(&p);
    sae_geometry::core::npy::write_i64(&p, &[1, -1, 7]).unwrap();
    let i64s = read(&p);
    campaign("npy", &[f32s, i64s], |b| {
        std::fs::write(&p, b).unwrap();
        let _ = sae_geometry::core::npy::read_f32(&p);
        let _ = sae_geometry::core::npy::read_f32_matrix(&p, Some(4));
        let _ = sae_geometry::core::npy::read_i64(&p);
    });
}

/// A valid two-shard activation cache written by hand (no model needed).
fn write_cache(dir: &Path) {
    use safetensors::tensor::{Dtype, TensorView};
    use sha2::{Digest, Sha256};
    let (ctx, d_in) = (4usize, 3usize);
    let mut shards = Vec::new();
    for (i, n) in [2usize, 1].into_iter().enumerate() {
        let ids: Vec<u8> = (0..n * ctx)
            .flat_map(|t| (t as i32).to_le_bytes())
            .collect();
        let acts: Vec<u8> = (0..n * ctx * d_in)
            .flat_map(|t| (t as f32 / 7.0).to_le_bytes())
            .collect();
        let mut views = BTreeMap::new();
        views.insert(
            "token_ids".to_string(),
            TensorView::new(Dtype::I32, vec![n, ctx], &ids).unwrap(),
        );
        views.insert(
            "blocks.0.hook_resid_post".to_string(),
            TensorView::new(Dtype::F32, vec![n, ctx, d_in], &acts).unwrap(),
        );
        let bytes = safetensors::tensor::serialize(views, None).unwrap();
        let file = format!("shard-{i:05}.safetensors");
        std::fs::write(dir.join(&file), &bytes).unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        shards.push(serde_json::json!({"file": file, "n_sequences": n, "bytes": bytes.len(), "sha256": sha}));
    }
    let spec = serde_json::json!({
        "model": "tiny", "hook": "blocks.0.hook_resid_post", "dataset": "docs.jsonl",
        "packing": sae_geometry::store::packing::PackingConfig::saelens(ctx, 1, true),
        "d_in": d_in, "sequences_per_shard": 2, "model_batch_size": 2, "max_sequences": 3,
    });
    let m = serde_json::json!({
        "version": 1, "spec": spec, "spec_hash": "x", "shards": shards,
        "n_tokens": 3 * ctx, "complete": true,
    });
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
}

#[test]
fn fuzz_activation_cache() {
    use sae_geometry::store::cache::ActivationCacheDir;
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    write_cache(&good);
    // The seed cache must open and read: the fuzz campaign starts from a valid one.
    let c = ActivationCacheDir::open(&good).unwrap_or_else(|e| panic!("seed cache: {e}"));
    assert_eq!(c.shards().filter(Result::is_ok).count(), 2);
    let files = [
        "manifest.json",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ];
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut s = vec![i as u8];
            s.extend(read(good.join(f)));
            s
        })
        .collect();
    let dir = tmp.path().join("fuzzed");
    std::fs::create_dir_all(&dir).unwrap();
    campaign("activation-cache", &seeds, |b| {
        if b.is_empty() {
            return;
        }
        let which = usize::from(b[0]) % files.len();
        for (i, f) in files.iter().enumerate() {
            if i == which {
                std::fs::write(dir.join(f), &b[1..]).unwrap();
            } else {
                std::fs::copy(good.join(f), dir.join(f)).unwrap();
            }
        }
        if let Ok(c) = ActivationCacheDir::open(&dir) {
            let _ = c.verify();
            for s in c.shards() {
                let _ = s;
            }
        }
    });
}

#[test]
fn fuzz_corpus() {
    use sae_geometry::store::TextSource;
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = read(root().join("crates/store/tests/fixtures/packing/docs.jsonl"));
    let parquet = read(root().join("crates/store/tests/fixtures/corpus/docs.parquet"));
    let seeds = vec![[vec![0u8], jsonl].concat(), [vec![1u8], parquet].concat()];
    campaign("corpus", &seeds, |b| {
        if b.is_empty() {
            return;
        }
        let p = tmp.path().join(if b[0] % 2 == 0 {
            "c.jsonl"
        } else {
            "c.parquet"
        });
        std::fs::write(&p, &b[1..]).unwrap();
        if let Ok(src) = TextSource::from_path(&p, None)
            && let Ok(docs) = src.documents()
        {
            for d in docs.take(1000) {
                let _ = d;
            }
        }
    });
}

#[test]
fn fuzz_neuronpedia_export() {
    let seed = serde_json::json!([
        {"modelId": "gpt2-small", "layer": "8-res_fs768-jb", "index": "3", "description": " the letter e", "explanationModelName": "gpt-4o-mini"},
        {"modelId": "gpt2-small", "layer": "8-res_fs768-jb", "index": 5, "description": "numbers"},
        {"index": "0", "description": null},
    ])
    .to_string()
    .into_bytes();
    campaign("neuronpedia-json", &[seed], |b| {
        let text = String::from_utf8_lossy(b);
        for width in [1, 8, 768] {
            let _ = sae_geometry::geometry::neuronpedia::parse_explanations(&text, width, "fuzz");
        }
    });
}

#[test]
fn fuzz_openai_replies() {
    use sae_geometry::autointerp::{
        ChatBackend, ChatRequest, ClientConfig, OpenAiBackend, parse_explanation,
        parse_predictions, parse_sequences,
    };
    use std::sync::{Arc, Mutex};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A local server that answers every request with the current body.
    let body: Arc<Mutex<Vec<u8>>> = Arc::default();
    let served = body.clone();
    let base = rt.block_on(async move {
        let app = axum::Router::new().fallback(move || {
            let b = served.lock().unwrap().clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], b) }
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/v1")
    });
    let mut cfg = ClientConfig::new(base, Some("k".into()));
    cfg.max_retries = 0;
    cfg.request_timeout = Duration::from_secs(5);
    let backend = OpenAiBackend::new(cfg).unwrap();
    let request: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8
    }))
    .unwrap();
    let reply = |content: &str| {
        serde_json::json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        })
        .to_string()
        .into_bytes()
    };
    let seeds = vec![
        reply("Explanation: the letter e"),
        reply("2, 5, 7"),
        reply("1. The cat sat\n2. A dog ran\n3. None"),
    ];
    campaign("openai-reply", &seeds, |b| {
        *body.lock().unwrap() = b.to_vec();
        if let Ok(r) = rt.block_on(backend.complete(&request)) {
            let _ = parse_explanation(&r.content);
            let _ = parse_predictions(&r.content, 10);
            let _ = parse_sequences(&r.content, 3);
        }
    });
}

#[test]
fn fuzz_result_files() {
    // Latent statistics and autointerp results, read back by resumed runs and merges.
    use sae_geometry::store::{LatentStats, StatsConfig};
    let tmp = tempfile::tempdir().unwrap();
    let stats = tmp.path().join("stats.json");
    let jsonl = tmp.path().join("results.jsonl");
    let cfg = StatsConfig {
        k: 3,
        buffer: 2,
        n_samples: 4,
        n_quantiles: 2,
        n_random: 2,
        ..StatsConfig::default()
    };
    let mut st = LatentStats::new(cfg, &[0, 5], 8).unwrap();
    let tokens: Vec<u32> = (0..16).collect();
    let acts: Vec<f32> = (0..32).map(|i| ((i * 7) % 5) as f32 - 1.0).collect();
    st.update(0, &tokens, &acts).unwrap();
    st.save(&stats).unwrap();
    let result_line = serde_json::json!({
        "latent": 3, "explanation": "e", "detection": null, "status": "ok",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "requests_sent": 1, "requests_cached": 0
    })
    .to_string();
    let seeds = vec![
        [b"0".to_vec(), read(&stats)].concat(),
        [
            b"1".to_vec(),
            format!("{result_line}\n{result_line}\n").into_bytes(),
        ]
        .concat(),
    ];
    campaign("result-files", &seeds, |b| {
        if b.is_empty() {
            return;
        }
        if b[0] % 2 == 0 {
            std::fs::write(&stats, &b[1..]).unwrap();
            if let Ok(s) = LatentStats::load(&stats) {
                let _ = s.frequencies();
                for l in &s.latents {
                    let _ = (
                        l.samples(),
                        l.quantiles(3),
                        l.mean(s.n_tokens),
                        l.mean_when_active(),
                    );
                }
                let _ = s.random_windows_for(0);
                let mut twice = s.clone();
                let _ = twice.merge(s);
            }
        } else {
            std::fs::write(&jsonl, &b[1..]).unwrap();
            let _ = sae_geometry::autointerp::read_results(&jsonl);
        }
    });
}

/// The harness itself: a target that panics on some mutated input fails the campaign.
#[test]
fn the_harness_catches_a_panicking_parser() {
    let caught = std::panic::catch_unwind(|| {
        campaign("self-test", &[b"abcdefgh".to_vec()], |b| {
            assert_eq!(b.len(), 8, "a length-changing mutation");
        })
    });
    assert!(caught.is_err());
}
