//! The CRD YAML in `deploy/crds/` must be what the Rust types generate, so the schema users
//! install never drifts from the code that reads it. `FERRY_UPDATE_CRDS=1` rewrites the files.

use std::path::PathBuf;

#[test]
fn crds_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let update = std::env::var_os("FERRY_UPDATE_CRDS").is_some();
    let mut stale = vec![];
    let all = ferry_proto::crds::all();
    // `kubectl apply -k deploy/` takes the CRDs through this kustomization, so it lists exactly
    // the generated files.
    let mut kustomization = String::from(
        "# Generated with the CRDs (proto/tests/crds.rs) — do not edit.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for (file, _) in &all {
        kustomization.push_str(&format!("- {file}\n"));
    }
    let path = dir.join("kustomization.yaml");
    if update {
        std::fs::create_dir_all(&dir).expect("create deploy/crds");
        std::fs::write(&path, &kustomization).expect("write kustomization.yaml");
    } else if std::fs::read_to_string(&path).ok().as_deref() != Some(kustomization.as_str()) {
        stale.push(path.display().to_string());
    }
    for (file, crd) in all {
        let yaml = serde_yaml::to_string(&crd).expect("CRD serializes to YAML");
        let yaml = format!(
            "# Generated from the Rust types in proto/ — do not edit.\n# Regenerate: FERRY_UPDATE_CRDS=1 cargo test -p ferry-proto --test crds\n{yaml}"
        );
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).expect("create deploy/crds");
            std::fs::write(&path, &yaml).expect("write CRD");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML (run FERRY_UPDATE_CRDS=1 cargo test -p ferry-proto --test crds): {stale:?}"
    );
}

#[test]
fn gitrepository_crd_is_namespaced_source_ferry_dev_v1() {
    let crds = ferry_proto::crds::all();
    let (_, crd) = crds
        .iter()
        .find(|(f, _)| f.contains("gitrepositories"))
        .expect("GitRepository CRD listed");
    assert_eq!(crd.spec.group, "source.ferry.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.versions[0].name, "v1");
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
    let spec_props = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "url",
        "interval",
        "timeout",
        "ref",
        "secretRef",
        "ignore",
        "suspend",
    ] {
        assert!(
            spec_props.get(field).is_some(),
            "spec.{field} missing from CRD schema"
        );
    }
    for field in ["interval", "timeout"] {
        assert_eq!(
            spec_props[field]["pattern"],
            ferry_proto::duration::PATTERN,
            "spec.{field}: the API server must refuse a malformed duration at admission"
        );
    }
}
