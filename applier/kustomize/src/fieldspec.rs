//! Field specs: "in objects of this group/version/kind, the field at this path". Every
//! builtin transformer is driven by a list of them (kustomize's `builtinpluginconsts`,
//! embedded verbatim from kustomize v5.7.1 under `builtin_config/`), extended per build by
//! `configurations:` files. [`visit`] walks one spec through an object the way kustomize's
//! `fieldspec.Filter` does: lists are traversed element-wise, missing maps are created only
//! when the spec says `create: true`.

use std::sync::OnceLock;

use crate::value::{Map, Value};
use serde::Deserialize;

use crate::resource::Gvk;

mod builtin;

/// A field spec as written in YAML.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FieldSpecDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: String,
    pub create: bool,
}

/// A parsed field spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub gvk: Gvk,
    pub path: Vec<String>,
    /// Per path segment: written with a `[]` suffix (a list kustomize never creates).
    pub seq: Vec<bool>,
    pub raw_path: String,
    pub create: bool,
}

impl From<&FieldSpecDef> for FieldSpec {
    fn from(d: &FieldSpecDef) -> Self {
        FieldSpec {
            gvk: Gvk {
                group: d.group.clone(),
                version: d.version.clone(),
                kind: d.kind.clone(),
            },
            path: split_path(&d.path),
            seq: split_path_segments(&d.path)
                .map(|s| s.ends_with("[]"))
                .collect(),
            raw_path: d.path.clone(),
            create: d.create,
        }
    }
}

impl FieldSpec {
    pub fn new(path: &str, create: bool) -> Self {
        FieldSpec::from(&FieldSpecDef {
            path: path.to_string(),
            create,
            ..Default::default()
        })
    }

    pub fn applies_to(&self, gvk: &Gvk) -> bool {
        self.gvk.selects(gvk)
    }
}

/// Splits on `/`, honouring `\/` escapes; a `[]` suffix only marks a list.
pub fn split_path(path: &str) -> Vec<String> {
    split_path_segments(path)
        .map(|s| s.strip_suffix("[]").unwrap_or(&s).to_string())
        .collect()
}

/// The raw segments (with `[]` suffixes) of a path without escapes, borrowed.
fn split_path_segments(path: &str) -> Box<dyn Iterator<Item = std::borrow::Cow<'_, str>> + '_> {
    if path.contains('\\') {
        Box::new(
            split_path_raw(path)
                .into_iter()
                .map(std::borrow::Cow::Owned),
        )
    } else {
        Box::new(
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(std::borrow::Cow::Borrowed),
        )
    }
}

/// [`split_path`] keeping the `[]` suffixes.
fn split_path_raw(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|s| !s.is_empty());
    out
}

/// What to create at the end of the path when it is missing and the spec allows creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Map,
    Scalar,
}

/// Calls `f` on every value at `spec.path` inside `obj`.
pub fn visit(
    obj: &mut Value,
    spec: &FieldSpec,
    create: Option<Create>,
    f: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    visit_at(obj, &spec.path, &spec.seq, spec.create, create, f)
}

fn visit_at(
    node: &mut Value,
    path: &[String],
    seq: &[bool],
    may_create: bool,
    create: Option<Create>,
    f: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    if path.is_empty() {
        return f(node);
    }
    match node {
        Value::Array(items) => {
            for item in items {
                visit_at(item, path, seq, may_create, create, f)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let key = &path[0];
            let last = path.len() == 1;
            if seq.first() == Some(&true) {
                // kustomize only looks a `name[]` field up, never creates it; a null there
                // becomes an empty list.
                return match map.get_mut(key.as_str()) {
                    None => Ok(()),
                    Some(child) if child.is_null() => {
                        *child = Value::Array(Vec::new());
                        Ok(())
                    }
                    Some(child) => visit_at(child, &path[1..], &seq[1..], may_create, create, f),
                };
            }
            let kind = match (may_create, create, last) {
                (true, Some(c), true) => Some(c),
                (true, Some(_), false) => Some(Create::Map),
                _ => None,
            };
            if !map.contains_key(key.as_str()) {
                match kind {
                    Some(Create::Map) => {
                        map.insert(key.clone(), Value::Object(Map::new()));
                    }
                    Some(Create::Scalar) => {
                        map.insert(key.clone(), Value::Null);
                    }
                    None => return Ok(()),
                }
            }
            let child = map.get_mut(key.as_str()).expect("present or just inserted");
            if child.is_null() && kind == Some(Create::Map) {
                *child = Value::Object(Map::new());
            }
            visit_at(
                child,
                &path[1..],
                seq.get(1..).unwrap_or(&[]),
                may_create,
                create,
                f,
            )
        }
        Value::Null => Ok(()),
        _ => Err(format!(
            "expected sequence or mapping node at '{}'",
            path.join("/")
        )),
    }
}

/// A `nameReference` entry: fields (in other kinds) that refer to objects of `gvk` by name.
#[derive(Debug, Clone, PartialEq)]
pub struct NameBackRef {
    pub gvk: Gvk,
    pub field_specs: Vec<FieldSpec>,
}

/// All field-spec lists that drive the builtin transformers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub var_reference: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

/// `configurations:` file format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConfigDef {
    pub name_prefix: Vec<FieldSpecDef>,
    pub name_suffix: Vec<FieldSpecDef>,
    pub common_labels: Vec<FieldSpecDef>,
    pub template_labels: Vec<FieldSpecDef>,
    pub common_annotations: Vec<FieldSpecDef>,
    pub namespace: Vec<FieldSpecDef>,
    pub var_reference: Vec<FieldSpecDef>,
    pub name_reference: Vec<NameBackRefDef>,
    pub images: Vec<FieldSpecDef>,
    pub replicas: Vec<FieldSpecDef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NameBackRefDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub field_specs: Vec<FieldSpecDef>,
}

fn specs(defs: &[FieldSpecDef]) -> Vec<FieldSpec> {
    defs.iter().map(FieldSpec::from).collect()
}

impl From<&ConfigDef> for TransformerConfig {
    fn from(d: &ConfigDef) -> Self {
        TransformerConfig {
            name_prefix: specs(&d.name_prefix),
            name_suffix: specs(&d.name_suffix),
            common_labels: specs(&d.common_labels),
            template_labels: specs(&d.template_labels),
            common_annotations: specs(&d.common_annotations),
            namespace: specs(&d.namespace),
            var_reference: specs(&d.var_reference),
            name_reference: d
                .name_reference
                .iter()
                .map(|n| NameBackRef {
                    gvk: Gvk {
                        group: n.group.clone(),
                        version: n.version.clone(),
                        kind: n.kind.clone(),
                    },
                    field_specs: specs(&n.field_specs),
                })
                .collect(),
            images: specs(&d.images),
            replicas: specs(&d.replicas),
        }
    }
}

fn merge_specs(into: &mut Vec<FieldSpec>, from: &[FieldSpec]) {
    for s in from {
        if !into.iter().any(|e| e.gvk == s.gvk && e.path == s.path) {
            into.push(s.clone());
        }
    }
}

impl TransformerConfig {
    /// kustomize's default configuration (v5.7.1).
    pub fn builtin() -> &'static TransformerConfig {
        static CFG: OnceLock<TransformerConfig> = OnceLock::new();
        CFG.get_or_init(builtin::config)
    }

    /// Union, as kustomize's `TransformerConfig.Merge` (duplicates dropped, name references
    /// for the same kind combined).
    pub fn merge(&mut self, other: &TransformerConfig) {
        merge_specs(&mut self.name_prefix, &other.name_prefix);
        merge_specs(&mut self.name_suffix, &other.name_suffix);
        merge_specs(&mut self.common_labels, &other.common_labels);
        merge_specs(&mut self.template_labels, &other.template_labels);
        merge_specs(&mut self.common_annotations, &other.common_annotations);
        merge_specs(&mut self.namespace, &other.namespace);
        merge_specs(&mut self.var_reference, &other.var_reference);
        merge_specs(&mut self.images, &other.images);
        merge_specs(&mut self.replicas, &other.replicas);
        for nb in &other.name_reference {
            match self.name_reference.iter_mut().find(|e| e.gvk == nb.gvk) {
                Some(e) => merge_specs(&mut e.field_specs, &nb.field_specs),
                None => self.name_reference.push(nb.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_parses_with_kustomize_defaults() {
        let c = TransformerConfig::builtin();
        assert!(
            c.common_labels
                .iter()
                .any(|s| s.raw_path == "spec/selector/matchLabels")
        );
        assert!(c.name_reference.iter().any(|n| n.gvk.kind == "ConfigMap"));
        assert_eq!(c.images[0].path, vec!["spec", "containers", "image"]);
    }

    #[test]
    fn escaped_slash_stays_in_key() {
        assert_eq!(
            split_path("metadata/annotations/ingress.kubernetes.io\\/auth-secret"),
            vec![
                "metadata",
                "annotations",
                "ingress.kubernetes.io/auth-secret"
            ]
        );
    }

    #[test]
    fn visit_creates_maps_only_when_allowed() {
        let mut obj = crate::json!({"spec": {"template": {}}});
        let spec = FieldSpec::new("spec/template/metadata/labels", true);
        visit(&mut obj, &spec, Some(Create::Map), &mut |v| {
            v.as_object_mut()
                .ok_or("not a map")?
                .insert("a".into(), "b".into());
            Ok(())
        })
        .expect("visits");
        assert_eq!(obj["spec"]["template"]["metadata"]["labels"]["a"], "b");
        let spec = FieldSpec::new("spec/selector/matchLabels", false);
        visit(&mut obj, &spec, Some(Create::Map), &mut |_| {
            Err("must not be called".into())
        })
        .expect("missing path is skipped");
    }
}
