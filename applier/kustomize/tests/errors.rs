//! What users see when a build is refused or broken: every message names the kustomization
//! file and the field (and the object where one is involved); the in-memory tree the agent
//! uses builds exactly like the real filesystem.

use ferry_kustomize::{BuildOptions, LoadRestrictor, MemFs, RealFs, RelPath, build};

fn mem(files: &[(&str, &str)]) -> MemFs {
    let mut fs = MemFs::new();
    for (p, c) in files {
        fs.insert(p, c.as_bytes()).expect("valid test path");
    }
    fs
}

fn err_of(files: &[(&str, &str)], dir: &str) -> String {
    let fs = mem(files);
    match build(
        &fs,
        &RelPath::parse(dir).expect("valid dir"),
        &BuildOptions::default(),
    ) {
        Ok(out) => panic!("expected an error, got:\n{}", out.to_yaml()),
        Err(e) => e.to_string(),
    }
}

const SVC: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n";

#[test]
fn remote_resources_are_refused_with_file_and_field() {
    let e = err_of(
        &[
            (
                "app/kustomization.yaml",
                "resources:\n- svc.yaml\n- https://github.com/org/repo//base?ref=v1\n",
            ),
            ("app/svc.yaml", SVC),
        ],
        "app",
    );
    assert!(e.contains("app/kustomization.yaml resources[1]"), "{e}");
    assert!(e.contains("remote reference"), "{e}");
}

#[test]
fn plugins_and_helm_are_refused() {
    let e = err_of(
        &[
            ("kustomization.yaml", "transformers:\n- plugin.yaml\n"),
            (
                "plugin.yaml",
                "apiVersion: someteam.example.com/v1\nkind: ChartInflator\nmetadata:\n  name: x\n",
            ),
        ],
        "",
    );
    assert!(
        e.contains("kustomization.yaml transformers") && e.contains("refused"),
        "{e}"
    );
    let e = err_of(
        &[(
            "kustomization.yaml",
            "generators:\n- |\n  apiVersion: x\n  kind: Exec\n",
        )],
        "",
    );
    assert!(e.contains("kustomization.yaml generators"), "{e}");
    let e = err_of(
        &[("kustomization.yaml", "helmCharts:\n- name: nginx\n")],
        "",
    );
    assert!(
        e.contains("kustomization.yaml helmCharts") && e.contains("Helm"),
        "{e}"
    );
}

#[test]
fn paths_may_not_leave_the_root() {
    let e = err_of(
        &[(
            "app/kustomization.yaml",
            "resources:\n- ../../outside.yaml\n",
        )],
        "app",
    );
    assert!(
        e.contains("app/kustomization.yaml resources[0]") && e.contains("leaves the build root"),
        "{e}"
    );
    let e = err_of(&[("kustomization.yaml", "resources:\n- /etc/passwd\n")], "");
    assert!(e.contains("is absolute"), "{e}");
    let e = err_of(
        &[(
            "kustomization.yaml",
            "configMapGenerator:\n- name: x\n  files:\n  - ../../secret\n",
        )],
        "",
    );
    assert!(e.contains("configMapGenerator[0].files[0]"), "{e}");
}

#[test]
fn load_restrictor_keeps_files_under_the_kustomization() {
    let files = [
        (
            "app/kustomization.yaml",
            "resources:\n- ../shared/svc.yaml\n",
        ),
        ("shared/svc.yaml", SVC),
    ];
    let e = err_of(&files, "app");
    assert!(
        e.contains("app/kustomization.yaml resources[0]") && e.contains("not in or below 'app'"),
        "{e}"
    );
    let fs = mem(&files);
    let opts = BuildOptions {
        load_restrictor: LoadRestrictor::None,
    };
    let out = build(&fs, &RelPath::parse("app").expect("valid"), &opts)
        .expect("allowed with LoadRestrictionsNone");
    assert_eq!(out.resources.len(), 1);
}

#[test]
fn missing_kustomization_names_directory_and_referrer() {
    let e = err_of(
        &[
            ("overlay/kustomization.yaml", "resources:\n- ../plain\n"),
            ("plain/svc.yaml", SVC),
        ],
        "overlay",
    );
    assert!(
        e.contains("no kustomization file") && e.contains("'plain'"),
        "{e}"
    );
    assert!(e.contains("overlay/kustomization.yaml resources[0]"), "{e}");
    let e = err_of(&[("plain/svc.yaml", SVC)], "plain");
    assert!(
        e.contains("no kustomization file") && e.contains("'plain'"),
        "{e}"
    );
}

#[test]
fn bad_fields_and_objects_are_named() {
    let e = err_of(&[("kustomization.yaml", "resourcez: []\n")], "");
    assert!(
        e.contains("kustomization.yaml") && e.contains("resourcez"),
        "{e}"
    );
    let e = err_of(
        &[
            ("kustomization.yaml", "resources:\n- a.yaml\n- b.yaml\n"),
            ("a.yaml", SVC),
            ("b.yaml", SVC),
        ],
        "",
    );
    assert!(
        e.contains("resources[1]") && e.contains("v1 Service web"),
        "{e}"
    );
    let e = err_of(
        &[
            ("kustomization.yaml", "resources:\n- bad.yaml\n"),
            ("bad.yaml", "kind: [\n"),
        ],
        "",
    );
    assert!(e.starts_with("bad.yaml:"), "{e}");
    let e = err_of(
        &[
            (
                "kustomization.yaml",
                "resources:\n- svc.yaml\nreplicas:\n- name: nope\n  count: 2\n",
            ),
            ("svc.yaml", SVC),
        ],
        "",
    );
    assert!(
        e.contains("kustomization.yaml replicas[0]") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn cycles_are_detected() {
    let e = err_of(
        &[
            ("a/kustomization.yaml", "resources:\n- ../b\n"),
            ("b/kustomization.yaml", "resources:\n- ../a\n"),
        ],
        "a",
    );
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn in_memory_tree_builds_like_the_filesystem() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/components-shared-prod");
    let mut fs = MemFs::new();
    let mut stack = vec![fixture.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable fixture") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&fixture)
                    .expect("inside")
                    .to_str()
                    .expect("utf-8")
                    .to_string();
                fs.insert(&rel, std::fs::read(&p).expect("readable"))
                    .expect("valid path");
            }
        }
    }
    let dir = RelPath::parse("overlays/prod").expect("valid");
    let from_mem = build(&fs, &dir, &BuildOptions::default()).expect("builds from memory");
    let real = RealFs::new(&fixture).expect("fixture root");
    let from_disk = build(&real, &dir, &BuildOptions::default()).expect("builds from disk");
    assert_eq!(from_mem.to_yaml(), from_disk.to_yaml());
    let expected = std::fs::read_to_string(fixture.join("expected.yaml")).expect("expected.yaml");
    assert_eq!(from_mem.to_yaml(), expected);
}

#[test]
fn deprecations_are_reported_as_warnings() {
    let fs = mem(&[
        (
            "kustomization.yaml",
            "commonLabels: {a: b}\nbases:\n- base\n",
        ),
        ("base/kustomization.yaml", "resources:\n- svc.yaml\n"),
        ("base/svc.yaml", SVC),
    ]);
    let out = build(&fs, &RelPath::root(), &BuildOptions::default()).expect("builds");
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("'commonLabels' is deprecated")),
        "{:?}",
        out.warnings
    );
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("'bases' is deprecated")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn non_string_label_and_annotation_values_name_the_field() {
    let e = err_of(
        &[
            (
                "kustomization.yaml",
                "resources:\n- svc.yaml\ncommonAnnotations:\n  replicas: 3\n",
            ),
            ("svc.yaml", SVC),
        ],
        "",
    );
    assert!(
        e.contains("kustomization.yaml")
            && e.contains("commonAnnotations")
            && e.contains("'replicas'"),
        "{e}"
    );
    let e = err_of(
        &[
            (
                "kustomization.yaml",
                "resources:\n- svc.yaml\nlabels:\n- pairs:\n    enabled: true\n",
            ),
            ("svc.yaml", SVC),
        ],
        "",
    );
    assert!(
        e.contains("labels[0].pairs") && e.contains("not a boolean"),
        "{e}"
    );
}
