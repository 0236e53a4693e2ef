//! Seam for helper C2 (owner of this file): kustomize's `patchesStrategicMerge`, `patches`
//! and `patchesJson6902`. The pipeline in `target.rs` calls these three functions at the
//! points kustomize runs the corresponding builtin transformers:
//! `apply_patches_strategic_merge` then `apply_patches` (before namespace/prefix/labels),
//! `apply_patches_json6902` (after annotations, before replicas/images).
//! Files are read through `ctx.read_text(path, "patches[2]")` (load restrictor enforced);
//! errors name `ctx.loc("patches[2]")`. A resource renamed by a patch must call
//! `Resource::store_prev_id()` first so references follow the rename.

use crate::error::{Error, Result};
use crate::kustomization::Patch;
use crate::loader::KustCtx;
use crate::resource::ResMap;

fn not_yet(ctx: &KustCtx<'_>, field: &str) -> Error {
    Error::Refused {
        at: ctx.loc(field),
        msg: "patches are not supported yet by this build".to_string(),
    }
}

/// `patchesStrategicMerge:` entries (file paths or inline YAML).
pub fn apply_patches_strategic_merge(
    _resources: &mut ResMap,
    specs: &[String],
    ctx: &KustCtx<'_>,
) -> Result<()> {
    if specs.is_empty() {
        Ok(())
    } else {
        Err(not_yet(ctx, "patchesStrategicMerge[0]"))
    }
}

/// `patches:` entries.
pub fn apply_patches(_resources: &mut ResMap, specs: &[Patch], ctx: &KustCtx<'_>) -> Result<()> {
    if specs.is_empty() {
        Ok(())
    } else {
        Err(not_yet(ctx, "patches[0]"))
    }
}

/// `patchesJson6902:` entries.
pub fn apply_patches_json6902(
    _resources: &mut ResMap,
    specs: &[Patch],
    ctx: &KustCtx<'_>,
) -> Result<()> {
    if specs.is_empty() {
        Ok(())
    } else {
        Err(not_yet(ctx, "patchesJson6902[0]"))
    }
}
