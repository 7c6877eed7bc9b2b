//! `sae-geometry download`: fetches files of a hub repository into the HF cache (as
//! `huggingface-cli download`), so a machine can be prepared for offline work.

use anyhow::Context;
use sae_core::{HubClient, HubRepo};

/// Arguments of `download`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository, `owner/name`.
    pub repo: String,
    /// Files to fetch (default: every file the repository lists).
    pub files: Vec<String>,
    /// The repository is a dataset.
    #[arg(long)]
    pub dataset: bool,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
}

/// Runs `download`: prints each file's path in the cache, one per line.
pub fn run(args: Args) -> anyhow::Result<()> {
    let hub = HubClient::from_env();
    let repo = if args.dataset {
        HubRepo::dataset(args.repo.clone())
    } else {
        HubRepo::model(args.repo.clone())
    }
    .with_revision(args.revision.clone());
    let files = if args.files.is_empty() {
        hub.list_files(&repo)
            .with_context(|| format!("listing {}", args.repo))?
    } else {
        args.files.clone()
    };
    for f in &files {
        let p = hub.get(&repo, f)?;
        println!("{}", p.display());
    }
    Ok(())
}
