//! The REST verbs on the store, independent of HTTP: get, list, create, update (PUT and the
//! tail of PATCH), delete, deletecollection. Each runs under the store lock, validates like the
//! real server (names, namespaces, optimistic concurrency, body/URL mismatches) and honours
//! `dryRun=All` by computing the result without storing it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::lifecycle::{self, Propagation};
use super::registry::ResourceDef;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{State, meta_mut, name_of, namespace_of};

/// Longest accepted object name (DNS subdomain).
const MAX_NAME: usize = 253;

/// What a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub def: ResourceDef,
    pub version: String,
    /// `Some` for namespaced paths (`/namespaces/{ns}/…`).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    fn name_or_empty(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// Records the write in managedFields (operation Update) under this manager; `None` when
    /// the caller already did (server-side apply, the PATCH module).
    pub manager: Option<String>,
}

/// What the SSA module needs to know about the addressed resource.
pub fn ssa_target<'a>(t: &'a Target, api_version: &'a str) -> super::ssa::Target<'a> {
    super::ssa::Target {
        api_version,
        kind: &t.def.kind,
        subresource: t.subresource.as_deref().unwrap_or(""),
        status_subresource: t.def.status_subresource,
    }
}

/// Gives `manager` ownership of what changed from `old` to `new` (managedFields, Update).
fn track(t: &Target, old: Option<&Value>, new: &mut Value, o: &WriteOpts) -> Result<(), ApiError> {
    let Some(manager) = &o.manager else {
        return Ok(());
    };
    let api_version = t.def.api_version(&t.version);
    let now = super::store::now_rfc3339();
    super::ssa::update(old, new, manager, &ssa_target(t, &api_version), &now)
        .map_err(|e| ssa_error(t, e))
}

/// SSA errors as Status objects (409 with one cause per conflicting field).
pub fn ssa_error(t: &Target, e: super::ssa::SsaError) -> ApiError {
    let err = ApiError::from(super::patch::PatchError::from(e));
    if err.code == 409 {
        ssa_error_details(t, err)
    } else {
        err
    }
}

/// Adds name/group/kind to a conflict's `details` (next to the causes), as the real server does.
pub fn ssa_error_details(t: &Target, mut err: ApiError) -> ApiError {
    let causes = err
        .details
        .as_ref()
        .and_then(|d| d.get("causes"))
        .cloned()
        .unwrap_or_default();
    err.details = Some(json!({
        "name": t.name.clone().unwrap_or_default(),
        "group": t.def.group,
        "kind": t.def.plural,
        "causes": causes,
    }));
    err
}

/// List filters and paging.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Delete options from the query string and/or the `DeleteOptions` body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Sets `apiVersion`/`kind` to the version the client asked for.
pub fn present(t: &Target, mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!(t.def.api_version(&t.version)));
        o.insert("kind".into(), json!(t.def.kind));
    }
    obj
}

/// [`present`] for a stored object: copied only when the client asked for another version.
pub fn present_shared(t: &Target, obj: Arc<Value>) -> Arc<Value> {
    let api_version = t.def.api_version(&t.version);
    if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
        && obj.get("kind").and_then(Value::as_str) == Some(t.def.kind.as_str())
    {
        return obj;
    }
    Arc::new(present(t, Arc::unwrap_or_clone(obj)))
}

pub fn get(st: &State, t: &Target) -> Result<Value, ApiError> {
    let name = t.name_or_empty();
    let obj = st
        .get(&t.def.key(), t.ns(), name)
        .ok_or_else(|| ApiError::not_found(&t.def.qualified(), name))?;
    Ok(present(t, obj.clone()))
}

pub fn list(st: &State, t: &Target, o: &ListOpts) -> Result<Value, ApiError> {
    let after = match &o.continue_token {
        Some(tok) => Some(decode_continue(tok)?),
        None => None,
    };
    let matching: Vec<&Value> = st
        .list(&t.def.key(), t.namespace.as_deref())
        .into_iter()
        .filter(|obj| o.labels.matches(obj) && o.fields.matches(obj))
        .filter(|obj| match &after {
            Some((ns, name)) => (namespace_of(obj), name_of(obj)) > (ns.as_str(), name.as_str()),
            None => true,
        })
        .collect();
    let limit = o.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let page: Vec<Value> = matching
        .iter()
        .take(limit)
        .map(|v| present(t, (*v).clone()))
        .collect();
    let mut meta = json!({"resourceVersion": st.current_rv().to_string()});
    if matching.len() > page.len()
        && let Some(last) = page.last()
    {
        meta["continue"] = json!(encode_continue(namespace_of(last), name_of(last)));
        meta["remainingItemCount"] = json!(matching.len() - page.len());
    }
    Ok(json!({
        "apiVersion": t.def.api_version(&t.version),
        "kind": t.def.list_kind,
        "metadata": meta,
        "items": page,
    }))
}

fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(tok: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {tok:?}"));
    if !tok.len().is_multiple_of(2) || tok.len() > 2 * 600 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..tok.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tok[i..i + 2], 16))
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// DNS-1123 subdomain (or label, for kinds whose names become DNS labels).
fn validate_name(def: &ResourceDef, name: &str) -> Result<(), ApiError> {
    let label_only = matches!(def.kind.as_str(), "Namespace" | "Service") && def.group.is_empty();
    let max = if label_only { 63 } else { MAX_NAME };
    let ok_chars = name.chars().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && !label_only)
    });
    let ok_ends = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let is_rbac = def.group == "rbac.authorization.k8s.io";
    // RBAC names are path segments only (`system:aggregate-to-edit` is a valid ClusterRole).
    let rbac_ok =
        is_rbac && !name.contains('/') && !name.contains('%') && name != "." && name != "..";
    if !name.is_empty() && name.len() <= max && ((ok_chars && ok_ends) || rbac_ok) {
        return Ok(());
    }
    let what = if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    };
    Err(ApiError::invalid(
        &kind_qualified(def),
        name,
        &[("metadata.name", format!("Invalid value: {name:?}: {what}"))],
    ))
}

/// `Deployment.apps`, `ConfigMap` — how Invalid messages name the kind.
pub fn kind_qualified(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        def.kind.clone()
    } else {
        format!("{}.{}", def.kind, def.group)
    }
}

/// Checks kind/apiVersion/namespace of a body against the request and fills them in.
fn check_body(t: &Target, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request was not a JSON object (expected {})",
            t.def.kind
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != t.def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the body ({k}) does not match the resource {} (kind {})",
            t.def.qualified(),
            t.def.kind
        )));
    }
    let want_ns = t.ns().to_string();
    let meta = meta_mut(body);
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !t.def.namespaced && !ns.is_empty() => {
            // Cluster-scoped: a namespace in the body is dropped, as the real server does.
            meta.remove("namespace");
        }
        Some(ns) if t.def.namespaced && !ns.is_empty() && ns != want_ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ if t.def.namespaced => {
            meta.insert("namespace".into(), json!(want_ns));
        }
        _ => {
            meta.remove("namespace");
        }
    }
    if t.def.group.is_empty() && t.def.kind == "Secret" {
        merge_string_data(body);
    }
    let obj = present(t, std::mem::take(body));
    *body = obj;
    Ok(())
}

/// A Secret's write-only `stringData` goes into `data` (base64, winning over a `data` key of
/// the same name) and is never stored, as the real server's conversion does.
fn merge_string_data(body: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(string_data)) =
        body.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !body.get("data").is_some_and(Value::is_object) {
        body["data"] = json!({});
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        body["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// POST: creates a new object (201).
pub fn create(
    st: &mut State,
    t: &Target,
    mut body: Value,
    o: &WriteOpts,
) -> Result<(u16, Arc<Value>), ApiError> {
    if t.def.namespaced && t.namespace.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "{} is namespaced: POST it under /namespaces/{{namespace}}/",
            t.def.qualified()
        )));
    }
    check_body(t, &mut body)?;
    if name_of(&body).is_empty()
        && let Some(prefix) = body
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_string)
    {
        let name = format!("{prefix}{}", random_suffix());
        meta_mut(&mut body).insert("name".into(), json!(name));
    }
    let name = name_of(&body).to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            &kind_qualified(&t.def),
            "",
            &[(
                "metadata.name",
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    validate_name(&t.def, &name)?;
    if t.def.namespaced {
        lifecycle::check_namespace_open(st, t.ns())?;
    }
    if st.get(&t.def.key(), t.ns(), &name).is_some() {
        return Err(ApiError::already_exists(&t.def.qualified(), &name));
    }
    if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    lifecycle::default_new(&t.def, &mut body);
    track(t, None, &mut body, o)?;
    if is_crd(&t.def) {
        super::crd::resource_def(&body)?;
    }
    if o.dry_run {
        return Ok((201, Arc::new(present(t, st.preview_new(body)))));
    }
    if is_crd(&t.def) {
        super::crd::register(st, &mut body)?;
    }
    let stored = st.insert_new(&t.def, body);
    Ok((201, present_shared(t, stored)))
}

fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition"
}

fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| CHARS[r.random_range(0..CHARS.len())] as char)
        .collect()
}

/// PUT (and the store side of PATCH): replaces an existing object. For the `status`
/// subresource only `status` is taken from `body`; for the main resource of a kind with a
/// status subresource, `status` in `body` is ignored.
pub fn update(
    st: &mut State,
    t: &Target,
    mut body: Value,
    o: &WriteOpts,
) -> Result<(u16, Arc<Value>), ApiError> {
    let name = t.name_or_empty().to_string();
    check_body(t, &mut body)?;
    let body_name = name_of(&body).to_string();
    if body_name.is_empty() {
        meta_mut(&mut body).insert("name".into(), json!(name));
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let old = st
        .get_shared(&t.def.key(), t.ns(), &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.def.qualified(), &name))?;
    if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv)
            != old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::conflict(
            &t.def.qualified(),
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut new = if t.is_status() {
        let mut n = Value::clone(&old);
        match body.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // managedFields may change through the status subresource, too.
        if let Some(mf) = body.pointer("/metadata/managedFields") {
            meta_mut(&mut n).insert("managedFields".into(), mf.clone());
        }
        n
    } else {
        lifecycle::default_spec(&t.def, &mut body);
        if t.def.status_subresource
            && let Some(m) = body.as_object_mut()
        {
            match old.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        body
    };
    track(t, Some(&old), &mut new, o)?;
    if is_crd(&t.def) && !t.is_status() {
        super::crd::resource_def(&new)?;
        if !o.dry_run {
            super::crd::register(st, &mut new)?;
        } else if let Some(s) = old.get("status") {
            new["status"] = s.clone();
        }
    }
    if o.dry_run {
        return Ok((200, Arc::new(present(t, st.preview_replace(&old, new)))));
    }
    let stored = st.replace(&t.def, &old, new);
    if let Some(removed) = lifecycle::finish_if_released(st, &t.def, &stored) {
        return Ok((200, Arc::new(present(t, removed))));
    }
    Ok((200, present_shared(t, stored)))
}

/// DELETE of one object.
pub fn delete(st: &mut State, t: &Target, o: &DeleteOpts) -> Result<Value, ApiError> {
    let name = t.name_or_empty().to_string();
    let old = st
        .get(&t.def.key(), t.ns(), &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.def.qualified(), &name))?;
    if let Some(uid) = &o.precondition_uid
        && old.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
    {
        return Err(ApiError::conflict(
            &t.def.qualified(),
            &name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    if let Some(rv) = &o.precondition_rv
        && old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(rv)
    {
        return Err(ApiError::conflict(
            &t.def.qualified(),
            &name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                old["metadata"]["resourceVersion"].as_str().unwrap_or("")
            ),
        ));
    }
    if o.dry_run {
        return Ok(present(t, old));
    }
    let after = lifecycle::delete(st, &t.def, t.ns(), &name, o.propagation);
    let still_there = st.get(&t.def.key(), t.ns(), &name).is_some();
    // Like the real registry: an object that is gone is reported by a Success Status, except
    // for kinds whose registry returns the deleted object (custom resources, pods).
    let returns_object = t.def.crd.is_some() || (t.def.group.is_empty() && t.def.kind == "Pod");
    if still_there || returns_object {
        return Ok(present(t, after));
    }
    Ok(super::status::success(json!({
        "name": name,
        "group": t.def.group,
        "kind": t.def.plural,
        "uid": after.pointer("/metadata/uid").cloned().unwrap_or_default(),
    })))
}

/// DELETE of a collection: every object matching the selectors.
pub fn delete_collection(
    st: &mut State,
    t: &Target,
    l: &ListOpts,
    o: &DeleteOpts,
) -> Result<Value, ApiError> {
    let names: Vec<(String, String)> = st
        .list(&t.def.key(), t.namespace.as_deref())
        .into_iter()
        .filter(|obj| l.labels.matches(obj) && l.fields.matches(obj))
        .map(|obj| (namespace_of(obj).to_string(), name_of(obj).to_string()))
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        let one = Target {
            namespace: (!ns.is_empty()).then_some(ns),
            name: Some(name),
            ..t.clone()
        };
        let before = get(st, &one)?;
        let after = delete(st, &one, o)?;
        // The list holds objects, also for kinds whose single delete answers with a Status.
        items.push(if after["kind"] == "Status" {
            before
        } else {
            after
        });
    }
    Ok(json!({
        "apiVersion": t.def.api_version(&t.version),
        "kind": t.def.list_kind,
        "metadata": {"resourceVersion": st.current_rv().to_string()},
        "items": items,
    }))
}

#[cfg(test)]
mod tests;
