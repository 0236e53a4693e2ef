//! `transformers:` entries that configure kustomize's own builtin transformers
//! (`apiVersion: builtin`, e.g. `kind: LabelTransformer`): declarative, nothing executed, so
//! they run here with the same code as the kustomization fields they mirror, after those
//! fields' transformers and in the order listed — as in kustomize's `runTransformers`. An
//! entry is a file (one or more configs) or an inline YAML document. Exec and KRM-function
//! plugins, other `apiVersion`s and builtin kinds not listed below stay refused.

use crate::value::Value;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fieldspec::{FieldSpec, FieldSpecDef};
use crate::kustomization::{Image, Patch, ReplacementField, Replica, StringMap};
use crate::loader::KustCtx;
use crate::resource::ResMap;
use crate::{patches, transform, yaml};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MapEntries {
    #[serde(alias = "annotations")]
    labels: StringMap,
    field_specs: Vec<FieldSpecDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PrefixSuffix {
    prefix: String,
    suffix: String,
    field_specs: Vec<FieldSpecDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Namespace {
    metadata: NamespaceMeta,
    field_specs: Vec<FieldSpecDef>,
    unset_only: bool,
    set_role_binding_subjects: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamespaceMeta {
    namespace: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ImageTag {
    image_tag: Image,
    field_specs: Vec<FieldSpecDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ReplicaCount {
    replica: Replica,
    field_specs: Vec<FieldSpecDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Replacements {
    replacements: Vec<ReplacementField>,
}

/// Runs the `transformers:` list of one kustomization.
pub fn apply(resources: &mut ResMap, list: &[String], ctx: &KustCtx<'_>) -> Result<()> {
    for (i, entry) in list.iter().enumerate() {
        let field = format!("transformers[{i}]");
        let at = ctx.loc(&field);
        let text = if entry.contains('\n') {
            entry.clone()
        } else {
            ctx.read_text(entry, &field)?.1
        };
        let docs = yaml::parse_documents(&text).map_err(|e| Error::field(&at, e))?;
        for doc in docs {
            run_one(resources, doc, ctx, &field)?;
        }
    }
    Ok(())
}

fn run_one(resources: &mut ResMap, doc: Value, ctx: &KustCtx<'_>, field: &str) -> Result<()> {
    let at = ctx.loc(field);
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let refuse = |msg: String| {
        Err(Error::Refused {
            at: at.clone(),
            msg,
        })
    };
    if api_version != "builtin" {
        return refuse(format!(
            "transformer plugin '{api_version}' {kind} is not run (only apiVersion: builtin \
             configurations of kustomize's own transformers are)"
        ));
    }
    let config = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.remove("apiVersion");
            m.remove("kind");
            if kind != "NamespaceTransformer" {
                m.remove("metadata");
            }
        }
        v
    };
    let parse_err = |e: serde_json::Error| Error::field(&at, format!("{kind}: {e}"));
    let specs =
        |defs: &[FieldSpecDef]| -> Vec<FieldSpec> { defs.iter().map(FieldSpec::from).collect() };
    match kind.as_str() {
        "LabelTransformer" | "AnnotationsTransformer" => {
            let c: MapEntries = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            transform::set_map_entries(resources, &c.labels, &specs(&c.field_specs), &at)
        }
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            let c: PrefixSuffix = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            transform::prefix_suffix(resources, &c.prefix, &c.suffix, &specs(&c.field_specs), &at)
        }
        "NamespaceTransformer" => {
            let c: Namespace = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            let subjects = c
                .set_role_binding_subjects
                .as_deref()
                .unwrap_or("")
                .parse()
                .map_err(|e: String| Error::field(&at, format!("{kind}: {e}")))?;
            let opts = transform::NamespaceOptions {
                unset_only: c.unset_only,
                subjects,
            };
            transform::namespace_with(
                resources,
                &c.metadata.namespace,
                &specs(&c.field_specs),
                opts,
                &at,
            )
        }
        // As `images:` does (containers anywhere, then the given field specs) for one image.
        "ImageTagTransformer" => {
            let c: ImageTag = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            let list = std::slice::from_ref(&c.image_tag);
            transform::images(resources, list, &specs(&c.field_specs), &at)
        }
        "ReplicaCountTransformer" => {
            let c: ReplicaCount = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            let list = std::slice::from_ref(&c.replica);
            transform::replicas(resources, list, &specs(&c.field_specs), &at)
        }
        "ReplacementTransformer" => {
            let c: Replacements = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            crate::replacements::apply(resources, &c.replacements, ctx)
        }
        "PatchTransformer" => {
            let p: Patch = crate::value::from_value(config(&doc)).map_err(parse_err)?;
            patches::apply_patches(resources, std::slice::from_ref(&p), ctx)
        }
        other => refuse(format!("builtin transformer {other} is not supported")),
    }
}
