//! The rendered release taken apart the way Helm takes it apart: the chart's `crds/` files
//! (never templated, applied first per the CRD policy), hooks (objects annotated
//! `helm.sh/hook`, run around the apply by phase and `helm.sh/hook-weight`, removed per
//! `helm.sh/hook-delete-policy`), and the release's own objects.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::fetch::ArtifactTree;

pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
pub const HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// Why the rendered manifest cannot be used. Nothing is applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// helm's output (or a CRD file) is not YAML objects.
    #[error("{what}: {why}")]
    Parse { what: String, why: String },
    /// A hook annotation has a value Helm would refuse.
    #[error("{object}: annotation {annotation}: {why}")]
    BadHook {
        object: String,
        annotation: &'static str,
        why: String,
    },
}

/// When a hook runs (Helm's hook events; Ferry runs install, upgrade and test hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreDelete,
    PostDelete,
    PreRollback,
    PostRollback,
    Test,
}

impl Phase {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "pre-install" => Phase::PreInstall,
            "post-install" => Phase::PostInstall,
            "pre-upgrade" => Phase::PreUpgrade,
            "post-upgrade" => Phase::PostUpgrade,
            "pre-delete" => Phase::PreDelete,
            "post-delete" => Phase::PostDelete,
            "pre-rollback" => Phase::PreRollback,
            "post-rollback" => Phase::PostRollback,
            // `test-success` is Helm 2's name, still accepted by Helm.
            "test" | "test-success" => Phase::Test,
            _ => return None,
        })
    }
}

/// When a hook object is deleted (Helm's delete policies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeletePolicy {
    /// Delete the previous instance before creating the hook (Helm's default when none given).
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

/// One hook object.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    pub phases: BTreeSet<Phase>,
    pub weight: i64,
    pub delete: BTreeSet<DeletePolicy>,
    pub object: Value,
}

impl Hook {
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A release's rendered manifest, taken apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    /// The chart's (and vendored subcharts') `crds/` objects.
    pub crds: Vec<Value>,
    pub hooks: Vec<Hook>,
    /// Everything else: the release's objects.
    pub objects: Vec<Value>,
}

impl Manifest {
    /// The hooks of `phase`, in Helm's order: weight, then name.
    pub fn hooks_of(&self, phase: Phase) -> Vec<&Hook> {
        let mut hooks: Vec<&Hook> = self
            .hooks
            .iter()
            .filter(|h| h.phases.contains(&phase))
            .collect();
        hooks.sort_by(|a, b| (a.weight, a.name()).cmp(&(b.weight, b.name())));
        hooks
    }
}

fn describe(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj.get("kind").and_then(Value::as_str).unwrap_or("?"),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Splits `helm template`'s output into hooks and objects (empty documents dropped).
pub fn split(rendered: &str) -> Result<(Vec<Hook>, Vec<Value>), ManifestError> {
    let docs = ferry_kustomize::yaml::parse_objects_yaml11(rendered).map_err(|why| {
        ManifestError::Parse {
            what: "helm template output".into(),
            why,
        }
    })?;
    let mut hooks = vec![];
    let mut objects = vec![];
    for obj in docs {
        if obj.is_null() {
            continue;
        }
        if !obj.is_object() {
            return Err(ManifestError::Parse {
                what: "helm template output".into(),
                why: format!("a document is not a mapping: {obj}"),
            });
        }
        match annotation(&obj, HOOK_ANNOTATION) {
            Some(events) => hooks.push(hook(obj.clone(), events)?),
            None => objects.push(obj),
        }
    }
    Ok((hooks, objects))
}

/// A hook object taken apart again (after post-rendering): its annotations read once more.
pub fn hook_from(object: Value) -> Result<Hook, ManifestError> {
    let events = annotation(&object, HOOK_ANNOTATION)
        .unwrap_or("")
        .to_string();
    hook(object, &events)
}

fn hook(object: Value, events: &str) -> Result<Hook, ManifestError> {
    let phases = events.split(',').filter_map(Phase::parse).collect();
    let weight = match annotation(&object, HOOK_WEIGHT_ANNOTATION) {
        None => 0,
        Some(w) => w
            .trim()
            .parse::<i64>()
            .map_err(|_| ManifestError::BadHook {
                object: describe(&object),
                annotation: HOOK_WEIGHT_ANNOTATION,
                why: format!("{w:?} is not an integer"),
            })?,
    };
    let mut delete = BTreeSet::new();
    if let Some(p) = annotation(&object, HOOK_DELETE_POLICY_ANNOTATION) {
        for v in p.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            delete.insert(match v {
                "before-hook-creation" => DeletePolicy::BeforeHookCreation,
                "hook-succeeded" => DeletePolicy::HookSucceeded,
                "hook-failed" => DeletePolicy::HookFailed,
                other => {
                    return Err(ManifestError::BadHook {
                        object: describe(&object),
                        annotation: HOOK_DELETE_POLICY_ANNOTATION,
                        why: format!(
                            "{other:?} is not before-hook-creation, hook-succeeded or hook-failed"
                        ),
                    });
                }
            });
        }
    }
    if delete.is_empty() {
        delete.insert(DeletePolicy::BeforeHookCreation);
    }
    Ok(Hook {
        phases,
        weight,
        delete,
        object,
    })
}

/// The CRD files of the chart in `chart_dir` and of its vendored subcharts (directories and
/// `.tgz` archives in `charts/`), as Helm reads them: not templated, every YAML/JSON file below
/// `crds/`, the chart's own first, then each subchart's in Helm's dependency order (Helm's
/// `CRDObjects`). Subcharts a `condition` or `tags` disables are read too (Helm drops them).
pub fn crds(tree: &ArtifactTree, chart_dir: &str) -> Result<Vec<Value>, ManifestError> {
    let mut out = vec![];
    chart_crds(tree, chart_dir, 0, &mut out)?;
    Ok(out)
}

/// Subcharts inside subcharts deeper than this are not read (Helm has no limit; charts
/// nest one or two levels).
const MAX_SUBCHART_DEPTH: usize = 8;

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn chart_crds(
    tree: &ArtifactTree,
    chart_dir: &str,
    depth: usize,
    out: &mut Vec<Value>,
) -> Result<(), ManifestError> {
    for (path, data) in tree.files_under(&join(chart_dir, "crds")) {
        if ![".yaml", ".yml", ".json"].iter().any(|e| path.ends_with(e)) {
            continue;
        }
        let what = || format!("chart file {path}");
        let text = std::str::from_utf8(data).map_err(|_| ManifestError::Parse {
            what: what(),
            why: "not UTF-8".into(),
        })?;
        let docs = ferry_kustomize::yaml::parse_objects_yaml11(text)
            .map_err(|why| ManifestError::Parse { what: what(), why })?;
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    if depth >= MAX_SUBCHART_DEPTH {
        return Ok(());
    }
    let charts = join(chart_dir, "charts");
    // Unpacked subcharts `charts/<dir>/` and archives `charts/<file>.tgz`, by path.
    let mut found = vec![];
    for (path, data) in tree.files_under(&charts) {
        let rel = &path[charts.len() + 1..];
        match rel.split_once('/') {
            Some((dir, "Chart.yaml")) => found.push(Subchart::Dir(join(&charts, dir))),
            None if rel.ends_with(".tgz") => {
                let sub = unpack_subchart(path, data)?;
                // A packaged chart holds one top-level directory named after the chart.
                let root = sub
                    .files()
                    .find_map(|(p, _)| p.strip_suffix("/Chart.yaml").filter(|d| !d.contains('/')))
                    .map(str::to_string)
                    .ok_or_else(|| ManifestError::Parse {
                        what: format!("chart file {path}"),
                        why: "no <chart>/Chart.yaml in the archive".into(),
                    })?;
                found.push(Subchart::Archive(Box::new(sub), root));
            }
            _ => {}
        }
    }
    let name_of = |t: &ArtifactTree, dir: &str| chart_yaml(t, dir).name;
    let named: Vec<(String, &Subchart)> = found
        .iter()
        .map(|s| match s {
            Subchart::Dir(d) => (name_of(tree, d), s),
            Subchart::Archive(t, root) => (name_of(t, root), s),
        })
        .collect();
    // Helm's order (ProcessDependencies): subcharts Chart.yaml does not declare, then one per
    // `dependencies[]` entry in its order (an aliased chart twice if declared twice).
    let declared: Vec<String> = chart_yaml(tree, chart_dir)
        .dependencies
        .into_iter()
        .map(|d| d.name)
        .collect();
    let mut order: Vec<&Subchart> = named
        .iter()
        .filter(|(n, _)| !declared.contains(n))
        .map(|(_, s)| *s)
        .collect();
    for d in &declared {
        if let Some((_, s)) = named.iter().find(|(n, _)| n == d) {
            order.push(s);
        }
    }
    for sub in order {
        match sub {
            Subchart::Dir(d) => chart_crds(tree, d, depth + 1, out)?,
            Subchart::Archive(t, root) => chart_crds(t, root, depth + 1, out)?,
        }
    }
    Ok(())
}

/// A vendored subchart: a directory of the tree, or an unpacked archive and its root.
enum Subchart {
    Dir(String),
    Archive(Box<ArtifactTree>, String),
}

#[derive(Default, serde::Deserialize)]
struct ChartYaml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(serde::Deserialize)]
struct Dependency {
    #[serde(default)]
    name: String,
}

/// The fields of `<dir>/Chart.yaml` the CRD order needs (empty when unreadable: helm itself
/// has refused such a chart before).
fn chart_yaml(tree: &ArtifactTree, dir: &str) -> ChartYaml {
    tree.get(&join(dir, "Chart.yaml"))
        .and_then(|b| serde_yaml::from_slice(b).ok())
        .unwrap_or_default()
}

/// A subchart archive read with the checks and limits of an artifact (paths, entry types,
/// sizes, entries); decompression is bounded by the same total size.
fn unpack_subchart(path: &str, tgz: &[u8]) -> Result<ArtifactTree, ManifestError> {
    use std::io::Read;
    let limits = ferry_proto::ArtifactLimits::default();
    let gz = flate2::read::GzDecoder::new(tgz).take(limits.max_total_size.saturating_add(1 << 20));
    ArtifactTree::from_reader(ferry_proto::Digest::of(tgz), gz, &limits).map_err(|e| {
        ManifestError::Parse {
            what: format!("chart file {path}"),
            why: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = r#"---
# Source: app/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
---
# Source: app/templates/job.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: hook-succeeded
---
# Source: app/templates/seed.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: a-seed
  annotations:
    helm.sh/hook: pre-install
---
# Source: app/templates/tests/t.yaml
apiVersion: v1
kind: Pod
metadata:
  name: app-test
  annotations:
    "helm.sh/hook": test
---
"#;

    #[test]
    fn hooks_are_split_out_and_ordered_by_weight() {
        let (hooks, objects) = split(RENDERED).expect("parses");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["kind"], "ConfigMap");
        let m = Manifest {
            hooks,
            objects,
            crds: vec![],
        };
        let pre: Vec<&str> = m
            .hooks_of(Phase::PreInstall)
            .iter()
            .map(|h| h.name())
            .collect();
        assert_eq!(pre, ["migrate", "a-seed"], "weight -5 before weight 0");
        let up = m.hooks_of(Phase::PreUpgrade);
        assert_eq!(up.len(), 1);
        assert_eq!(
            up[0].delete,
            BTreeSet::from([DeletePolicy::HookSucceeded]),
            "an explicit policy replaces the default"
        );
        let seed = &m.hooks_of(Phase::PreInstall)[1];
        assert_eq!(
            seed.delete,
            BTreeSet::from([DeletePolicy::BeforeHookCreation]),
            "Helm's default"
        );
        assert_eq!(m.hooks_of(Phase::Test)[0].name(), "app-test");
        assert!(m.hooks_of(Phase::PostInstall).is_empty());
    }

    #[test]
    fn bad_hook_annotations_name_the_object() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: heavy\n";
        let err = split(text).expect_err("weight");
        assert!(err.to_string().contains("Pod/p") && err.to_string().contains("hook-weight"));
        let text = text.replace(
            "helm.sh/hook-weight: heavy",
            "helm.sh/hook-delete-policy: never",
        );
        let err = split(&text).expect_err("policy");
        assert!(err.to_string().contains("\"never\""), "{err}");
    }

    #[test]
    fn crds_of_unpacked_and_packaged_subcharts_follow_the_charts_own() {
        fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (path, data) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *data).expect("append");
            }
            b.into_inner().expect("tar")
        }
        let crd = |name: &str| {
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\n"
            )
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(
            &mut gz,
            &tar(&[
                ("packed/Chart.yaml", b"name: packed\n"),
                ("packed/crds/p.yaml", crd("p").as_bytes()),
                (
                    "packed/templates/crds/no.yaml",
                    crd("not-a-crd-file").as_bytes(),
                ),
            ]),
        )
        .expect("gzip");
        let tgz = gz.finish().expect("gzip");
        let c = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"c"}}"#;
        let bytes = tar(&[
            (
                "app/Chart.yaml",
                b"name: app\ndependencies:\n- name: packed\n- name: lib\n",
            ),
            ("app/crds/a.yaml", crd("a").as_bytes()),
            ("app/crds/nested/b.yml", crd("b").as_bytes()),
            ("app/crds/README.md", b"not yaml"),
            ("app/charts/lib/Chart.yaml", b"name: lib\n"),
            ("app/charts/lib/crds/c.json", c.as_bytes()),
            ("app/charts/crds/x.yaml", crd("not-a-subchart").as_bytes()),
            ("app/charts/packed-0.1.0.tgz", &tgz),
        ]);
        let tree = ArtifactTree::from_reader(
            ferry_proto::Digest::of(&bytes),
            &bytes[..],
            &ferry_proto::ArtifactLimits::default(),
        )
        .expect("tree");
        let names: Vec<String> = crds(&tree, "app")
            .expect("crds")
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap_or("?").to_string())
            .collect();
        assert_eq!(
            names,
            ["a", "b", "p", "c"],
            "own, then subcharts in Chart.yaml's order"
        );
    }
}
