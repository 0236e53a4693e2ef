//! Writes each source's and Receiver's status back to its object (the status subresource).
//!
//! The controller's views are the truth; this loop compares them with what it last wrote and
//! patches only what changed, so an idle server makes no API requests. Comparing is in memory
//! and cheap (one clone of each status per tick). With replicas (`--lease-namespace`) a
//! source's status is written only by the holder of its Lease
//! ([`Controller::writes_status`]): the others write nothing, and a replica that takes a
//! Lease over writes the status afresh. Writes are counted per object
//! (`ferry_source_status_writes_total`).

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::{Value, json};

use super::followed_kinds;
use crate::SourceKey;
use crate::reconcile::Controller;
use ferry_proto::SourceKind;

/// How often statuses are compared: the delay between a change and `kubectl get` showing it.
const TICK: Duration = Duration::from_millis(250);

/// An object whose status is written: kind, namespace, name.
type Target = (&'static str, String, String);

pub(super) async fn run(client: Client, controller: Controller) {
    let resources: BTreeMap<&'static str, ApiResource> = followed_kinds()
        .into_iter()
        .map(|f| (f.kind, f.resource))
        .collect();
    let mut written: BTreeMap<Target, Value> = BTreeMap::new();
    let writes = Family::<Vec<(String, String)>, Counter>::default();
    controller.metrics().register(
        "status_writes",
        "Status writes (patches of the status subresource) this replica made, per object",
        writes.clone(),
    );
    let series = |(kind, ns, name): &Target| {
        vec![
            ("kind".to_string(), kind.to_string()),
            ("namespace".to_string(), ns.clone()),
            ("name".to_string(), name.clone()),
        ]
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut current: BTreeMap<Target, Value> = BTreeMap::new();
        let mut add = |kind, ns: &str, name: &str, status: Value| {
            current.insert((kind, ns.to_string(), name.to_string()), status);
        };
        let mut source = |kind, v_ns: &str, v_name: &str, status: Value| {
            let key = SourceKey::of(kind, v_ns, v_name);
            if controller.writes_status(&key) {
                add(kind.as_str(), v_ns, v_name, status);
            }
        };
        for v in controller.sources() {
            source(
                SourceKind::GitRepository,
                &v.namespace,
                &v.name,
                to_value(&v.status),
            );
        }
        for v in controller.helm_repositories() {
            source(
                SourceKind::HelmRepository,
                &v.namespace,
                &v.name,
                to_value(&v.status),
            );
        }
        for v in controller.buckets() {
            source(
                SourceKind::Bucket,
                &v.namespace,
                &v.name,
                to_value(&v.status),
            );
        }
        for v in controller.receivers() {
            add("Receiver", &v.namespace, &v.name, to_value(&v.status));
        }
        // Gone, or held by another replica now: written afresh if it comes back.
        written.retain(|k, _| {
            let keep = current.contains_key(k);
            if !keep {
                writes.remove(&series(k));
            }
            keep
        });
        for (key, status) in current {
            if written.get(&key) == Some(&status) {
                continue;
            }
            let (kind, namespace, name) = &key;
            let resource = resources.get(kind).expect("every written kind is followed");
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
            let patch = Patch::Merge(json!({ "status": status }));
            writes.get_or_create(&series(&key)).inc();
            match api
                .patch_status(name, &PatchParams::default(), &patch)
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
                    tracing::warn!(object = %format!("{kind}/{namespace}/{name}"), error = %e, "status not written; retrying");
                }
            }
        }
    }
}

fn to_value(status: &impl serde::Serialize) -> Value {
    serde_json::to_value(status).expect("statuses are plain data")
}
