//! `cargo xtask`: project automation. See `cargo xtask --help`.

use clap::{Parser, Subcommand};

mod bench;

/// Project automation for sae-geometry.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole-capability benchmark beside its Python reference and print the ratio.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(a) => bench::run(a),
    }
}
