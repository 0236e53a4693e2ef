//! The first stage: objects other objects depend on being served or existing.

use std::ops::ControlFlow;
use std::time::Duration;

use super::{ApplyError, Change};
use crate::poll;
use kube::Client;
use kube::api::DynamicObject;

/// CRDs, Namespaces and ClusterRoles go first: later objects are of those kinds' types, live in
/// those namespaces, or are bound to those roles.
pub fn is_definition(obj: &DynamicObject) -> bool {
    let Some(t) = obj.types.as_ref() else {
        return false;
    };
    matches!(
        (t.api_version.as_str(), t.kind.as_str()),
        (v, "CustomResourceDefinition") if v.starts_with("apiextensions.k8s.io/")
    ) || (t.api_version == "v1" && t.kind == "Namespace")
        || (t.api_version.starts_with("rbac.authorization.k8s.io/") && t.kind == "ClusterRole")
}

/// How often CRDs are read again while they are not established.
const INTERVAL: Duration = Duration::from_millis(100);

/// Waits until every CRD in `done` reports `Established=True`; other kinds need no wait.
pub async fn wait_established(
    client: &Client,
    done: &[Change],
    timeout: Duration,
) -> Result<(), ApplyError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let crds: Vec<&Change> = done
        .iter()
        .filter(|c| c.id.kind == "CustomResourceDefinition")
        .collect();
    let api = &api;
    let waited = poll::until(timeout, INTERVAL, crds, |pending| async move {
        let mut still = vec![];
        for change in pending {
            let crd = api
                .get_opt(&change.id.name)
                .await
                .map_err(|e| ApplyError::request(&change.id, "get", e))?;
            let established = crd
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if !established {
                still.push(change);
            }
        }
        Ok(if still.is_empty() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(still)
        })
    })
    .await?;
    waited.map_err(|pending| ApplyError::Timeout {
        object: pending
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        what: "established",
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api_version: &str, kind: &str) -> DynamicObject {
        super::super::from_value(json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "x"}}))
        .expect("object")
    }

    #[test]
    fn definitions_go_first() {
        assert!(is_definition(&obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition"
        )));
        assert!(is_definition(&obj("v1", "Namespace")));
        assert!(is_definition(&obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole"
        )));
        assert!(!is_definition(&obj("apps/v1", "Deployment")));
        assert!(!is_definition(&obj("example.com/v1", "Namespace")));
    }
}
