//! Who may see what (cluster mode): every API request is authenticated with a Kubernetes
//! token, and a tenant sees only its own namespace's sources, their artifacts and events, plus
//! what is explicitly shared with it.
//!
//! Design. [`review`] turns a bearer token into an [`Identity`] with a `TokenReview` (the API
//! server checks signature, expiry and audience), cached briefly and never past the token's
//! own expiry; a ServiceAccount `system:serviceaccount:<ns>:<name>` is the tenant `<ns>`, and a
//! user in one of the `--operator-group`s sees everything. [`Policy`] is a pure index — fed by
//! the cluster feed from the objects' `source.ferry.dev/shared-with` annotations and by
//! `--shared-namespace` — that answers "may this identity see this source". The HTTP layer
//! asks it for every list, object, artifact (by the sources that serve the digest, so knowing
//! a digest gives nothing) and event; whatever is not visible is `403` with an empty body, the
//! same whether or not it exists, so a tenant cannot probe for other tenants' names.

pub mod review;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use ferry_proto::SourceKind;

use crate::SourceKey;

/// The annotation listing the namespaces (comma-separated, or `*` for all) a source is shared
/// with, besides its own.
pub const SHARED_WITH: &str = "source.ferry.dev/shared-with";

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A ServiceAccount of this namespace: a tenant.
    Tenant(String),
    /// A member of an operator group: sees everything.
    Operator(String),
}

/// Which namespaces may see which sources; cheap to query, replaced as a whole.
#[derive(Debug, Default)]
pub struct Policy {
    /// Every source in these namespaces is visible to every tenant.
    shared_namespaces: BTreeSet<String>,
    /// `source.ferry.dev/shared-with` of each source that has it.
    shared_with: RwLock<BTreeMap<SourceKey, Sharing>>,
}

/// The parsed `source.ferry.dev/shared-with` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// `*`.
    Everyone,
    /// These namespaces.
    Namespaces(BTreeSet<String>),
}

impl Sharing {
    /// Parses the annotation's value: `*`, or namespace names separated by commas (spaces
    /// ignored, empty items skipped).
    pub fn parse(value: &str) -> Self {
        let items: BTreeSet<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if items.contains("*") {
            Self::Everyone
        } else {
            Self::Namespaces(items)
        }
    }

    fn includes(&self, ns: &str) -> bool {
        match self {
            Self::Everyone => true,
            Self::Namespaces(set) => set.contains(ns),
        }
    }
}

impl Policy {
    pub fn new(shared_namespaces: impl IntoIterator<Item = String>) -> Self {
        Self {
            shared_namespaces: shared_namespaces.into_iter().collect(),
            shared_with: RwLock::default(),
        }
    }

    /// Replaces the sharing annotations (the cluster feed, after each change).
    pub fn set_sharing(&self, sharing: BTreeMap<SourceKey, Sharing>) {
        *self.shared_with.write().unwrap_or_else(|p| p.into_inner()) = sharing;
    }

    /// May `who` see `source`? A chart resolution (`HelmChart`) is visible with its
    /// `HelmRepository`.
    pub fn visible(&self, who: &Identity, source: &SourceKey) -> bool {
        let tenant = match who {
            Identity::Operator(_) => return true,
            Identity::Tenant(ns) => ns,
        };
        if &source.namespace == tenant || self.shared_namespaces.contains(&source.namespace) {
            return true;
        }
        let owner = match source.kind {
            SourceKind::HelmChart => {
                let repo = source.name.split('/').next().unwrap_or_default();
                SourceKey::of(SourceKind::HelmRepository, &source.namespace, repo)
            }
            _ => source.clone(),
        };
        self.shared_with
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&owner)
            .is_some_and(|s| s.includes(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_see_their_namespace_shared_namespaces_and_what_is_shared_with_them() {
        let p = Policy::new(["platform".to_string()]);
        let git = |ns: &str, n: &str| SourceKey::new(ns, n);
        let helm = |ns: &str, n: &str| SourceKey::of(SourceKind::HelmRepository, ns, n);
        p.set_sharing(BTreeMap::from([
            (git("team-b", "base"), Sharing::parse("team-a, team-c")),
            (helm("team-b", "charts"), Sharing::parse("*")),
        ]));
        let a = Identity::Tenant("team-a".into());
        let d = Identity::Tenant("team-d".into());
        assert!(p.visible(&a, &git("team-a", "app")));
        assert!(p.visible(&a, &git("platform", "infra")));
        assert!(p.visible(&a, &git("team-b", "base")));
        assert!(!p.visible(&d, &git("team-b", "base")));
        assert!(!p.visible(&a, &git("team-b", "private")));
        // A chart resolution goes with its repository.
        let chart = SourceKey::helm_chart("team-b", "charts", "podinfo", "^6");
        assert!(p.visible(&d, &chart));
        let private_chart = SourceKey::helm_chart("team-b", "other", "podinfo", "^6");
        assert!(!p.visible(&d, &private_chart));
        assert!(p.visible(&Identity::Operator("ops".into()), &git("team-b", "private")));
        assert_eq!(Sharing::parse(" , "), Sharing::Namespaces(BTreeSet::new()));
    }
}
