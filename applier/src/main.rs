//! `ferry-applier`: the per-namespace agent binary. The `build` subcommand renders a
//! kustomization like `kustomize build`; further subcommands are wired here with clap.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// jemalloc: per-thread caches keep the parallel YAML parse and the concurrent applies from
// contending on one arena, and its background purge returns an apply's peak to the system.
// Tuned by MALLOC_CONF (deploy/agent sets it).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cli {
    pub mod build;
    pub mod diff;
    pub mod helm_template;
    pub mod run;
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
    /// Run the agent for one namespace.
    Run(cli::run::RunArgs),
    /// Show what the next reconcile of a Kustomization would change (exit 1 when it would).
    Diff(cli::diff::DiffArgs),
    /// Render a chart directory as the agent renders a HelmRelease; print what it would apply
    /// as JSON lines (crds, hooks, objects, refused cluster-scoped objects).
    #[command(name = "helm-template")]
    HelmTemplate(cli::helm_template::HelmTemplateArgs),
    /// Internal: set resource limits on this process, then exec a program (how the agent
    /// starts helm).
    #[command(name = "helm-exec", hide = true)]
    HelmExec(HelmExecArgs),
}

#[derive(Debug, clap::Args)]
struct HelmExecArgs {
    /// Address-space limit, bytes.
    #[arg(long)]
    max_memory: u64,
    /// CPU-time limit, seconds.
    #[arg(long)]
    max_cpu_seconds: u64,
    /// Largest file the program may write, bytes.
    #[arg(long)]
    max_file_size: u64,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => ExitCode::from(cli::build::run(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
        Command::Run(args) => match cli::run::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::HelmExec(args) => {
            let limits = ferry_applier::helm::render::Limits {
                memory: args.max_memory,
                cpu_seconds: args.max_cpu_seconds,
                file_size: args.max_file_size,
            };
            let (program, rest) = args.command.split_first().expect("clap requires a command");
            let e = ferry_applier::helm::render::exec_limited(
                limits,
                std::path::Path::new(program),
                rest,
            );
            eprintln!("error: starting {}: {e}", program.to_string_lossy());
            ExitCode::from(127)
        }
        Command::HelmTemplate(args) => {
            match cli::helm_template::run(&args, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Diff(args) => match cli::diff::run(&args, &mut std::io::stdout().lock()) {
            Ok(false) => ExitCode::SUCCESS,
            Ok(true) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_help_text() {
        let cli = super::Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "ferry-applier {} --{}: no help text",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
