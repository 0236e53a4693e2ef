//! The crates that only define types and render manifests must not link a Kubernetes client:
//! `proto` is shared vocabulary and `ferry-kustomize` an engine with no network, so neither may
//! pull in kube's client, its runtime, an HTTP stack or TLS (issue 12, defect 8: both linked
//! kube-client, kube-runtime and rustls through `proto`'s dependency on the whole `kube`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Crates that mean "a client": none may be a normal (non-dev, non-build) dependency.
const FORBIDDEN: [&str; 6] = [
    "kube-client",
    "kube-runtime",
    "hyper",
    "rustls",
    "tokio",
    "tower",
];

/// Normal dependencies of `root`, transitively, by package name.
fn normal_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of: BTreeMap<&str, &str> = packages
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let nodes = metadata["resolve"]["nodes"].as_array().expect("resolve");
    let deps: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|n| {
            let normal = n["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().expect("pkg"))
                .collect();
            (n["id"].as_str().expect("id"), normal)
        })
        .collect();
    let start = name_of
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .expect("root package in the workspace");
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(deps.get(id).into_iter().flatten().copied());
        }
    }
    seen.iter().map(|id| name_of[id].to_string()).collect()
}

/// The host's target triple (`rustc -vV`): resolving for every platform would need crates that
/// are not downloaded.
fn host_triple() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

#[test]
fn proto_and_the_kustomize_engine_link_no_kubernetes_client() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    for root in ["ferry-proto", "ferry-kustomize"] {
        let closure = normal_closure(&metadata, root);
        assert!(closure.contains("kube-core"), "{root} should use kube-core");
        let linked: Vec<&str> = FORBIDDEN
            .iter()
            .copied()
            .filter(|f| closure.contains(*f))
            .collect();
        assert!(linked.is_empty(), "{root} links {linked:?}");
    }
}
