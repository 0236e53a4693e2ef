//! The kustomization file, parsed into typed fields (kustomize's `types.Kustomization`).
//! Field names are kustomize's; deprecated fields are kept as written so the pipeline can
//! warn and apply them with kustomize's semantics.

use std::collections::BTreeMap;

use crate::value::Value;
use serde::{Deserialize, Deserializer};

/// Kustomization file names kustomize recognises, in its lookup order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// `map[string]string` in kustomize; numbers and booleans are errors, null is `""`.
pub type StringMap = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Kustomization {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<Value>,
    #[serde(rename = "openapi")]
    pub open_api: Option<Value>,

    #[serde(deserialize_with = "nullable")]
    pub resources: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub bases: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub components: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub crds: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub configurations: Vec<String>,

    pub namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    #[serde(deserialize_with = "string_map")]
    pub common_labels: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub labels: Vec<Label>,
    #[serde(deserialize_with = "string_map")]
    pub common_annotations: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub images: Vec<Image>,
    #[serde(deserialize_with = "nullable")]
    pub image_tags: Vec<Image>,
    #[serde(deserialize_with = "nullable")]
    pub replicas: Vec<Replica>,

    /// Paths or inline YAML documents.
    #[serde(deserialize_with = "nullable")]
    pub patches_strategic_merge: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub patches_json6902: Vec<Patch>,
    #[serde(deserialize_with = "nullable")]
    pub patches: Vec<Patch>,

    #[serde(deserialize_with = "nullable")]
    pub config_map_generator: Vec<GeneratorArgs>,
    #[serde(deserialize_with = "nullable")]
    pub secret_generator: Vec<GeneratorArgs>,
    pub generator_options: Option<GeneratorOptions>,

    #[serde(deserialize_with = "nullable")]
    pub vars: Vec<Var>,
    #[serde(deserialize_with = "nullable")]
    pub replacements: Vec<ReplacementField>,
    pub sort_options: Option<SortOptions>,
    #[serde(deserialize_with = "nullable")]
    pub build_metadata: Vec<String>,

    // Refused features: parsed so the error can name them precisely.
    #[serde(deserialize_with = "nullable")]
    pub generators: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub transformers: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub validators: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub helm_charts: Vec<Value>,
    pub helm_globals: Option<Value>,
    #[serde(deserialize_with = "nullable")]
    pub helm_chart_inflation_generator: Vec<Value>,
}

/// A `patches`/`patchesJson6902` entry (path or inline patch, optional target).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Selector>,
    #[serde(default)]
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, bool>,
}

/// Resource selector (`target:` of patches, replacements…).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Selector {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub annotation_selector: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Label {
    #[serde(deserialize_with = "string_map")]
    pub pairs: StringMap,
    #[serde(deserialize_with = "nullable")]
    pub include_selectors: bool,
    #[serde(deserialize_with = "nullable")]
    pub include_templates: bool,
    #[serde(deserialize_with = "nullable")]
    pub fields: Vec<crate::fieldspec::FieldSpecDef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Image {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
    pub tag_suffix: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Replica {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GeneratorArgs {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub behavior: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub literals: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub files: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub envs: Vec<String>,
    pub env: Option<String>,
    pub options: Option<GeneratorOptions>,
    /// Secret type (secretGenerator only).
    #[serde(rename = "type")]
    pub type_: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GeneratorOptions {
    #[serde(deserialize_with = "string_map")]
    pub labels: StringMap,
    #[serde(deserialize_with = "string_map")]
    pub annotations: StringMap,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Var {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub objref: ObjRef,
    pub fieldref: Option<FieldRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ObjRef {
    pub group: Option<String>,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FieldRef {
    // Go's JSON decoding is case-insensitive; `fieldpath` is the common spelling in the wild.
    #[serde(alias = "fieldpath")]
    #[serde(deserialize_with = "nullable")]
    pub field_path: String,
}

/// `replacements:` entry: a file path or an inline replacement.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReplacementField {
    Path { path: String },
    Inline(Box<Replacement>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Replacement {
    pub source: Option<SourceSelector>,
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<TargetSelector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SourceSelector {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub field_path: Option<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TargetSelector {
    pub select: Option<Selector>,
    #[serde(deserialize_with = "nullable")]
    pub reject: Vec<Selector>,
    #[serde(deserialize_with = "nullable")]
    pub field_paths: Vec<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FieldOptions {
    #[serde(deserialize_with = "nullable")]
    pub delimiter: String,
    #[serde(deserialize_with = "nullable")]
    pub index: i64,
    #[serde(deserialize_with = "nullable")]
    pub encoding: String,
    #[serde(deserialize_with = "nullable")]
    pub create: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SortOptions {
    pub order: Option<String>,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LegacySortOptions {
    #[serde(deserialize_with = "nullable")]
    pub order_first: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub order_last: Vec<String>,
}

/// Go decodes an explicit `null` (e.g. a bare `patches:`) as the zero value; so does this.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A `map[string]string` as kustomize v5.7.1 decodes it (Go's JSON into a string map): a
/// null value becomes `""`, but a number or boolean is an error — kustomize does not quote
/// `replicas: 3` for you, and accepting it would build what kustomize refuses.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    let v: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    let mut out = StringMap::new();
    for (k, v) in v.unwrap_or_default() {
        let s = match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => {
                let kind = match other {
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::Array(_) => "a sequence",
                    _ => "a map",
                };
                return Err(serde::de::Error::custom(format!(
                    "value of '{k}' must be a string, not {kind} (quote it)"
                )));
            }
        };
        out.insert(k, s);
    }
    Ok(out)
}
