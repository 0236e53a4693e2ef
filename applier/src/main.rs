//! `ferry-applier`: the per-namespace agent binary. The `build` subcommand renders a
//! kustomization like `kustomize build`; further subcommands are wired here with clap.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli {
    pub mod build;
}

#[derive(Debug, Parser)]
#[command(
    name = "ferry-applier",
    version,
    about = "Ferry's per-namespace applier agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render a kustomization to multi-document YAML on stdout (like `kustomize build`).
    Build(cli::build::BuildArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => ExitCode::from(cli::build::run(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
    }
}
