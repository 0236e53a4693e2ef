//! `replacements:` — not implemented yet: a non-empty list is an error naming the field, so
//! a build never silently differs from kustomize's.

use crate::error::{Error, Result};
use crate::kustomization::ReplacementField;
use crate::loader::KustCtx;
use crate::resource::ResMap;

pub fn apply(_resources: &mut ResMap, list: &[ReplacementField], ctx: &KustCtx<'_>) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    Err(Error::field(
        &ctx.loc("replacements"),
        "replacements are not supported by Ferry's kustomize engine yet",
    ))
}
