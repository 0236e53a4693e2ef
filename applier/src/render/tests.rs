//! Rendering from in-memory artifacts: plain directories, substitution, tenancy.

use std::collections::BTreeMap;

use ferry_proto::{CrossNamespaceSourceReference, Digest, KustomizationSpec, PostBuild};
use serde_json::json;

use super::*;

const NS: &str = "team-a";

fn tree(files: &[(&str, &str)]) -> ArtifactTree {
    ArtifactTree::from_files(Digest::of(b"test"), files.iter().copied()).expect("valid tree")
}

fn spec(path: &str) -> KustomizationSpec {
    KustomizationSpec {
        source_ref: CrossNamespaceSourceReference {
            kind: "GitRepository".into(),
            name: "repo".into(),
            ..Default::default()
        },
        path: Some(path.into()),
        interval: "1m".into(),
        ..Default::default()
    }
}

fn ids(objs: &[RenderedObject]) -> Vec<String> {
    objs.iter()
        .map(|o| format!("{}/{}/{}", o.kind(), o.namespace().unwrap_or("-"), o.name()))
        .collect()
}

fn no_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-app
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: my-registry/my-app:v1.0.0
";

const SVC_AND_CM: &str = "apiVersion: v1
kind: Service
metadata:
  name: my-app
---
# a comment-only document is skipped
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team-a
";

#[test]
fn plain_directory_renders_every_manifest_recursively_in_path_order() {
    let t = tree(&[
        ("apps/web/service.yaml", SVC_AND_CM),
        ("apps/web/deployment.yml", DEPLOY),
        (
            "apps/extra/list.json",
            r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}]}"#,
        ),
        ("apps/README.md", "# not a manifest"),
        (
            "other/ignored.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n",
        ),
    ]);
    let objs = render(&t, &spec("./apps/"), &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(
        ids(&objs),
        [
            "Secret/team-a/s",
            "Deployment/team-a/my-app",
            "Service/team-a/my-app",
            "ConfigMap/team-a/settings",
        ]
    );
    assert_eq!(objs[1].file.as_deref(), Some("apps/web/deployment.yml"));

    let ids: Vec<_> = objs.iter().map(|o| o.object_ref()).collect();
    let inv = ferry_proto::Inventory::from_objects(NS, ids.iter().map(|(id, v)| (id, *v)));
    assert_eq!(inv.len(), 4);
    assert!(
        inv.groups.iter().all(|g| g.namespace.is_none()),
        "own namespace is implied"
    );
}

#[test]
fn empty_path_means_the_artifact_root() {
    let t = tree(&[("deployment.yaml", DEPLOY)]);
    let mut s = spec("");
    s.path = None;
    let objs = render(&t, &s, &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(ids(&objs), ["Deployment/team-a/my-app"]);
}

#[test]
fn bad_paths_and_bad_yaml_name_the_file() {
    let t = tree(&[
        ("apps/broken.yaml", "apiVersion: v1\nkind: [unclosed\n"),
        ("f.yaml", DEPLOY),
    ]);
    let err = render(&t, &spec("apps"), &no_vars(), NS, &StaticScopes::new()).expect_err("yaml");
    assert!(
        matches!(&err, RenderError::Parse { file, .. } if file == "apps/broken.yaml"),
        "{err}"
    );
    let err = render(&t, &spec("missing"), &no_vars(), NS, &StaticScopes::new()).expect_err("404");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = render(&t, &spec("../x"), &no_vars(), NS, &StaticScopes::new()).expect_err("..");
    assert!(matches!(err, RenderError::Path { .. }), "{err}");
    let err = render(&t, &spec("f.yaml"), &no_vars(), NS, &StaticScopes::new()).expect_err("file");
    assert!(err.to_string().contains("not a directory"), "{err}");

    let t = tree(&[(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: x-\n",
    )]);
    let err = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect_err("name");
    assert!(err.to_string().contains("metadata.name"), "{err}");
    assert!(err.to_string().contains("a.yaml"), "{err}");
}

#[test]
fn post_build_substitutes_inline_over_substitute_from() {
    let t = tree(&[(
        "app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-${ENV}\nspec:\n  replicas: ${REPLICAS:=2}\n  template:\n    spec:\n      containers:\n      - name: app\n        image: my-app:${TAG}\n        args: [\"$${NOT_A_VAR}\"]\n",
    )]);
    let mut s = spec("");
    s.post_build = Some(PostBuild {
        substitute: BTreeMap::from([("TAG".to_string(), "v1.0.1".to_string())]),
        substitute_from: vec![],
    });
    let from = BTreeMap::from([
        ("TAG".to_string(), "from-configmap".to_string()),
        ("ENV".to_string(), "prod".to_string()),
    ]);
    let objs = render(&t, &s, &from, NS, &StaticScopes::new()).expect("renders");
    let o = &objs[0].object;
    assert_eq!(o["metadata"]["name"], "app-prod");
    assert_eq!(o["spec"]["replicas"], json!(2));
    let c = &o["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "my-app:v1.0.1");
    assert_eq!(c["args"][0], "${NOT_A_VAR}");

    let err = render(&t, &s, &no_vars(), NS, &StaticScopes::new()).expect_err("ENV unset");
    let msg = err.to_string();
    assert!(msg.contains("\"ENV\"") && msg.contains("app.yaml"), "{msg}");

    s.post_build = Some(PostBuild {
        substitute: BTreeMap::from([("bad-name".to_string(), "x".to_string())]),
        substitute_from: vec![],
    });
    let err = render(&t, &s, &from, NS, &StaticScopes::new()).expect_err("bad name");
    assert!(err.to_string().contains("bad-name"), "{err}");
}

#[test]
fn without_post_build_variables_are_left_alone() {
    let t = tree(&[(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  x: ${KEEP}\n",
    )]);
    let objs = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(objs[0].object["data"]["x"], "${KEEP}");
}

#[test]
fn tenancy_refuses_cluster_scoped_and_foreign_namespace_objects_naming_each() {
    let t = tree(&[
        (
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: evil\n",
        ),
        (
            "cr.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: admin2\n",
        ),
        (
            "other.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\n  namespace: kube-system\n",
        ),
        ("ok.yaml", DEPLOY),
    ]);
    let err = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect_err("refused");
    assert!(err.is_tenancy());
    let RenderError::Tenancy(te) = &err else {
        panic!("expected a tenancy error, got {err}");
    };
    let refused: Vec<&str> = te.refused.iter().map(|r| r.object.as_str()).collect();
    assert_eq!(
        refused,
        [
            "ClusterRole/admin2 (cr.yaml)",
            "Namespace/evil (ns.yaml)",
            "Secret/kube-system/stolen (other.yaml)",
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("cluster-scoped") && msg.contains("not \"team-a\""),
        "{msg}"
    );
}

#[test]
fn target_namespace_must_be_the_agents_and_moves_every_namespaced_object() {
    let t = tree(&[
        ("a.yaml", SVC_AND_CM),
        (
            "b.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: elsewhere\n",
        ),
    ]);
    let mut s = spec("");
    s.target_namespace = Some(NS.into());
    let objs = render(&t, &s, &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert!(
        objs.iter().all(|o| o.namespace() == Some(NS)),
        "{:?}",
        ids(&objs)
    );

    s.target_namespace = Some("team-b".into());
    let err = render(&t, &s, &no_vars(), NS, &StaticScopes::new()).expect_err("other ns");
    assert!(
        err.is_tenancy() && err.to_string().contains("team-b"),
        "{err}"
    );
}

#[test]
fn target_namespace_moves_default_role_binding_subjects_as_kustomize_does() {
    let binding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\n  namespace: elsewhere\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: r\nsubjects:\n- kind: ServiceAccount\n  name: default\n  namespace: elsewhere\n- kind: ServiceAccount\n  name: builder\n  namespace: elsewhere\n";
    let t = tree(&[("rb.yaml", binding)]);
    let mut s = spec("");
    s.target_namespace = Some(NS.into());
    let objs = render(&t, &s, &no_vars(), NS, &StaticScopes::new()).expect("renders");
    let subjects = &objs[0].object["subjects"];
    assert_eq!(objs[0].namespace(), Some(NS));
    assert_eq!(subjects[0]["namespace"], NS, "{subjects}");
    assert_eq!(
        subjects[1]["namespace"], "elsewhere",
        "only `default` moves (setRoleBindingSubjects: defaultOnly): {subjects}"
    );
    // Without targetNamespace nothing is rewritten.
    let t = tree(&[(
        "rb.yaml",
        &binding.replace(
            "  namespace: elsewhere\nroleRef",
            &format!("  namespace: {NS}\nroleRef"),
        ),
    )]);
    let objs = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(objs[0].object["subjects"][0]["namespace"], "elsewhere");
}

#[test]
fn unknown_kinds_and_duplicates_are_refused_custom_kinds_allowed_when_known() {
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
    let t = tree(&[("w.yaml", widget)]);
    let err = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect_err("unknown");
    assert!(err.to_string().contains("does not serve"), "{err}");
    let scopes = StaticScopes::new().with("example.com/v1", "Widget", Scope::Namespaced);
    let objs = render(&t, &spec(""), &no_vars(), NS, &scopes).expect("known CRD kind");
    assert_eq!(ids(&objs), ["Widget/team-a/w"]);

    let t = tree(&[("a.yaml", DEPLOY), ("b.yaml", DEPLOY)]);
    let err = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect_err("dup");
    assert!(err.to_string().contains("defined twice"), "{err}");
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: my-app
spec:
  ports:
  - port: 80
";

#[test]
fn kustomization_path_is_built_with_the_engine_over_the_artifact() {
    let t = tree(&[
        ("deployment.yaml", DEPLOY),
        ("service.yaml", SERVICE),
        (
            "kustomization.yaml",
            "resources:\n- deployment.yaml\n- service.yaml\n",
        ),
    ]);
    let objs = render(&t, &spec("./"), &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(
        ids(&objs),
        ["Service/team-a/my-app", "Deployment/team-a/my-app"]
    );
    assert_eq!(objs[1].file.as_deref(), Some("deployment.yaml"));
}

#[test]
fn overlays_reach_shared_bases_anywhere_in_the_artifact() {
    let t = tree(&[
        ("apps/base/deployment.yaml", DEPLOY),
        (
            "apps/base/kustomization.yaml",
            "resources:\n- deployment.yaml\n",
        ),
        (
            "clusters/staging/kustomization.yaml",
            "resources:\n- ../../apps/base\nimages:\n- name: my-registry/my-app\n  newTag: v1.0.1\nreplicas:\n- name: my-app\n  count: 2\n",
        ),
        (
            "clusters/production/kustomization.yaml",
            "resources:\n- ../../apps/base\nnameSuffix: -prod\n",
        ),
    ]);
    let staging = render(
        &t,
        &spec("clusters/staging"),
        &no_vars(),
        NS,
        &StaticScopes::new(),
    )
    .expect("staging");
    let d = &staging[0].object;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "my-registry/my-app:v1.0.1"
    );
    assert_eq!(d["spec"]["replicas"], json!(2));
    let prod = render(
        &t,
        &spec("clusters/production"),
        &no_vars(),
        NS,
        &StaticScopes::new(),
    )
    .expect("production");
    assert_eq!(ids(&prod), ["Deployment/team-a/my-app-prod"]);
    assert_eq!(
        prod[0].object["spec"]["template"]["spec"]["containers"][0]["image"],
        "my-registry/my-app:v1.0.0"
    );
}

#[test]
fn plain_directory_builds_subdirectories_that_have_a_kustomization_as_a_unit() {
    let t = tree(&[
        (
            "apps/a-plain.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
        ),
        (
            "apps/web/kustomization.yaml",
            "namePrefix: web-\nresources:\n- base/cm.yaml\n",
        ),
        (
            "apps/web/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
        ),
        // Would clash with the built `web-cm` if it were read as a plain file: it must not be.
        (
            "apps/web/z-unlisted.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
        ),
    ]);
    let objs = render(&t, &spec("apps"), &no_vars(), NS, &StaticScopes::new()).expect("renders");
    assert_eq!(
        ids(&objs),
        ["ConfigMap/team-a/plain", "ConfigMap/team-a/web-cm"]
    );
}

#[test]
fn a_failing_patch_is_a_kustomize_error_naming_the_path_and_file() {
    let t = tree(&[
        ("app/deployment.yaml", DEPLOY),
        (
            "app/kustomization.yaml",
            "resources:\n- deployment.yaml\npatches:\n- path: missing-patch.yaml\n",
        ),
    ]);
    let err = render(&t, &spec("app"), &no_vars(), NS, &StaticScopes::new()).expect_err("patch");
    assert!(matches!(err, RenderError::Kustomize { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"app\"") && msg.contains("missing-patch.yaml"),
        "{msg}"
    );
    assert!(!err.is_tenancy());
}

#[test]
fn kustomize_output_is_also_subject_to_tenancy() {
    let t = tree(&[
        (
            "kustomization.yaml",
            "resources:\n- ns.yaml\n- deployment.yaml\nnamespace: other\n",
        ),
        (
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n",
        ),
        ("deployment.yaml", DEPLOY),
    ]);
    let err = render(&t, &spec(""), &no_vars(), NS, &StaticScopes::new()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("Namespace/other") && msg.contains("Deployment/other/my-app"),
        "{msg}"
    );
}
