//! `ferry-kustomize [build] DIR [--root ROOT] [--load-restrictor R]` (also the positional
//! `ferry-kustomize DIR [ROOT [LOAD_RESTRICTOR]]`): the native engine alone, as a small
//! stand-alone `kustomize build` (no agent dependencies, so it starts in a few megabytes);
//! `ferry-applier build` runs the same `cli::build_dir_to`. `build` is accepted so that it
//! drops in where scripts call `kustomize build DIR`.

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: ferry-kustomize [build] DIR [--root ROOT] [--load-restrictor LoadRestrictionsRootOnly|LoadRestrictionsNone]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "build") {
        args.next();
    }
    let (mut dir, mut root, mut restrictor) = (None, None, None);
    let mut positional = 0;
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--root" => &mut root,
            "--load-restrictor" | "--load_restrictor" => &mut restrictor,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                positional += 1;
                let slot = match positional {
                    1 => &mut dir,
                    2 => &mut root,
                    3 => &mut restrictor,
                    _ => {
                        eprintln!("unexpected argument '{a}'\n{USAGE}");
                        return ExitCode::from(2);
                    }
                };
                *slot = Some(a);
                continue;
            }
        };
        let Some(value) = args.next() else {
            eprintln!("'{a}' needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        *slot = Some(value);
    }
    let Some(dir) = dir else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let restrictor = match restrictor.map(|s| s.parse()).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    match ferry_kustomize::cli::build_dir_to(
        Path::new(&dir),
        root.as_deref().map(Path::new),
        restrictor,
        &mut out,
    ) {
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
