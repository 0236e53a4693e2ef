//! A HelmRelease's values: `valuesFrom` in list order, then the inline `values`, merged as Flux
//! merges them (maps deep-merged, anything else replaced by the later value), and the config
//! digest over the result.
//!
//! A `valuesFrom` entry with `targetPath` puts the key's content, as a string, at that path in
//! Helm's `--set` syntax (`a.b[0].c`, `\.` for a literal dot), overriding what came before —
//! Flux's semantics (it does not parse the value, so `"true"` stays a string).
//!
//! The digest is `sha256` over the values as JSON with sorted keys and no whitespace: two specs
//! that differ only in key order or YAML formatting get the same digest, so reformatting a
//! ConfigMap does not cause an upgrade.

use serde_json::{Map, Value};

use ferry_proto::{Digest, Hasher};

/// Deepest path a `targetPath` may have, and the largest list index it may name (so a path
/// cannot make the agent allocate a huge list).
const MAX_PATH_DEPTH: usize = 64;
const MAX_LIST_INDEX: usize = 1024;

/// Why a piece of values could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValuesError {
    /// A `targetPath` is not valid `--set` path syntax.
    #[error("targetPath {path:?}: {why}")]
    BadPath { path: String, why: String },
    /// Values YAML did not parse or is not a mapping.
    #[error("{what}: {why}")]
    NotAMap { what: String, why: String },
}

/// Merges `overlay` into `base`: maps merge key by key, recursively; any other overlay value
/// (including `null`, lists and scalars) replaces the base value. Flux's `MergeMaps`.
pub fn merge(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Parses values YAML (a ConfigMap or Secret key) into a map; empty text is no values.
pub fn parse_yaml(what: &str, text: &str) -> Result<Map<String, Value>, ValuesError> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    // As helm reads a values file (YAML 1.1: `yes` is true, `0755` is 493), so values from a
    // ConfigMap mean what they mean to `helm install -f`.
    let mut docs = ferry_kustomize::yaml::json::parse_documents_yaml11(text).map_err(|why| {
        ValuesError::NotAMap {
            what: what.to_string(),
            why,
        }
    })?;
    if docs.len() > 1 {
        return Err(ValuesError::NotAMap {
            what: what.to_string(),
            why: "more than one YAML document".into(),
        });
    }
    match docs.pop().unwrap_or(Value::Null) {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(ValuesError::NotAMap {
            what: what.to_string(),
            why: format!("expected a mapping, got {}", kind(&other)),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One step of a `--set` path.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Splits `a.b\.c[0].d` into `a`, `b.c`, `[0]`, `d`.
fn parse_path(path: &str) -> Result<Vec<Step>, ValuesError> {
    let bad = |why: &str| ValuesError::BadPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    let mut steps = vec![];
    let mut key = String::new();
    let mut chars = path.chars().peekable();
    let mut after_index = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => key.push(n),
                None => return Err(bad("ends with a lone backslash")),
            },
            '.' => {
                if key.is_empty() && !after_index {
                    return Err(bad("empty key"));
                }
                if !key.is_empty() {
                    steps.push(Step::Key(std::mem::take(&mut key)));
                }
                after_index = false;
                continue;
            }
            '[' => {
                if key.is_empty() && !after_index {
                    return Err(bad("a list index must follow a key"));
                }
                if !key.is_empty() {
                    steps.push(Step::Key(std::mem::take(&mut key)));
                }
                let mut digits = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(d) if d.is_ascii_digit() => digits.push(d),
                        _ => return Err(bad("list index must be [<digits>]")),
                    }
                }
                let i: usize = digits
                    .parse()
                    .map_err(|_| bad("list index must be [<digits>]"))?;
                if i > MAX_LIST_INDEX {
                    return Err(bad(&format!("list index {i} is over {MAX_LIST_INDEX}")));
                }
                steps.push(Step::Index(i));
                after_index = true;
                continue;
            }
            _ => {
                if after_index {
                    return Err(bad("expected '.' or '[' after a list index"));
                }
                key.push(c)
            }
        }
        after_index = false;
    }
    if !key.is_empty() {
        steps.push(Step::Key(key));
    } else if !after_index {
        return Err(bad("empty key"));
    }
    if steps.len() > MAX_PATH_DEPTH {
        return Err(bad(&format!("deeper than {MAX_PATH_DEPTH}")));
    }
    Ok(steps)
}

/// Sets `value` at `path` in `values`, creating maps and lists on the way; an existing value of
/// the wrong type on the way is replaced, as Helm's `--set` does.
pub fn set_path(
    values: &mut Map<String, Value>,
    path: &str,
    value: Value,
) -> Result<(), ValuesError> {
    let steps = parse_path(path)?;
    let Some((Step::Key(first), rest)) = steps.split_first() else {
        return Err(ValuesError::BadPath {
            path: path.to_string(),
            why: "must start with a key".into(),
        });
    };
    let slot = values.entry(first.clone()).or_insert(Value::Null);
    set_in(slot, rest, value);
    Ok(())
}

fn set_in(slot: &mut Value, steps: &[Step], value: Value) {
    let Some((step, rest)) = steps.split_first() else {
        *slot = value;
        return;
    };
    match step {
        Step::Key(k) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let map = slot.as_object_mut().expect("just made an object");
            set_in(map.entry(k.clone()).or_insert(Value::Null), rest, value);
        }
        Step::Index(i) => {
            if !slot.is_array() {
                *slot = Value::Array(vec![]);
            }
            let list = slot.as_array_mut().expect("just made a list");
            if list.len() <= *i {
                list.resize(*i + 1, Value::Null);
            }
            set_in(&mut list[*i], rest, value);
        }
    }
}

/// `sha256:<hex>` over `values` encoded as compact JSON with keys sorted at every level.
pub fn config_digest(values: &Map<String, Value>) -> Digest {
    let mut h = Hasher::new();
    let mut buf = Vec::new();
    canonical(&Value::Object(values.clone()), &mut buf);
    h.update(&buf);
    h.finish()
}

/// Compact JSON with sorted keys, whatever map order serde_json was built with.
pub fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).expect("a string serialises"));
                out.push(b':');
                canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).expect("a scalar serialises")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test values must be a mapping"),
        }
    }

    #[test]
    fn later_values_win_maps_merge_lists_replace() {
        let mut base = map(json!({"image": {"repo": "a", "tag": "1"}, "ports": [1, 2], "x": 1}));
        merge(
            &mut base,
            map(json!({"image": {"tag": "2"}, "ports": [3], "x": {"y": 1}})),
        );
        assert_eq!(
            Value::Object(base),
            json!({"image": {"repo": "a", "tag": "2"}, "ports": [3], "x": {"y": 1}})
        );
    }

    #[test]
    fn target_path_follows_set_syntax() {
        let mut v = map(json!({"image": {"tag": "old", "repo": "r"}}));
        set_path(&mut v, "image.tag", json!("true")).expect("valid");
        set_path(&mut v, r"annotations.example\.com/x", json!("y")).expect("valid");
        set_path(&mut v, "list[1].name", json!("n")).expect("valid");
        assert_eq!(
            Value::Object(v),
            json!({"image": {"tag": "true", "repo": "r"},
                   "annotations": {"example.com/x": "y"},
                   "list": [null, {"name": "n"}]})
        );
        for bad in ["", "a..b", "[0]", "a[x]", "a[0]b", r"a\", "a[99999]"] {
            let err = set_path(&mut Map::new(), bad, json!(1)).expect_err(bad);
            assert!(err.to_string().contains("targetPath"), "{err}");
        }
    }

    #[test]
    fn digest_ignores_key_order_and_sees_values() {
        let a = parse_yaml("a", "b: 1\na: {y: 2, x: 1}\n").expect("yaml");
        let b = map(json!({"a": {"x": 1, "y": 2}, "b": 1}));
        assert_eq!(config_digest(&a), config_digest(&b));
        let c = map(json!({"a": {"x": 1, "y": 3}, "b": 1}));
        assert_ne!(config_digest(&a), config_digest(&c));
        let mut buf = vec![];
        canonical(&Value::Object(b), &mut buf);
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            r#"{"a":{"x":1,"y":2},"b":1}"#
        );
    }

    #[test]
    fn values_yaml_must_be_a_mapping() {
        assert!(parse_yaml("cm", "").expect("empty").is_empty());
        let err = parse_yaml("ConfigMap/team-a/v key values.yaml", "- a\n").expect_err("list");
        assert!(err.to_string().starts_with("ConfigMap/team-a/v"), "{err}");
        assert!(parse_yaml("x", "a: [").is_err());
        let v = parse_yaml("x", "on: yes\nmode: 0755\nname: 'no'\n").expect("yaml");
        assert_eq!(v["true"], true, "YAML 1.1, as helm reads values");
        assert_eq!(v["mode"], 493);
        assert_eq!(v["name"], "no");
    }
}
