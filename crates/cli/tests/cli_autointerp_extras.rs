//! The autointerp bonus options end to end on the tiny GPT-2: generation scoring with the
//! counter-example round and neighbour scoring with hard negatives, offline and against the
//! mock server (a rerun sends nothing); the unit populations compared side by side.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use autointerp::mock::MockServer;

mod common;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: PathBuf,
    sae: PathBuf,
    corpus: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    Setup {
        model: common::tiny_model(&dir),
        sae: common::random_sae(&dir, "sae", 96, Some(4), 0x9E37_79B9_7F4A_7C15),
        corpus: common::corpus(&dir, 20),
        dir,
        _tmp: tmp,
    }
}

fn autointerp(s: &Setup, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .args(["--log", "warn", "autointerp", "--offline", "--model"])
        .arg(&s.model)
        .arg("--sae")
        .arg(&s.sae)
        .arg("--corpus")
        .arg(&s.corpus)
        .args(["--latents", "0-29", "--total-tokens", "8000", "--scoring"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

fn ok(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", out.display()))
}

const BONUS: [&str; 6] = [
    "--generation-scoring",
    "--counter-example-round",
    "--neighbours",
    "2",
    "--neighbour-negatives",
    "--random-explanation-baseline",
];

fn check_bonus_outputs(out: &Path) {
    let explained = jsonl(out)
        .iter()
        .filter(|v| v["explanation"].is_string())
        .count();
    assert!(explained >= 20, "{explained} explained");
    let generation = jsonl(&sibling(out, ".generation.jsonl"));
    assert_eq!(generation.len(), explained);
    for g in &generation {
        assert!(g["failure"].is_null(), "{g}");
        let first = &g["first"];
        let seqs = first["sequences"].as_array().unwrap();
        assert!(!seqs.is_empty());
        let active = seqs.iter().filter(|s| s["active"] == true).count();
        let p = first["precision"].as_f64().unwrap();
        assert!((p - active as f64 / seqs.len() as f64).abs() < 1e-12);
        // A second round exactly when the first had a false positive.
        assert_eq!(g["second"].is_object(), active < seqs.len(), "{g}");
    }
    let neighbours = jsonl(&sibling(out, ".neighbours.jsonl"));
    assert_eq!(neighbours.len(), explained);
    for n in &neighbours {
        assert!(n["failure"].is_null(), "{n}");
        assert_eq!(n["neighbours"].as_array().unwrap().len(), 2);
        let k = n["n_examples"].as_u64().unwrap();
        assert!(k > 0 && k <= 4 + 2 * 2, "{n}");
        let d = &n["detection"];
        let total = ["tp", "fp", "tn", "fn_"]
            .iter()
            .map(|f| d[f].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(total, k);
        assert_eq!(
            d["tp"].as_u64().unwrap() + d["fn_"].as_u64().unwrap(),
            n["n_active"].as_u64().unwrap()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sibling(out, ".summary.json")).unwrap())
            .unwrap();
    assert!(summary["generation_scoring"]["mean_precision"].is_number());
    assert!(summary["neighbour_scoring"]["mean_balanced_accuracy"].is_number());
}

#[test]
fn bonus_scorers_offline_and_against_the_mock_server() {
    let s = setup();
    // Offline.
    let out = s.dir.join("offline/results.jsonl");
    ok(autointerp(&s, &out, &BONUS));
    check_bonus_outputs(&out);

    // Against the mock server; a rerun finds everything finished or cached.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(Duration::from_millis(5), None))
        .unwrap();
    let out = s.dir.join("mock/results.jsonl");
    let mut args = BONUS.to_vec();
    args.extend(["--api-base", server.base_url().leak()]);
    ok(autointerp(&s, &out, &args));
    check_bonus_outputs(&out);
    let sent = server.log().len();
    // Generation, counter-example and neighbour requests all went to the server.
    assert!(sent > 4 * 20, "{sent} requests");
    ok(autointerp(&s, &out, &args));
    assert_eq!(server.log().len(), sent, "a rerun sent requests");

    // Neurons have no decoder neighbours: refused with a reason.
    let o = autointerp(
        &s,
        &s.dir.join("bad.jsonl"),
        &["--baseline", "neurons", "--neighbours", "2"],
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--neighbours"));
}

#[test]
fn populations_side_by_side() {
    let s = setup();
    let mut runs = Vec::new();
    for (label, baseline) in [
        ("sae", "none"),
        ("neurons", "neurons"),
        ("random", "random-latents"),
    ] {
        let out = s.dir.join(format!("{label}/results.jsonl"));
        ok(autointerp(
            &s,
            &out,
            &["--baseline", baseline, "--random-explanation-baseline"],
        ));
        runs.push(format!("{label}={}", out.display()));
    }
    let dir = s.dir.join("compare");
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.args(["--log", "warn", "autointerp-compare"]);
    for r in &runs {
        c.args(["--run", r]);
    }
    c.arg("--out").arg(&dir);
    let table = ok(c);
    assert!(table.starts_with("population,units,"), "{table}");
    let csv = std::fs::read_to_string(dir.join("compare.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    // The same number of units for every population, at least one.
    let units: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert!(
        units.iter().all(|u| *u == units[0]) && units[0] != "0",
        "{csv}"
    );
    // Floors are reported beside each population.
    assert!(
        rows.iter().all(|r| !r[10].is_empty() && !r[11].is_empty()),
        "{csv}"
    );
    let scores = std::fs::read_to_string(dir.join("scores.csv")).unwrap();
    let n: usize = units[0].parse().unwrap();
    assert_eq!(scores.lines().count(), 1 + 3 * n);
    let png = std::fs::read(dir.join("compare.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let html = std::fs::read_to_string(dir.join("compare.html")).unwrap();
    assert!(html.contains("class=\"bar\"") && html.contains("class=\"floor\""));
    // It renders offline in headless Chromium without console errors.
    let page = latent_geometry::headless::load_page(
        &latent_geometry::headless::chromium_binary(),
        &dir.join("compare.html"),
    )
    .unwrap();
    assert!(page.console.is_empty(), "{:?}", page.console);
    assert_eq!(
        page.dom.matches("class=\"bar\"").count(),
        html.matches("class=\"bar\"").count()
    );
    // More units than a population has is refused, naming it.
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.args(["autointerp-compare", "--units", "1000"]);
    for r in &runs {
        c.args(["--run", r]);
    }
    c.arg("--out").arg(&dir);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("scored units"));
}
