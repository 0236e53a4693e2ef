//! Post-build variable substitution, as Flux's kustomize-controller does it with strict
//! post-build substitutions: each object is rendered to YAML, `${VAR}` expressions are replaced,
//! and the text is parsed back — so `replicas: ${REPLICAS}` becomes a number.
//!
//! Supported: `${VAR}`, `${VAR:=default}` and `${VAR:-default}` (default when unset or empty),
//! `${VAR=default}` and `${VAR-default}` (default when unset), and `$${VAR}` for a literal
//! `${VAR}`. A variable that is unset and has no default is an error (strict mode), so a typo
//! never ships an empty image tag. Unlike envsubst, a bare `$VAR` is left alone: shell scripts
//! in ConfigMaps keep their `$HOME`. Objects annotated `kustomize.toolkit.fluxcd.io/substitute:
//! disabled` (or `ferry.dev/substitute: disabled`) are not touched.

use std::collections::BTreeMap;

use serde_json::Value;

/// Annotations that opt an object out of substitution.
pub const DISABLE_ANNOTATIONS: [&str; 2] = [
    "kustomize.toolkit.fluxcd.io/substitute",
    "ferry.dev/substitute",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstituteError {
    #[error("variable {name:?} is not set and has no default (use ${{{name}:=default}})")]
    Unset { name: String },
    #[error("invalid variable expression {expr:?}: {why}")]
    Invalid { expr: String, why: &'static str },
    #[error("variable name {0:?} is invalid: names must match ^[_a-zA-Z][_a-zA-Z0-9]*$")]
    BadName(String),
    #[error("the substituted YAML no longer parses as one object: {0}")]
    Reparse(String),
}

/// True for names Flux accepts (`^[_[:alpha:]][_[:alpha:][:digit:]]*$`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Checks every variable name (inline `substitute` keys and ConfigMap/Secret keys).
pub fn check_names<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), SubstituteError> {
    match names.into_iter().find(|n| !valid_name(n)) {
        Some(bad) => Err(SubstituteError::BadName(bad.clone())),
        None => Ok(()),
    }
}

/// Whether `obj` opted out via annotation.
pub fn disabled(obj: &Value) -> bool {
    let ann = obj.pointer("/metadata/annotations");
    DISABLE_ANNOTATIONS.iter().any(|k| {
        ann.and_then(|a| a.get(*k))
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
    })
}

/// Substitutes variables in one object. Objects without `${` are returned unchanged without
/// a YAML round trip.
pub fn substitute_object(
    obj: Value,
    vars: &BTreeMap<String, String>,
) -> Result<Value, SubstituteError> {
    if disabled(&obj) || !contains_expr(&obj) {
        return Ok(obj);
    }
    let yaml = ferry_kustomize::yaml::json::to_yaml(&obj);
    let text = substitute_text(&yaml, vars)?;
    let mut docs =
        ferry_kustomize::yaml::json::parse_documents(&text).map_err(SubstituteError::Reparse)?;
    match (docs.pop(), docs.is_empty()) {
        (Some(v @ Value::Object(_)), true) => Ok(v),
        _ => Err(SubstituteError::Reparse(
            "a substituted value turned the object into something else".into(),
        )),
    }
}

fn contains_expr(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Array(a) => a.iter().any(contains_expr),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains("${") || contains_expr(v)),
        _ => false,
    }
}

/// Expands `${...}` expressions in `text`.
pub fn substitute_text(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            // `$${VAR}` is the escape for a literal `${VAR}`.
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| SubstituteError::Invalid {
                expr: tail.chars().take(40).collect(),
                why: "missing closing '}'",
            })?;
            out.push_str(&expand(&after[..end], vars)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstituteError> {
    let name_len = expr
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let invalid = |why| SubstituteError::Invalid {
        expr: format!("${{{expr}}}"),
        why,
    };
    if !valid_name(name) {
        return Err(invalid("expected a variable name"));
    }
    let value = vars.get(name);
    let (default, when_empty) = if op.is_empty() {
        (None, false)
    } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        (Some(d), true)
    } else if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
        (Some(d), false)
    } else {
        return Err(invalid(
            "expected ${VAR}, ${VAR:=default} or ${VAR:-default}",
        ));
    };
    match (value, default) {
        (Some(v), Some(d)) if when_empty && v.is_empty() => Ok(d.to_string()),
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(SubstituteError::Unset {
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        let v = vars(&[("ENV", "prod"), ("EMPTY", "")]);
        let cases = [
            ("name: app-${ENV}", "name: app-prod"),
            ("x: ${MISSING:=fallback}", "x: fallback"),
            ("x: ${MISSING:-fallback}", "x: fallback"),
            ("x: ${EMPTY:=fallback}", "x: fallback"),
            ("x: ${EMPTY=fallback}", "x: "),
            ("x: ${ENV:=fallback}", "x: prod"),
            ("x: $${ENV}", "x: ${ENV}"),
            ("cmd: echo $HOME $1 $$", "cmd: echo $HOME $1 $$"),
            ("a: ${ENV}${ENV}", "a: prodprod"),
            ("x: ${MISSING:=}", "x: "),
        ];
        for (input, want) in cases {
            assert_eq!(substitute_text(input, &v).expect(input), want, "{input}");
        }
    }

    #[test]
    fn strict_mode_refuses_unset_and_malformed_expressions() {
        let v = vars(&[]);
        assert_eq!(
            substitute_text("image: app:${TAG}", &v),
            Err(SubstituteError::Unset { name: "TAG".into() })
        );
        for bad in [
            "x: ${}",
            "x: ${1ABC}",
            "x: ${A.B}",
            "x: ${A",
            "x: ${A:?err}",
        ] {
            assert!(
                matches!(
                    substitute_text(bad, &v),
                    Err(SubstituteError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn object_substitution_retypes_values_and_respects_the_opt_out() {
        let v = vars(&[("REPLICAS", "3"), ("TAG", "v1.0.1")]);
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": "${REPLICAS}", "template": {"spec": {"containers": [
                {"name": "app", "image": "my-registry/my-app:${TAG}"}]}}}
        });
        let out = substitute_object(obj, &v).expect("substitutes");
        assert_eq!(out["spec"]["replicas"], json!(3));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "my-registry/my-app:v1.0.1"
        );

        let off = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "script", "annotations": {
                "kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
            "data": {"run.sh": "echo ${UNSET}"}
        });
        assert_eq!(substitute_object(off.clone(), &v).expect("untouched"), off);
    }

    #[test]
    fn names_are_validated_like_flux() {
        assert!(valid_name("_A1") && valid_name("cluster_env"));
        assert!(!valid_name("1A") && !valid_name("A-B") && !valid_name(""));
        let v = vars(&[("GOOD", "1"), ("bad-name", "2")]);
        assert_eq!(
            check_names(v.keys()),
            Err(SubstituteError::BadName("bad-name".into()))
        );
    }
}
