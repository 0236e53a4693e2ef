//! Fuzz bodies shared by the cargo-fuzz targets (`fuzz_targets/`) and by the bounded corpus
//! replay in `applier/kustomize/tests/fuzz_corpus.rs`, which runs on stable in CI. Each body
//! must never panic, whatever the input; errors are the expected outcome for garbage.

use ferry_kustomize::{BuildOptions, MemFs, RelPath, build, yaml};
use ferry_proto::merge::{json_patch, strategic};
use serde_json::Value;

/// A Deployment every build input can refer to (`resources: [deployment.yaml]`).
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: app\n        image: app:1\n        ports: [{containerPort: 80}]\n        env: [{name: A, value: '1'}]\n";

/// YAML stream and kustomization-file parsing.
pub fn kustomization(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = yaml::parse_objects(text);
    if let Ok(docs) = yaml::parse_documents(text)
        && let Some(first) = docs.into_iter().next()
    {
        let _ = ferry_kustomize::value::from_value::<ferry_kustomize::kustomization::Kustomization>(
            first,
        );
    }
}

/// The YAML fast path against the general parser: wherever the fast path answers, it must
/// answer exactly what serde_yaml does.
pub fn yaml_fast_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fast) = yaml::simple::parse(text) {
        let general = yaml::parse_documents_general(text);
        assert_eq!(Ok(&fast), general.as_ref(), "fast path differs on {text:?}");
    }
}

/// A whole build: the input is the kustomization file; `deployment.yaml` and `patch.yaml`
/// exist beside it. Inputs are split at the first NUL: before it the kustomization, after
/// it the content of `patch.yaml`.
pub fn build_tree(data: &[u8]) {
    let (kust, patch) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut fs = MemFs::new();
    let files: [(&str, &[u8]); 3] = [
        ("kustomization.yaml", kust),
        ("deployment.yaml", DEPLOYMENT.as_bytes()),
        ("patch.yaml", patch),
    ];
    for (path, content) in files {
        fs.insert(path, content.to_vec())
            .expect("fixed paths are valid");
    }
    if let Ok(out) = build(&fs, &RelPath::root(), &BuildOptions::default()) {
        let _ = out.to_yaml();
    }
}

/// Strategic merge (both flavours) and JSON patch over two YAML/JSON documents separated by a
/// NUL byte: the original object, then the patch.
pub fn strategic_merge(data: &[u8]) {
    let Some(i) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (Ok(a), Ok(b)) = (
        std::str::from_utf8(&data[..i]),
        std::str::from_utf8(&data[i + 1..]),
    ) else {
        return;
    };
    let (Some(original), Some(patch)) = (first_doc(a), first_doc(b)) else {
        return;
    };
    for options in [strategic::Options::KUSTOMIZE, strategic::Options::APISERVER] {
        if let Ok(Some(merged)) = strategic::apply_to_object(&original, &patch, options) {
            // Merging an empty patch changes nothing but directives' side effects.
            let again =
                strategic::apply_to_object(&merged, &Value::Object(Default::default()), options);
            assert!(
                matches!(again, Ok(Some(ref v)) if *v == merged),
                "an empty patch changed the result"
            );
        }
    }
    if let Ok(ops) = json_patch::parse(&patch) {
        let mut doc = original.clone();
        if json_patch::apply(&mut doc, &ops).is_err() {
            assert_eq!(
                doc, original,
                "a failed JSON patch must leave the document unchanged"
            );
        }
    }
}

fn first_doc(text: &str) -> Option<Value> {
    yaml::parse_documents(text)
        .ok()?
        .into_iter()
        .next()
        .map(Value::from)
}

/// Deep and wide kustomization trees, described by the first bytes of the input: levels
/// (`data[0..2]`, up to 65535), bases per level (`data[2] % 4 + 1`, each with its own name
/// prefix, so every level multiplies the objects — diamonds), ConfigMaps at the bottom
/// (`data[3]`); the rest is appended to every level's kustomization. The build must end in an
/// output or an error — never a stack overflow or an unbounded allocation.
pub fn nested_tree(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0) as usize;
    let levels = (byte(0) << 8 | byte(1)).max(1);
    let fan = byte(2) % 4 + 1;
    let objects = byte(3);
    let extra = String::from_utf8_lossy(data.get(4..).unwrap_or_default());
    let mut fs = MemFs::new();
    let mut insert = |path: String, text: String| {
        fs.insert(&path, text.into_bytes())
            .expect("generated paths are valid");
    };
    for level in 0..levels {
        let mut k = String::from("resources:\n");
        if level + 1 == levels {
            k.push_str("- objects.yaml\n");
            let docs: Vec<String> = (0..objects)
                .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
                .collect();
            insert(format!("l{level}/objects.yaml"), docs.join("---\n"));
        } else {
            for b in 0..fan {
                k.push_str(&format!("- b{b}\n"));
                insert(
                    format!("l{level}/b{b}/kustomization.yaml"),
                    format!("namePrefix: b{b}-\nresources:\n- ../../l{}\n", level + 1),
                );
            }
        }
        k.push_str(&extra);
        insert(format!("l{level}/kustomization.yaml"), k);
    }
    let dir = RelPath::parse("l0").expect("valid directory");
    if let Ok(out) = build(&fs, &dir, &BuildOptions::default()) {
        let _ = out.to_yaml();
    }
}
