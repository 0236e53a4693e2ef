//! The two ownership algorithms: apply (with conflicts, force and removal of fields no
//! longer applied) and update (tracking of every other write).

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, field, path_string};
use super::managed::{self, ManagedEntry, Operation};
use super::typed::{self, Shape, ShapeError};
use super::{Conflict, SsaError, Target, conflict_message};

/// Metadata the server sets: never owned by anyone (structured-merge-diff's strip set).
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// The fields of a write that count for ownership: no identity fields, and only the part of
/// the object the addressed (sub)resource writes.
fn owned_part(set: &FieldSet, target: &Target) -> FieldSet {
    let mut strip = FieldSet::new();
    strip.insert(&[field("apiVersion")]);
    strip.insert(&[field("kind")]);
    strip.insert(&[field("metadata")]);
    for name in SERVER_METADATA {
        strip.insert(&[field("metadata"), field(name)]);
    }
    let set = set.difference(&strip);
    if target.subresource == "status" {
        let mut status = FieldSet::new();
        status.insert(&[field("status")]);
        let mut only = FieldSet::new();
        if let Some(sub) = set.subtree(&[field("status")]) {
            only = only.union(&prefixed_status(sub));
        }
        if set.contains(&[field("status")]) {
            only = only.union(&status);
        }
        only
    } else if target.status_subresource {
        let mut status = FieldSet::new();
        status.insert(&[field("status")]);
        set.recursive_difference(&status)
    } else {
        set
    }
}

fn prefixed_status(sub: &FieldSet) -> FieldSet {
    let mut out = FieldSet::new();
    for path in sub.paths() {
        let mut full = vec![field("status")];
        full.extend(path);
        out.insert(&full);
    }
    out
}

/// The part of a configuration or patch result the addressed (sub)resource may write:
/// `status` only through the status subresource (when it is one), nothing else through it.
fn writable_part(live: &Value, mut incoming: Value, target: &Target) -> Value {
    let Some(obj) = incoming.as_object_mut() else {
        return incoming;
    };
    if target.subresource == "status" {
        let status = obj.remove("status");
        let mut base = live.clone();
        if let Some(base_obj) = base.as_object_mut() {
            match status {
                Some(s) => base_obj.insert("status".into(), s),
                None => base_obj.remove("status"),
            };
            // Optimistic concurrency still applies to status writes.
            if let (Some(rv), Some(meta)) = (
                incoming.pointer("/metadata/resourceVersion"),
                base_obj.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                meta.insert("resourceVersion".into(), rv.clone());
            }
        }
        return base;
    }
    if target.status_subresource {
        match live.get("status") {
            Some(s) => obj.insert("status".into(), s.clone()),
            None => obj.remove("status"),
        };
    }
    incoming
}

fn shape_error(target: &Target, e: ShapeError) -> SsaError {
    SsaError::Invalid(format!(
        "failed to create typed object ({}, Kind={}): {e}",
        target.api_version, target.kind
    ))
}

fn decode_managed(obj: &Value) -> Result<Vec<ManagedEntry>, SsaError> {
    managed::decode(obj).map_err(SsaError::Invalid)
}

/// Server-side apply of `config` by `manager` onto `live` (`None`: the object does not exist
/// yet). Returns the new object with `metadata.managedFields` updated; when nothing changes
/// the result equals `live`.
pub fn apply(
    live: Option<&Value>,
    config: Value,
    manager: &str,
    force: bool,
    target: &Target,
    now: &str,
) -> Result<Value, SsaError> {
    let Some(config_obj) = config.as_object() else {
        return Err(SsaError::BadRequest(
            "the apply configuration must be an object".to_string(),
        ));
    };
    for (key, expected) in [("apiVersion", target.api_version), ("kind", target.kind)] {
        let given = config_obj.get(key).and_then(Value::as_str).unwrap_or("");
        if given != expected {
            return Err(SsaError::BadRequest(format!(
                "{key} in the apply configuration ({given:?}) does not match the request ({expected:?})"
            )));
        }
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(SsaError::BadRequest(
            "metadata.managedFields must be nil".to_string(),
        ));
    }
    let shape = Shape::root(target.api_version, target.kind);
    let mut entries = match live {
        Some(l) => decode_managed(l)?,
        None => Vec::new(),
    };
    let live_body = match live {
        Some(l) => managed::strip(l),
        None => Value::Object(Map::new()),
    };
    if live.is_some() && entries.is_empty() {
        // An object nobody owns (written without a field manager) is owned as a whole by
        // "before-first-apply", so a first apply that changes values conflicts, as in
        // Kubernetes (tools such as Flux strip this manager before taking over).
        let fields = owned_part(
            &typed::field_set(&live_body, shape).map_err(|e| shape_error(target, e))?,
            target,
        );
        entries.push(ManagedEntry {
            manager: "before-first-apply".to_string(),
            operation: Operation::Update,
            api_version: target.api_version.to_string(),
            time: Some(now.to_string()),
            subresource: String::new(),
            fields,
        });
    }
    let config = writable_part(&live_body, config, target);
    let set = owned_part(
        &typed::field_set(&config, shape).map_err(|e| shape_error(target, e))?,
        target,
    );
    let mut new = typed::merge(&live_body, &config, shape).map_err(|e| shape_error(target, e))?;

    let mine = entries
        .iter()
        .position(|e| e.same_owner(manager, Operation::Apply, "", target.subresource));
    let last_set = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let previous_time = mine.and_then(|i| entries[i].time.clone());
    if let Some(i) = mine {
        entries.remove(i);
    }

    // Fields this manager applied before and no longer does go, unless someone owns them.
    let dropped = last_set.difference(&set);
    if !dropped.is_empty() {
        let keep = entries
            .iter()
            .fold(set.clone(), |acc, e| acc.union(&e.fields));
        typed::prune(&mut new, &dropped, &keep, shape).map_err(|e| shape_error(target, e))?;
    }

    // Conflicts are fields other managers own that this apply changes; with no other manager
    // (every create) there is nothing to compare.
    let changed = if entries.is_empty() {
        FieldSet::new()
    } else {
        let cmp = typed::compare(&live_body, &new, shape).map_err(|e| shape_error(target, e))?;
        owned_part(&cmp.changed(), target)
    };
    let mut conflicts = Vec::new();
    for e in &entries {
        for path in e.fields.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.describe(),
                field: path_string(&path),
            });
        }
    }
    if !conflicts.is_empty() {
        if !force {
            conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
            return Err(SsaError::Conflict {
                message: conflict_message(&conflicts),
                conflicts,
            });
        }
        for e in &mut entries {
            e.fields = e.fields.difference(&changed);
        }
    }

    let object_changed = live_body != new;
    let time = if object_changed || mine.is_none() || last_set != set {
        Some(now.to_string())
    } else {
        previous_time
    };
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: target.api_version.to_string(),
        time,
        subresource: target.subresource.to_string(),
        fields: set,
    });
    managed::encode(&mut new, entries);
    Ok(new)
}

/// Ownership tracking for a write that is not an apply (create, replace, the other patch
/// types): `manager` gets the fields that changed from `old` to `new`, everybody else loses
/// them. Explicit `managedFields` in `new` (a client resetting ownership) replace the live
/// ones; absent or empty, the live ones are kept. The addressed part of the object is taken
/// from `new` (status only through the status subresource), the rest from `old`.
pub fn update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    target: &Target,
    now: &str,
) -> Result<(), SsaError> {
    let shape = Shape::root(target.api_version, target.kind);
    let given = managed::decode(new).unwrap_or_default();
    let mut entries = if given.is_empty() {
        match old {
            Some(o) => decode_managed(o)?,
            None => Vec::new(),
        }
    } else {
        given
    };
    let new_body = managed::strip(new);
    let old_body = match old {
        Some(o) => managed::strip(o),
        // A new object starts as the empty object of its type, whose top-level structs
        // (metadata, spec) exist: creating them is not owning them as a whole.
        None => {
            let mut empty = Map::new();
            if let Some(n) = new_body.as_object() {
                for (k, v) in n {
                    if v.is_object() {
                        empty.insert(k.clone(), json!({}));
                    }
                }
            }
            Value::Object(empty)
        }
    };
    let mut new_body = match old {
        Some(_) => writable_part(&old_body, new_body, target),
        None => new_body,
    };
    let cmp = typed::compare(&old_body, &new_body, shape).map_err(|e| shape_error(target, e))?;
    let changed = owned_part(&cmp.changed(), target);
    let removed = owned_part(&cmp.removed, target);
    let object_changed = old_body != new_body;

    let mine = entries.iter().position(|e| {
        e.same_owner(
            manager,
            Operation::Update,
            target.api_version,
            target.subresource,
        )
    });
    let mut entry = match mine {
        Some(i) => entries.remove(i),
        None => ManagedEntry {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: target.api_version.to_string(),
            time: None,
            subresource: target.subresource.to_string(),
            fields: FieldSet::new(),
        },
    };
    for e in &mut entries {
        e.fields = e.fields.difference(&changed);
    }
    entry.fields = entry.fields.difference(&removed).union(&changed);
    if object_changed || entry.time.is_none() {
        entry.time = Some(now.to_string());
    }
    entries.push(entry);
    managed::encode(&mut new_body, entries);
    *new = new_body;
    Ok(())
}

#[cfg(test)]
mod tests;
