//! PATCH on the store: computes the patched object with [`super::patch::apply_patch`] (all
//! four content types, managedFields included), then writes it through the same path as
//! create/update (name checks, status handling, generation, no-op detection, dry-run, watch
//! events). Server-side apply of an absent object creates it (201).
//!
//! Like the real API server's guaranteed update, the patch is computed *outside* the store
//! lock from a snapshot of the live object, and written only if the object is still at that
//! resourceVersion (or still absent); otherwise it is computed again. Concurrent PATCHes of
//! different objects (an agent applying hundreds at once) then use every core, and the lock
//! guards only the short write.

use std::sync::Arc;

use serde_json::{Value, json};

use super::patch::{PatchCtx, PatchError, PatchType, apply_patch};
use super::status::ApiError;
use super::store::{State, Store, meta_mut, name_of, now_rfc3339};
use super::verbs::{self, Target, WriteOpts, ssa_error_details, ssa_target};

/// One PATCH request, parsed.
#[derive(Debug, Clone)]
pub struct PatchRequest<'a> {
    pub content_type: &'a str,
    pub body: &'a [u8],
    /// `fieldManager`, else (non-apply) the user agent's program name.
    pub manager: Option<String>,
    pub force: bool,
    pub dry_run: bool,
}

/// Optimistic attempts before the patch is computed under the lock (which always succeeds).
const OPTIMISTIC_ATTEMPTS: usize = 3;

pub fn patch(store: &Store, t: &Target, r: &PatchRequest) -> Result<(u16, Arc<Value>), ApiError> {
    let key = t.def.key();
    let name = t.name.clone().unwrap_or_default();
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        let live = store.lock().get_shared(&key, t.ns(), &name).cloned();
        let new = patched(live.as_deref(), t, r, &name)?;
        let mut st = store.lock();
        let now = st.get(&key, t.ns(), &name);
        if now.map(resource_version) == live.as_deref().map(resource_version) {
            return write(&mut st, t, new, live.is_some(), r.dry_run);
        }
    }
    let mut st = store.lock();
    let live = st.get_shared(&key, t.ns(), &name).cloned();
    let new = patched(live.as_deref(), t, r, &name)?;
    write(&mut st, t, new, live.is_some(), r.dry_run)
}

fn resource_version(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The object `r` makes of `live`, named as the URL says.
fn patched(
    live: Option<&Value>,
    t: &Target,
    r: &PatchRequest,
    name: &str,
) -> Result<Value, ApiError> {
    let api_version = t.def.api_version(&t.version);
    let now = now_rfc3339();
    let patch_type = PatchType::from_content_type(r.content_type, t.def.crd.is_some())?;
    let ctx = PatchCtx {
        target: ssa_target(t, &api_version),
        manager: r.manager.as_deref(),
        force: r.force,
        now: &now,
    };
    let mut new = match apply_patch(live, patch_type, r.body, &ctx) {
        Ok(v) => v,
        Err(PatchError::NotFound) => return Err(ApiError::not_found(&t.def.qualified(), name)),
        Err(e) => {
            let mut err = ApiError::from(e);
            if err.code == 409 {
                err = ssa_error_details(t, err);
            }
            return Err(err);
        }
    };
    let body_name = name_of(&new).to_string();
    if body_name.is_empty() {
        meta_mut(&mut new).insert("name".into(), json!(name));
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(new)
}

/// Stores the patched object through create (absent) or update (present).
fn write(
    st: &mut State,
    t: &Target,
    new: Value,
    exists: bool,
    dry_run: bool,
) -> Result<(u16, Arc<Value>), ApiError> {
    let o = WriteOpts {
        dry_run,
        manager: None,
    };
    if exists {
        verbs::update(st, t, new, &o)
    } else {
        verbs::create(st, t, new, &o)
    }
}
