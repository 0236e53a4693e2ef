//! Minimal `ferry-kustomize DIR [ROOT]` for benchmarks and debugging; the user-facing
//! command is `ferry-applier build`, which calls the same `cli::build_dir`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: ferry-kustomize DIR [ROOT]");
        return ExitCode::from(2);
    };
    let root = args.get(1).map(Path::new);
    match ferry_kustomize::cli::build_dir(Path::new(dir), root, Default::default()) {
        Ok((yaml, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            let mut out = std::io::stdout().lock();
            if out.write_all(yaml.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
