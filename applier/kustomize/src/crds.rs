//! `crds:` — kustomize derives extra name-reference field specs from OpenAPI definitions of
//! custom resources. Not implemented yet: a non-empty list is an error naming the field, so
//! a build never silently differs from kustomize's.

use crate::error::{Error, Result};
use crate::fieldspec::TransformerConfig;
use crate::loader::KustCtx;

pub fn load(ctx: &KustCtx<'_>, crds: &[String]) -> Result<TransformerConfig> {
    if crds.is_empty() {
        return Ok(TransformerConfig::default());
    }
    Err(Error::field(
        &ctx.loc("crds"),
        "the crds field is not supported by Ferry's kustomize engine yet; use configurations instead",
    ))
}
