//! `ferry-applier helm-template`: the objects the agent applies for a chart equal what `helm
//! template` renders, as helm's install path decodes it. Each fixture under
//! `tests/fixtures/helm/` holds a chart, the values it is rendered with and `expected.json`:
//! real helm's output decoded by kubectl (`applier/bench/helm_conformance.py --expected`), the
//! same decoder helm install uses. Needs helm v4 (`FERRY_HELM`, else `helm` on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

const NAMESPACE: &str = "conformance";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/helm")
        .join(name)
}

fn helm_template(chart: &Path, values: &[PathBuf]) -> std::process::Output {
    let helm = std::env::var_os("FERRY_HELM").unwrap_or_else(|| "helm".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry-applier"));
    cmd.args(["helm-template", "conf"])
        .arg(chart)
        .args(["--namespace", NAMESPACE, "--helm-binary"])
        .arg(helm);
    for v in values {
        cmd.arg("--values").arg(v);
    }
    cmd.output().expect("ferry-applier runs")
}

/// Removes what Ferry adds on purpose (and checks it is there): owner labels on the release's
/// objects, Helm's release annotations, the namespace, the `Create` policy's SSA annotation.
fn strip_ferry(part: &str, mut obj: Value) -> Value {
    let md = obj["metadata"]
        .as_object_mut()
        .expect("objects have metadata");
    let take = |md: &mut Map<String, Value>, map: &str, key: &str| {
        let m = md.get_mut(map).and_then(Value::as_object_mut);
        let v = m.and_then(|m| m.remove(key));
        if md
            .get(map)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            md.remove(map);
        }
        v
    };
    if part == "crd" {
        assert_eq!(
            take(md, "annotations", "ferry.dev/ssa"),
            Some("IfNotPresent".into())
        );
        return obj;
    }
    if part == "object" {
        assert_eq!(
            take(md, "labels", "apply.ferry.dev/name"),
            Some("HelmRelease.conf".into())
        );
        assert_eq!(
            take(md, "labels", "apply.ferry.dev/namespace"),
            Some(NAMESPACE.into())
        );
    }
    assert_eq!(
        take(md, "annotations", "meta.helm.sh/release-name"),
        Some("conf".into())
    );
    assert_eq!(
        take(md, "annotations", "meta.helm.sh/release-namespace"),
        Some(NAMESPACE.into())
    );
    assert_eq!(md.remove("namespace"), Some(NAMESPACE.into()));
    obj
}

fn assert_conforms(name: &str) {
    let dir = fixture(name);
    let values: Vec<PathBuf> = [dir.join("values.yaml")]
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let out = helm_template(&dir.join("chart"), &values);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            let part = v["part"].as_str().expect("part").to_string();
            serde_json::json!({"part": part, "object": strip_ferry(&part, v["object"].clone())})
        })
        .collect();
    let want: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("fixture has expected.json"),
    )
    .expect("expected.json is JSON");
    assert_eq!(got.len(), want.len(), "{name}: {got:#?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{name}: ferry (left) vs helm (right)");
    }
}

#[test]
fn yaml_1_1_scalars_mean_what_they_mean_to_helm() {
    // `yes`/`on`/`off`/`y`/`N` as values and keys, in the template, crds/ and a hook; `0755`;
    // values files read the same way (`flag: on` is true, printed "true").
    assert_conforms("yaml11");
}

#[test]
fn crds_of_packaged_subcharts_are_installed_in_helms_order() {
    // crds/ of the chart, of charts/packed-0.1.0.tgz and of charts/unpacked/, in the order of
    // Chart.yaml's dependencies (unpacked is declared first).
    assert_conforms("subchart-crds");
}

#[test]
fn crds_of_subcharts_a_condition_or_tags_disables_are_not_installed() {
    // kept (on by its own values.yaml), gated (off by the release's values), twin (kept under
    // an alias, off by the parent's values.yaml after a path that does not resolve), tagged
    // (off by tags), overruled (tags off, condition on: on), packed (.tgz, off by a nested
    // condition): only parent, kept and overruled's CRDs, as helm template --include-crds.
    assert_conforms("disabled-subchart-crds");
}

#[test]
fn a_template_error_is_helms_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("templates")).expect("mkdir");
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("templates/cm.yaml"),
        "{{ required \"value x is required\" .Values.x }}\n",
    )
    .expect("write");
    let out = helm_template(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("value x is required") && err.contains("templates/cm.yaml"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
