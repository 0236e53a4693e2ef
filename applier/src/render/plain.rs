//! A `path` without a kustomization file: every `.yaml`, `.yml` and `.json` file below it,
//! recursively, in path order, each a multi-document stream (`kind: List` expanded). As in
//! Flux, a subdirectory that has its own kustomization file is built with kustomize as a unit
//! instead of having its files read one by one.

use super::{RenderError, RenderedObject, kustomize};
use crate::fetch::ArtifactTree;

const EXTENSIONS: [&str; 3] = [".yaml", ".yml", ".json"];

pub fn load(tree: &ArtifactTree, dir: &str) -> Result<Vec<RenderedObject>, RenderError> {
    if !tree.is_dir(dir) {
        let why = if tree.get(dir).is_some() {
            "is a file, not a directory".to_string()
        } else {
            format!("does not exist in artifact {}", tree.digest())
        };
        return Err(RenderError::Path {
            path: dir.to_string(),
            why,
        });
    }
    let mut out = vec![];
    // Directories below `dir` built by kustomize; their files are not read individually.
    let mut built: Vec<String> = vec![];
    for (path, data) in tree.files_under(dir) {
        if built
            .iter()
            .any(|b| path.starts_with(b.as_str()) && path.as_bytes().get(b.len()) == Some(&b'/'))
        {
            continue;
        }
        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        if let Some(root) = kustomization_root(tree, dir, parent) {
            out.extend(kustomize::build(tree, &root)?);
            built.push(root);
            continue;
        }
        if !EXTENSIONS.iter().any(|e| path.ends_with(e)) {
            continue;
        }
        out.extend(parse_file(path, data)?);
    }
    Ok(out)
}

/// The highest directory strictly below `dir` and at or above `leaf` that has a kustomization
/// file: the unit kustomize builds (a nested one inside it is that build's business).
fn kustomization_root(tree: &ArtifactTree, dir: &str, leaf: &str) -> Option<String> {
    let rel = if dir.is_empty() {
        leaf
    } else {
        leaf.strip_prefix(dir)?.strip_prefix('/')?
    };
    let mut cur = dir.to_string();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(part);
        if kustomize::has_kustomization(tree, &cur) {
            return Some(cur);
        }
    }
    None
}

/// Parses one manifest file into objects, naming the file on error.
pub fn parse_file(path: &str, data: &[u8]) -> Result<Vec<RenderedObject>, RenderError> {
    let parse_err = |why: String| RenderError::Parse {
        file: path.to_string(),
        why,
    };
    let text = std::str::from_utf8(data).map_err(|_| parse_err("is not valid UTF-8".into()))?;
    let docs = ferry_kustomize::yaml::json::parse_objects(text).map_err(parse_err)?;
    Ok(docs
        .into_iter()
        .map(|object| RenderedObject {
            object,
            file: Some(path.to_string()),
        })
        .collect())
}
