//! Kubernetes Events on the objects the agent reconciles: one per reconcile that changed
//! something, listing each object the way Flux does (`Deployment/team-a/my-app configured`),
//! and one per failure. Events are best effort: a failure to record one is logged, never fails
//! the reconcile.
//!
//! **Aggregation.** A Kustomization that fails every `retryInterval` would otherwise write a new
//! Event per retry (8 640 a day at 10 s), filling etcd and drowning `kubectl describe`. As the
//! API intends (and as kubelet's event correlator does), a repeat of the same event — same
//! object, type, reason and message — seen within [`SERIES_WINDOW`] of the previous one updates
//! that Event's `count` and `lastTimestamp` instead. A different message starts a new Event, so
//! each change list stays readable. The cache is per process and bounded ([`MAX_TRACKED`]).
//!
//! **Alerting.** Every event published here, repeats included, is also queued for the source
//! server ([`crate::report`]) in Flux's event shape — `Normal` as severity `info`, `Warning`
//! as `error`, the source revision as `revision` metadata, the object's labels beside it — where
//! Alerts pick it up. Queuing never waits; the server de-duplicates repeats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::api::{Event as ApiEvent, InvolvedObject, META_REVISION, ReportedEvent, Severity};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::metrics::Metrics;
use crate::report::Reporter;

/// Events longer than this are cut, keeping the first lines (the API server caps messages).
const MAX_MESSAGE: usize = 4096;

/// A repeat seen within this time of the previous occurrence joins its Event's series.
pub const SERIES_WINDOW: Duration = Duration::from_secs(30 * 60);

/// At most this many distinct events are remembered; the oldest are forgotten first.
const MAX_TRACKED: usize = 1024;

pub const COMPONENT: &str = "ferry-applier";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two events "the same" for aggregation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    /// `kind/namespace/name` and uid of the object the event is about.
    object: String,
    uid: Option<String>,
    type_: EventType,
    reason: String,
    message: String,
}

/// The Event a key was last written as.
#[derive(Clone, Debug)]
struct Series {
    name: String,
    count: i32,
    last_seen: Instant,
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    instance: String,
    metrics: Metrics,
    reporter: Reporter,
    series: Arc<Mutex<HashMap<Key, Series>>>,
}

impl Recorder {
    pub fn new(client: Client, metrics: Metrics, reporter: Reporter) -> Self {
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| COMPONENT.to_string());
        Self {
            client,
            instance,
            metrics,
            reporter,
            series: Default::default(),
        }
    }

    /// Records an event about `obj`, at the source `revision` when known. `lines` become the
    /// message, one per line.
    pub async fn publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        lines: &[String],
        revision: Option<&str>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let namespace = obj.namespace().unwrap_or_default();
        let kind = K::kind(&()).to_string();
        let key = Key {
            object: format!("{kind}/{namespace}/{}", obj.name_any()),
            uid: obj.uid(),
            type_,
            reason: reason.to_string(),
            message: message(lines),
        };
        self.reporter.event(ReportedEvent {
            event: ApiEvent {
                involved_object: InvolvedObject {
                    kind: kind.clone(),
                    namespace: namespace.clone(),
                    name: obj.name_any(),
                    api_version: Some(K::api_version(&()).to_string()),
                    uid: obj.uid(),
                },
                severity: match type_ {
                    EventType::Normal => Severity::Info,
                    EventType::Warning => Severity::Error,
                },
                timestamp: chrono::Utc::now(),
                message: key.message.clone(),
                reason: key.reason.clone(),
                metadata: revision
                    .map(|r| (META_REVISION.to_string(), r.to_string()))
                    .into_iter()
                    .collect(),
                reporting_controller: COMPONENT.to_string(),
                reporting_instance: self.instance.clone(),
            },
            labels: obj.labels().clone(),
        });
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = k8s_openapi::jiff::Timestamp::now();

        if let Some(mut series) = self.repeat_of(&key) {
            series.count += 1;
            let patch = json!({
                "count": series.count,
                "lastTimestamp": Time(now),
            });
            match api
                .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.metrics.observe_event(type_.as_str(), true);
                    self.remember(key, series);
                    return;
                }
                // The API server expired it (its event TTL is an hour by default) or someone
                // deleted it: start a new one below.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(object = %key.object, error = %e, "could not update event");
                    return;
                }
            }
        }

        let name = format!("{}.{:x}", obj.name_any(), now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).to_string()),
                kind: Some(kind),
                name: Some(obj.name_any()),
                namespace: Some(namespace.clone()),
                uid: obj.uid(),
                resource_version: obj.resource_version(),
                ..Default::default()
            },
            reason: Some(key.reason.clone()),
            message: Some(key.message.clone()),
            type_: Some(type_.as_str().to_string()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            source: Some(EventSource {
                component: Some(COMPONENT.to_string()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.to_string()),
            reporting_instance: Some(self.instance.clone()),
            action: Some("Reconcile".to_string()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.metrics.observe_event(type_.as_str(), false);
                let series = Series {
                    name,
                    count: 1,
                    last_seen: Instant::now(),
                };
                self.remember(key, series);
            }
            Err(e) => tracing::warn!(object = %key.object, error = %e, "could not record event"),
        }
    }

    /// The series `key` continues, if its last occurrence is recent enough.
    fn repeat_of(&self, key: &Key) -> Option<Series> {
        let series = self.series.lock().expect("event cache lock poisoned");
        series
            .get(key)
            .filter(|s| s.last_seen.elapsed() < SERIES_WINDOW)
            .cloned()
    }

    fn remember(&self, key: Key, mut series: Series) {
        series.last_seen = Instant::now();
        let mut all = self.series.lock().expect("event cache lock poisoned");
        if all.len() >= MAX_TRACKED && !all.contains_key(&key) {
            all.retain(|_, s| s.last_seen.elapsed() < SERIES_WINDOW);
            if all.len() >= MAX_TRACKED
                && let Some(oldest) = all
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(key, series);
    }
}

/// Joins `lines`, cutting at [`MAX_MESSAGE`] with a count of what was left out.
pub fn message(lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if out.len() + line.len() + 1 > MAX_MESSAGE {
            out.push_str(&format!("... and {} more", lines.len() - i));
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_with_a_count() {
        let lines: Vec<String> = (0..1000)
            .map(|i| format!("ConfigMap/team-a/config-{i:04} created"))
            .collect();
        let m = message(&lines);
        assert!(m.len() <= MAX_MESSAGE + 32);
        assert!(m.starts_with("ConfigMap/team-a/config-0000 created\n"));
        assert!(m.ends_with("more"), "{}", &m[m.len() - 40..]);
        assert_eq!(message(&["a".into(), "b".into()]), "a\nb");
    }
}
