//! The `scale` subresource of Deployments, StatefulSets and ReplicaSets (`kubectl scale`,
//! autoscalers): an `autoscaling/v1 Scale` view of `spec.replicas`, readable, replaceable and
//! patchable. Writes go through the normal update path, so generation, events and the
//! workload controller behave as for any spec change.

use serde_json::{Value, json};

use super::patch::{PatchType, patch_object};
use super::ssa;
use super::status::ApiError;
use super::store::State;
use super::verbs::{self, Target, WriteOpts};

/// Whether a resource serves `/scale`.
pub fn has_scale(t: &Target) -> bool {
    t.def.group == "apps"
        && matches!(
            t.def.kind.as_str(),
            "Deployment" | "StatefulSet" | "ReplicaSet"
        )
}

/// `matchLabels` as the label-selector string Scale reports.
fn selector_string(obj: &Value) -> String {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn view(obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj),
        },
    })
}

fn main_target(t: &Target) -> Target {
    Target {
        subresource: None,
        ..t.clone()
    }
}

fn live(st: &State, t: &Target) -> Result<Value, ApiError> {
    verbs::get(st, &main_target(t))
}

pub fn get(st: &State, t: &Target) -> Result<Value, ApiError> {
    Ok(view(&live(st, t)?))
}

/// Sets `spec.replicas` from a Scale (PUT, or the result of a PATCH).
fn write(
    st: &mut State,
    t: &Target,
    scale: &Value,
    o: &WriteOpts,
) -> Result<(u16, Value), ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "Scale.autoscaling",
                t.name.as_deref().unwrap_or(""),
                &[(
                    "spec.replicas",
                    "Invalid value: must be a non-negative integer".into(),
                )],
            )
        })?;
    let mut obj = live(st, t)?;
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv)
            != obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::conflict(
            &t.def.qualified(),
            t.name.as_deref().unwrap_or(""),
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    obj["spec"]["replicas"] = json!(replicas);
    let (code, new) = verbs::update(st, &main_target(t), obj, o)?;
    Ok((code, view(&new)))
}

pub fn update(
    st: &mut State,
    t: &Target,
    body: &Value,
    o: &WriteOpts,
) -> Result<(u16, Value), ApiError> {
    write(st, t, body, o)
}

pub fn patch(
    st: &mut State,
    t: &Target,
    content_type: &str,
    body: &[u8],
    o: &WriteOpts,
) -> Result<(u16, Value), ApiError> {
    let current = get(st, t)?;
    let patch_type = PatchType::from_content_type(content_type, false)?;
    if patch_type == PatchType::Apply {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply to the scale subresource is not supported by the test server",
        ));
    }
    let target = ssa::Target {
        api_version: "autoscaling/v1",
        kind: "Scale",
        subresource: "scale",
        status_subresource: false,
    };
    let patched = patch_object(&current, patch_type, body, &target)?;
    write(st, t, &patched, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn scaling_changes_spec_replicas_and_generation() {
        let store = Store::new();
        let mut st = store.lock();
        let def = st
            .registry
            .by_key("deployments.apps")
            .cloned()
            .expect("deployments");
        let t = Target {
            version: "v1".into(),
            def,
            namespace: Some("default".into()),
            name: Some("web".into()),
            subresource: Some("scale".into()),
        };
        let create = Target {
            name: None,
            subresource: None,
            ..t.clone()
        };
        verbs::create(
            &mut st,
            &create,
            json!({"metadata": {"name": "web"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}),
            &WriteOpts::default(),
        )
        .expect("create");
        let s = get(&st, &t).expect("scale");
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        let (_, s) = patch(
            &mut st,
            &t,
            "application/merge-patch+json",
            br#"{"spec":{"replicas":5}}"#,
            &WriteOpts::default(),
        )
        .expect("patch");
        assert_eq!(s["spec"]["replicas"], 5);
        let d = st
            .get("deployments.apps", "default", "web")
            .expect("deployment");
        assert_eq!(d["spec"]["replicas"], 5);
        assert_eq!(d["metadata"]["generation"], 2);
        let err = update(
            &mut st,
            &t,
            &json!({"spec": {"replicas": -1}}),
            &WriteOpts::default(),
        )
        .expect_err("negative");
        assert_eq!(err.code, 422);
    }
}
