//! Kubernetes label selectors (`labels.Parse` syntax): `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas. One implementation shared by the
//! kustomize engine (patch/replacement targets' `labelSelector` and `annotationSelector`) and
//! the Kubernetes API test server (list/watch `labelSelector`). Parsing is strict, because a
//! selector that silently matches more than intended patches or lists the wrong objects.

use thiserror::Error;

/// Bounds work on hostile selectors.
pub const MAX_SELECTOR_LEN: usize = 4096;
/// Kubernetes' limits: a key's name part and a value are at most 63 characters, a key's
/// DNS-subdomain prefix at most 253.
const MAX_NAME_LEN: usize = 63;
const MAX_PREFIX_LEN: usize = 253;

/// Why a selector does not parse; names the offending requirement (or the whole selector).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// The selector is longer than [`MAX_SELECTOR_LEN`] (its length).
    #[error("selector is {0} bytes, longer than the limit of {MAX_SELECTOR_LEN}")]
    TooLong(usize),
    /// Parentheses do not balance.
    #[error("unbalanced parentheses in selector {0:?}")]
    Unbalanced(String),
    /// A requirement between commas is empty.
    #[error("empty requirement in selector {0:?}")]
    EmptyRequirement(String),
    /// A key is not a valid label key.
    #[error("requirement {requirement:?}: invalid key {key:?}")]
    InvalidKey { requirement: String, key: String },
    /// A value is not a valid label value.
    #[error("requirement {requirement:?}: invalid value {value:?}")]
    InvalidValue { requirement: String, value: String },
    /// The operator is none of `=`, `==`, `!=`, `in`, `notin`.
    #[error("requirement {0:?}: unknown operator (expected =, ==, !=, in, notin)")]
    UnknownOperator(String),
    /// `in`/`notin` without a parenthesised list.
    #[error("requirement {0:?}: expected a parenthesised value list, as in `key in (a, b)`")]
    ExpectedList(String),
    /// `in`/`notin` with an empty list.
    #[error("requirement {0:?}: the value list of `in`/`notin` must not be empty")]
    EmptyList(String),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; every requirement must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses a selector; whitespace around requirements, keys and values is ignored.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong(text.len()));
        }
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        split_top_level(text)?
            .into_iter()
            .map(|part| match part.trim() {
                "" => Err(SelectorError::EmptyRequirement(text.to_string())),
                part => parse_requirement(part),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether this selector selects nothing out (it has no requirements).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the label (or annotation) set seen through `get` (key → value) satisfies
    /// every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, SelectorError> {
    let unbalanced = || SelectorError::Unbalanced(text.to_string());
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(unbalanced)?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(unbalanced());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(valid_key(part, key.trim())?));
    }
    type Ctor = fn(String, String) -> Requirement;
    for (op, ctor) in [
        ("!=", Requirement::NotEquals as Ctor),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(ctor(
                valid_key(part, k.trim())?,
                valid_value(part, v.trim())?,
            ));
        }
    }
    let Some((key, rest)) = part.split_once(char::is_whitespace) else {
        return Ok(Requirement::Exists(valid_key(part, part)?));
    };
    let rest = rest.trim_start();
    let (notin, list) = if let Some(l) = rest.strip_prefix("notin") {
        (true, l)
    } else if let Some(l) = rest.strip_prefix("in") {
        (false, l)
    } else {
        return Err(SelectorError::UnknownOperator(part.to_string()));
    };
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| SelectorError::ExpectedList(part.to_string()))?;
    if inner.trim().is_empty() {
        return Err(SelectorError::EmptyList(part.to_string()));
    }
    let values = inner
        .split(',')
        .map(|v| valid_value(part, v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let key = valid_key(part, key)?;
    Ok(if notin {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

/// A key is `[prefix/]name`: the name non-empty and at most 63 characters, the optional
/// prefix non-empty and at most 253; both of letters, digits, `-`, `_`, `.`.
fn valid_key(part: &str, key: &str) -> Result<String, SelectorError> {
    let charset = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && name.len() <= MAX_NAME_LEN && charset(name);
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= MAX_PREFIX_LEN && charset(p));
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(SelectorError::InvalidKey {
            requirement: part.to_string(),
            key: key.to_string(),
        })
    }
}

/// A value is empty or at most 63 letters, digits, `-`, `_`, `.`.
fn valid_value(part: &str, value: &str) -> Result<String, SelectorError> {
    let ok = value.len() <= MAX_NAME_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(SelectorError::InvalidValue {
            requirement: part.to_string(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(sel: &str, labels: &[(&str, &str)]) -> bool {
        LabelSelector::parse(sel)
            .expect(sel)
            .matches(|k| labels.iter().find(|(key, _)| *key == k).map(|(_, v)| *v))
    }

    #[test]
    fn covers_the_kubernetes_syntax() {
        let set = [("app", "web"), ("tier", "front")];
        assert!(matches("", &set));
        assert!(matches("  ", &set));
        assert!(matches("app=web", &set));
        assert!(matches("app==web,tier", &set));
        assert!(!matches("app!=web", &set));
        assert!(matches("app!=api", &set));
        assert!(matches("app in (api, web)", &set));
        assert!(!matches("app notin (web)", &set));
        assert!(matches("missing notin (x)", &set));
        assert!(!matches("missing in (x)", &set));
        assert!(!matches("missing=x", &set));
        assert!(matches("missing!=x", &set));
        assert!(matches("!missing", &set));
        assert!(!matches("!app", &set));
        assert!(matches("tier in (front),app=web", &set));
        assert!(matches("app.kubernetes.io/name!=x", &set));
    }

    #[test]
    fn all_requirements_must_hold() {
        let sel = "app=web, tier!=db,env in (prod, stage),!debug,team";
        assert!(matches(
            sel,
            &[("app", "web"), ("env", "prod"), ("team", "a")]
        ));
        assert!(!matches(
            sel,
            &[("app", "web"), ("env", "dev"), ("team", "a")]
        ));
        assert!(!matches(
            sel,
            &[
                ("app", "web"),
                ("env", "prod"),
                ("team", "a"),
                ("debug", "")
            ]
        ));
        assert!(matches("env notin (prod)", &[]));
        assert!(!matches("env notin (prod)", &[("env", "prod")]));
    }

    #[test]
    fn rejects_malformed_selectors_naming_the_requirement() {
        let err = |s: &str| LabelSelector::parse(s).expect_err(s).to_string();
        assert!(err("a in x").contains("\"a in x\""));
        assert!(err("a b").contains("unknown operator"));
        assert!(err("a b c").contains("unknown operator"));
        assert!(err("a in (b").contains("unbalanced"));
        assert!(err("a in b)").contains("unbalanced"));
        assert!(err("a=b,,c").contains("empty requirement"));
        assert!(err("a=b,").contains("empty requirement"));
        assert!(err("a in ()").contains("must not be empty"));
        assert!(err("a notin ( )").contains("must not be empty"));
        assert!(err("=b").contains("invalid key"));
        assert!(err("a b=c").contains("invalid key"));
        assert!(err("/a").contains("invalid key"));
        assert!(err("a/").contains("invalid key"));
        assert!(err("a=b c").contains("invalid value \"b c\""));
        assert!(err("a in (x, y z)").contains("invalid value"));
        assert!(err(&format!("{}=x", "k".repeat(64))).contains("invalid key"));
        assert!(err(&format!("k={}", "v".repeat(64))).contains("invalid value"));
        assert!(err(&"a,".repeat(MAX_SELECTOR_LEN)).contains("longer than the limit"));
    }

    #[test]
    fn keys_with_prefixes_and_empty_values_are_valid() {
        assert!(matches("example.com/team=", &[("example.com/team", "")]));
        assert!(LabelSelector::parse(&format!("{}/n=x", "p".repeat(253))).is_ok());
        assert!(LabelSelector::parse(&format!("{}/n=x", "p".repeat(254))).is_err());
        assert!(LabelSelector::parse("").expect("empty").is_empty());
    }
}
