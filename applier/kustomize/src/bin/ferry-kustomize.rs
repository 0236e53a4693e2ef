//! `ferry-kustomize DIR [ROOT [LOAD_RESTRICTOR]]`: the native engine alone, as a small
//! stand-alone `kustomize build` (no agent dependencies, so it starts in a few megabytes);
//! `ferry-applier build` runs the same `cli::build_dir_to`.

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
    let mut out = std::io::stdout().lock();
    match ferry_kustomize::cli::build_dir_to(Path::new(dir), root, restrictor, &mut out) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("{w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
