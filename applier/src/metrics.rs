//! Prometheus metrics (`GET /metrics` on `--metrics-addr`), in Flux's spirit: reconcile counts
//! and durations per Kustomization, objects applied by action, and drifted objects.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::apply::{Action, ChangeSet};

const SUCCESS: &str = "success";
const FAILURE: &str = "failure";
const SUSPENDED: &str = "suspended";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kustomization: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    kustomization: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kustomization: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    /// `Normal` or `Warning`.
    r#type: String,
    /// `created` (a new Event) or `aggregated` (a repeat counted on an existing one).
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    /// `events` or `status`.
    kind: String,
    /// `sent`, `failed` (will be retried) or `dropped` (the queue was full).
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    /// `namespace/name`.
    source: String,
    revision: String,
}

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<ReconcileLabels, Histogram>,
    objects: Family<ActionLabels, Counter>,
    drifted: Family<NameLabels, Gauge>,
    artifacts: Family<SourceLabels, Counter>,
    events: Family<EventLabels, Counter>,
    reports: Family<ReportLabels, Counter>,
    /// The revision last announced per source, whose series is the current one.
    announced: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry_applier");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let duration = Family::<ReconcileLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let objects = Family::<ActionLabels, Counter>::default();
        let drifted = Family::<NameLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles by Kustomization and result (success, failure, or suspended: looked at and left alone)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by Kustomization and result",
            duration.clone(),
        );
        registry.register(
            "objects",
            "Objects applied, by action (created, configured, unchanged, skipped)",
            objects.clone(),
        );
        registry.register(
            "drifted_objects",
            "Objects whose live state differs from Git (detect mode)",
            drifted.clone(),
        );
        let artifacts = Family::<SourceLabels, Counter>::default();
        registry.register(
            "artifact_announcements",
            "Announcements of a source's artifact heard from the source server, for the source's current revision",
            artifacts.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Kubernetes Events recorded, by type and whether a repeat was aggregated into an existing Event",
            events.clone(),
        );
        let reports = Family::<ReportLabels, Counter>::default();
        registry.register(
            "reports",
            "Events and status reports sent to the source server, by kind and result (events counted one by one)",
            reports.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            duration,
            objects,
            drifted,
            artifacts,
            events,
            reports,
            announced: Default::default(),
        }
    }

    /// A reconcile of a suspended Kustomization: looked at, nothing done.
    pub fn observe_suspended(&self, kustomization: &str) {
        let labels = ReconcileLabels {
            kustomization: kustomization.into(),
            result: SUSPENDED.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
    }

    pub fn observe_reconcile(&self, kustomization: &str, took: Duration, ok: bool) {
        let labels = ReconcileLabels {
            kustomization: kustomization.into(),
            result: if ok { SUCCESS } else { FAILURE }.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Removes every series of `kustomization` (it was deleted): a removed Kustomization must
    /// not be reported forever.
    pub fn forget(&self, kustomization: &str) {
        for result in [SUCCESS, FAILURE] {
            let labels = ReconcileLabels {
                kustomization: kustomization.into(),
                result: result.into(),
            };
            self.reconciles.remove(&labels);
            self.duration.remove(&labels);
        }
        for action in [
            Action::Created,
            Action::Configured,
            Action::Unchanged,
            Action::Skipped,
        ] {
            self.objects.remove(&ActionLabels {
                kustomization: kustomization.into(),
                action: action.to_string(),
            });
        }
        self.drifted.remove(&NameLabels {
            kustomization: kustomization.into(),
        });
    }

    pub fn observe_changes(&self, kustomization: &str, changes: &ChangeSet) {
        for c in &changes.changes {
            self.objects
                .get_or_create(&ActionLabels {
                    kustomization: kustomization.into(),
                    action: c.action.to_string(),
                })
                .inc();
        }
    }

    pub fn set_drifted(&self, kustomization: &str, n: usize) {
        self.drifted
            .get_or_create(&NameLabels {
                kustomization: kustomization.into(),
            })
            .set(n as i64);
    }

    /// A Kubernetes Event of `type_` was written: a new one, or a repeat `aggregated` into an
    /// existing Event's count.
    pub fn observe_event(&self, type_: &str, aggregated: bool) {
        self.events
            .get_or_create(&EventLabels {
                r#type: type_.into(),
                result: if aggregated { "aggregated" } else { "created" }.into(),
            })
            .inc();
    }

    /// `n` reports of `kind` (`events`, `status`) ended with `result`.
    pub fn observe_report(&self, kind: &str, result: &str, n: usize) {
        self.reports
            .get_or_create(&ReportLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc_by(n as u64);
    }

    /// The source server announced `revision` for `source` (`namespace/name`); only the
    /// current revision of each source keeps a series.
    pub fn observe_announcement(&self, source: &str, revision: &str) {
        let mut announced = self.announced.lock().expect("metrics lock poisoned");
        if let Some(old) = announced.insert(source.to_string(), revision.to_string())
            && old != revision
        {
            self.artifacts.remove(&SourceLabels {
                source: source.into(),
                revision: old,
            });
        }
        self.artifacts
            .get_or_create(&SourceLabels {
                source: source.into(),
                revision: revision.into(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("could not encode metrics");
        }
        out
    }

    /// Serves `GET /metrics`, and the probes `GET /healthz` and `GET /readyz`, on `addr`
    /// until the process ends. The agent binds this only after it has reached the API server
    /// (`connect::context`), so being served at all is what readiness means.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use axum::{Router, routing::get};
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ready" }))
            .route(
                "/metrics",
                get(move || {
                    let m = self.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            m.encode(),
                        )
                    }
                }),
            );
        axum::serve(listener, app).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Change, ObjectRef};

    #[test]
    fn exposes_reconciles_and_objects() {
        let m = Metrics::new();
        m.observe_reconcile("apps", Duration::from_millis(20), true);
        m.observe_changes(
            "apps",
            &ChangeSet {
                changes: vec![Change {
                    id: ObjectRef::new("", "ConfigMap", Some("ns"), "c"),
                    version: "v1".into(),
                    action: Action::Created,
                }],
            },
        );
        let text = m.encode();
        assert!(
            text.contains(
                r#"ferry_applier_reconciles_total{kustomization="apps",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ferry_applier_objects_total{kustomization="apps",action="created"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ferry_applier_reconcile_duration_seconds_count{kustomization="apps",result="success"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_removed_kustomization_leaves_no_series() {
        let m = Metrics::new();
        m.observe_reconcile("gone", Duration::from_millis(20), false);
        m.observe_reconcile("kept", Duration::from_millis(20), true);
        m.set_drifted("gone", 2);
        assert!(m.encode().contains(r#"kustomization="gone""#));
        m.forget("gone");
        let text = m.encode();
        assert!(!text.contains(r#"kustomization="gone""#), "{text}");
        assert!(text.contains(r#"kustomization="kept""#), "{text}");
    }
}
