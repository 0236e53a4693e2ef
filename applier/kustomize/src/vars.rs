//! `vars:` (deprecated in kustomize, still common): each var names a field of one object;
//! after all renames, `$(NAME)` in the `varReference` fields (container args, command, env
//! values, …) is replaced by that field's value. A field that is exactly `$(NAME)` takes
//! the value with its type; `$$(NAME)` stays literal as `$(NAME)`.

use crate::value::Value;

use crate::error::{Error, Location, Result};
use crate::fieldspec::{FieldSpec, visit};
use crate::kustomization::Var;
use crate::loader::KustCtx;
use crate::resource::{Gvk, ResMap};

#[derive(Debug, Clone)]
pub struct VarDef {
    pub var: Var,
    pub at: Location,
}

pub fn defs(vars: &[Var], ctx: &KustCtx<'_>) -> Vec<VarDef> {
    vars.iter()
        .enumerate()
        .map(|(i, v)| VarDef {
            var: v.clone(),
            at: ctx.loc(format!("vars[{i}]")),
        })
        .collect()
}

pub fn merge(into: &mut Vec<VarDef>, from: Vec<VarDef>, at: &Location) -> Result<()> {
    for v in from {
        if into.iter().any(|e| e.var.name == v.var.name) {
            return Err(Error::field(
                at,
                format!("var '{}' already encountered", v.var.name),
            ));
        }
        into.push(v);
    }
    Ok(())
}

/// `spec.ports[0].port` → value.
fn field_value<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = obj;
    for part in path.split('.') {
        let (key, idx) = match part.find('[') {
            Some(i) if part.ends_with(']') => (
                &part[..i],
                part[i + 1..part.len() - 1].parse::<usize>().ok(),
            ),
            _ => (part, None),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Replaces `$(NAME)` references in one string.
fn expand(s: &str, vals: &[(String, Value)]) -> Value {
    for (name, v) in vals {
        if s == format!("$({name})") {
            return v.clone();
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$(") {
            out.push_str("$(");
            rest = t;
            continue;
        }
        if let Some(t) = tail.strip_prefix("$(")
            && let Some(end) = t.find(')')
            && let Some((_, v)) = vals.iter().find(|(n, _)| n == &t[..end])
        {
            out.push_str(&crate::resource::scalar_to_string(v));
            rest = &t[end + 1..];
            continue;
        }
        out.push('$');
        rest = &tail[1..];
    }
    out.push_str(rest);
    Value::String(out)
}

fn expand_value(v: &mut Value, vals: &[(String, Value)]) {
    match v {
        Value::String(s) => *v = expand(s, vals),
        Value::Array(items) => items.iter_mut().for_each(|i| expand_value(i, vals)),
        Value::Object(m) => m.values_mut().for_each(|i| expand_value(i, vals)),
        _ => {}
    }
}

/// Looks up every var and substitutes references.
pub fn resolve(resources: &mut ResMap, vars: &[VarDef], specs: &[FieldSpec]) -> Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut vals = Vec::new();
    for d in vars {
        let o = &d.var.objref;
        let (group, version) = match &o.api_version {
            Some(av) => {
                let g = Gvk::from_api_version(av, "");
                (g.group, g.version)
            }
            None => (
                o.group.clone().unwrap_or_default(),
                o.version.clone().unwrap_or_default(),
            ),
        };
        let sel = Gvk {
            group,
            version,
            kind: o.kind.clone().unwrap_or_default(),
        };
        let name = o.name.clone().unwrap_or_default();
        let matches: Vec<_> = resources
            .iter()
            .filter(|r| {
                std::iter::once(r.id())
                    .chain(r.prev_ids.iter().cloned())
                    .any(|id| {
                        sel.selects_id(&id)
                            && id.name == name
                            && o.namespace
                                .as_deref()
                                .is_none_or(|ns| ns.is_empty() || ns == id.namespace_or_empty())
                    })
            })
            .collect();
        let r = match matches.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::field(
                    &d.at,
                    format!(
                        "var '{}' cannot be mapped to a field in the set of known resources",
                        d.var.name
                    ),
                ));
            }
            _ => {
                return Err(Error::field(
                    &d.at,
                    format!("var '{}' matches more than one resource", d.var.name),
                ));
            }
        };
        let path = d
            .var
            .fieldref
            .as_ref()
            .map(|f| f.field_path.clone())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "metadata.name".to_string());
        let v = field_value(&r.obj, &path)
            .filter(|v| !v.is_object() && !v.is_array())
            .ok_or_else(|| {
                Error::field(
                    &d.at,
                    format!("field '{path}' of {} is missing or not a scalar", r.id()),
                )
            })?;
        vals.push((d.var.name.clone(), v.clone()));
    }
    for r in resources.iter_mut() {
        let gvk = r.gvk();
        for spec in specs.iter().filter(|s| s.applies_to(&gvk)) {
            let _ = visit(&mut r.obj, spec, None, &mut |v| {
                expand_value(v, &vals);
                Ok(())
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_keeps_type_for_whole_values_and_honours_escapes() {
        let vals = vec![
            ("PORT".to_string(), Value::from(8080)),
            ("SVC".to_string(), Value::from("web")),
        ];
        assert_eq!(expand("$(PORT)", &vals), Value::from(8080));
        assert_eq!(
            expand("http://$(SVC):$(PORT)/", &vals),
            Value::from("http://web:8080/")
        );
        assert_eq!(
            expand("$$(SVC) $(NOPE)", &vals),
            Value::from("$(SVC) $(NOPE)")
        );
    }
}
