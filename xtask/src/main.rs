//! `cargo xtask`: project automation. See `cargo xtask --help`.

use clap::{Parser, Subcommand};

/// Project automation for sae-geometry.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the workspace's crates and their dependency direction.
    Crates,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crates => {
            println!(
                "sae-core -> gpt2-gemma-models -> activation-store -> {{latent-geometry, autointerp, patch-scoping}} -> sae-geometry (facade, CLI) -> xtask"
            );
        }
    }
    Ok(())
}
