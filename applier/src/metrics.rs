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

use crate::apply::ChangeSet;

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

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<NameLabels, Histogram>,
    objects: Family<ActionLabels, Counter>,
    drifted: Family<NameLabels, Gauge>,
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
        let duration = Family::<NameLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let objects = Family::<ActionLabels, Counter>::default();
        let drifted = Family::<NameLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles by Kustomization and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
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
        Self {
            registry: Arc::new(registry),
            reconciles,
            duration,
            objects,
            drifted,
        }
    }

    pub fn observe_reconcile(&self, kustomization: &str, took: Duration, ok: bool) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kustomization: kustomization.into(),
                result: if ok { "success" } else { "failure" }.into(),
            })
            .inc();
        self.duration
            .get_or_create(&NameLabels {
                kustomization: kustomization.into(),
            })
            .observe(took.as_secs_f64());
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

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("could not encode metrics");
        }
        out
    }

    /// Serves `GET /metrics` on `addr` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use axum::{Router, routing::get};
        let app = Router::new().route(
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
    use crate::apply::{Action, Change, ObjectId};

    #[test]
    fn exposes_reconciles_and_objects() {
        let m = Metrics::new();
        m.observe_reconcile("apps", Duration::from_millis(20), true);
        m.observe_changes(
            "apps",
            &ChangeSet {
                changes: vec![Change {
                    id: ObjectId {
                        group: "".into(),
                        kind: "ConfigMap".into(),
                        namespace: "ns".into(),
                        name: "c".into(),
                    },
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
    }
}
