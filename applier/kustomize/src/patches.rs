//! kustomize's patch transformers: `patchesStrategicMerge`, `patches` and `patchesJson6902`.
//! The pipeline in `target.rs` calls [`apply_patches_strategic_merge`] then
//! [`apply_patches`] before namespace/prefix/labels, and [`apply_patches_json6902`] after
//! annotations (kustomize's builtin transformer order).
//!
//! Semantics follow kustomize v5.7.1 (each checked against the real binary by the `patch-*`
//! fixtures): a strategic-merge patch without `target` applies to the one resource whose
//! current or any earlier id equals the patch's own apiVersion/kind/name/namespace, and it is an
//! error when there is none; with a `target` it applies to every selected resource (possibly
//! none). A JSON 6902 patch needs a target. The merge itself is `ferry_proto::merge`, shared
//! with the Kubernetes API test server. A strategic-merge patch keeps the target's name,
//! namespace and kind unless `options.allowNameChange`/`allowKindChange`; `$patch: delete` at
//! the top removes the resource.

mod hollow;
pub mod select;

use ferry_proto::merge::{json_patch, schema, strategic};
use std::collections::HashMap;

use crate::value::Value;

use crate::error::{Error, Result};
use crate::kustomization::Patch;
use crate::loader::KustCtx;
use crate::resource::{Gvk, ResId, ResMap, Resource};
use crate::yaml;
use select::Matcher;

/// `options:` of a `patches` entry.
#[derive(Debug, Clone, Copy, Default)]
struct PatchOptions {
    allow_name_change: bool,
    allow_kind_change: bool,
}

/// A parsed patch: strategic-merge documents, or one JSON 6902 operation list.
enum Parsed {
    Strategic(Vec<Value>),
    Json(json_patch::Patch),
}

/// `patchesStrategicMerge:` entries: each is inline YAML (one or more documents) or a path to
/// a file holding such documents.
pub fn apply_patches_strategic_merge(
    resources: &mut ResMap,
    specs: &[String],
    ctx: &KustCtx<'_>,
) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("patchesStrategicMerge[{i}]");
        // kustomize first tries the entry as an inline patch, then as a file name.
        let docs = match yaml::parse_objects(spec) {
            Ok(docs) if !docs.is_empty() && docs.iter().all(Value::is_object) => docs,
            _ => {
                let (_, text) = ctx.read_text(spec.trim(), &field)?;
                yaml::parse_objects(&text)
                    .map_err(|e| Error::field(&ctx.loc(&field), format!("'{spec}': {e}")))?
            }
        };
        for doc in &docs {
            check_strategic_doc(doc).map_err(|e| Error::field(&ctx.loc(&field), e))?;
            apply_by_id(resources, doc, PatchOptions::default(), ctx, &field)?;
        }
    }
    Ok(())
}

/// `patches:` entries: strategic merge or JSON 6902, inline or from a file, with an optional
/// target.
pub fn apply_patches(resources: &mut ResMap, specs: &[Patch], ctx: &KustCtx<'_>) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("patches[{i}]");
        let at = ctx.loc(&field);
        let text = patch_text(spec, ctx, &field)?;
        let options = PatchOptions {
            allow_name_change: spec.options.get("allowNameChange") == Some(&true),
            allow_kind_change: spec.options.get("allowKindChange") == Some(&true),
        };
        let parsed = parse_patch(&text).map_err(|e| Error::field(&at, e))?;
        match (parsed, &spec.target) {
            (Parsed::Strategic(docs), None) => {
                for doc in &docs {
                    apply_by_id(resources, doc, options, ctx, &field)?;
                }
            }
            (Parsed::Strategic(docs), Some(target)) => {
                let matcher = Matcher::new(target).map_err(|e| target_error(ctx, &field, e))?;
                let selected: Vec<ResId> = matcher
                    .select(resources)
                    .into_iter()
                    .map(|i| resources.resources[i].id())
                    .collect();
                for doc in &docs {
                    apply_to_ids(resources, &selected, doc, options, ctx, &field)?;
                }
            }
            (Parsed::Json(_), None) => {
                return Err(Error::field(&at, "a JSON 6902 patch needs a target"));
            }
            (Parsed::Json(ops), Some(target)) => {
                let matcher = Matcher::new(target).map_err(|e| target_error(ctx, &field, e))?;
                for i in matcher.select(resources) {
                    let res = &mut resources.resources[i];
                    // JSON patches may rename: references follow through the previous id.
                    res.store_prev_id();
                    apply_json(res, &ops, ctx, &field)?;
                }
            }
        }
    }
    Ok(())
}

/// `patchesJson6902:` entries: a target plus `path` or inline `patch` (YAML or JSON).
pub fn apply_patches_json6902(
    resources: &mut ResMap,
    specs: &[Patch],
    ctx: &KustCtx<'_>,
) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("patchesJson6902[{i}]");
        let at = ctx.loc(&field);
        let Some(target) = &spec.target else {
            return Err(Error::field(&at, "a JSON 6902 patch needs a target"));
        };
        let text = patch_text(spec, ctx, &field)?;
        let ops = match parse_patch(&text).map_err(|e| Error::field(&at, e))? {
            Parsed::Json(ops) => ops,
            Parsed::Strategic(_) => {
                return Err(Error::field(
                    &at,
                    "not a JSON 6902 patch (expected a list of operations)",
                ));
            }
        };
        let matcher = Matcher::new(target).map_err(|e| target_error(ctx, &field, e))?;
        for i in matcher.select(resources) {
            apply_json(&mut resources.resources[i], &ops, ctx, &field)?;
        }
    }
    Ok(())
}

fn target_error(ctx: &KustCtx<'_>, field: &str, e: String) -> Error {
    Error::field(&ctx.loc(format!("{field}.target")), e)
}

/// The patch text of a `patches`/`patchesJson6902` entry: inline, or read from `path`.
fn patch_text(spec: &Patch, ctx: &KustCtx<'_>, field: &str) -> Result<String> {
    let inline = spec.patch.as_deref().filter(|p| !p.is_empty());
    let path = spec.path.as_deref().filter(|p| !p.is_empty());
    match (inline, path) {
        (Some(_), Some(_)) => Err(Error::field(
            &ctx.loc(field),
            "patch and path can't be set at the same time",
        )),
        (None, None) => Err(Error::field(
            &ctx.loc(field),
            "must specify one of patch and path",
        )),
        (Some(text), None) => Ok(text.to_string()),
        (None, Some(path)) => Ok(ctx.read_text(path, field)?.1),
    }
}

/// Tells a strategic-merge patch (YAML objects, possibly several documents) from a JSON 6902
/// patch (one list of operations, YAML or JSON).
fn parse_patch(text: &str) -> std::result::Result<Parsed, String> {
    let docs =
        yaml::parse_objects(text).map_err(|e| format!("unable to parse SM or JSON patch: {e}"))?;
    if let [Value::Array(_)] = docs.as_slice() {
        return json_patch::parse(&serde_json::Value::from(&docs[0]))
            .map(Parsed::Json)
            .map_err(|e| e.to_string());
    }
    for doc in &docs {
        check_strategic_doc(doc)?;
    }
    Ok(Parsed::Strategic(docs))
}

fn check_strategic_doc(doc: &Value) -> std::result::Result<(), String> {
    let Value::Object(map) = doc else {
        return Err("unable to parse SM or JSON patch: a document is neither an object nor a list of operations".to_string());
    };
    match map.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => Ok(()),
        _ => Err("strategic merge patch is missing kind".to_string()),
    }
}

/// The id a strategic-merge patch names itself by.
fn patch_id(doc: &Value) -> ResId {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    ResId::new(
        &Gvk::from_api_version(&s(doc.get("apiVersion")), &s(doc.get("kind"))),
        &s(doc.pointer("/metadata/namespace")),
        &s(doc.pointer("/metadata/name")),
    )
}

/// Applies a target-less strategic-merge patch to the one resource it names.
fn apply_by_id(
    resources: &mut ResMap,
    doc: &Value,
    options: PatchOptions,
    ctx: &KustCtx<'_>,
    field: &str,
) -> Result<()> {
    let id = patch_id(doc);
    let matches: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.prev_ids.iter().chain([&r.id()]).any(|p| p.same_as(&id)))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Err(Error::field(
            &ctx.loc(field),
            format!("patch target not found: {id}"),
        )),
        [one] => {
            let target = resources.resources[*one].id();
            apply_to_ids(resources, &[target], doc, options, ctx, field)
        }
        _ => Err(Error::field(
            &ctx.loc(field),
            format!("patch target {id} matches {} resources", matches.len()),
        )),
    }
}

/// Applies a strategic-merge patch to every resource whose current id is in `ids`, dropping
/// those the patch deletes.
fn apply_to_ids(
    resources: &mut ResMap,
    ids: &[ResId],
    doc: &Value,
    options: PatchOptions,
    ctx: &KustCtx<'_>,
    field: &str,
) -> Result<()> {
    let mut kept = Vec::with_capacity(resources.len());
    for mut res in std::mem::take(&mut resources.resources) {
        if ids.iter().any(|id| id.same_as(&res.id())) {
            let id = res.id();
            let alive = apply_strategic(&mut res, doc, options)
                .map_err(|e| Error::field(&ctx.loc(field), format!("patching {id}: {e}")))?;
            if !alive {
                continue;
            }
        }
        kept.push(res);
    }
    resources.resources = kept;
    Ok(())
}

/// Merges `patch` into `res`; false when the patch deletes it.
fn apply_strategic(
    res: &mut Resource,
    patch: &Value,
    options: PatchOptions,
) -> std::result::Result<bool, String> {
    let (name, namespace, kind) = (
        res.name().to_string(),
        res.namespace().to_string(),
        res.kind().to_string(),
    );
    if options.allow_name_change || options.allow_kind_change {
        res.store_prev_id();
    }
    // The patch takes the target's apiVersion (it may be written for another version).
    let mut patch = patch.clone();
    if let Value::Object(m) = &mut patch {
        m.insert(
            "apiVersion".into(),
            Value::String(res.api_version().to_string()),
        );
    }
    let schema = schema::lookup(res.api_version(), &kind);
    // The merge is `ferry_proto`'s, on `serde_json` trees; only what the patch reaches
    // converts (`hollow`), and `res.obj` is whole again on every path out.
    let patch = serde_json::Value::from(patch);
    let mut kept = hollow::Kept::default();
    let target = hollow::hollow(res.obj.take(), &patch, &mut kept);
    let merged = strategic::apply(&target, &patch, schema, strategic::Options::KUSTOMIZE);
    let restore = |res: &mut Resource, target: serde_json::Value, kept: &mut hollow::Kept| {
        res.obj = target.into();
        hollow::fill(&mut res.obj, kept);
    };
    let merged = match merged {
        Ok(Some(m)) if m.as_object().is_some_and(|o| !o.is_empty()) => m,
        Ok(_) => {
            restore(res, target, &mut kept);
            return Ok(false);
        }
        Err(e) => {
            restore(res, target, &mut kept);
            return Err(e.to_string());
        }
    };
    drop(target);
    res.obj = merged.into();
    hollow::fill(&mut res.obj, &mut kept);
    drop_walked_nulls(&mut res.obj, schema, true);
    if !options.allow_kind_change {
        res.map_mut().insert("kind".into(), Value::String(kind));
    }
    if !options.allow_name_change {
        res.set_name(&name);
    }
    if namespace.is_empty() {
        if let Some(Value::Object(meta)) = res.map_mut().get_mut("metadata") {
            meta.remove("namespace");
        }
    } else {
        res.set_namespace(&namespace);
    }
    Ok(true)
}

/// kyaml's merge walks every map of the patched object (de-duplicating the keyed lists it
/// meets) and drops the fields whose value is
/// an empty null (`key:` with nothing after it, as Helm templates leave them); a written
/// `null` or `~` survives. It walks into the items of associative lists (a merge key in the
/// schema, or items carrying one of kyaml's associative keys), never into other lists.
///
/// The engine's values do not keep the difference between an empty and a written null, so
/// this drops both — except in the object's own `metadata`, where the null is the written
/// `creationTimestamp: null` of controller-gen and `kubectl create --dry-run` output, far more
/// common there than an empty field. Known gap: a written null elsewhere in a patched object
/// is dropped where kustomize prints it.
fn drop_walked_nulls(v: &mut Value, ty: Option<&'static schema::TypeDef>, top: bool) {
    let Value::Object(m) = v else { return };
    m.retain(|_, x| !x.is_null());
    for (k, x) in m.iter_mut() {
        let field = ty.and_then(|t| t.field(k));
        let child_ty = field.and_then(|f| f.ty);
        match x {
            Value::Object(_) if top && k == "metadata" => {}
            Value::Object(_) => drop_walked_nulls(x, child_ty, false),
            Value::Array(items) => {
                let key = field.and_then(|f| match f.smp {
                    schema::SmpList::MergeByKey(k) => Some(k),
                    _ => None,
                });
                // kyaml rebuilds a keyed list by key: items repeating a key (a JSON patch
                // `add` to `env/-` of a name already there) become one, at the first one's
                // place with the last one's value. Ports are keyed by port and protocol
                // together (kyaml_lists), so they are left alone here.
                if let Some(k) = key.filter(|k| !matches!(*k, "containerPort" | "port")) {
                    let mut first: HashMap<String, usize> = HashMap::new();
                    let mut out: Vec<Value> = Vec::with_capacity(items.len());
                    for item in std::mem::take(items) {
                        match item.get(k).map(Value::to_string) {
                            Some(id) => match first.get(&id) {
                                Some(&at) => out[at] = item,
                                None => {
                                    first.insert(id, out.len());
                                    out.push(item);
                                }
                            },
                            None => out.push(item),
                        }
                    }
                    *items = out;
                }
                if key.is_some() || items.iter().any(has_associative_key) {
                    for item in items {
                        drop_walked_nulls(item, child_ty, false);
                    }
                }
            }
            _ => {}
        }
    }
}

/// kyaml's `AssociativeSequenceKeys`: list items holding one of these merge by it.
fn has_associative_key(item: &Value) -> bool {
    const KEYS: [&str; 7] = [
        "mountPath",
        "devicePath",
        "ip",
        "type",
        "topologyKey",
        "name",
        "containerPort",
    ];
    item.as_object()
        .is_some_and(|m| KEYS.iter().any(|k| m.contains_key(k)))
}

fn apply_json(
    res: &mut Resource,
    ops: &json_patch::Patch,
    ctx: &KustCtx<'_>,
    field: &str,
) -> Result<()> {
    let id = res.id();
    // Only what the operations reach converts to `serde_json` (see `hollow`); on failure the
    // object is put back whole.
    let mut kept = hollow::Kept::default();
    let reach = hollow::Reach::of(&ops.0);
    let taken = reach.is_some();
    let mut doc = match reach {
        Some(reach) => hollow::hollow_reach(res.obj.take(), &reach, &mut kept),
        None => serde_json::Value::from(&res.obj),
    };
    let before = doc.clone();
    for (i, op) in ops.0.iter().enumerate() {
        let one = json_patch::Patch(vec![replace_as_go_json_patch(&doc, op)]);
        json_patch::apply(&mut doc, &one).map_err(|e| {
            if taken {
                res.obj = before.clone().into();
                hollow::fill(&mut res.obj, &mut kept);
            }
            let e = match e {
                json_patch::JsonPatchError::Apply {
                    op, path, reason, ..
                } => json_patch::JsonPatchError::Apply {
                    index: i,
                    op,
                    path,
                    reason,
                },
                other => other,
            };
            Error::field(&ctx.loc(field), format!("patching {id}: {e}"))
        })?;
    }
    res.obj = doc.into();
    hollow::fill(&mut res.obj, &mut kept);
    if !res.obj.is_object() || res.kind().is_empty() {
        return Err(Error::field(
            &ctx.loc(field),
            format!("patching {id}: the result is no longer an object with a kind"),
        ));
    }
    Ok(())
}

/// kustomize applies JSON patches with evanphx/json-patch v4, whose `replace` of a missing key
/// in an existing object sets it (its object lookup never reports a missing key), where RFC
/// 6902 fails. Such an operation becomes an `add`; everything else is left to RFC 6902.
fn replace_as_go_json_patch(
    doc: &serde_json::Value,
    op: &json_patch::PatchOperation,
) -> json_patch::PatchOperation {
    let json_patch::PatchOperation::Replace(r) = op else {
        return op.clone();
    };
    let path = r.path.to_string();
    let Some((parent, _)) = path.rsplit_once('/') else {
        return op.clone();
    };
    if doc.pointer(&path).is_some()
        || !doc
            .pointer(parent)
            .is_some_and(serde_json::Value::is_object)
    {
        return op.clone();
    }
    serde_json::from_value(serde_json::json!({"op": "add", "path": path, "value": r.value}))
        .unwrap_or_else(|_| op.clone())
}

#[cfg(test)]
#[path = "patches/tests.rs"]
mod tests;
