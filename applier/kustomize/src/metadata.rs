//! `buildMetadata:` — `managedByLabel` and `originAnnotations` (where each object came from,
//! relative to the top kustomization, as kustomize writes it); `transformerAnnotations` is
//! not supported yet (an error naming the field, never a silent difference).

use crate::value::Value;

use crate::error::{Error, Result};
use crate::kustomization::Kustomization;
use crate::loader::KustCtx;
use crate::resource::ResMap;

/// kustomize v5.7.1 reads and rewrites every object's `metadata.annotations` as a
/// `map[string]string`, so its output never carries a non-string annotation value nor an
/// empty or null annotations map — whether the value came from a resource file, a patch, or
/// nothing touched it at all. Scalars print as their YAML text (`1` → `"1"`, `true` →
/// `"true"`, null → `"null"`); maps and sequences become `""`. Labels are left as they are
/// (kustomize does not rewrite them), and only top-level metadata is affected.
pub fn normalize_annotations(resources: &mut ResMap) {
    for r in resources.iter_mut() {
        let meta = r.metadata_mut();
        let empty = match meta.get_mut("annotations") {
            Some(Value::Object(a)) => {
                for v in a.values_mut() {
                    if !v.is_string() {
                        *v = Value::String(annotation_text(v));
                    }
                }
                a.is_empty()
            }
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove("annotations");
        }
    }
}

fn annotation_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// The version string kustomize v5.7.1 writes into `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "kustomize-v5.7.1";

fn origin(r: &crate::Resource, top: &crate::RelPath) -> String {
    let rel = r.origin.relative_to(top);
    if r.generated {
        let by = if r.kind() == "Secret" {
            "SecretGenerator"
        } else {
            "ConfigMapGenerator"
        };
        format!("configuredIn: {rel}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {by}\n")
    } else {
        format!("path: {rel}\n")
    }
}

pub fn finish(resources: &mut ResMap, kust: &Kustomization, ctx: &KustCtx<'_>) -> Result<()> {
    for (i, m) in kust.build_metadata.iter().enumerate() {
        match m.as_str() {
            "originAnnotations" => {
                for r in resources.iter_mut() {
                    let o = origin(r, &ctx.dir);
                    let meta = r.metadata_mut();
                    let annotations = meta
                        .entry("annotations")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(a) = annotations {
                        a.insert("config.kubernetes.io/origin".into(), Value::String(o));
                    }
                }
            }
            "managedByLabel" => {
                for r in resources.iter_mut() {
                    let meta = r.metadata_mut();
                    let labels = meta
                        .entry("labels")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(l) = labels {
                        l.insert(
                            "app.kubernetes.io/managed-by".into(),
                            Value::String(MANAGED_BY.into()),
                        );
                    }
                }
            }
            other => {
                return Err(Error::field(
                    &ctx.loc(format!("buildMetadata[{i}]")),
                    format!(
                        "'{other}' is not supported by Ferry's kustomize engine yet (managedByLabel and originAnnotations are)"
                    ),
                ));
            }
        }
    }
    Ok(())
}
