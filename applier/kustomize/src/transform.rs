//! The field-spec driven builtin transformers: namespace, name prefix/suffix, labels,
//! annotations, images and replicas — each a direct translation of the corresponding
//! kustomize plugin, including its hard-coded special cases (metadata.namespace of
//! namespaced kinds, RoleBinding subjects, kinds never prefixed, the legacy image walk over
//! any `containers`/`initContainers` list).

use std::collections::BTreeMap;

use crate::value::{Map, Value};

use crate::error::{Error, Location, Result};
use crate::fieldspec::{Create, FieldSpec, visit};
use crate::kustomization::{Image, Replica};
use crate::resource::{Gvk, ResMap};

fn spec_error(at: &Location, r: &crate::Resource, spec: &FieldSpec, e: String) -> Error {
    Error::field(at, format!("{} field '{}': {e}", r.id(), spec.raw_path))
}

/// `namespace:`.
pub fn namespace(
    resources: &mut ResMap,
    ns: &str,
    specs: &[FieldSpec],
    at: &Location,
) -> Result<()> {
    namespace_with(resources, ns, specs, NamespaceOptions::default(), at)
}

/// Which binding subjects the namespace transformer moves (`setRoleBindingSubjects`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoleBindingSubjects {
    /// Subjects named `default` (kustomize's default, `defaultOnly`).
    #[default]
    DefaultOnly,
    /// Every `ServiceAccount` subject (`allServiceAccounts`).
    AllServiceAccounts,
    /// None (`none`).
    None,
}

impl std::str::FromStr for RoleBindingSubjects {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "" | "defaultOnly" => Ok(Self::DefaultOnly),
            "allServiceAccounts" => Ok(Self::AllServiceAccounts),
            "none" => Ok(Self::None),
            other => Err(format!(
                "setRoleBindingSubjects: {other:?} is not one of defaultOnly, allServiceAccounts, none"
            )),
        }
    }
}

/// The NamespaceTransformer's options beyond the namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamespaceOptions {
    /// Set only namespaces that are empty or absent (`unsetOnly`), subjects' included.
    pub unset_only: bool,
    pub subjects: RoleBindingSubjects,
}

/// [`namespace`] with the NamespaceTransformer's options.
pub fn namespace_with(
    resources: &mut ResMap,
    ns: &str,
    specs: &[FieldSpec],
    opts: NamespaceOptions,
    at: &Location,
) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    // metadata/namespace and RoleBinding subjects are handled by code, not field specs.
    let specs: Vec<&FieldSpec> = specs
        .iter()
        .filter(|s| {
            s.raw_path != "metadata/namespace"
                && !(s.raw_path == "subjects"
                    && matches!(s.gvk.kind.as_str(), "RoleBinding" | "ClusterRoleBinding"))
        })
        .collect();
    for r in resources.iter_mut() {
        r.store_prev_id();
        let gvk = r.gvk();
        if !gvk.is_cluster_scoped() && (!opts.unset_only || r.namespace().is_empty()) {
            r.set_namespace(ns);
        }
        move_subjects(r.map_mut(), ns, opts);
        for spec in &specs {
            if !spec.applies_to(&gvk) {
                continue;
            }
            visit(&mut r.obj, spec, Some(Create::Scalar), &mut |v| {
                if v.is_object() || v.is_array() {
                    return Err("namespace field specs must target scalar nodes".into());
                }
                if opts.unset_only && v.as_str().is_some_and(|s| !s.is_empty()) {
                    return Ok(());
                }
                *v = Value::String(ns.to_string());
                Ok(())
            })
            .map_err(|e| spec_error(at, r, spec, e))?;
        }
    }
    let ids: Vec<_> = resources.iter().map(|r| r.id()).collect();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].iter().any(|o| o.same_as(id)) {
            return Err(Error::field(
                at,
                format!("namespace transformation produces ID conflict: {id}"),
            ));
        }
    }
    Ok(())
}

/// The namespace transformer's special case for bindings (kustomize's default
/// `setRoleBindingSubjects: defaultOnly`): in a RoleBinding or ClusterRoleBinding, subjects
/// named `default` move to `ns`. Also what Flux's `targetNamespace` does, through the same
/// transformer.
pub fn set_role_binding_subjects(obj: &mut serde_json::Map<String, serde_json::Value>, ns: &str) {
    let mut m = Map::from(std::mem::take(obj));
    move_subjects(&mut m, ns, NamespaceOptions::default());
    *obj = m.into();
}

fn move_subjects(obj: &mut Map, ns: &str, opts: NamespaceOptions) {
    if !matches!(
        obj.get("kind").and_then(Value::as_str),
        Some("RoleBinding" | "ClusterRoleBinding")
    ) {
        return;
    }
    if let Some(Value::Array(subjects)) = obj.get_mut("subjects") {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
            let moves = match opts.subjects {
                RoleBindingSubjects::DefaultOnly => field("name") == "default",
                RoleBindingSubjects::AllServiceAccounts => field("kind") == "ServiceAccount",
                RoleBindingSubjects::None => false,
            };
            if moves && (!opts.unset_only || field("namespace").is_empty()) {
                s.insert("namespace".into(), Value::String(ns.to_string()));
            }
        }
    }
}

/// Kinds kustomize never prefixes or suffixes.
fn skip_prefix(gvk: &Gvk) -> bool {
    gvk.kind == "CustomResourceDefinition"
        || gvk.kind == "Namespace"
        || (gvk.group == "apiregistration.k8s.io" && gvk.kind == "APIService")
}

/// `namePrefix:` / `nameSuffix:`.
pub fn prefix_suffix(
    resources: &mut ResMap,
    prefix: &str,
    suffix: &str,
    specs: &[FieldSpec],
    at: &Location,
) -> Result<()> {
    for r in resources.iter_mut() {
        let org = r.org_id().gvk();
        if skip_prefix(&org) {
            continue;
        }
        for spec in specs {
            if !spec.applies_to(&org) {
                continue;
            }
            if spec.raw_path == "metadata/name" {
                r.name_prefixes.push(prefix.to_string());
                r.name_suffixes.push(suffix.to_string());
                if !prefix.is_empty() || !suffix.is_empty() {
                    r.store_prev_id();
                }
            }
            visit(&mut r.obj, spec, None, &mut |v| {
                if let Value::String(s) = v {
                    *s = format!("{prefix}{s}{suffix}");
                }
                Ok(())
            })
            .map_err(|e| spec_error(at, r, spec, e))?;
        }
    }
    Ok(())
}

/// Labels or annotations: set every pair at every matching field spec.
pub fn set_map_entries(
    resources: &mut ResMap,
    pairs: &BTreeMap<String, String>,
    specs: &[FieldSpec],
    at: &Location,
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    for r in resources.iter_mut() {
        let gvk = r.gvk();
        for spec in specs {
            if !spec.applies_to(&gvk) {
                continue;
            }
            visit(&mut r.obj, spec, Some(Create::Map), &mut |v| {
                if v.is_null() {
                    *v = Value::Object(Map::new());
                }
                let Value::Object(m) = v else {
                    return Err("expected a map".into());
                };
                for (k, val) in pairs {
                    m.insert(k.clone(), Value::String(val.clone()));
                }
                Ok(())
            })
            .map_err(|e| spec_error(at, r, spec, e))?;
        }
    }
    Ok(())
}

/// Splits an image reference into name, tag and digest (kustomize's `image.Split`).
pub fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let id = search.find('@');
    let ic = search.find(':');
    match (id, ic) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (Some(d), c) if c.is_none_or(|c| d < c) => {
            let d = d + slash;
            (
                image[..d].to_string(),
                String::new(),
                image[d + 1..].to_string(),
            )
        }
        (Some(d), Some(c)) => {
            let (d, c) = (d + slash, c + slash);
            (
                image[..c].to_string(),
                image[c + 1..d].to_string(),
                image[d + 1..].to_string(),
            )
        }
        (None, Some(c)) => {
            let c = c + slash;
            (
                image[..c].to_string(),
                image[c + 1..].to_string(),
                String::new(),
            )
        }
        (Some(_), None) => unreachable!("covered by the digest-only arm"),
    }
}

fn update_image(v: &mut Value, img: &Image, pattern: &regex::Regex) {
    let Value::String(s) = v else { return };
    if !pattern.is_match(s) {
        return;
    }
    let (mut name, mut tag, mut digest) = split_image(s);
    if let Some(n) = img.new_name.as_deref().filter(|n| !n.is_empty()) {
        name = n.to_string();
    }
    let new_tag = img.new_tag.as_deref().filter(|t| !t.is_empty());
    let new_digest = img.digest.as_deref().filter(|d| !d.is_empty());
    match (new_tag, new_digest) {
        (Some(t), Some(d)) => {
            tag = t.to_string();
            digest = d.to_string();
        }
        (Some(t), None) => {
            tag = t.to_string();
            digest.clear();
        }
        (None, Some(d)) => {
            tag.clear();
            digest = d.to_string();
        }
        (None, None) => {}
    }
    let mut out = name;
    if !tag.is_empty() {
        out = format!("{out}:{tag}");
    }
    if !digest.is_empty() {
        out = format!("{out}@{digest}");
    }
    *s = out;
}

/// kustomize's legacy image walk: any `containers`/`initContainers` list anywhere.
fn legacy_images(v: &mut Value, img: &Image, pattern: &regex::Regex) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if (k == "containers" || k == "initContainers")
                    && let Value::Array(items) = child
                {
                    for c in items.iter_mut() {
                        if let Some(image) = c.get_mut("image") {
                            update_image(image, img, pattern);
                        }
                    }
                }
                legacy_images(child, img, pattern);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|c| legacy_images(c, img, pattern)),
        _ => {}
    }
}

/// `images:`.
pub fn images(
    resources: &mut ResMap,
    list: &[Image],
    specs: &[FieldSpec],
    at: &Location,
) -> Result<()> {
    for (i, img) in list.iter().enumerate() {
        let pattern =
            regex::Regex::new(&format!("^{}(@sha256)?(:[a-zA-Z0-9_.{{}}-]*)?$", img.name))
                .map_err(|e| {
                    Error::field(
                        &Location::new(at.file.clone(), format!("images[{i}].name")),
                        e.to_string(),
                    )
                })?;
        for r in resources.iter_mut() {
            legacy_images(&mut r.obj, img, &pattern);
            let gvk = r.gvk();
            for spec in specs {
                if !spec.applies_to(&gvk) {
                    continue;
                }
                // Images are never created: only existing values are rewritten.
                let mut no_create = spec.clone();
                no_create.create = false;
                visit(&mut r.obj, &no_create, None, &mut |v| {
                    update_image(v, img, &pattern);
                    Ok(())
                })
                .map_err(|e| spec_error(at, r, spec, e))?;
            }
        }
    }
    Ok(())
}

/// `replicas:`.
pub fn replicas(
    resources: &mut ResMap,
    list: &[Replica],
    specs: &[FieldSpec],
    at: &Location,
) -> Result<()> {
    for (i, rep) in list.iter().enumerate() {
        let mut found = false;
        for spec in specs {
            for r in resources.iter_mut() {
                let matches = std::iter::once(r.id())
                    .chain(r.prev_ids.iter().cloned())
                    .any(|id| id.name == rep.name && spec.gvk.selects_id(&id));
                if !matches {
                    continue;
                }
                found = true;
                visit(&mut r.obj, spec, Some(Create::Scalar), &mut |v| {
                    *v = Value::Number(rep.count.into());
                    Ok(())
                })
                .map_err(|e| spec_error(at, r, spec, e))?;
            }
        }
        if !found {
            return Err(Error::field(
                &Location::new(at.file.clone(), format!("replicas[{i}]")),
                format!(
                    "resource with name {} does not match a config with a replicas field",
                    rep.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_image_handles_registry_ports_tags_and_digests() {
        let s = |x: &str| split_image(x);
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(s("nginx:1.2"), ("nginx".into(), "1.2".into(), "".into()));
        assert_eq!(
            s("reg:5000/app:v1"),
            ("reg:5000/app".into(), "v1".into(), "".into())
        );
        assert_eq!(
            s("app@sha256:abc"),
            ("app".into(), "".into(), "sha256:abc".into())
        );
        assert_eq!(
            s("app:v1@sha256:abc"),
            ("app".into(), "v1".into(), "sha256:abc".into())
        );
    }
}
