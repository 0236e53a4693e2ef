//! Tenancy: an agent owns one namespace and nothing else. Every rendered object must be
//! namespaced and in that namespace (objects without a namespace get it); a cluster-scoped
//! object or one for another namespace refuses the whole revision, and the error lists every
//! offender so one status message tells the user all that must change.

use std::collections::{HashMap, HashSet};

use ferry_proto::GroupVersion;

use super::RenderedObject;

pub use ferry_proto::Scope;

/// Says whether a kind is namespaced. The agent answers from API discovery; tests use a static
/// table. `None`: the API server does not serve this kind.
pub trait ScopeResolver: Send + Sync {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope>;
}

/// Why one object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `Kind/name` or `Kind/namespace/name`, plus ` (file)` when known.
    pub object: String,
    pub why: String,
}

/// Every object the revision may not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} object(s) refused for namespace {namespace:?}, nothing applied: {}", refused.len(), list(refused))]
pub struct TenancyError {
    pub namespace: String,
    pub refused: Vec<Refusal>,
}

fn list(refused: &[Refusal]) -> String {
    refused
        .iter()
        .map(|r| format!("{} {}", r.object, r.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sets `namespace` on namespaced objects that have none (or on all of them with
/// `override_namespace`, Flux's `targetNamespace`, which also moves RoleBinding subjects named
/// `default` as kustomize's namespace transformer does), then refuses anything outside
/// `namespace`.
pub fn enforce(
    objects: &mut [RenderedObject],
    namespace: &str,
    override_namespace: bool,
    scopes: &dyn ScopeResolver,
) -> Result<(), TenancyError> {
    let mut refused = vec![];
    // Index of the first object with each identity; described only if a second one appears.
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    let mut dup_reported = HashSet::new();
    // Resolving a kind through discovery is not free; a revision has few kinds.
    let mut scope_of: HashMap<(String, String), Option<Scope>> = HashMap::new();
    for i in 0..objects.len() {
        let obj = &mut objects[i];
        let (api_version, kind) = (obj.api_version().to_string(), obj.kind().to_string());
        let scope = *scope_of
            .entry((api_version.clone(), kind.clone()))
            .or_insert_with(|| scopes.scope(&api_version, &kind));
        match scope {
            None => refused.push(Refusal {
                object: obj.describe(),
                why: format!("has a kind the API server does not serve ({api_version} {kind})"),
            }),
            Some(Scope::Cluster) => refused.push(Refusal {
                object: obj.describe(),
                why: "is cluster-scoped; this agent may only apply objects in its namespace".into(),
            }),
            Some(Scope::Namespaced) => match obj.namespace() {
                Some(ns) if ns == namespace => {}
                Some(_) if override_namespace => obj.set_namespace(namespace),
                None => obj.set_namespace(namespace),
                Some(ns) => {
                    let why = format!("is in namespace {ns:?}, not {namespace:?}");
                    refused.push(Refusal {
                        object: obj.describe(),
                        why,
                    })
                }
            },
        }
        if override_namespace && let Some(map) = obj.object.as_object_mut() {
            ferry_kustomize::set_role_binding_subjects(map, namespace);
        }
        // Two objects with one identity would fight over the same live object.
        let key = (
            format!("{}/{}", GroupVersion::parse(&api_version).group, kind),
            obj.namespace().unwrap_or_default().to_string(),
            obj.name().to_string(),
        );
        match seen.get(&key) {
            Some(&first) => {
                if dup_reported.insert(key.clone()) {
                    refused.push(Refusal {
                        object: objects[i].describe(),
                        why: format!("is defined twice (also {})", objects[first].describe()),
                    });
                }
            }
            None => {
                seen.insert(key, i);
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(TenancyError {
            namespace: namespace.to_string(),
            refused,
        })
    }
}

/// Test-only: a [`ScopeResolver`] from the built-in kinds' table plus kinds added by hand, in
/// place of API discovery.
#[cfg(test)]
pub(crate) mod static_scopes {
    use std::collections::HashMap;

    use ferry_proto::GroupVersion;

    use super::{Scope, ScopeResolver};

    /// Built-in Kubernetes kinds, plus any added with [`StaticScopes::with`].
    #[derive(Clone, Debug, Default)]
    pub struct StaticScopes {
        extra: HashMap<(String, String), Scope>,
    }

    impl StaticScopes {
        pub fn new() -> Self {
            Self::default()
        }

        /// Adds a kind (e.g. a custom resource) by `apiVersion` and kind.
        pub fn with(mut self, api_version: &str, kind: &str, scope: Scope) -> Self {
            self.extra.insert(
                (
                    GroupVersion::parse(api_version).group.to_string(),
                    kind.to_string(),
                ),
                scope,
            );
            self
        }
    }

    impl ScopeResolver for StaticScopes {
        fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
            let group = GroupVersion::parse(api_version).group;
            if let Some(s) = self.extra.get(&(group.to_string(), kind.to_string())) {
                return Some(*s);
            }
            ferry_proto::gvk::builtin_scope(group, kind)
        }
    }
}
