//! Kubernetes Events on the Kustomization: one per reconcile that changed something, listing
//! each object the way Flux does (`Deployment/team-a/my-app configured`), and one per failure.
//! Events are best effort: a failure to record one is logged, never fails the reconcile.

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

use ferry_proto::kustomization::Kustomization;

/// Events longer than this are cut, keeping the first lines (the API server caps messages).
const MAX_MESSAGE: usize = 4096;

pub const COMPONENT: &str = "ferry-applier";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    instance: String,
}

impl Recorder {
    pub fn new(client: Client) -> Self {
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| COMPONENT.to_string());
        Self { client, instance }
    }

    /// Records an event about `ks`. `lines` become the message, one per line.
    pub async fn publish(
        &self,
        ks: &Kustomization,
        type_: EventType,
        reason: &str,
        lines: &[String],
    ) {
        let namespace = ks.namespace().unwrap_or_default();
        let now = Utc::now();
        let ts = k8s_openapi::jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    ks.name_any(),
                    now.timestamp_nanos_opt().unwrap_or_default()
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(Kustomization::api_version(&()).to_string()),
                kind: Some(Kustomization::kind(&()).to_string()),
                name: Some(ks.name_any()),
                namespace: Some(namespace.clone()),
                uid: ks.uid(),
                resource_version: ks.resource_version(),
                ..Default::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message(lines)),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            first_timestamp: Some(Time(ts)),
            last_timestamp: Some(Time(ts)),
            event_time: Some(MicroTime(ts)),
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
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(kustomization = %ks.name_any(), error = %e, "could not record event");
        }
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
