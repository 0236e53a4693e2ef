//! The seam to the native kustomize engine: the artifact tree is the engine's filesystem and
//! its root is the build root, so bases anywhere in the artifact resolve and nothing outside it
//! can be named.

use ferry_kustomize::kustomization::FILE_NAMES;
use ferry_kustomize::{BuildOptions, LoadRestrictor, RelPath};

use super::{RenderError, RenderedObject};
use crate::fetch::ArtifactTree;

pub fn has_kustomization(tree: &ArtifactTree, dir: &str) -> bool {
    FILE_NAMES.iter().any(|f| {
        let p = if dir.is_empty() {
            (*f).to_string()
        } else {
            format!("{dir}/{f}")
        };
        tree.get(&p).is_some()
    })
}

/// Builds the kustomization in `dir`. Files may come from anywhere in the artifact (Flux's
/// `LoadRestrictionsNone`): the artifact is the boundary, and the engine cannot leave it.
pub fn build(tree: &ArtifactTree, dir: &str) -> Result<Vec<RenderedObject>, RenderError> {
    let root = if dir.is_empty() {
        RelPath::root()
    } else {
        RelPath::parse(dir).map_err(|e| RenderError::Path {
            path: dir.to_string(),
            why: e.to_string(),
        })?
    };
    let opts = BuildOptions {
        load_restrictor: LoadRestrictor::None,
    };
    let out =
        ferry_kustomize::build(tree, &root, &opts).map_err(|source| RenderError::Kustomize {
            path: if dir.is_empty() {
                ".".into()
            } else {
                dir.to_string()
            },
            source,
        })?;
    for w in &out.warnings {
        tracing::warn!(path = %root, warning = %w, "kustomize");
    }
    Ok(out
        .resources
        .into_iter()
        .map(|r| RenderedObject {
            file: Some(r.origin.as_str().to_string()),
            object: r.obj.into(),
        })
        .collect())
}
