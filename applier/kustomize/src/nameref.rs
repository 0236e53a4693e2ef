//! Name-reference back-propagation: after prefixes, suffixes, namespaces and content hashes
//! changed names, every field that referred to an object by its old name (volumes, envFrom,
//! RoleBinding subjects, scaleTargetRef, …, per the `nameReference` field specs) is pointed at
//! the new name. Candidate selection follows kustomize's `nameref` filter: previous names,
//! target kind, roleRef kind, namespace visibility, then matching prefixes/suffixes.

use std::collections::HashMap;

use crate::value::Value;

use crate::error::{Error, Location, Result};
use crate::fieldspec::{FieldSpec, NameBackRef, visit};
use crate::resource::{Gvk, ResId, ResMap, Resource};

struct Candidate {
    id: ResId,
    /// `id.is_cluster_scoped()`, asked for every pair of resources, so computed once.
    cluster: bool,
    prev: Vec<ResId>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

impl Candidate {
    fn of(r: &Resource) -> Self {
        let id = r.id();
        Candidate {
            cluster: id.is_cluster_scoped(),
            id,
            prev: r.prev_ids.clone(),
            prefixes: r.name_prefixes.clone(),
            suffixes: r.name_suffixes.clone(),
        }
    }

    /// kustomize's `previousNameMatches` / `previousIdSelectedByGvk` look at previous ids
    /// only: an object no transformer renamed (or re-namespaced) is never a referral, so
    /// nothing that refers to it changes (not even a subject's missing namespace).
    fn any_id(&self, f: impl Fn(&ResId) -> bool) -> bool {
        self.prev.iter().any(&f)
    }

    /// Original namespace, `""` read as `default` (kustomize's effective namespace).
    fn org_namespace(&self) -> &str {
        effective(
            self.prev
                .first()
                .map(|p| p.namespace_or_empty())
                .unwrap_or(self.id.namespace_or_empty()),
        )
    }
}

fn effective(ns: &str) -> &str {
    if ns.is_empty() { "default" } else { ns }
}

/// Namespaces of ServiceAccount subjects of a RoleBinding (they widen its visibility).
fn role_binding_namespaces(r: &Resource) -> Vec<String> {
    if r.kind() != "RoleBinding" {
        return Vec::new();
    }
    r.map()
        .get("subjects")
        .and_then(Value::as_array)
        .map(|subs| {
            subs.iter()
                .filter(|s| s.get("kind").and_then(Value::as_str) == Some("ServiceAccount"))
                .filter_map(|s| {
                    s.get("namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Referrer {
    id: ResId,
    cluster: bool,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    role_ref_kind: Option<String>,
}

fn select<'c>(
    old_name: &str,
    cands: &[&'c Candidate],
    target: &Gvk,
    referrer: &Referrer,
    spec: &FieldSpec,
) -> std::result::Result<Option<&'c Candidate>, String> {
    let mut c: Vec<&Candidate> = cands
        .iter()
        .copied()
        .filter(|c| c.any_id(|id| id.name == old_name))
        .filter(|c| c.any_id(|id| target.selects_id(id)))
        .collect();
    if spec.raw_path.ends_with("roleRef/name")
        && let Some(kind) = &referrer.role_ref_kind
    {
        c.retain(|c| c.any_id(|id| &id.kind == kind));
    }
    if !referrer.cluster {
        c.retain(|c| {
            c.cluster
                || c.id.kind == "ServiceAccount"
                || effective(referrer.id.namespace_or_empty())
                    == effective(c.id.namespace_or_empty())
        });
    }
    if c.len() > 1 {
        c.retain(|c| c.prefixes == referrer.prefixes && c.suffixes == referrer.suffixes);
    }
    match c.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        [first, rest @ ..] if rest.iter().all(|o| o.id.name == first.id.name) => Ok(Some(first)),
        many => Err(format!(
            "found multiple possible referrals: {}",
            many.iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn set_scalar(
    v: &mut Value,
    cands: &[&Candidate],
    target: &Gvk,
    referrer: &Referrer,
    spec: &FieldSpec,
) -> std::result::Result<(), String> {
    let Value::String(old) = v else { return Ok(()) };
    if let Some(c) = select(old, cands, target, referrer, spec)? {
        *old = c.id.name.clone();
    }
    Ok(())
}

fn set_mapping(
    v: &mut Value,
    cands: &[&Candidate],
    target: &Gvk,
    referrer: &Referrer,
    spec: &FieldSpec,
) -> std::result::Result<(), String> {
    let Value::Object(m) = v else { return Ok(()) };
    let Some(Value::String(old)) = m.get("name") else {
        return Ok(());
    };
    let old = old.clone();
    let filtered: Vec<&Candidate> = match m.get("namespace").and_then(Value::as_str) {
        None => cands.to_vec(),
        Some(ns) => {
            let ns = effective(ns);
            let by_org: Vec<&Candidate> = cands
                .iter()
                .copied()
                .filter(|c| c.org_namespace() == ns)
                .collect();
            if by_org.is_empty() {
                cands
                    .iter()
                    .copied()
                    .filter(|c| effective(c.id.namespace_or_empty()) == ns)
                    .collect()
            } else {
                by_org
            }
        }
    };
    let Some(c) = select(&old, &filtered, target, referrer, spec)? else {
        return Ok(());
    };
    if c.id.name == old && c.id.namespace.is_none() {
        return Ok(());
    }
    m.insert("name".into(), Value::String(c.id.name.clone()));
    if let Some(ns) = &c.id.namespace {
        m.insert("namespace".into(), Value::String(ns.clone()));
    }
    Ok(())
}

/// Re-points references after renames.
pub fn fix(resources: &mut ResMap, backrefs: &[NameBackRef], at: &Location) -> Result<()> {
    let all: Vec<Candidate> = resources.iter().map(Candidate::of).collect();
    // What a namespaced referrer sees depends only on its namespace (RoleBindings aside), so
    // each namespace's list is built once: per-referrer filtering is quadratic in large builds.
    let mut by_namespace: HashMap<String, Vec<&Candidate>> = HashMap::new();
    for idx in 0..resources.len() {
        let r = &resources.resources[idx];
        let id = r.id();
        let referrer = Referrer {
            cluster: id.is_cluster_scoped(),
            id,
            prefixes: r.name_prefixes.clone(),
            suffixes: r.name_suffixes.clone(),
            role_ref_kind: r
                .get_path(&["roleRef", "kind"])
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let org_gvk = r.org_id().gvk();
        if !backrefs
            .iter()
            .any(|br| br.field_specs.iter().any(|spec| spec.gvk.selects(&org_gvk)))
        {
            continue;
        }
        let rb_ns = role_binding_namespaces(r);
        // Objects this one can see (kustomize's SubsetThatCouldBeReferencedByResource).
        let sees = |c: &Candidate| {
            referrer.cluster
                || c.cluster
                || effective(c.id.namespace_or_empty())
                    == effective(referrer.id.namespace_or_empty())
                || rb_ns.iter().any(|ns| ns == c.id.namespace_or_empty())
        };
        let owned: Vec<&Candidate>;
        let visible: &[&Candidate] = if referrer.cluster || !rb_ns.is_empty() {
            owned = all.iter().filter(|c| sees(c)).collect();
            &owned
        } else {
            by_namespace
                .entry(effective(referrer.id.namespace_or_empty()).to_string())
                .or_insert_with(|| all.iter().filter(|c| sees(c)).collect())
        };
        for br in backrefs {
            for spec in &br.field_specs {
                if !spec.gvk.selects(&org_gvk) {
                    continue;
                }
                let res = &mut resources.resources[idx];
                visit(&mut res.obj, spec, None, &mut |v| match v {
                    Value::String(_) => set_scalar(v, visible, &br.gvk, &referrer, spec),
                    Value::Object(_) => set_mapping(v, visible, &br.gvk, &referrer, spec),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::String(_) => {
                                    set_scalar(item, visible, &br.gvk, &referrer, spec)?
                                }
                                Value::Object(_) => {
                                    set_mapping(item, visible, &br.gvk, &referrer, spec)?
                                }
                                _ => {}
                            }
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                })
                .map_err(|e| {
                    Error::field(
                        at,
                        format!("{} field '{}': {e}", referrer.id, spec.raw_path),
                    )
                })?;
            }
        }
    }
    Ok(())
}
