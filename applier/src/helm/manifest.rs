//! The rendered release taken apart the way Helm takes it apart: the chart's `crds/` files
//! (never templated, applied first per the CRD policy; read by [`super::chart`]), hooks
//! (objects annotated `helm.sh/hook`, run around the apply by phase and
//! `helm.sh/hook-weight`, removed per `helm.sh/hook-delete-policy`), and the release's own
//! objects.

use std::collections::BTreeSet;

use serde_json::Value;

pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
pub const HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// Why the rendered manifest cannot be used. Nothing is applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// helm's output (or a CRD file) is not YAML objects.
    #[error("{what}: {why}")]
    Parse { what: String, why: String },
    /// A hook annotation has a value Helm would refuse.
    #[error("{object}: annotation {annotation}: {why}")]
    BadHook {
        object: String,
        annotation: &'static str,
        why: String,
    },
}

/// When a hook runs (Helm's hook events; Ferry runs install, upgrade and test hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreDelete,
    PostDelete,
    PreRollback,
    PostRollback,
    Test,
}

impl Phase {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "pre-install" => Phase::PreInstall,
            "post-install" => Phase::PostInstall,
            "pre-upgrade" => Phase::PreUpgrade,
            "post-upgrade" => Phase::PostUpgrade,
            "pre-delete" => Phase::PreDelete,
            "post-delete" => Phase::PostDelete,
            "pre-rollback" => Phase::PreRollback,
            "post-rollback" => Phase::PostRollback,
            // `test-success` is Helm 2's name, still accepted by Helm.
            "test" | "test-success" => Phase::Test,
            _ => return None,
        })
    }
}

/// When a hook object is deleted (Helm's delete policies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeletePolicy {
    /// Delete the previous instance before creating the hook (Helm's default when none given).
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

/// One hook object.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    pub phases: BTreeSet<Phase>,
    pub weight: i64,
    pub delete: BTreeSet<DeletePolicy>,
    pub object: Value,
}

impl Hook {
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A release's rendered manifest, taken apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    /// The chart's (and vendored subcharts') `crds/` objects.
    pub crds: Vec<Value>,
    pub hooks: Vec<Hook>,
    /// Everything else: the release's objects.
    pub objects: Vec<Value>,
}

impl Manifest {
    /// The hooks of `phase`, in Helm's order: weight, then name.
    pub fn hooks_of(&self, phase: Phase) -> Vec<&Hook> {
        let mut hooks: Vec<&Hook> = self
            .hooks
            .iter()
            .filter(|h| h.phases.contains(&phase))
            .collect();
        hooks.sort_by(|a, b| (a.weight, a.name()).cmp(&(b.weight, b.name())));
        hooks
    }
}

fn describe(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj.get("kind").and_then(Value::as_str).unwrap_or("?"),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Splits `helm template`'s output into hooks and objects (empty documents dropped).
pub fn split(rendered: &str) -> Result<(Vec<Hook>, Vec<Value>), ManifestError> {
    let docs = ferry_kustomize::yaml::json::parse_objects_yaml11(rendered).map_err(|why| {
        ManifestError::Parse {
            what: "helm template output".into(),
            why,
        }
    })?;
    let mut hooks = vec![];
    let mut objects = vec![];
    for obj in docs {
        if obj.is_null() {
            continue;
        }
        if !obj.is_object() {
            return Err(ManifestError::Parse {
                what: "helm template output".into(),
                why: format!("a document is not a mapping: {obj}"),
            });
        }
        match annotation(&obj, HOOK_ANNOTATION) {
            Some(events) => hooks.push(hook(obj.clone(), events)?),
            None => objects.push(obj),
        }
    }
    Ok((hooks, objects))
}

/// A hook object taken apart again (after post-rendering): its annotations read once more.
pub fn hook_from(object: Value) -> Result<Hook, ManifestError> {
    let events = annotation(&object, HOOK_ANNOTATION)
        .unwrap_or("")
        .to_string();
    hook(object, &events)
}

fn hook(object: Value, events: &str) -> Result<Hook, ManifestError> {
    let phases = events.split(',').filter_map(Phase::parse).collect();
    let weight = match annotation(&object, HOOK_WEIGHT_ANNOTATION) {
        None => 0,
        Some(w) => w
            .trim()
            .parse::<i64>()
            .map_err(|_| ManifestError::BadHook {
                object: describe(&object),
                annotation: HOOK_WEIGHT_ANNOTATION,
                why: format!("{w:?} is not an integer"),
            })?,
    };
    let mut delete = BTreeSet::new();
    if let Some(p) = annotation(&object, HOOK_DELETE_POLICY_ANNOTATION) {
        for v in p.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            delete.insert(match v {
                "before-hook-creation" => DeletePolicy::BeforeHookCreation,
                "hook-succeeded" => DeletePolicy::HookSucceeded,
                "hook-failed" => DeletePolicy::HookFailed,
                other => {
                    return Err(ManifestError::BadHook {
                        object: describe(&object),
                        annotation: HOOK_DELETE_POLICY_ANNOTATION,
                        why: format!(
                            "{other:?} is not before-hook-creation, hook-succeeded or hook-failed"
                        ),
                    });
                }
            });
        }
    }
    if delete.is_empty() {
        delete.insert(DeletePolicy::BeforeHookCreation);
    }
    Ok(Hook {
        phases,
        weight,
        delete,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = r#"---
# Source: app/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
---
# Source: app/templates/job.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: hook-succeeded
---
# Source: app/templates/seed.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: a-seed
  annotations:
    helm.sh/hook: pre-install
---
# Source: app/templates/tests/t.yaml
apiVersion: v1
kind: Pod
metadata:
  name: app-test
  annotations:
    "helm.sh/hook": test
---
"#;

    #[test]
    fn hooks_are_split_out_and_ordered_by_weight() {
        let (hooks, objects) = split(RENDERED).expect("parses");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["kind"], "ConfigMap");
        let m = Manifest {
            hooks,
            objects,
            crds: vec![],
        };
        let pre: Vec<&str> = m
            .hooks_of(Phase::PreInstall)
            .iter()
            .map(|h| h.name())
            .collect();
        assert_eq!(pre, ["migrate", "a-seed"], "weight -5 before weight 0");
        let up = m.hooks_of(Phase::PreUpgrade);
        assert_eq!(up.len(), 1);
        assert_eq!(
            up[0].delete,
            BTreeSet::from([DeletePolicy::HookSucceeded]),
            "an explicit policy replaces the default"
        );
        let seed = &m.hooks_of(Phase::PreInstall)[1];
        assert_eq!(
            seed.delete,
            BTreeSet::from([DeletePolicy::BeforeHookCreation]),
            "Helm's default"
        );
        assert_eq!(m.hooks_of(Phase::Test)[0].name(), "app-test");
        assert!(m.hooks_of(Phase::PostInstall).is_empty());
    }

    #[test]
    fn bad_hook_annotations_name_the_object() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: heavy\n";
        let err = split(text).expect_err("weight");
        assert!(err.to_string().contains("Pod/p") && err.to_string().contains("hook-weight"));
        let text = text.replace(
            "helm.sh/hook-weight: heavy",
            "helm.sh/hook-delete-policy: never",
        );
        let err = split(&text).expect_err("policy");
        assert!(err.to_string().contains("\"never\""), "{err}");
    }
}
