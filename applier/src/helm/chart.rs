//! The chart's `crds/` as Helm installs them. The chart is read with its vendored subcharts
//! (directories and `.tgz` archives under `charts/`); the dependencies a `condition` or `tags`
//! disables are dropped as Helm's `ProcessDependencies` drops them, judged on the release's
//! values coalesced with every chart's `values.yaml`; then each remaining chart's `crds/`
//! files are taken, the chart's own first, then its subcharts' in Helm's dependency order
//! (`CRDObjects`).
//!
//! Not reproduced: a dependency's `version` range when matching it to a vendored chart (the
//! name alone decides), `import-values` (values a subchart exports to its parent cannot switch
//! a condition here) and `global` values copied into subcharts (a condition path is read from
//! the top-level values, where `global` is the parent's).

use serde_json::{Map, Value};

use super::manifest::ManifestError;
use super::values;
use crate::fetch::ArtifactTree;

/// The CRD objects Helm installs for the chart in `chart_dir` of `tree` released with the
/// (merged) `values`.
pub fn crds(
    tree: &ArtifactTree,
    chart_dir: &str,
    values: &Map<String, Value>,
) -> Result<Vec<Value>, ManifestError> {
    let mut chart = load(tree, chart_dir, 0)?;
    process_dependencies(&mut chart, values, "");
    let mut out = vec![];
    chart.collect_crds(&mut out);
    Ok(out)
}

/// Subcharts inside subcharts deeper than this are not read (Helm has no limit; charts
/// nest one or two levels).
const MAX_SUBCHART_DEPTH: usize = 8;

/// One chart of the dependency tree, as Helm holds it while processing dependencies.
#[derive(Clone, Debug)]
struct Chart {
    /// Its name, or the alias its parent gives it.
    name: String,
    values: Map<String, Value>,
    /// `Chart.yaml`'s `dependencies` (with aliases as names).
    dependencies: Vec<Dependency>,
    crds: Vec<Value>,
    /// Vendored subcharts in Helm's order: those `dependencies` does not declare, then one per
    /// entry of `dependencies` (an aliased chart once per alias).
    subcharts: Vec<Chart>,
}

impl Chart {
    fn collect_crds(&self, out: &mut Vec<Value>) {
        out.extend(self.crds.iter().cloned());
        for s in &self.subcharts {
            s.collect_crds(out);
        }
    }
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
struct Dependency {
    #[serde(default)]
    name: String,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Default, serde::Deserialize)]
struct ChartYaml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parse_error(path: &str, why: impl Into<String>) -> ManifestError {
    ManifestError::Parse {
        what: format!("chart file {path}"),
        why: why.into(),
    }
}

/// Reads the chart at `dir` of `tree` and its vendored subcharts.
fn load(tree: &ArtifactTree, dir: &str, depth: usize) -> Result<Chart, ManifestError> {
    // Helm itself has refused a chart whose Chart.yaml it cannot read, before we get here.
    let meta: ChartYaml = tree
        .get(&join(dir, "Chart.yaml"))
        .and_then(|b| serde_yaml::from_slice(b).ok())
        .unwrap_or_default();
    let values_path = join(dir, "values.yaml");
    let values = match tree.get(&values_path) {
        None => Map::new(),
        Some(b) => {
            let text =
                std::str::from_utf8(b).map_err(|_| parse_error(&values_path, "not UTF-8"))?;
            values::parse_yaml(&values_path, text)
                .map_err(|e| parse_error(&values_path, e.to_string()))?
        }
    };
    let mut crds = vec![];
    for (path, data) in tree.files_under(&join(dir, "crds")) {
        if ![".yaml", ".yml", ".json"].iter().any(|e| path.ends_with(e)) {
            continue;
        }
        let text = std::str::from_utf8(data).map_err(|_| parse_error(path, "not UTF-8"))?;
        let docs = ferry_kustomize::yaml::json::parse_objects_yaml11(text)
            .map_err(|why| parse_error(path, why))?;
        crds.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    let mut found = vec![];
    if depth < MAX_SUBCHART_DEPTH {
        let charts = join(dir, "charts");
        for (path, data) in tree.files_under(&charts) {
            let rel = &path[charts.len() + 1..];
            match rel.split_once('/') {
                Some((sub, "Chart.yaml")) => {
                    found.push(load(tree, &join(&charts, sub), depth + 1)?)
                }
                None if rel.ends_with(".tgz") => {
                    let sub = unpack_subchart(path, data)?;
                    // A packaged chart holds one top-level directory named after the chart.
                    let root = sub
                        .files()
                        .find_map(|(p, _)| {
                            p.strip_suffix("/Chart.yaml").filter(|d| !d.contains('/'))
                        })
                        .map(str::to_string)
                        .ok_or_else(|| parse_error(path, "no <chart>/Chart.yaml in the archive"))?;
                    found.push(load(&sub, &root, depth + 1)?);
                }
                _ => {}
            }
        }
    }
    // Helm's order (ProcessDependencies): subcharts Chart.yaml does not declare, then one per
    // `dependencies[]` entry in its order, renamed to its alias.
    let mut subcharts: Vec<Chart> = found
        .iter()
        .filter(|c| !meta.dependencies.iter().any(|d| d.name == c.name))
        .cloned()
        .collect();
    let mut dependencies = meta.dependencies;
    for d in &mut dependencies {
        if let Some(c) = found.iter().find(|c| c.name == d.name) {
            let mut c = c.clone();
            if let Some(alias) = d.alias.as_deref().filter(|a| !a.is_empty()) {
                c.name = alias.to_string();
            }
            subcharts.push(c);
        }
        if let Some(alias) = d.alias.take().filter(|a| !a.is_empty()) {
            d.name = alias;
        }
    }
    Ok(Chart {
        name: meta.name,
        values,
        dependencies,
        crds,
        subcharts,
    })
}

/// Helm's `processDependencyEnabled`: every declared dependency is enabled unless its tags or
/// its condition (read at `path` in `values` coalesced with the charts' defaults) say
/// otherwise; disabled ones are dropped, the rest processed in turn.
fn process_dependencies(chart: &mut Chart, values: &Map<String, Value>, path: &str) {
    let mut cvals = values.clone();
    coalesce(chart, &mut cvals);
    let disabled: Vec<String> = chart
        .dependencies
        .iter()
        .filter(|d| !enabled(d, &cvals, path))
        .map(|d| d.name.clone())
        .collect();
    chart.subcharts.retain(|s| !disabled.contains(&s.name));
    chart.dependencies.retain(|d| !disabled.contains(&d.name));
    for sub in &mut chart.subcharts {
        let sub_path = format!("{path}{}.", sub.name);
        process_dependencies(sub, &cvals, &sub_path);
    }
}

/// Tags first (`processDependencyTags`), then the condition (`processDependencyConditions`),
/// which wins when one of its paths holds a boolean.
fn enabled(d: &Dependency, cvals: &Map<String, Value>, path: &str) -> bool {
    let mut on = true;
    if let Some(Value::Object(tags)) = cvals.get("tags") {
        let (mut has_true, mut has_false) = (false, false);
        for t in &d.tags {
            match tags.get(t) {
                Some(Value::Bool(true)) => has_true = true,
                Some(Value::Bool(false)) => has_false = true,
                _ => {}
            }
        }
        on = has_true || !has_false;
    }
    // Helm trims the whole condition, not each path.
    let condition = d.condition.as_deref().unwrap_or("").trim();
    for c in condition.split(',').filter(|c| !c.is_empty()) {
        if let Some(Value::Bool(b)) = path_value(cvals, &format!("{path}{c}")) {
            on = *b;
            break;
        }
    }
    on
}

/// Helm's `Values.PathValue`: the value at the dotted `path`, if it is not a table.
fn path_value<'a>(values: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let key = parts.pop()?;
    let mut table = values;
    for p in parts {
        table = table.get(p)?.as_object()?;
    }
    table.get(key).filter(|v| !v.is_object())
}

/// Helm's `coalesce`: `chart`'s defaults under `dest` (what `dest` sets wins; a `null` in
/// `dest` removes a default), each subchart's under its name.
fn coalesce(chart: &Chart, dest: &mut Map<String, Value>) {
    coalesce_table(dest, &chart.values);
    for sub in &chart.subcharts {
        let entry = dest
            .entry(sub.name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        // Helm warns and skips a subchart whose values are not a table.
        if let Value::Object(m) = entry {
            coalesce(sub, m);
        }
    }
}

fn coalesce_table(dest: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (k, default) in defaults {
        match dest.get_mut(k) {
            None => {
                dest.insert(k.clone(), default.clone());
            }
            Some(Value::Null) => {
                dest.remove(k);
            }
            Some(Value::Object(d)) => {
                if let Value::Object(s) = default {
                    coalesce_table(d, s);
                }
            }
            Some(_) => {}
        }
    }
}

/// A subchart archive read with the checks and limits of an artifact (paths, entry types,
/// sizes, entries); decompression is bounded by the same total size.
fn unpack_subchart(path: &str, tgz: &[u8]) -> Result<ArtifactTree, ManifestError> {
    use std::io::Read;
    let limits = ferry_proto::ArtifactLimits::default();
    let gz = flate2::read::GzDecoder::new(tgz).take(limits.max_total_size.saturating_add(1 << 20));
    ArtifactTree::from_reader(ferry_proto::Digest::of(tgz), gz, &limits)
        .map_err(|e| parse_error(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn tree(files: &[(&str, &[u8])]) -> ArtifactTree {
        let bytes = tar(files);
        ArtifactTree::from_reader(
            ferry_proto::Digest::of(&bytes),
            &bytes[..],
            &ferry_proto::ArtifactLimits::default(),
        )
        .expect("tree")
    }

    fn crd(name: &str) -> String {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\n"
        )
    }

    fn names(tree: &ArtifactTree, values: Value) -> Vec<String> {
        let Value::Object(values) = values else {
            panic!("values are a map")
        };
        crds(tree, "app", &values)
            .expect("crds")
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    #[test]
    fn crds_of_unpacked_and_packaged_subcharts_follow_the_charts_own() {
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
        let t = tree(&[
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
        assert_eq!(
            names(&t, serde_json::json!({})),
            ["a", "b", "p", "c"],
            "own, then subcharts in Chart.yaml's order"
        );
    }

    #[test]
    fn conditions_and_tags_decide_as_helm_does() {
        let t = tree(&[
            (
                "app/Chart.yaml",
                b"name: app\ndependencies:\n\
                  - name: sub\n  condition: sub.enabled\n\
                  - name: sub\n  alias: other\n  condition: nope.enabled,other.enabled\n\
                  - name: tagged\n  tags: [extras, more]\n",
            ),
            ("app/values.yaml", b"other:\n  enabled: no\n"),
            ("app/charts/sub/Chart.yaml", b"name: sub\n"),
            ("app/charts/sub/values.yaml", b"enabled: true\n"),
            ("app/charts/sub/crds/s.yaml", crd("s").as_bytes()),
            ("app/charts/tagged/Chart.yaml", b"name: tagged\n"),
            ("app/charts/tagged/crds/t.yaml", crd("t").as_bytes()),
        ]);
        // `sub` is on by its own default; its alias `other` off by the parent's values (YAML
        // 1.1 `no`) after a path that does not resolve; `tagged` on (no tags table).
        assert_eq!(names(&t, serde_json::json!({})), ["s", "t"]);
        // The release's values win; a null removes the default (then no boolean: enabled).
        assert_eq!(
            names(
                &t,
                serde_json::json!({"sub": {"enabled": false}, "other": {"enabled": null}})
            ),
            ["s", "t"],
        );
        assert_eq!(
            names(&t, serde_json::json!({"sub": {"enabled": false}})),
            ["t"]
        );
        // Tags: off when every listed tag present is false, on when any is true.
        assert_eq!(
            names(&t, serde_json::json!({"tags": {"extras": false}})),
            ["s"]
        );
        assert_eq!(
            names(
                &t,
                serde_json::json!({"tags": {"extras": false, "more": true}})
            ),
            ["s", "t"]
        );
    }
}
