//! Writes each source's status back to its object (the status subresource).
//!
//! The controller's views are the truth; this loop compares them with what it last wrote and
//! patches only what changed, so an idle server makes no API requests. Comparing is in memory
//! and cheap (one clone of each status per tick).

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::source_kinds;
use crate::SourceKey;
use crate::reconcile::Controller;
use ferry_proto::SourceKind;

/// How often statuses are compared: the delay between a change and `kubectl get` showing it.
const TICK: Duration = Duration::from_millis(250);

pub(super) async fn run(client: Client, controller: Controller) {
    let [(git, _), (helm, _)] = source_kinds();
    let mut written: BTreeMap<SourceKey, Value> = BTreeMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut current: BTreeMap<SourceKey, (&ApiResource, Value)> = BTreeMap::new();
        for v in controller.sources() {
            current.insert(v.key(), (&git, to_value(&v.status)));
        }
        for v in controller.helm_repositories() {
            let key = SourceKey::of(SourceKind::HelmRepository, &v.namespace, &v.name);
            current.insert(key, (&helm, to_value(&v.status)));
        }
        written.retain(|k, _| current.contains_key(k));
        for (key, (resource, status)) in current {
            if written.get(&key) == Some(&status) {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &key.namespace, resource);
            let patch = Patch::Merge(json!({ "status": status }));
            match api
                .patch_status(&key.name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => {
                    written.insert(key, status);
                }
                // Deleted meanwhile: the feed drops it from the desired state.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    written.insert(key, status);
                }
                Err(e) => {
                    tracing::warn!(source = %key, error = %e, "status not written; retrying");
                }
            }
        }
    }
}

fn to_value(status: &impl serde::Serialize) -> Value {
    serde_json::to_value(status).expect("statuses are plain data")
}
