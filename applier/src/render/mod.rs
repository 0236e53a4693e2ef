//! Render: from a verified [`ArtifactTree`] and a Kustomization's spec to the exact objects to
//! apply, or an error that names the file, object and field at fault.
//!
//! Stages, in Flux's order: build `path` (with a kustomization file, the native kustomize
//! engine with the artifact root as build root; without one, every `.yaml`/`.yml`/`.json` file
//! below it, sorted by path, with subdirectories that hold a kustomization built as such) →
//! `postBuild` substitution → `targetNamespace` and tenancy. Rendering is pure: cluster reads
//! (ConfigMaps/Secrets for `substituteFrom`, discovery for scopes) are done by the caller and
//! passed in, so the same function serves the agent, `diff`, and tests.

mod kustomize;
mod memo;
mod plain;
pub mod substitute;
pub mod tenancy;

use std::collections::BTreeMap;

use ferry_proto::{KustomizationSpec, ObjectRef};
use serde_json::Value;

use crate::fetch::ArtifactTree;
pub use memo::RenderMemo;
pub use substitute::SubstituteError;
#[cfg(test)]
pub(crate) use tenancy::static_scopes::StaticScopes;
pub use tenancy::{Refusal, Scope, ScopeResolver, TenancyError};

/// One object to apply, with the artifact file it came from when that is known.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedObject {
    pub object: Value,
    pub file: Option<String>,
}

impl RenderedObject {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or_default()
    }

    /// `None` when unset or empty.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace").filter(|s| !s.is_empty())
    }

    pub fn set_namespace(&mut self, ns: &str) {
        if let Some(meta) = self
            .object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }

    /// This object's identity and the version it is written in.
    pub fn object_ref(&self) -> (ObjectRef, &str) {
        ObjectRef::from_api_version(
            self.api_version(),
            self.kind(),
            self.namespace(),
            self.name(),
        )
    }

    /// `Kind/namespace/name (file)`, the way errors and events name an object.
    pub fn describe(&self) -> String {
        let id = self.object_ref().0;
        match &self.file {
            Some(f) => format!("{id} ({f})"),
            None => id.to_string(),
        }
    }
}

/// Why a revision could not be rendered. Nothing from it may be applied.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("path {path:?}: {why}")]
    Path { path: String, why: String },
    #[error("{file}: {why}")]
    Parse { file: String, why: String },
    #[error("{object}: {why}")]
    Object { object: String, why: String },
    #[error("kustomize build of {path:?}: {source}")]
    Kustomize {
        path: String,
        #[source]
        source: ferry_kustomize::Error,
    },
    #[error("postBuild: {0}")]
    Variables(SubstituteError),
    #[error("postBuild substitution in {object}: {source}")]
    Substitute {
        object: String,
        #[source]
        source: SubstituteError,
    },
    #[error("targetNamespace {target:?} is not this agent's namespace {namespace:?}")]
    TargetNamespace { target: String, namespace: String },
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
}

impl RenderError {
    /// Refused by tenancy (as opposed to a build failure the user must fix in Git).
    pub fn is_tenancy(&self) -> bool {
        matches!(
            self,
            RenderError::Tenancy(_) | RenderError::TargetNamespace { .. }
        )
    }
}

/// Renders `spec.path` of `tree` for the agent of `namespace`.
///
/// `substitute_from` holds the variables of `spec.postBuild.substituteFrom`, already read by the
/// caller from the ConfigMaps/Secrets in order (later ones winning, Secret values decoded);
/// `spec.postBuild.substitute` wins over them, as in Flux.
pub fn render(
    tree: &ArtifactTree,
    spec: &KustomizationSpec,
    substitute_from: &BTreeMap<String, String>,
    namespace: &str,
    scopes: &dyn ScopeResolver,
) -> Result<Vec<RenderedObject>, RenderError> {
    if let Some(target) = spec.target_namespace.as_deref().filter(|t| !t.is_empty())
        && target != namespace
    {
        return Err(RenderError::TargetNamespace {
            target: target.to_string(),
            namespace: namespace.to_string(),
        });
    }
    let dir = normalise_path(spec.path.as_deref().unwrap_or(""))?;
    let mut objects = if kustomize::has_kustomization(tree, &dir) {
        kustomize::build(tree, &dir)?
    } else {
        plain::load(tree, &dir)?
    };
    for obj in &objects {
        check_identity(obj)?;
    }
    if let Some(pb) = &spec.post_build {
        let mut vars = substitute_from.clone();
        vars.extend(pb.substitute.iter().map(|(k, v)| (k.clone(), v.clone())));
        substitute::check_names(vars.keys()).map_err(RenderError::Variables)?;
        for obj in &mut objects {
            let what = obj.describe();
            let object = std::mem::take(&mut obj.object);
            obj.object = substitute::substitute_object(object, &vars).map_err(|source| {
                RenderError::Substitute {
                    object: what,
                    source,
                }
            })?;
            check_identity(obj)?;
        }
    }
    let override_ns = spec
        .target_namespace
        .as_deref()
        .is_some_and(|t| !t.is_empty());
    tenancy::enforce(&mut objects, namespace, override_ns, scopes)?;
    Ok(objects)
}

/// `./clusters/staging/` → `clusters/staging`; refuses paths that leave the artifact.
fn normalise_path(path: &str) -> Result<String, RenderError> {
    let bad = |why: &str| RenderError::Path {
        path: path.to_string(),
        why: why.to_string(),
    };
    if path.starts_with('/') || path.contains('\\') {
        return Err(bad("must be a relative path inside the artifact"));
    }
    let mut parts = vec![];
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("must not contain `..`")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Server-side apply needs `apiVersion`, `kind` and `metadata.name` on every object.
fn check_identity(obj: &RenderedObject) -> Result<(), RenderError> {
    let err = |why: &str| RenderError::Object {
        object: obj.describe(),
        why: why.to_string(),
    };
    if !obj.object.is_object() {
        return Err(err("is not a YAML mapping"));
    }
    if obj.api_version().is_empty() {
        return Err(err("has no apiVersion"));
    }
    if obj.kind().is_empty() {
        return Err(err("has no kind"));
    }
    if obj.name().is_empty() {
        return Err(err("has no metadata.name (generateName is not supported)"));
    }
    if obj
        .object
        .pointer("/metadata/namespace")
        .is_some_and(|v| !v.is_string())
    {
        return Err(err("has a metadata.namespace that is not a string"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
