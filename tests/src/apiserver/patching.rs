//! PATCH on the store: computes the patched object with [`super::patch::apply_patch`] (all
//! four content types, managedFields included), then writes it through the same path as
//! create/update (name checks, status handling, generation, no-op detection, dry-run, watch
//! events). Server-side apply of an absent object creates it (201).

use serde_json::{Value, json};

use super::patch::{PatchCtx, PatchError, PatchType, apply_patch};
use super::status::ApiError;
use super::store::{State, meta_mut, name_of, now_rfc3339};
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

pub fn patch(st: &mut State, t: &Target, r: &PatchRequest) -> Result<(u16, Value), ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let live = st.get(&t.def.key(), t.ns(), &name).cloned();
    let api_version = t.def.api_version(&t.version);
    let now = now_rfc3339();
    let patch_type = PatchType::from_content_type(r.content_type, t.def.crd.is_some())?;
    let ctx = PatchCtx {
        target: ssa_target(t, &api_version),
        manager: r.manager.as_deref(),
        force: r.force,
        now: &now,
    };
    let mut new = match apply_patch(live.as_ref(), patch_type, r.body, &ctx) {
        Ok(v) => v,
        Err(PatchError::NotFound) => return Err(ApiError::not_found(&t.def.qualified(), &name)),
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
    let o = WriteOpts {
        dry_run: r.dry_run,
        manager: None,
    };
    match live {
        None => verbs::create(st, t, new, &o),
        Some(_) => verbs::update(st, t, new, &o),
    }
}
