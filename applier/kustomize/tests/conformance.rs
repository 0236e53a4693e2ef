//! Conformance: every fixture under `tests/fixtures` is built natively and compared with the
//! output recorded from real kustomize v5.7.1 by `tests/regen.sh` — the same objects (parsed
//! YAML, field by field) in the same order; fixtures where kustomize fails
//! (`expected-error.txt`) must fail natively too — and then the same bytes, since users diff
//! `ferry-applier build` against `kustomize build` (key order, quoting, line folding at 80
//! columns, block scalars). Failures print a readable diff.

use std::path::{Path, PathBuf};

use ferry_kustomize::Value;
use ferry_kustomize::{BuildOptions, LoadRestrictor, RealFs, RelPath, build, yaml};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_opt(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(v) => yaml::to_yaml(v),
        None => "<nothing>\n".to_string(),
    }
}

/// A line diff of two YAML documents, enough to see which field differs.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("   {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!(" - {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!(" + {y}\n"));
                }
            }
        }
    }
    out
}

/// Returns an explanation when the fixture does not conform; `identical` counts outputs that
/// are byte-for-byte kustomize's (style, not only meaning).
fn check(fixture: &Path, identical: &mut usize) -> Option<String> {
    let build_dir = read_opt(&fixture.join("BUILD_DIR")).unwrap_or_else(|| ".".into());
    let restrictor = match read_opt(&fixture.join("LOAD_RESTRICTOR")) {
        Some(r) => match r.parse::<LoadRestrictor>() {
            Ok(r) => r,
            Err(e) => return Some(e),
        },
        None => LoadRestrictor::RootOnly,
    };
    let fs = match RealFs::new(fixture) {
        Ok(fs) => fs,
        Err(e) => return Some(format!("cannot open fixture: {e}")),
    };
    let dir = match RelPath::parse(&build_dir) {
        Ok(d) => d,
        Err(e) => return Some(format!("BUILD_DIR {build_dir}: {e}")),
    };
    let result = build(
        &fs,
        &dir,
        &BuildOptions {
            load_restrictor: restrictor,
        },
    );
    if let Some(err) = read_opt(&fixture.join("expected-error.txt")) {
        return match result {
            Err(_) => None,
            Ok(out) => Some(format!(
                "kustomize fails but the native build succeeded.\nkustomize: {err}\nnative output:\n{}",
                out.to_yaml()
            )),
        };
    }
    let expected_text = match std::fs::read_to_string(fixture.join("expected.yaml")) {
        Ok(t) => t,
        Err(_) => return Some("no expected.yaml or expected-error.txt: run tests/regen.sh".into()),
    };
    let expected = match yaml::parse_documents(&expected_text) {
        Ok(e) => e,
        Err(e) => return Some(format!("expected.yaml does not parse: {e}")),
    };
    let out = match result {
        Ok(o) => o,
        Err(e) => return Some(format!("native build failed: {e}")),
    };
    // Compare what a user would read back: the printed stream, parsed again.
    let printed = out.to_yaml();
    if printed == expected_text {
        *identical += 1;
    }
    let actual = match yaml::parse_documents(&printed) {
        Ok(a) => a,
        Err(e) => return Some(format!("native output does not parse: {e}")),
    };
    for i in 0..expected.len().max(actual.len()) {
        if expected.get(i) != actual.get(i) {
            return Some(format!(
                "document {i} of {} expected / {} native differs (- kustomize, + native):\n{}",
                expected.len(),
                actual.len(),
                diff(&show(expected.get(i)), &show(actual.get(i)))
            ));
        }
    }
    if printed != expected_text {
        return Some(format!(
            "same objects, different text (- kustomize, + native):\n{}",
            diff(&expected_text, &printed)
        ));
    }
    None
}

#[test]
fn every_fixture_matches_kustomize() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    fixtures.sort();
    let only = std::env::var("FIXTURE").ok();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut identical = 0;
    for f in &fixtures {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        checked += 1;
        if let Some(why) = check(f, &mut identical) {
            failures.push(format!("=== {name}\n{why}"));
        }
    }
    println!(
        "conformance: {checked} fixtures checked, {} failed, {identical} outputs byte-identical to kustomize's",
        failures.len()
    );
    assert!(checked > 0, "no fixtures found");
    assert!(
        failures.is_empty(),
        "{} of {checked} fixtures differ from kustomize:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
