//! `replacements:` — copy one field of one object (the source) into fields of other objects
//! (the targets), as kustomize's replacement filter does: the source is selected by exact
//! id (current or previous), targets by C2's selector matcher (regex names, label and
//! annotation selectors) minus `reject`; field paths are dot-separated with `[key=value]`
//! list matchers, numeric indexes and `*`; `options.delimiter/index` pick or splice one part
//! of a scalar; `options.create` creates missing fields. A scalar target keeps its YAML type
//! when the new text allows it (kustomize copies only the scalar's text).

use crate::value::{Map, Value};

use crate::error::{Error, Location, Result};
use crate::kustomization::{FieldOptions, Replacement, ReplacementField, Selector, SourceSelector};
use crate::loader::KustCtx;
use crate::patches::select::Matcher;
use crate::resource::{Gvk, ResMap, Resource, scalar_to_string};

const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Match(String, String),
    Index(usize),
    Any,
}

/// Splits `a.b[c=d].e` / `a.[c=d].0` into segments; dots inside brackets do not split.
fn parse_path(path: &str) -> std::result::Result<Vec<Seg>, String> {
    let mut raw: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => {
                if depth == 0 && !cur.is_empty() {
                    raw.push(std::mem::take(&mut cur));
                }
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ']' in '{path}'"))?;
                cur.push(c);
                if depth == 0 {
                    raw.push(std::mem::take(&mut cur));
                }
            }
            '.' if depth == 0 => {
                if !cur.is_empty() {
                    raw.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '[' in '{path}'"));
    }
    if !cur.is_empty() {
        raw.push(cur);
    }
    raw.into_iter()
        .map(|s| {
            if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                // kyaml's SmarterPathSplitter: `[key=value]` matches a list element, a
                // bracket without `=` is a map key that may hold dots or slashes
                // (`metadata.annotations.[cert-manager.io/inject-ca-from]`).
                Ok(match inner.split_once('=') {
                    Some((k, v)) => Seg::Match(k.to_string(), v.to_string()),
                    None => Seg::Key(inner.to_string()),
                })
            } else if s == "*" {
                Ok(Seg::Any)
            } else if let Ok(i) = s.parse::<usize>() {
                Ok(Seg::Index(i))
            } else {
                Ok(Seg::Key(s))
            }
        })
        .collect()
}

/// Read-only lookup (source side); `*` and matchers take the first match.
fn lookup<'v>(node: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    let Some((seg, rest)) = path.split_first() else {
        return Some(node);
    };
    match (seg, node) {
        (Seg::Key(k), Value::Object(m)) => lookup(m.get(k)?, rest),
        (Seg::Index(i), Value::Array(a)) => lookup(a.get(*i)?, rest),
        (Seg::Index(i), Value::Object(m)) => lookup(m.get(&i.to_string())?, rest),
        (Seg::Match(k, v), Value::Array(a)) => a
            .iter()
            .filter(|e| e.get(k).map(scalar_to_string).as_deref() == Some(v.as_str()))
            .find_map(|e| lookup(e, rest)),
        (Seg::Any, Value::Array(a)) => a.iter().find_map(|e| lookup(e, rest)),
        (Seg::Any, Value::Object(m)) => m.values().find_map(|e| lookup(e, rest)),
        _ => None,
    }
}

/// Calls `f` on every match of `path` under `node`, creating missing steps when `create`.
fn walk_mut(
    node: &mut Value,
    path: &[Seg],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> std::result::Result<(), String>,
) -> std::result::Result<usize, String> {
    let Some((seg, rest)) = path.split_first() else {
        f(node)?;
        return Ok(1);
    };
    let placeholder = || match rest.first() {
        None => Value::Null,
        Some(Seg::Index(_)) | Some(Seg::Match(..)) => Value::Array(Vec::new()),
        _ => Value::Object(Map::new()),
    };
    if create && node.is_null() {
        *node = match seg {
            Seg::Index(_) | Seg::Match(..) => Value::Array(Vec::new()),
            _ => Value::Object(Map::new()),
        };
    }
    match (seg, node) {
        (Seg::Key(k), Value::Object(m)) => {
            if !m.contains_key(k) {
                if !create {
                    return Ok(0);
                }
                m.insert(k.clone(), placeholder());
            }
            walk_mut(m.get_mut(k).expect("present or inserted"), rest, create, f)
        }
        (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
            Some(e) => walk_mut(e, rest, create, f),
            None => Ok(0),
        },
        (Seg::Match(k, v), Value::Array(a)) => {
            let mut n = 0;
            for e in a.iter_mut() {
                if e.get(k).map(scalar_to_string).as_deref() == Some(v.as_str()) {
                    n += walk_mut(e, rest, create, f)?;
                }
            }
            if n == 0 && create {
                let mut m = Map::new();
                m.insert(k.clone(), Value::String(v.clone()));
                a.push(Value::Object(m));
                let last = a.last_mut().expect("just pushed");
                n += walk_mut(last, rest, create, f)?;
            }
            Ok(n)
        }
        (Seg::Any, Value::Array(a)) => {
            let mut n = 0;
            for e in a.iter_mut() {
                n += walk_mut(e, rest, create, f)?;
            }
            Ok(n)
        }
        (Seg::Any, Value::Object(m)) => {
            let mut n = 0;
            for e in m.values_mut() {
                n += walk_mut(e, rest, create, f)?;
            }
            Ok(n)
        }
        _ => Ok(0),
    }
}

/// YAML 1.2 core resolution of a plain scalar's text.
fn resolve_plain(text: &str) -> Value {
    match text {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if text.chars().any(|c| c.is_ascii_digit())
        && !text.contains(char::is_alphabetic)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn set_value(
    target: &mut Value,
    value: &Value,
    opts: Option<&FieldOptions>,
) -> std::result::Result<(), String> {
    let mut value = value.clone();
    if let Some(o) = opts.filter(|o| !o.delimiter.is_empty()) {
        if target.is_object() || target.is_array() {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let current = scalar_to_string(target);
        let mut parts: Vec<String> = current
            .split(o.delimiter.as_str())
            .map(str::to_string)
            .collect();
        let v = scalar_to_string(&value);
        if o.index < 0 {
            parts.insert(0, v);
        } else if o.index as usize >= parts.len() {
            parts.push(v);
        } else {
            parts[o.index as usize] = v;
        }
        value = Value::String(parts.join(&o.delimiter));
    }
    *target = match (&*target, &value) {
        (_, Value::Object(_) | Value::Array(_)) => value,
        (Value::String(_), v) => Value::String(scalar_to_string(v)),
        (Value::Object(_) | Value::Array(_), v) => v.clone(),
        (_, v) => resolve_plain(&scalar_to_string(v)),
    };
    Ok(())
}

fn source_selects(sel: &SourceSelector, r: &Resource) -> bool {
    let gvk = Gvk {
        group: sel.group.clone().unwrap_or_default(),
        version: sel.version.clone().unwrap_or_default(),
        kind: sel.kind.clone().unwrap_or_default(),
    };
    std::iter::once(r.id())
        .chain(r.prev_ids.iter().cloned())
        .any(|id| {
            gvk.selects_id(&id)
                && sel
                    .name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == id.name)
                && sel
                    .namespace
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == id.namespace_or_empty())
        })
}

fn source_value(resources: &ResMap, src: &SourceSelector, at: &Location) -> Result<Value> {
    let matches: Vec<&Resource> = resources
        .iter()
        .filter(|r| source_selects(src, r))
        .collect();
    let describe = || {
        format!(
            "{} {} {}",
            src.kind.as_deref().unwrap_or("*"),
            src.name.as_deref().unwrap_or("*"),
            src.namespace
                .as_deref()
                .map(|n| format!("(namespace {n})"))
                .unwrap_or_default()
        )
    };
    let r = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::field(
                at,
                format!("nothing selected by source {}", describe()),
            ));
        }
        _ => {
            return Err(Error::field(
                at,
                format!("multiple matches for source {}", describe()),
            ));
        }
    };
    let fp = src
        .field_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_FIELD_PATH);
    let path = parse_path(fp).map_err(|e| Error::field(at, e))?;
    let v = lookup(&r.obj, &path)
        .filter(|v| !v.is_null())
        .ok_or_else(|| {
            Error::field(
                at,
                format!(
                    "fieldPath `{fp}` is missing for replacement source {}",
                    r.id()
                ),
            )
        })?;
    match src.options.as_ref().filter(|o| !o.delimiter.is_empty()) {
        None => Ok(v.clone()),
        Some(o) => {
            if v.is_object() || v.is_array() {
                return Err(Error::field(
                    at,
                    "delimiter option can only be used with scalar nodes",
                ));
            }
            let s = scalar_to_string(v);
            let parts: Vec<&str> = s.split(o.delimiter.as_str()).collect();
            let i = usize::try_from(o.index)
                .ok()
                .filter(|i| *i < parts.len())
                .ok_or_else(|| {
                    Error::field(
                        at,
                        format!("options.index {} is out of bounds for value {s}", o.index),
                    )
                })?;
            Ok(Value::String(parts[i].to_string()))
        }
    }
}

fn apply_one(resources: &mut ResMap, rep: &Replacement, at: &Location) -> Result<()> {
    let src = rep
        .source
        .as_ref()
        .ok_or_else(|| Error::field(at, "a replacement needs a source"))?;
    let value = source_value(resources, src, at)?;
    for (ti, t) in rep.targets.iter().enumerate() {
        let tat = Location::new(at.file.clone(), format!("{}.targets[{ti}]", at.field));
        let sel: &Selector = t
            .select
            .as_ref()
            .ok_or_else(|| Error::field(&tat, "target must specify resources to select"))?;
        let matcher = Matcher::new(sel).map_err(|e| Error::field(&tat, e))?;
        let rejects = t
            .reject
            .iter()
            .map(|r| {
                // kustomize compares reject names and namespaces literally, not as regexes.
                let mut r = r.clone();
                r.name = r.name.as_deref().map(regex::escape);
                r.namespace = r.namespace.as_deref().map(regex::escape);
                Matcher::new(&r)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::field(&tat, e))?;
        let paths: Vec<String> = if t.field_paths.is_empty() {
            vec![DEFAULT_FIELD_PATH.to_string()]
        } else {
            t.field_paths.clone()
        };
        let create = t.options.as_ref().is_some_and(|o| o.create);
        for r in resources.iter_mut() {
            if !matcher.matches(r) || rejects.iter().any(|m| m.matches(r)) {
                continue;
            }
            for fp in &paths {
                let path = parse_path(fp).map_err(|e| Error::field(&tat, e))?;
                let id = r.id();
                let n = walk_mut(&mut r.obj, &path, create, &mut |v| {
                    set_value(v, &value, t.options.as_ref())
                })
                .map_err(|e| Error::field(&tat, format!("{id}: {e}")))?;
                if n == 0 {
                    let what = if create { "find or create" } else { "find" };
                    return Err(Error::field(
                        &tat,
                        format!("unable to {what} field \"{fp}\" in replacement target {id}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Applies every `replacements:` entry in order.
pub fn apply(resources: &mut ResMap, list: &[ReplacementField], ctx: &KustCtx<'_>) -> Result<()> {
    for (i, entry) in list.iter().enumerate() {
        let field = format!("replacements[{i}]");
        match entry {
            ReplacementField::Inline(rep) => apply_one(resources, rep, &ctx.loc(&field))?,
            ReplacementField::Path { path } => {
                let (p, text) = ctx.read_text(path, &field)?;
                let at = Location::new(p.to_string(), String::new());
                for doc in crate::yaml::parse_documents(&text)
                    .map_err(|e| Error::yaml(p.to_string(), e))?
                {
                    let reps: Vec<Replacement> = if doc.is_array() {
                        crate::value::from_value(doc)
                    } else {
                        crate::value::from_value(doc).map(|r| vec![r])
                    }
                    .map_err(|e| Error::yaml(p.to_string(), e.to_string()))?;
                    for (j, rep) in reps.iter().enumerate() {
                        apply_one(
                            resources,
                            rep,
                            &Location::new(at.file.clone(), format!("[{j}]")),
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_on_dots_outside_brackets() {
        assert_eq!(
            parse_path("spec.template.spec.containers.[name=my.app].image").expect("valid"),
            vec![
                Seg::Key("spec".into()),
                Seg::Key("template".into()),
                Seg::Key("spec".into()),
                Seg::Key("containers".into()),
                Seg::Match("name".into(), "my.app".into()),
                Seg::Key("image".into()),
            ]
        );
        assert_eq!(
            parse_path("a.0.*").expect("valid"),
            vec![Seg::Key("a".into()), Seg::Index(0), Seg::Any]
        );
        assert!(parse_path("a.[b=c").is_err());
    }

    #[test]
    fn scalar_targets_keep_their_type() {
        let mut port = Value::from(80);
        set_value(&mut port, &Value::from("8080"), None).expect("scalar");
        assert_eq!(port, Value::from(8080));
        let mut text = Value::from("x");
        set_value(&mut text, &Value::from(5), None).expect("scalar");
        assert_eq!(text, Value::from("5"));
        let mut image = Value::from("nginx:1.0");
        let opts = FieldOptions {
            delimiter: ":".into(),
            index: 1,
            ..Default::default()
        };
        set_value(&mut image, &Value::from("2.0"), Some(&opts)).expect("scalar");
        assert_eq!(image, Value::from("nginx:2.0"));
    }
}
