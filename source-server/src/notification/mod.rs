//! Notifications: the events of the source server and its agents, and what agents report
//! about their namespaces.
//!
//! **Where events come from.** Two places, one shape (Flux's event, [`ferry_proto::api::Event`]):
//! - the source server's own reconciles: a new artifact (`Normal`/`info`, reason `NewArtifact`)
//!   and a failed fetch (`Warning`/`error`, the failure's reason and message), emitted where the
//!   source's conditions are recorded (`reconcile::task`, `reconcile::status`);
//! - the agents, which post every event they record as a Kubernetes Event
//!   (`POST /v1/agents/{namespace}/events`, batches of at most 100 from a bounded queue that
//!   drops its oldest entries while the server is away — an agent never waits for the server
//!   in a reconcile), with the object's labels for `matchLabels`.
//!
//! Agents also `PUT` a summary of every Kustomization and HelmRelease of their namespace on
//! each change and at least every minute: the [`AgentIndex`] (in memory; complete again a
//! minute after a restart), read by `GET /v1/agents` and the status page.
//!
//! Accepted events are kept in a small ring ([`Notifications::recent`]) and broadcast to
//! subscribers ([`Notifications::subscribe`]).
//!
//! Every request is bounded: body size, events per batch, objects per report, text lengths,
//! metadata and label counts; an event must be about an object of the namespace it is posted
//! for. A refused request names the event or object and the field.

mod agents;
pub mod deliver;
pub mod dispatch;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferry_proto::Revision;
use ferry_proto::api::{
    Event, EventBatch, InvolvedObject, MAX_EVENTS_PER_POST, META_REVISION, ReportedEvent, Severity,
};
use tokio::sync::broadcast;

pub use agents::AgentIndex;

use crate::SourceKey;
use crate::config::SourceLabels;
use crate::config::alerts::Alerting;
use crate::metrics::Metrics;

/// Events kept for [`Notifications::recent`].
pub const RECENT_EVENTS: usize = 256;

/// Longest event message accepted (agents cut theirs at 4 KiB).
const MAX_MESSAGE: usize = 32 << 10;
/// Longest reason, metadata or label key.
const MAX_KEY: usize = 256;
/// Longest metadata or label value.
const MAX_VALUE: usize = 4 << 10;
/// Most metadata entries, and most labels, per event.
const MAX_ENTRIES: usize = 64;

/// Why an agent's report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// More events or objects than one request may carry.
    #[error("agent report for namespace {namespace}: {count} {what}, the limit is {limit}")]
    TooMany {
        /// The namespace in the path.
        namespace: String,
        /// `events` or `objects`.
        what: &'static str,
        /// How many were sent.
        count: usize,
        /// The bound.
        limit: usize,
    },
    /// A field is invalid.
    #[error("agent report for namespace {namespace}: {field}: {message}")]
    Invalid {
        /// The namespace in the path.
        namespace: String,
        /// e.g. `events[3].involvedObject.namespace`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

struct Inner {
    agents: AgentIndex,
    /// The running sources' labels: the server's own events carry them, for `matchLabels`.
    labels: RwLock<SourceLabels>,
    dispatcher: dispatch::Dispatcher,
    recent: Mutex<VecDeque<ReportedEvent>>,
    live: broadcast::Sender<ReportedEvent>,
}

/// Cheap to clone; every clone shares the index and the event feed.
#[derive(Clone)]
pub struct Notifications {
    inner: Arc<Inner>,
}

impl Notifications {
    /// Identical events within `rate_limit` alert once; the alert counters go into `metrics`.
    pub fn new(rate_limit: Duration, metrics: &Metrics) -> Self {
        let counters = dispatch::Counters::default();
        metrics.register(
            "alerts",
            "Alerts by Provider (namespace/name) and result: sent, retried (an attempt failed \
             and is retried), failed (given up), dropped (queue full or Provider suspended)",
            counters.alerts.clone(),
        );
        metrics.register(
            "notification_events",
            "Events taken for alerting (from the server and its agents), by result: accepted, \
             or duplicate (identical within the rate-limit interval, dropped)",
            counters.events.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                agents: AgentIndex::default(),
                labels: RwLock::default(),
                dispatcher: dispatch::Dispatcher::new(rate_limit, counters),
                recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
                live: broadcast::channel(RECENT_EVENTS).0,
            }),
        }
    }

    /// What every agent last reported.
    pub fn agents(&self) -> &AgentIndex {
        &self.inner.agents
    }

    /// Events as they are accepted (a slow subscriber misses some: `Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<ReportedEvent> {
        self.inner.live.subscribe()
    }

    /// The last [`RECENT_EVENTS`] events, oldest first.
    pub fn recent(&self) -> Vec<ReportedEvent> {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Checks and takes an agent's batch; returns how many events it held.
    pub fn agent_events(&self, namespace: &str, batch: EventBatch) -> Result<usize, ReportError> {
        check_name(namespace).map_err(|message| ReportError::Invalid {
            namespace: namespace.to_string(),
            field: "namespace".into(),
            message,
        })?;
        if batch.events.len() > MAX_EVENTS_PER_POST {
            return Err(ReportError::TooMany {
                namespace: namespace.to_string(),
                what: "events",
                count: batch.events.len(),
                limit: MAX_EVENTS_PER_POST,
            });
        }
        for (i, ev) in batch.events.iter().enumerate() {
            check_event(namespace, ev).map_err(|(field, message)| ReportError::Invalid {
                namespace: namespace.to_string(),
                field: format!("events[{i}].{field}"),
                message,
            })?;
        }
        let n = batch.events.len();
        for ev in batch.events {
            self.emit(ev);
        }
        Ok(n)
    }

    /// Puts the config's Providers and Alerts in force, with the sources' labels.
    pub fn configure(&self, alerting: &Alerting, labels: &SourceLabels) {
        self.inner.dispatcher.configure(alerting);
        let mut current = self.inner.labels.write().unwrap_or_else(|p| p.into_inner());
        if *current != *labels {
            *current = labels.clone();
        }
    }

    /// Tenancy: an Alert takes events of another namespace's sources only when `policy` shows
    /// them to the Alert's namespace. Set once, in cluster mode.
    pub fn set_policy(&self, policy: Arc<crate::tenancy::Policy>) {
        self.inner.dispatcher.set_policy(policy);
    }

    /// Emits an event of the server about source `key`, with the source's labels.
    pub fn emit_source(
        &self,
        key: &SourceKey,
        severity: Severity,
        reason: &str,
        message: &str,
        revision: Option<&Revision>,
    ) {
        let mut event = source_event(key, severity, reason, message, revision);
        if let Some(labels) = self
            .inner
            .labels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            event.labels = labels.clone();
        }
        self.emit(event);
    }

    /// Takes one event (the server's own, or a checked agent's): alerts, the ring, the feed.
    pub fn emit(&self, event: ReportedEvent) {
        self.inner.dispatcher.dispatch(&event);
        {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // No subscriber is fine.
        let _ = self.inner.live.send(event);
    }
}

/// The reason of a source's event when it has a new artifact (Flux's).
pub const NEW_ARTIFACT: &str = "NewArtifact";

/// The `reportingController` of the server's own events.
pub const COMPONENT: &str = "ferry-source-server";

/// An event of the source server about source `key`.
pub fn source_event(
    key: &SourceKey,
    severity: Severity,
    reason: &str,
    message: &str,
    revision: Option<&Revision>,
) -> ReportedEvent {
    ReportedEvent {
        event: Event {
            involved_object: InvolvedObject {
                kind: key.kind.to_string(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                api_version: Some("source.ferry.dev/v1".into()),
                uid: None,
            },
            severity,
            timestamp: chrono::Utc::now(),
            message: message.to_string(),
            reason: reason.to_string(),
            metadata: revision
                .map(|r| (META_REVISION.to_string(), r.to_string()))
                .into_iter()
                .collect(),
            reporting_controller: COMPONENT.to_string(),
            reporting_instance: String::new(),
        },
        labels: BTreeMap::new(),
    }
}

/// A Kubernetes object name (DNS subdomain).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid name (lowercase letters, digits, '-' and '.', starting and \
             ending with a letter or digit)",
            name.chars().take(64).collect::<String>()
        ))
    }
}

fn check_event(namespace: &str, ev: &ReportedEvent) -> Result<(), (&'static str, String)> {
    let obj = &ev.event.involved_object;
    if obj.namespace != namespace {
        return Err((
            "involvedObject.namespace",
            format!(
                "{:?}: an agent reports only objects of its own namespace {namespace:?}",
                obj.namespace.chars().take(64).collect::<String>()
            ),
        ));
    }
    check_name(&obj.name).map_err(|m| ("involvedObject.name", m))?;
    for (field, text, limit) in [
        ("involvedObject.kind", obj.kind.as_str(), MAX_KEY),
        ("reason", ev.event.reason.as_str(), MAX_KEY),
        ("message", ev.event.message.as_str(), MAX_MESSAGE),
        (
            "reportingController",
            ev.event.reporting_controller.as_str(),
            MAX_KEY,
        ),
        (
            "reportingInstance",
            ev.event.reporting_instance.as_str(),
            MAX_KEY,
        ),
    ] {
        if text.len() > limit {
            return Err((field, format!("{} bytes, the limit is {limit}", text.len())));
        }
    }
    check_map("metadata", &ev.event.metadata)?;
    check_map("labels", &ev.labels)
}

fn check_map(
    field: &'static str,
    map: &BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    if map.len() > MAX_ENTRIES {
        return Err((
            field,
            format!("{} entries, the limit is {MAX_ENTRIES}", map.len()),
        ));
    }
    match map
        .iter()
        .find(|(k, v)| k.len() > MAX_KEY || v.len() > MAX_VALUE)
    {
        Some((k, _)) => Err((
            field,
            format!(
                "entry {:?} is longer than {MAX_KEY} (key) or {MAX_VALUE} (value) bytes",
                k.chars().take(64).collect::<String>()
            ),
        )),
        None => Ok(()),
    }
}
