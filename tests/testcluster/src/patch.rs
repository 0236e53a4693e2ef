//! The four PATCH content types, on `serde_json::Value`, with no HTTP and no store.
//!
//! `application/apply-patch+yaml` is server-side apply ([`super::ssa::apply`]); the other
//! three compute the patched object with `ferry_proto::merge` (JSON merge patch, JSON patch,
//! strategic merge with the apiserver's list ordering and directives) and then record the
//! change in managedFields as an `Update` by the request's manager. Errors carry the HTTP
//! status the apiserver uses for them (see [`PatchError::code`]).

use ferry_proto::merge::{json_patch, schema, strategic};
use serde_json::{Value, json};

use super::ssa::{self, Conflict, SsaError, Target};
use super::status::ApiError;

pub const APPLY_PATCH: &str = "application/apply-patch+yaml";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// The PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Apply,
    Merge,
    Json,
    Strategic,
}

impl PatchType {
    /// From a `Content-Type` header (parameters such as `charset` ignored). Custom resources
    /// have no strategic-merge schema, so the apiserver refuses that type for them.
    pub fn from_content_type(
        content_type: &str,
        custom_resource: bool,
    ) -> Result<Self, PatchError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            APPLY_PATCH => Ok(PatchType::Apply),
            MERGE_PATCH => Ok(PatchType::Merge),
            JSON_PATCH => Ok(PatchType::Json),
            STRATEGIC_MERGE_PATCH if !custom_resource => Ok(PatchType::Strategic),
            _ => {
                let mut accepted = vec![JSON_PATCH, MERGE_PATCH, APPLY_PATCH];
                if !custom_resource {
                    accepted.push(STRATEGIC_MERGE_PATCH);
                }
                Err(PatchError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: {}",
                    accepted.join(", ")
                )))
            }
        }
    }
}

/// Everything about a PATCH request besides the live object and the body.
#[derive(Debug, Clone, Copy)]
pub struct PatchCtx<'a> {
    pub target: Target<'a>,
    /// The `fieldManager` query parameter, or (for non-apply patches) the name the server
    /// derives from the User-Agent. Required for apply.
    pub manager: Option<&'a str>,
    /// The `force` query parameter; only valid for apply.
    pub force: bool,
    /// RFC 3339, for managedFields timestamps.
    pub now: &'a str,
}

/// Why a PATCH failed; [`PatchError::code`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 409 from server-side apply, one cause per field.
    #[error("{message}")]
    Conflict {
        message: String,
        conflicts: Vec<Conflict>,
    },
    /// 400: the body could not be decoded, or the patch is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 422: the patch is well-formed but cannot apply (a failed JSON-patch `test`, a missing
    /// path), or the request options are invalid.
    #[error("{0}")]
    Invalid(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 404: only server-side apply creates; the caller words the message (it knows the
    /// resource and name).
    #[error("not found")]
    NotFound,
}

impl PatchError {
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Conflict { .. } => 409,
            PatchError::BadRequest(_) => 400,
            PatchError::Invalid(_) => 422,
            PatchError::UnsupportedMediaType(_) => 415,
            PatchError::NotFound => 404,
        }
    }
}

impl From<SsaError> for PatchError {
    fn from(e: SsaError) -> Self {
        match e {
            SsaError::Conflict { message, conflicts } => {
                PatchError::Conflict { message, conflicts }
            }
            SsaError::BadRequest(m) => PatchError::BadRequest(m),
            SsaError::Invalid(m) => PatchError::Invalid(m),
        }
    }
}

/// As a `Status` (for 404 the caller should prefer `ApiError::not_found` with the name).
impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::Conflict { message, conflicts } => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({"reason": "FieldManagerConflict",
                               "message": format!("conflict with {}", c.manager),
                               "field": c.field})
                    })
                    .collect();
                ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
            }
            PatchError::BadRequest(m) => ApiError::bad_request(m),
            PatchError::Invalid(m) => ApiError::new(422, "Invalid", m),
            PatchError::UnsupportedMediaType(m) => ApiError::new(415, "UnsupportedMediaType", m),
            PatchError::NotFound => ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        }
    }
}

/// Runs a PATCH: returns the full new object with managedFields updated (server-side apply
/// of an absent object creates it; the other types need `live`). The caller still owns
/// what every write does: name checks, resourceVersion, generation, no-op detection, dry-run.
pub fn apply_patch(
    live: Option<&Value>,
    patch_type: PatchType,
    body: &[u8],
    ctx: &PatchCtx,
) -> Result<Value, PatchError> {
    if patch_type == PatchType::Apply {
        let manager = ctx.manager.filter(|m| !m.is_empty()).ok_or_else(|| {
            PatchError::Invalid(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .to_string(),
            )
        })?;
        let config = decode_apply(body)?;
        return Ok(ssa::apply(
            live,
            config,
            manager,
            ctx.force,
            &ctx.target,
            ctx.now,
        )?);
    }
    if ctx.force {
        return Err(PatchError::Invalid(
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
                .to_string(),
        ));
    }
    let live = live.ok_or(PatchError::NotFound)?;
    let mut new = patch_object(live, patch_type, body, &ctx.target)?;
    if let Some(manager) = ctx.manager {
        ssa::update(Some(live), &mut new, manager, &ctx.target, ctx.now)?;
    }
    Ok(new)
}

/// The body of an apply: one YAML or JSON object. Clients send JSON almost always, and the
/// JSON parser is many times faster than the YAML one on the same text.
pub fn decode_apply(body: &[u8]) -> Result<Value, PatchError> {
    let config: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_yaml::from_slice(body)
            .map_err(|e| PatchError::BadRequest(format!("error decoding YAML: {e}")))?,
    };
    if !config.is_object() {
        return Err(PatchError::BadRequest(
            "error decoding YAML: the apply configuration is not an object".to_string(),
        ));
    }
    Ok(config)
}

/// Applies a merge, JSON or strategic-merge patch to `live`, without any ownership tracking
/// (the result still carries whatever `managedFields` the patch left).
pub fn patch_object(
    live: &Value,
    patch_type: PatchType,
    body: &[u8],
    target: &Target,
) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
    let mut new = live.clone();
    match patch_type {
        PatchType::Apply => {
            return Err(PatchError::BadRequest(
                "internal: apply is not a patch of the live object".to_string(),
            ));
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::BadRequest(
                    "error decoding patch: a merge patch must be a JSON object".to_string(),
                ));
            }
            // RFC 7386, which the json-patch crate implements exactly.
            ::json_patch::merge(&mut new, &patch);
        }
        PatchType::Json => {
            let ops =
                json_patch::parse(&patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            json_patch::apply(&mut new, &ops).map_err(|e| PatchError::Invalid(e.to_string()))?;
        }
        PatchType::Strategic => {
            let ty = schema::lookup(target.api_version, target.kind);
            new = strategic::apply(live, &patch, ty, strategic::Options::APISERVER)
                .map_err(|e| PatchError::BadRequest(e.to_string()))?
                .ok_or_else(|| {
                    PatchError::BadRequest(
                        "a strategic merge patch cannot delete the object ($patch: delete at the top)"
                            .to_string(),
                    )
                })?;
        }
    }
    if !new.is_object() {
        return Err(PatchError::Invalid(
            "the patched object is not a JSON object".to_string(),
        ));
    }
    Ok(new)
}

#[cfg(test)]
mod tests;
