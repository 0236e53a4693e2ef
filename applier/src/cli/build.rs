//! `ferry-applier build DIR`: render a kustomization exactly like `kustomize build DIR`, with
//! the native engine (`ferry-kustomize`). YAML goes to stdout, kustomize's deprecation
//! warnings to stderr; any error exits non-zero with a message naming file and field.

use std::io::Write;
use std::path::PathBuf;

use ferry_kustomize::LoadRestrictor;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Directory holding kustomization.yaml (or kustomization.yml / Kustomization).
    pub dir: PathBuf,
    /// Build root no path may leave [default: the enclosing Git work tree, else /].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// LoadRestrictionsRootOnly (files only under each kustomization's directory) or
    /// LoadRestrictionsNone (anywhere inside the build root).
    #[arg(long, default_value = "LoadRestrictionsRootOnly")]
    pub load_restrictor: LoadRestrictor,
}

/// Runs the command, writing to the given streams; returns the process exit code.
pub fn run(args: &BuildArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match ferry_kustomize::cli::build_dir_to(
        &args.dir,
        args.root.as_deref(),
        args.load_restrictor,
        out,
    ) {
        Ok(warnings) => {
            for w in warnings {
                let _ = writeln!(err, "{w}");
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "Error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("kustomize/tests/fixtures")
            .join(name)
    }

    fn run_on(dir: PathBuf, root: Option<PathBuf>) -> (u8, String, String) {
        let args = BuildArgs {
            dir,
            root,
            load_restrictor: LoadRestrictor::RootOnly,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn prints_what_kustomize_prints() {
        let f = fixture("base-overlay");
        let (code, out, err) = run_on(f.join("overlays/prod"), Some(f.clone()));
        assert_eq!(code, 0, "stderr: {err}");
        let expected =
            std::fs::read_to_string(f.join("expected.yaml")).expect("fixture has expected.yaml");
        assert_eq!(out, expected);
    }

    #[test]
    fn warns_on_stderr_and_fails_on_missing_kustomization() {
        let (code, _, err) = run_on(fixture("common-labels"), None);
        assert_eq!(code, 0);
        assert!(err.contains("'commonLabels' is deprecated"), "{err}");
        let f = fixture("error-missing-kustomization");
        let (code, out, err) = run_on(f.join("overlay"), Some(f.clone()));
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.contains("no kustomization file") && err.contains("plain"),
            "{err}"
        );
    }

    #[test]
    fn root_bounds_the_build() {
        let f = fixture("base-overlay");
        let (code, _, err) = run_on(f.join("overlays/prod"), Some(f.join("overlays")));
        assert_eq!(code, 1);
        assert!(err.contains("leaves the build root"), "{err}");
    }
}
