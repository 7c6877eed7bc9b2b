//! The `sae-geometry` command-line tool. See `sae-geometry --help`.

fn main() -> std::process::ExitCode {
    sae_geometry_cli::main()
}
