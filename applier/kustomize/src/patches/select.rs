//! Selecting resources the way kustomize's `ResMap.Select` does, for `patches` targets (and
//! any other `target:`/`select:` selector): group/version/kind compared when given; `name`
//! and `namespace` as regular expressions anchored at both ends (`^(?:…)$`), tried against
//! the resource's original and current values; `labelSelector` and `annotationSelector` in
//! Kubernetes label-selector syntax, parsed by [`ferry_proto::selector`].

use ferry_proto::selector::LabelSelector;
use regex::Regex;

use crate::kustomization::Selector;
use crate::resource::{Gvk, ResId, ResMap, Resource};

/// Bounds work on hostile selectors.
const MAX_SELECTOR_LEN: usize = 4096;

/// A compiled [`Selector`].
#[derive(Debug)]
pub struct Matcher {
    gvk: Gvk,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: LabelSelector,
    annotations: LabelSelector,
}

impl Matcher {
    /// Compiles a selector; the error says which part is invalid.
    pub fn new(sel: &Selector) -> Result<Self, String> {
        Ok(Matcher {
            gvk: Gvk {
                group: sel.group.clone().unwrap_or_default(),
                version: sel.version.clone().unwrap_or_default(),
                kind: sel.kind.clone().unwrap_or_default(),
            },
            name: anchored(sel.name.as_deref(), "name")?,
            namespace: anchored(sel.namespace.as_deref(), "namespace")?,
            labels: LabelSelector::parse(sel.label_selector.as_deref().unwrap_or(""))
                .map_err(|e| format!("invalid labelSelector: {e}"))?,
            annotations: LabelSelector::parse(sel.annotation_selector.as_deref().unwrap_or(""))
                .map_err(|e| format!("invalid annotationSelector: {e}"))?,
        })
    }

    /// Whether `res` is selected.
    pub fn matches(&self, res: &Resource) -> bool {
        let cur = res.id();
        let org = res.org_id();
        if let Some(ns) = &self.namespace
            && !ns.is_match(&effective_namespace(&org))
            && !ns.is_match(&effective_namespace(&cur))
        {
            return false;
        }
        if let Some(name) = &self.name
            && !name.is_match(&org.name)
            && !name.is_match(&cur.name)
        {
            return false;
        }
        if !self.gvk.selects_id(&cur) {
            return false;
        }
        let labels = res.labels();
        let annotations = res.annotations();
        self.labels.matches(|k| lookup(&labels, k))
            && self.annotations.matches(|k| lookup(&annotations, k))
    }

    /// Indices of the selected resources, in order.
    pub fn select(&self, resources: &ResMap) -> Vec<usize> {
        resources
            .iter()
            .enumerate()
            .filter(|(_, r)| self.matches(r))
            .map(|(i, _)| i)
            .collect()
    }
}

/// kustomize's `EffectiveNamespace`: empty means `default` for namespaced kinds; cluster-scoped
/// kinds have a namespace no selector names.
fn effective_namespace(id: &ResId) -> String {
    if id.is_cluster_scoped() {
        "_non_namespaceable_".to_string()
    } else {
        id.namespace.as_deref().unwrap_or("default").to_string()
    }
}

fn anchored(pattern: Option<&str>, what: &str) -> Result<Option<Regex>, String> {
    match pattern {
        None | Some("") => Ok(None),
        Some(p) if p.len() > MAX_SELECTOR_LEN => Err(format!("{what} pattern too long")),
        Some(p) => Regex::new(&format!("^(?:{p})$"))
            .map(Some)
            .map_err(|e| format!("invalid {what} pattern {p:?}: {e}")),
    }
}

fn lookup<'a>(set: &'a [(String, String)], key: &str) -> Option<&'a str> {
    set.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use crate::json;
    use crate::value::Value;

    use super::*;
    use crate::fs::RelPath;

    fn res(v: Value) -> Resource {
        Resource::new(v, RelPath::root()).expect("valid resource")
    }

    #[test]
    fn label_and_annotation_selectors_are_parsed_strictly() {
        let r = res(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"app": "web"}}}));
        let by_labels = |s: &str| {
            Matcher::new(&Selector {
                label_selector: Some(s.into()),
                ..Selector::default()
            })
        };
        assert!(
            by_labels("app in (web, api),!debug")
                .expect("ok")
                .matches(&r)
        );
        assert!(!by_labels("app notin (web)").expect("ok").matches(&r));
        let err = by_labels("a in (b").expect_err("unbalanced");
        assert!(err.starts_with("invalid labelSelector: "), "{err}");
        let err = Matcher::new(&Selector {
            annotation_selector: Some("a b".into()),
            ..Selector::default()
        })
        .expect_err("bad operator");
        assert!(err.starts_with("invalid annotationSelector: "), "{err}");
    }

    #[test]
    fn names_are_anchored_regexes_and_namespace_default_matches_empty() {
        let r = res(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-frontend", "labels": {"app": "web"}}}));
        let sel = |name: &str, ns: Option<&str>| Selector {
            kind: Some("Deployment".into()),
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..Selector::default()
        };
        assert!(Matcher::new(&sel("web-.*", None)).expect("ok").matches(&r));
        assert!(!Matcher::new(&sel("web", None)).expect("ok").matches(&r));
        assert!(
            !Matcher::new(&sel("frontend", None))
                .expect("ok")
                .matches(&r)
        );
        assert!(
            Matcher::new(&sel("web-frontend|x", Some("default")))
                .expect("ok")
                .matches(&r)
        );
        assert!(
            !Matcher::new(&sel("web-frontend", Some("prod")))
                .expect("ok")
                .matches(&r)
        );
        assert!(Matcher::new(&sel("(", None)).is_err());
    }

    #[test]
    fn original_name_still_selects_after_a_rename() {
        let mut r =
            res(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}));
        r.store_prev_id();
        r.set_name("prefix-cm");
        let m = Matcher::new(&Selector {
            name: Some("cm".into()),
            ..Selector::default()
        })
        .expect("ok");
        assert!(m.matches(&r));
    }

    #[test]
    fn group_version_and_annotation_selectors() {
        let r = res(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "annotations": {"team": "a"}}}));
        let m = |group: &str, version: &str, ann: &str| {
            Matcher::new(&Selector {
                group: Some(group.into()),
                version: Some(version.into()),
                annotation_selector: Some(ann.into()),
                ..Selector::default()
            })
            .expect("ok")
            .matches(&r)
        };
        assert!(m("apps", "v1", "team=a"));
        assert!(!m("batch", "", ""));
        assert!(!m("apps", "v2", ""));
        assert!(!m("apps", "v1", "team=b"));
    }
}
