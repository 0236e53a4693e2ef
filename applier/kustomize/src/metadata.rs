//! `buildMetadata:` — `managedByLabel` and `originAnnotations` (where each object came from,
//! relative to the top kustomization, as kustomize writes it); `transformerAnnotations` is
//! not supported yet (an error naming the field, never a silent difference).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::kustomization::Kustomization;
use crate::loader::KustCtx;
use crate::resource::ResMap;

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
