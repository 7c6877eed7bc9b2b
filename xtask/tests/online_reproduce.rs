//! The tutorial's own setup, online, over the wire: the three online reproductions
//! (`reproduce-splitting`, `reproduce-autointerp`, `reproduce-patch-scoping` with `--mode online
//! --quick`) against local servers that speak the HF hub's file protocol, Neuronpedia's export
//! API and OpenAI's chat API, serving the tutorial's repositories under their real names with
//! random weights (`sae_geometry_tests::online_fixtures`), from an empty HF cache.
//!
//! Checked: the gated gemma-2b-it without a token fails naming the repository and how to supply
//! one, and succeeds with the token file under `HF_HOME`; the outputs as `check-splitting` checks
//! the offline study (a row per latent of each width, clusters, both HTML plots drawn in headless
//! Chromium) plus every description joined by index from the served export; autointerp's three
//! populations scored through the API; patch scoping's sweep; the exact files the hub served.
//! Then every reproduction again (smoke profile, new output directories, the three side by
//! side) makes no request at all, and again with `HF_HUB_OFFLINE=1`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sae_geometry_tests::hub_server::HubServer;
use sae_geometry_tests::neuronpedia_server::NeuronpediaServer;
use sae_geometry_tests::online_fixtures::{self, FixtureInputs, splitting_description};

struct World {
    hub: HubServer,
    np: NeuronpediaServer,
    openai: String,
    hf_home: PathBuf,
    np_cache: PathBuf,
}

impl World {
    fn xtask(&self, args: &[&str], out: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(args)
            .arg("--out")
            .arg(out)
            .env("HF_ENDPOINT", self.hub.endpoint())
            .env("HF_HOME", &self.hf_home)
            .env("NEURONPEDIA_BASE_URL", self.np.base_url())
            .env("NEURONPEDIA_CACHE", &self.np_cache)
            .env("OPENAI_BASE_URL", &self.openai)
            .env("OPENAI_API_KEY", "mock")
            .env("RUST_LOG", "warn");
        for k in [
            "HF_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "NEURONPEDIA_OFFLINE",
            "SAE_GEOMETRY_CORPUS",
        ] {
            c.env_remove(k);
        }
        c
    }
}

fn ok(what: &str, o: Output) -> Output {
    eprintln!(
        "{what}: done ({:?} since the test started)",
        started().elapsed()
    );
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn started() -> std::time::Instant {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(std::time::Instant::now)
}

const SPLITTING: [&str; 4] = ["reproduce-splitting", "--mode", "online", "--quick"];
const AUTOINTERP: [&str; 4] = ["reproduce-autointerp", "--mode", "online", "--quick"];
const SCOPING: [&str; 4] = ["reproduce-patch-scoping", "--mode", "online", "--quick"];

/// A CSV file's records (RFC 4180 quoting).
fn csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Files the hub served (2xx), by repository: `{repo} {file}`; and the API listings asked.
fn served(hub: &HubServer) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut files, mut listings) = (BTreeSet::new(), BTreeSet::new());
    for r in hub.requests().iter().filter(|r| r.status < 300) {
        if let Some(rest) = r.path.strip_prefix("/api/") {
            listings.insert(rest.to_string());
        } else if let Some((repo, file)) = r
            .path
            .trim_start_matches("/datasets")
            .trim_start_matches('/')
            .split_once("/resolve/main/")
        {
            files.insert(format!("{repo} {file}"));
        }
    }
    (files, listings)
}

#[test]
fn the_three_online_reproductions_run_over_the_wire_then_from_the_cache() {
    started();
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap();
    let corpus = std::env::var_os("SAE_GEOMETRY_CORPUS").map(PathBuf::from);
    let fixtures = online_fixtures::build(&FixtureInputs {
        gemma_gguf: gguf,
        documents: online_fixtures::documents(corpus.as_deref()).unwrap(),
        splitting_widths: vec![768, 3072, 12288],
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt
        .block_on(autointerp::mock::MockServer::start(Duration::ZERO, None))
        .unwrap();
    let world = World {
        hub: HubServer::start(fixtures.repos, Some(&fixtures.token)).unwrap(),
        np: NeuronpediaServer::start(fixtures.exports.clone()).unwrap(),
        openai: mock.base_url(),
        hf_home: tmp.path().join("hf"),
        np_cache: tmp.path().join("neuronpedia"),
    };
    let out = |run: &str, what: &str| tmp.path().join(run).join(what);

    // The gated repository without a token: a clear error naming it and how to supply one.
    let o = world
        .xtask(&SCOPING, &out("no-token", "scoping"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "ran without the token: {err}");
    for says in ["google/gemma-2b-it", "gated", "HF_TOKEN", "HF_HOME/token"] {
        assert!(err.contains(says), "{says:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    // The token saved as `huggingface-cli login` saves it.
    std::fs::create_dir_all(&world.hf_home).unwrap();
    std::fs::write(world.hf_home.join("token"), &fixtures.token).unwrap();
    world.hub.clear_log();

    // 1. From an empty cache, over the wire.
    ok(
        "reproduce-splitting",
        world
            .xtask(&SPLITTING, &out("1", "splitting"))
            .output()
            .unwrap(),
    );
    ok(
        "check-splitting",
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["check-splitting", "--out"])
            .arg(out("1", "splitting"))
            .output()
            .unwrap(),
    );
    // A row per latent of each width, each description joined by index from the served export
    // (latents the export leaves out have none).
    let rows = csv(&out("1", "splitting").join("splitting.csv"));
    assert_eq!(
        rows[0][..5],
        ["sae_width", "latent_idx", "umap_x", "umap_y", "description"]
    );
    let mut per_width: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for r in &rows[1..] {
        let (w, i): (usize, usize) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        let expected = if i % 17 == 5 {
            String::new()
        } else {
            splitting_description(w, i)
        };
        assert_eq!(r[4], expected, "width {w}, latent {i}");
        per_width.entry(w).or_default().insert(i);
    }
    for w in [768, 3072, 12288] {
        assert_eq!(per_width[&w], (0..w).collect(), "width {w}");
    }
    let clusters = json(&out("1", "splitting").join("clusters/summary.json"));
    assert!(clusters["clusters"].as_u64().unwrap() > 0, "{clusters}");

    ok(
        "reproduce-autointerp",
        world
            .xtask(&AUTOINTERP, &out("1", "autointerp"))
            .output()
            .unwrap(),
    );
    for (pop, units) in [
        ("sae", "9,11,15,16873"),
        ("random-latents", "9,11,15,16873"),
        ("neurons", "9,11,15,1513"),
    ] {
        let s = json(&out("1", "autointerp").join(format!("{pop}.jsonl.summary.json")));
        assert!(s["ok"].as_u64().unwrap() > 0, "{pop}: {s}");
        let results =
            std::fs::read_to_string(out("1", "autointerp").join(format!("{pop}.jsonl"))).unwrap();
        let got: BTreeSet<u64> = results
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["latent"].as_u64())
            .map(Option::unwrap)
            .collect();
        let want: BTreeSet<u64> = units.split(',').map(|u| u.parse().unwrap()).collect();
        assert_eq!(got, want, "{pop}");
    }
    assert!(
        out("1", "autointerp").join("compare/compare.csv").exists(),
        "no populations table"
    );
    assert!(!mock.log().is_empty(), "the OpenAI mock was never asked");

    ok(
        "reproduce-patch-scoping",
        world
            .xtask(&SCOPING, &out("1", "scoping"))
            .output()
            .unwrap(),
    );
    for tag in ["tutorial-scales", "relative-sweep"] {
        let v = json(&out("1", "scoping").join(format!("latent-607-{tag}.json")));
        assert!(v["chosen_explanation"].is_string(), "{tag}: {v}");
    }

    // Exactly the files the loaders name, under the registry's repositories and folders.
    let (files, listings) = served(&world.hub);
    let mut want = BTreeSet::new();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        want.insert(format!("openai-community/gpt2 {f}"));
    }
    let sae = |repo: &str, folder: &str| {
        [
            "cfg.json",
            "sae_weights.safetensors",
            "sparsity.safetensors",
        ]
        .map(|f| format!("{repo} {folder}/{f}"))
    };
    for w in [768, 3072, 12288] {
        want.extend(sae(
            online_fixtures::SPLITTING_REPO,
            &format!("blocks.8.hook_resid_pre_{w}"),
        ));
    }
    want.extend(sae(
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.7.hook_resid_pre",
    ));
    want.extend(sae(
        "jbloom/Gemma-2b-Residual-Stream-SAEs",
        "gemma_2b_blocks.6.hook_resid_post_16384_anthropic_fast_lr",
    ));
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        want.insert(format!("google/gemma-2b-it {f}"));
    }
    want.insert(
        "NeelNanda/pile-10k data/train-00000-of-00001-4746b8785c874cc7.parquet".to_string(),
    );
    assert_eq!(files, want, "files served");
    assert_eq!(
        listings,
        BTreeSet::from([
            "models/google/gemma-2b-it/revision/main".to_string(),
            "datasets/NeelNanda/pile-10k/revision/main".to_string(),
        ]),
        "listings asked"
    );
    let np_asked = world.np.requests();
    assert_eq!(
        np_asked.iter().collect::<BTreeSet<_>>().len(),
        3,
        "one export per width: {np_asked:?}"
    );

    // 2. Again into new output directories: everything comes from the caches. 3. And with the
    // hub declared offline. The three reproductions of a step run side by side (separate
    // processes; no request may come from any of them).
    world.hub.clear_log();
    let (np_before, api_before) = (world.np.requests().len(), mock.log().len());
    for (step, offline) in [("2", false), ("3", true)] {
        let children: Vec<_> = [
            (&SPLITTING, "splitting"),
            (&AUTOINTERP, "autointerp"),
            (&SCOPING, "scoping"),
        ]
        .into_iter()
        .map(|(args, what)| {
            let mut smoke: Vec<&str> = args[..3].to_vec();
            smoke.extend(["--profile", "smoke"]);
            let mut c = world.xtask(&smoke, &out(step, what));
            if offline {
                c.env("HF_HUB_OFFLINE", "1");
            }
            let child = c
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (what, child)
        })
        .collect();
        for (what, child) in children {
            ok(
                &format!("{what} (step {step})"),
                child.wait_with_output().unwrap(),
            );
        }
        assert_eq!(world.hub.requests(), vec![], "step {step}: hub requests");
        assert_eq!(
            world.np.requests().len(),
            np_before,
            "step {step}: Neuronpedia"
        );
    }
    // The explainer's answers are cached per output directory, not by the hub: new directories
    // ask the API again.
    assert!(mock.log().len() > api_before);
}
