//! Minimal `ferry-kustomize DIR [ROOT [LOAD_RESTRICTOR]]` for benchmarks and debugging; the user-facing
//! command is `ferry-applier build`, which calls the same `cli::build_dir`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: ferry-kustomize DIR [ROOT [LOAD_RESTRICTOR]]");
        return ExitCode::from(2);
    };
    let root = args.get(1).map(Path::new);
    let restrictor = match args.get(2).map(|s| s.parse()).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match ferry_kustomize::cli::build_dir(Path::new(dir), root, restrictor) {
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
