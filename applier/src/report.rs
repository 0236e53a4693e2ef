//! What the agent tells the source server: the events it records (for alerting, see the source
//! server's `notification` module) and a summary of every Kustomization and HelmRelease of its
//! namespace (the server's agent index behind `GET /v1/agents` and the status page).
//!
//! Reporting must never slow a reconcile, nor grow without bound while the server is away:
//! [`Reporter::event`] and [`Reporter::object`] only touch memory. Events wait in a bounded
//! queue ([`MAX_QUEUED_EVENTS`]; when it is full the **oldest** is dropped and counted), and one
//! background task ([`Reporter::run`]) sends them in batches of at most
//! [`MAX_EVENTS_PER_POST`], retrying with the project's [`Backoff`] while the server is down.
//! The summaries are a map per object; the task `PUT`s the whole map when an entry changed,
//! and at least every [`RESEND_EVERY`], so a restarted server learns the namespace again
//! without any object having to change.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use ferry_proto::api::{
    AgentReport, EventBatch, MAX_EVENTS_PER_POST, ObjectSummary, ReportedEvent,
};
use ferry_proto::condition::{READY, find_condition};
use ferry_proto::helmrelease::HelmReleaseStatus;
use ferry_proto::kustomization::KustomizationStatus;
use ferry_proto::{Backoff, Condition, ConditionStatus};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::source_client::SourceClient;

/// Events waiting for the server; beyond this the oldest are dropped.
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// The whole namespace is sent again after this long even when nothing changed.
pub const RESEND_EVERY: Duration = Duration::from_secs(60);

/// Delays between attempts while the source server does not take reports.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

#[derive(Default)]
struct State {
    events: VecDeque<ReportedEvent>,
    objects: BTreeMap<(String, String), ObjectSummary>,
    /// An object changed since the last successful `PUT`.
    dirty: bool,
}

/// Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Reporter {
    namespace: String,
    metrics: Metrics,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Reporter {
    pub fn new(namespace: &str, metrics: Metrics) -> Self {
        Self {
            namespace: namespace.to_string(),
            metrics,
            state: Default::default(),
            wake: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event` for the server; never waits.
    pub fn event(&self, event: ReportedEvent) {
        let dropped = {
            let mut state = self.lock();
            state.events.push_back(event);
            let excess = state.events.len().saturating_sub(MAX_QUEUED_EVENTS);
            state.events.drain(..excess);
            excess
        };
        if dropped > 0 {
            self.metrics.observe_report("events", "dropped", dropped);
        }
        self.wake.notify_one();
    }

    /// Records an object's current summary; sent when it differs from the last one (the time
    /// of the change is kept from the first sighting).
    pub fn object(&self, mut summary: ObjectSummary) {
        let key = (summary.kind.clone(), summary.name.clone());
        let changed = {
            let mut state = self.lock();
            let same = state.objects.get(&key).is_some_and(|old| {
                summary.updated_at = old.updated_at;
                *old == summary
            });
            if !same {
                summary.updated_at = Utc::now();
                state.objects.insert(key, summary);
                state.dirty = true;
            }
            !same
        };
        if changed {
            self.wake.notify_one();
        }
    }

    /// The object is gone from the cluster.
    pub fn forget(&self, kind: &str, name: &str) {
        let removed = {
            let mut state = self.lock();
            let removed = state
                .objects
                .remove(&(kind.to_string(), name.to_string()))
                .is_some();
            state.dirty |= removed;
            removed
        };
        if removed {
            self.wake.notify_one();
        }
    }

    /// Sends what is queued until the process ends. Only the agent runs this; other users of
    /// the reconcile code (`ferry diff`) queue into memory that is never sent.
    pub async fn run(self, client: SourceClient) {
        let mut failures = 0u32;
        let mut last_full = tokio::time::Instant::now();
        loop {
            let due = last_full.elapsed() >= RESEND_EVERY;
            let result = self.send_once(&client, due).await;
            match result {
                Ok(sent_status) => {
                    failures = 0;
                    if sent_status {
                        last_full = tokio::time::Instant::now();
                    }
                    if self.idle() {
                        let until = last_full + RESEND_EVERY;
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep_until(until) => {}
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = BACKOFF.delay(failures);
                    tracing::debug!(error = %e, retry_in = ?delay, "source server does not take reports");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Nothing waits to be sent.
    fn idle(&self) -> bool {
        let state = self.lock();
        state.events.is_empty() && !state.dirty
    }

    /// One round: the status when it changed (or `full`), then one batch of events. Returns
    /// whether the status was sent.
    async fn send_once(
        &self,
        client: &SourceClient,
        full: bool,
    ) -> Result<bool, crate::source_client::SourceClientError> {
        let report = {
            let mut state = self.lock();
            (state.dirty || full).then(|| {
                state.dirty = false;
                AgentReport {
                    objects: state.objects.values().cloned().collect(),
                }
            })
        };
        let sent_status = report.is_some();
        if let Some(report) = report
            && let Err(e) = client.put_status(&self.namespace, &report).await
        {
            self.lock().dirty = true;
            self.metrics.observe_report("status", "failed", 1);
            return Err(e);
        }
        if sent_status {
            self.metrics.observe_report("status", "sent", 1);
        }
        let batch: Vec<ReportedEvent> = {
            let mut state = self.lock();
            let n = state.events.len().min(MAX_EVENTS_PER_POST);
            state.events.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(sent_status);
        }
        let n = batch.len();
        let batch = EventBatch { events: batch };
        if let Err(e) = client.post_events(&self.namespace, &batch).await {
            self.metrics.observe_report("events", "failed", n);
            // Back to the front, in order; what no longer fits is the oldest, dropped.
            let mut state = self.lock();
            for ev in batch.events.into_iter().rev() {
                state.events.push_front(ev);
            }
            let excess = state.events.len().saturating_sub(MAX_QUEUED_EVENTS);
            state.events.drain(..excess);
            drop(state);
            if excess > 0 {
                self.metrics.observe_report("events", "dropped", excess);
            }
            return Err(e);
        }
        self.metrics.observe_report("events", "sent", n);
        Ok(sent_status)
    }
}

/// The summary of a Kustomization from its status.
pub fn kustomization_summary(
    name: &str,
    suspended: bool,
    st: &KustomizationStatus,
) -> ObjectSummary {
    let mut s = summary("Kustomization", name, suspended, &st.conditions);
    s.last_applied_revision = st.last_applied_revision.clone();
    s.last_attempted_revision = st.last_attempted_revision.clone();
    s.drifted = st.drift.as_ref().map(|d| {
        u32::try_from(d.objects.len())
            .unwrap_or(u32::MAX)
            .saturating_add(d.omitted)
    });
    s.inventory = st.inventory.clone().unwrap_or_default();
    s
}

/// The summary of a HelmRelease from its status: the applied revision is the deployed chart
/// version (Flux's `lastAppliedRevision` of a HelmRelease); `drifted` is 1 while
/// `Drifted=True` (a release's drift is a condition, not a list of objects).
pub fn helm_release_summary(name: &str, suspended: bool, st: &HelmReleaseStatus) -> ObjectSummary {
    let mut s = summary("HelmRelease", name, suspended, &st.conditions);
    s.last_applied_revision = st
        .history
        .iter()
        .find(|h| h.status == "deployed")
        .map(|h| h.chart_version.clone());
    s.last_attempted_revision = st.last_attempted_revision.clone();
    s.drifted = find_condition(&st.conditions, ferry_proto::helmrelease::DRIFTED)
        .map(|c| u32::from(c.is_true()));
    s.inventory = st.inventory.clone().unwrap_or_default();
    s
}

fn summary(kind: &str, name: &str, suspended: bool, conditions: &[Condition]) -> ObjectSummary {
    let ready = find_condition(conditions, READY);
    ObjectSummary {
        kind: kind.to_string(),
        name: name.to_string(),
        ready: ready.map_or(ConditionStatus::Unknown, |c| c.status),
        reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        suspended,
        last_applied_revision: None,
        last_attempted_revision: None,
        drifted: None,
        inventory: Default::default(),
        updated_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::api::{Event, InvolvedObject, Severity};

    fn event(i: usize) -> ReportedEvent {
        ReportedEvent {
            event: Event {
                involved_object: InvolvedObject {
                    kind: "Kustomization".into(),
                    namespace: "team-a".into(),
                    name: "app".into(),
                    ..Default::default()
                },
                severity: Severity::Error,
                timestamp: Utc::now(),
                message: format!("failure {i}"),
                reason: "BuildFailed".into(),
                metadata: Default::default(),
                reporting_controller: "ferry-applier".into(),
                reporting_instance: String::new(),
            },
            labels: Default::default(),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_events_and_counts_them() {
        let metrics = Metrics::new();
        let r = Reporter::new("team-a", metrics.clone());
        for i in 0..MAX_QUEUED_EVENTS + 5 {
            r.event(event(i));
        }
        let state = r.lock();
        assert_eq!(state.events.len(), MAX_QUEUED_EVENTS);
        assert_eq!(state.events[0].event.message, "failure 5", "oldest dropped");
        drop(state);
        assert!(
            metrics
                .encode()
                .contains(r#"ferry_applier_reports_total{kind="events",result="dropped"} 5"#),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn only_a_changed_summary_is_sent_again() {
        let r = Reporter::new("team-a", Metrics::new());
        let mut st = KustomizationStatus::default();
        r.object(kustomization_summary("app", false, &st));
        assert!(r.lock().dirty);
        let first_seen = r.lock().objects.values().next().map(|o| o.updated_at);
        r.lock().dirty = false;
        r.object(kustomization_summary("app", false, &st));
        assert!(!r.lock().dirty, "same summary: nothing to send");
        assert_eq!(
            r.lock().objects.values().next().map(|o| o.updated_at),
            first_seen
        );
        st.last_attempted_revision = Some("main@sha1:abc".into());
        r.object(kustomization_summary("app", false, &st));
        assert!(r.lock().dirty);
        r.lock().dirty = false;
        r.forget("Kustomization", "app");
        assert!(r.lock().dirty && r.lock().objects.is_empty());
    }
}
