//! `crds:` — OpenAPI definition files (name → {Schema}) whose properties carry kustomize's
//! `x-kubernetes-*` extensions; each becomes a field spec exactly as kustomize's
//! `LoadConfigFromCRDs` makes them: `x-kubernetes-annotation` → commonAnnotations,
//! `x-kubernetes-label-selector` → commonLabels, `x-kubernetes-identity` → namePrefix,
//! `x-kubernetes-object-ref-api-version` + `-kind` (+ `-name-key`) → nameReference.
//! `$ref` properties are followed into other definitions of the same file.

use crate::value::{Map, Value};

use crate::error::{Error, Result};
use crate::fieldspec::{FieldSpec, NameBackRef, TransformerConfig};
use crate::loader::KustCtx;
use crate::resource::Gvk;

/// Bounds `$ref` recursion on hostile input.
const MAX_DEPTH: usize = 32;

/// Go decodes `Schema`/`schema` alike (case-insensitive field names).
fn schema_of(def: &Value) -> Option<&Map> {
    def.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schema"))
        .and_then(|(_, v)| v.as_object())
}

fn properties(schema: &Map) -> Option<&Map> {
    schema.get("properties").and_then(Value::as_object)
}

fn ext<'v>(prop: &'v Value, key: &str) -> Option<&'v str> {
    prop.get(key).and_then(Value::as_str)
}

fn spec(gvk: &Gvk, path: &[String]) -> FieldSpec {
    let mut f = FieldSpec::new(&path.join("/"), false);
    f.gvk = gvk.clone();
    f
}

fn walk(
    cfg: &mut TransformerConfig,
    gvk: &Gvk,
    defs: &Map,
    name: &str,
    path: &[String],
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(props) = defs.get(name).and_then(schema_of).and_then(properties) else {
        return;
    };
    for (prop_name, prop) in props {
        let mut p = path.to_vec();
        p.push(prop_name.clone());
        if ext(prop, "x-kubernetes-annotation").is_some() {
            cfg.common_annotations.push(spec(gvk, &p));
        }
        if ext(prop, "x-kubernetes-label-selector").is_some() {
            cfg.common_labels.push(spec(gvk, &p));
        }
        if ext(prop, "x-kubernetes-identity").is_some() {
            cfg.name_prefix.push(spec(gvk, &p));
        }
        if let (Some(version), Some(kind)) = (
            ext(prop, "x-kubernetes-object-ref-api-version"),
            ext(prop, "x-kubernetes-object-ref-kind"),
        ) {
            let key = ext(prop, "x-kubernetes-object-ref-name-key").unwrap_or("name");
            let mut np = p.clone();
            np.push(key.to_string());
            let mut one = TransformerConfig::default();
            one.name_reference.push(NameBackRef {
                gvk: Gvk {
                    group: String::new(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                },
                field_specs: vec![spec(gvk, &np)],
            });
            cfg.merge(&one);
        }
        if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
            walk(cfg, gvk, defs, r, &p, depth + 1);
        }
    }
}

pub fn load(ctx: &KustCtx<'_>, crds: &[String]) -> Result<TransformerConfig> {
    let mut cfg = TransformerConfig::default();
    for (i, path) in crds.iter().enumerate() {
        let field = format!("crds[{i}]");
        let (p, text) = ctx.read_text(path, &field)?;
        let docs =
            crate::yaml::parse_documents(&text).map_err(|e| Error::yaml(p.to_string(), e))?;
        let Some(Value::Object(defs)) = docs.into_iter().next() else {
            return Err(Error::field(
                &ctx.loc(&field),
                format!(
                    "unable to parse open API definition from '{path}': expected a map of definitions"
                ),
            ));
        };
        for (name, def) in &defs {
            let Some(props) = schema_of(def).and_then(properties) else {
                continue;
            };
            if !(props.contains_key("kind")
                && props.contains_key("apiVersion")
                && props.contains_key("metadata"))
            {
                continue;
            }
            if name.split('.').count() < 3 {
                return Err(Error::field(
                    &ctx.loc(&field),
                    format!(
                        "definition '{name}': `api` should be specified in dot notation: group.version.kind"
                    ),
                ));
            }
            let gvk = Gvk {
                kind: name.rsplit('.').next().unwrap_or(name).to_string(),
                ..Default::default()
            };
            let mut one = TransformerConfig::default();
            walk(&mut one, &gvk, &defs, name, &[], 0);
            cfg.merge(&one);
        }
    }
    Ok(cfg)
}
