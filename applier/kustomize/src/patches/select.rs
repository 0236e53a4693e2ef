//! Selecting resources the way kustomize's `ResMap.Select` does, for `patches` targets (and
//! any other `target:`/`select:` selector): group/version/kind compared when given; `name`
//! and `namespace` as regular expressions anchored at both ends (`^(?:…)$`), tried against
//! the resource's original and current values; `labelSelector` and `annotationSelector` in
//! Kubernetes label-selector syntax (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`).

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
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
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
            labels: parse_label_selector(sel.label_selector.as_deref().unwrap_or(""))
                .map_err(|e| format!("invalid labelSelector: {e}"))?,
            annotations: parse_label_selector(sel.annotation_selector.as_deref().unwrap_or(""))
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
        if !self.gvk.selects(&cur.gvk) {
            return false;
        }
        let labels = res.labels();
        let annotations = res.annotations();
        self.labels.iter().all(|r| r.matches(&labels))
            && self.annotations.iter().all(|r| r.matches(&annotations))
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
    if id.gvk.is_cluster_scoped() {
        "_non_namespaceable_".to_string()
    } else if id.namespace.is_empty() {
        "default".to_string()
    } else {
        id.namespace.clone()
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

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    /// Whether a label (or annotation) set satisfies this requirement.
    pub fn matches(&self, set: &[(String, String)]) -> bool {
        let get = |k: &str| {
            set.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        match self {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

/// Parses a Kubernetes label selector (`labels.Parse`); the empty selector selects all.
pub fn parse_label_selector(text: &str) -> Result<Vec<Requirement>, String> {
    if text.len() > MAX_SELECTOR_LEN {
        return Err("selector too long".to_string());
    }
    let mut out = Vec::new();
    for part in split_top_level(text)? {
        let part = part.trim();
        if part.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(format!("empty requirement in {text:?}"));
        }
        out.push(parse_requirement(part)?);
    }
    Ok(out)
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ')' in {text:?}"))?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '(' in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(valid_key(key.trim())?));
    }
    for (op, ctor) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(ctor(valid_key(k.trim())?, valid_value(v.trim())?));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim();
        let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
            ("notin", l)
        } else if let Some(l) = rest.strip_prefix("in") {
            ("in", l)
        } else {
            return Err(format!("unknown operator in requirement {part:?}"));
        };
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("expected a (value, …) list in {part:?}"))?;
        let values = inner
            .split(',')
            .map(|v| valid_value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let key = valid_key(key)?;
        return Ok(if op == "in" {
            Requirement::In(key, values)
        } else {
            Requirement::NotIn(key, values)
        });
    }
    Ok(Requirement::Exists(valid_key(part)?))
}

fn valid_key(k: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid key {k:?}"))
    }
}

fn valid_value(v: &str) -> Result<String, String> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(v.to_string())
    } else {
        Err(format!("invalid value {v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fs::RelPath;

    fn res(v: serde_json::Value) -> Resource {
        Resource::new(v, RelPath::root()).expect("valid resource")
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_syntax() {
        let reqs = parse_label_selector("app=web, tier!=db,env in (prod, stage),!debug,team")
            .expect("valid");
        assert_eq!(reqs.len(), 5);
        let set = labels(&[("app", "web"), ("env", "prod"), ("team", "a")]);
        assert!(reqs.iter().all(|r| r.matches(&set)));
        let set = labels(&[("app", "web"), ("env", "dev"), ("team", "a")]);
        assert!(!reqs.iter().all(|r| r.matches(&set)));
        let notin = parse_label_selector("env notin (prod)").expect("valid");
        assert!(notin[0].matches(&labels(&[])));
        assert!(!notin[0].matches(&labels(&[("env", "prod")])));
        assert!(parse_label_selector("").expect("empty").is_empty());
        assert!(parse_label_selector("a in (b").is_err());
        assert!(parse_label_selector("a=b,,c").is_err());
        assert!(parse_label_selector("a b c").is_err());
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
