//! Unit tests of the patch transformers' errors and edge cases; the behaviour shared with
//! kustomize is covered by the `patch-*` conformance fixtures.

use std::cell::RefCell;

use crate::json;
use crate::value::Value;

use super::*;
use crate::fs::{MemFs, RelPath};
use crate::kustomization::Selector;
use crate::loader::LoadRestrictor;

fn resmap(objs: &[Value]) -> ResMap {
    let mut m = ResMap::new();
    for o in objs {
        m.append(Resource::new(o.clone(), RelPath::root()).expect("resource"))
            .expect("unique");
    }
    m
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "a"}]}}}
    })
}

struct Env {
    fs: MemFs,
    warnings: RefCell<Vec<String>>,
}

impl Env {
    fn new(files: &[(&str, &str)]) -> Self {
        let mut fs = MemFs::new();
        for (p, d) in files {
            fs.insert(p, d.as_bytes()).expect("path");
        }
        Env {
            fs,
            warnings: RefCell::new(Vec::new()),
        }
    }

    fn ctx(&self) -> KustCtx<'_> {
        KustCtx {
            fs: &self.fs,
            dir: RelPath::parse("overlays/prod").expect("path"),
            file: RelPath::parse("overlays/prod/kustomization.yaml").expect("path"),
            restrictor: LoadRestrictor::RootOnly,
            warnings: &self.warnings,
        }
    }
}

fn inline(patch: &str, target: Option<Selector>) -> Patch {
    Patch {
        patch: Some(patch.to_string()),
        target,
        ..Patch::default()
    }
}

#[test]
fn missing_target_names_object_file_and_field() {
    let env = Env::new(&[]);
    let mut m = resmap(&[deployment("web")]);
    let specs = vec![
        inline(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n",
            None,
        ),
        inline(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 2}\n",
            None,
        ),
    ];
    let err = apply_patches(&mut m, &specs, &env.ctx()).expect_err("api missing");
    assert_eq!(
        err.to_string(),
        "overlays/prod/kustomization.yaml patches[1]: patch target not found: apps/v1 Deployment api"
    );
}

#[test]
fn json_patch_needs_a_target_and_reports_the_failing_operation() {
    let env = Env::new(&[]);
    let mut m = resmap(&[deployment("web")]);
    let ops = "- op: replace\n  path: /spec/nope/x\n  value: 3\n";
    let err = apply_patches(&mut m, &[inline(ops, None)], &env.ctx()).expect_err("no target");
    assert!(
        err.to_string()
            .contains("patches[0]: a JSON 6902 patch needs a target"),
        "{err}"
    );
    let target = Selector {
        kind: Some("Deployment".into()),
        ..Selector::default()
    };
    let err =
        apply_patches(&mut m, &[inline(ops, Some(target))], &env.ctx()).expect_err("bad path");
    let text = err.to_string();
    assert!(
        text.contains("patches[0]: patching apps/v1 Deployment web"),
        "{text}"
    );
    assert!(
        text.contains("operation 0 (replace /spec/nope/x)"),
        "{text}"
    );
}

#[test]
fn patch_and_path_are_exclusive_and_one_is_required() {
    let env = Env::new(&[("overlays/prod/p.yaml", "kind: X")]);
    let mut m = resmap(&[deployment("web")]);
    let both = Patch {
        patch: Some("kind: X".into()),
        path: Some("p.yaml".into()),
        ..Patch::default()
    };
    let err = apply_patches(&mut m, &[both], &env.ctx()).expect_err("both");
    assert!(
        err.to_string().contains("can't be set at the same time"),
        "{err}"
    );
    let err = apply_patches(&mut m, &[Patch::default()], &env.ctx()).expect_err("neither");
    assert!(
        err.to_string()
            .contains("must specify one of patch and path"),
        "{err}"
    );
}

#[test]
fn patch_files_outside_the_kustomization_dir_are_refused() {
    let env = Env::new(&[(
        "base/p.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    )]);
    let mut m = resmap(&[deployment("web")]);
    let spec = Patch {
        path: Some("../../base/p.yaml".into()),
        ..Patch::default()
    };
    let err = apply_patches(&mut m, &[spec], &env.ctx()).expect_err("restricted");
    assert!(err.to_string().contains("patches[0]"), "{err}");
    assert!(err.to_string().contains("../../base/p.yaml"), "{err}");
}

#[test]
fn strategic_patch_without_kind_is_rejected() {
    let env = Env::new(&[]);
    let mut m = resmap(&[deployment("web")]);
    let target = Selector {
        kind: Some("Deployment".into()),
        ..Selector::default()
    };
    let err = apply_patches(
        &mut m,
        &[inline("spec: {replicas: 3}\n", Some(target))],
        &env.ctx(),
    )
    .expect_err("no kind");
    assert!(err.to_string().contains("missing kind"), "{err}");
}

#[test]
fn invalid_target_regex_names_the_target_field() {
    let env = Env::new(&[]);
    let mut m = resmap(&[deployment("web")]);
    let target = Selector {
        name: Some("(".into()),
        ..Selector::default()
    };
    let err = apply_patches(
        &mut m,
        &[inline(
            "kind: Deployment\nmetadata: {name: x}\n",
            Some(target),
        )],
        &env.ctx(),
    )
    .expect_err("bad regex");
    assert!(
        err.to_string()
            .contains("patches[0].target: invalid name pattern"),
        "{err}"
    );
}

#[test]
fn strategic_merge_patch_files_and_inline_entries() {
    let env = Env::new(&[(
        "overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n",
    )]);
    let mut m = resmap(&[deployment("web")]);
    let specs = vec![
        "replicas.yaml".to_string(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: app, image: b}\n".to_string(),
    ];
    apply_patches_strategic_merge(&mut m, &specs, &env.ctx()).expect("applies");
    let obj = &m.resources[0].obj;
    assert_eq!(obj["spec"]["replicas"], json!(5));
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("b")
    );
    let err = apply_patches_strategic_merge(&mut m, &["missing.yaml".to_string()], &env.ctx())
        .expect_err("missing file");
    assert!(
        err.to_string().contains("patchesStrategicMerge[0]"),
        "{err}"
    );
}

#[test]
fn json6902_entries_apply_yaml_or_json_ops_to_their_target() {
    let env = Env::new(&[(
        "overlays/prod/ops.json",
        r#"[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]"#,
    )]);
    let mut m = resmap(&[deployment("web"), deployment("api")]);
    let target = Selector {
        group: Some("apps".into()),
        version: Some("v1".into()),
        kind: Some("Deployment".into()),
        name: Some("api".into()),
        ..Selector::default()
    };
    let specs = vec![
        Patch {
            path: Some("ops.json".into()),
            target: Some(target.clone()),
            ..Patch::default()
        },
        inline(
            "- {op: replace, path: /spec/replicas, value: 2}\n",
            Some(target),
        ),
    ];
    apply_patches_json6902(&mut m, &specs, &env.ctx()).expect("applies");
    assert_eq!(m.resources[1].obj["metadata"]["labels"], json!({"a": "b"}));
    assert_eq!(m.resources[1].obj["spec"]["replicas"], json!(2));
    assert_eq!(m.resources[0].obj["spec"]["replicas"], json!(1));
    let err = apply_patches_json6902(&mut m, &[inline("- {op: add}\n", None)], &env.ctx())
        .expect_err("no target");
    assert!(err.to_string().contains("patchesJson6902[0]"), "{err}");
}
