//! Prometheus metrics served at `GET /metrics` (text exposition format), per source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::SourceKey;

type Labels = Vec<(String, String)>;

/// The server's metrics; every per-source series is removed with its source ([`Metrics::forget`]).
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Failure reasons seen per source: the label values [`Metrics::forget`] must remove.
    reasons: Mutex<BTreeMap<SourceKey, BTreeSet<&'static str>>>,
    fetch_duration: Family<Labels, Histogram, fn() -> Histogram>,
    failures: Family<Labels, Counter>,
    artifacts: Family<Labels, Counter>,
    artifact_size: Family<Labels, Gauge>,
    last_success: Family<Labels, Gauge>,
    config_errors: Gauge,
    helm_index: Family<Labels, Counter>,
    helm_index_general: Family<Labels, Counter>,
    helm_charts: Family<Labels, Counter>,
    bucket_objects: Family<Labels, Counter>,
    bucket_bytes: Family<Labels, Counter>,
    hooks: Family<Labels, Counter>,
    hooks_unknown: Counter,
    stream_clients: Gauge,
}

/// Counts one connected `/v1/events` client in `ferry_source_event_stream_clients` for as
/// long as it is held.
pub struct StreamClient(Gauge);

impl Drop for StreamClient {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~80 s: an unchanged poll is milliseconds, a cold mirror of a big repo is seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn labels(key: &SourceKey, extra: &[(&str, &str)]) -> Labels {
    let mut l = vec![
        ("namespace".to_string(), key.namespace.clone()),
        ("name".to_string(), key.name.clone()),
    ];
    // GitRepository series predate kinds and keep their labels; other kinds say theirs.
    if key.kind != ferry_proto::SourceKind::GitRepository {
        l.push(("kind".to_string(), key.kind.to_string()));
    }
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

fn receiver_labels(
    receiver: &ferry_proto::ObjectRef,
    outcome: Option<ferry_proto::api::HookOutcome>,
) -> Labels {
    let mut l = vec![
        (
            "namespace".to_string(),
            receiver.namespace_or_empty().to_string(),
        ),
        ("name".to_string(), receiver.name.clone()),
    ];
    if let Some(o) = outcome {
        l.push(("outcome".to_string(), o.as_str().to_string()));
    }
    l
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry_source");
        let fetch_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let failures = Family::<Labels, Counter>::default();
        let artifacts = Family::<Labels, Counter>::default();
        let artifact_size = Family::<Labels, Gauge>::default();
        let last_success = Family::<Labels, Gauge>::default();
        let config_errors = Gauge::default();
        let helm_index = Family::<Labels, Counter>::default();
        let helm_index_general = Family::<Labels, Counter>::default();
        let helm_charts = Family::<Labels, Counter>::default();
        let bucket_objects = Family::<Labels, Counter>::default();
        let bucket_bytes = Family::<Labels, Counter>::default();
        registry.register(
            "bucket_objects_downloaded",
            "Objects a Bucket reconcile downloaded to build an artifact (unchanged ETags are \
             reused from the previous artifact, not downloaded)",
            bucket_objects.clone(),
        );
        registry.register(
            "bucket_bytes_downloaded",
            "Bytes of the objects a Bucket reconcile downloaded to build an artifact",
            bucket_bytes.clone(),
        );
        let hooks = Family::<Labels, Counter>::default();
        let hooks_unknown = Counter::default();
        registry.register(
            "receiver_requests",
            "Webhook calls per Receiver, by outcome (accepted, ignored, duplicate, rate_limited, \
             unauthorized, too_large, bad_request, suspended, failed)",
            hooks.clone(),
        );
        registry.register(
            "receiver_unknown_path_requests",
            "Webhook calls on a hook path no Receiver has",
            hooks_unknown.clone(),
        );
        registry.register(
            "helm_index_fetches",
            "HelmRepository index fetches that got an answer: result=parsed (a body, parsed) or \
             not_modified (304, nothing parsed)",
            helm_index.clone(),
        );
        registry.register(
            "helm_index_general_parses",
            "HelmRepository indexes read by the general YAML parser because the fast scanner \
             for `helm repo index` output was not sure of them (flow style, anchors, …)",
            helm_index_general.clone(),
        );
        registry.register(
            "helm_charts_packed",
            "Chart versions downloaded and packed into artifacts, per HelmRepository",
            helm_charts.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile (remote check, and fetch and build when the ref moved), by result",
            fetch_duration.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles, by reason",
            failures.clone(),
        );
        registry.register("artifacts_built", "New artifacts built", artifacts.clone());
        registry.register(
            "artifact_size_bytes",
            "Size of the current artifact (format=tar: uncompressed, format=gzip: as served)",
            artifact_size.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful reconcile",
            last_success.clone(),
        );
        registry.register(
            "config_errors",
            "Documents rejected in the last config load",
            config_errors.clone(),
        );
        let stream_clients = Gauge::default();
        registry.register(
            "event_stream_clients",
            "Clients connected to GET /v1/events",
            stream_clients.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            reasons: Mutex::new(BTreeMap::new()),
            fetch_duration,
            failures,
            artifacts,
            artifact_size,
            last_success,
            config_errors,
            helm_index,
            helm_index_general,
            helm_charts,
            bucket_objects,
            bucket_bytes,
            hooks,
            hooks_unknown,
            stream_clients,
        }
    }

    /// One more `/v1/events` client, until the returned guard is dropped.
    pub fn stream_client(&self) -> StreamClient {
        self.stream_clients.inc();
        StreamClient(self.stream_clients.clone())
    }

    /// A webhook call of the Receiver `receiver` and what became of it.
    pub fn hook(&self, receiver: &ferry_proto::ObjectRef, outcome: ferry_proto::api::HookOutcome) {
        self.hooks
            .get_or_create(&receiver_labels(receiver, Some(outcome)))
            .inc();
    }

    /// A webhook call on an unknown path.
    pub fn hook_unknown(&self) {
        self.hooks_unknown.inc();
    }

    /// Removes the series of a Receiver that is gone.
    pub fn forget_receiver(&self, receiver: &ferry_proto::ObjectRef) {
        use ferry_proto::api::HookOutcome::*;
        for outcome in [
            Accepted,
            Ignored,
            Duplicate,
            RateLimited,
            Unauthorized,
            TooLarge,
            BadRequest,
            Suspended,
            Failed,
        ] {
            self.hooks.remove(&receiver_labels(receiver, Some(outcome)));
        }
    }

    pub fn observe_reconcile(&self, key: &SourceKey, seconds: f64, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.fetch_duration
            .get_or_create(&labels(key, &[("result", result)]))
            .observe(seconds);
        if ok {
            self.last_success
                .get_or_create(&labels(key, &[]))
                .set(chrono::Utc::now().timestamp());
        }
    }

    pub fn failure(&self, key: &SourceKey, reason: &'static str) {
        self.reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .insert(reason);
        self.failures
            .get_or_create(&labels(key, &[("reason", reason)]))
            .inc();
    }

    /// Removes every series of `key`: a removed source must not be reported forever (nor
    /// keep its label values in memory).
    pub fn forget(&self, key: &SourceKey) {
        for result in ["success", "failure"] {
            self.fetch_duration
                .remove(&labels(key, &[("result", result)]));
        }
        let reasons = self
            .reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
            .unwrap_or_default();
        for reason in reasons {
            self.failures.remove(&labels(key, &[("reason", reason)]));
        }
        self.artifacts.remove(&labels(key, &[]));
        for format in ["tar", "gzip"] {
            self.artifact_size
                .remove(&labels(key, &[("format", format)]));
        }
        self.last_success.remove(&labels(key, &[]));
        self.bucket_objects.remove(&labels(key, &[]));
        self.bucket_bytes.remove(&labels(key, &[]));
    }

    /// What a Bucket reconcile downloaded (nothing is recorded for other kinds).
    pub fn downloaded(&self, key: &SourceKey, d: crate::backend::Downloaded) {
        if key.kind != ferry_proto::SourceKind::Bucket {
            return;
        }
        self.bucket_objects
            .get_or_create(&labels(key, &[]))
            .inc_by(d.objects);
        self.bucket_bytes
            .get_or_create(&labels(key, &[]))
            .inc_by(d.bytes);
    }

    pub fn artifact(&self, key: &SourceKey, tar_size: u64, gz_size: u64) {
        self.artifacts.get_or_create(&labels(key, &[])).inc();
        let gauge = |fmt, v: u64| {
            self.artifact_size
                .get_or_create(&labels(key, &[("format", fmt)]))
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge("tar", tar_size);
        gauge("gzip", gz_size);
    }

    /// An index fetch of a HelmRepository: `parsed` or `not_modified`.
    pub fn helm_index(&self, key: &SourceKey, result: &'static str) {
        self.helm_index
            .get_or_create(&labels(key, &[("result", result)]))
            .inc();
    }

    /// An index parse of a HelmRepository done by the general YAML parser.
    pub fn helm_index_general(&self, key: &SourceKey) {
        self.helm_index_general
            .get_or_create(&labels(key, &[]))
            .inc();
    }

    /// A chart version downloaded and packed for a HelmRepository.
    pub fn helm_chart_packed(&self, key: &SourceKey) {
        self.helm_charts.get_or_create(&labels(key, &[])).inc();
    }

    /// Removes every series of a HelmRepository (its reconcile series included).
    pub fn forget_helm(&self, key: &SourceKey) {
        for result in ["parsed", "not_modified"] {
            self.helm_index.remove(&labels(key, &[("result", result)]));
        }
        self.helm_charts.remove(&labels(key, &[]));
        self.helm_index_general.remove(&labels(key, &[]));
        self.forget(key);
    }

    pub fn set_config_errors(&self, n: usize) {
        self.config_errors.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Adds a metric owned elsewhere (the alert counters of [`crate::notification`]).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.register(name, help, metric);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_source_series() {
        let m = Metrics::new();
        let key = SourceKey {
            kind: Default::default(),
            namespace: "ns".into(),
            name: "app".into(),
        };
        m.observe_reconcile(&key, 0.01, true);
        m.failure(&key, "RefNotFound");
        m.artifact(&key, 10240, 300);
        let text = m.render();
        for needle in [
            r#"ferry_source_reconcile_duration_seconds_count{namespace="ns",name="app",result="success"} 1"#,
            r#"ferry_source_reconcile_failures_total{namespace="ns",name="app",reason="RefNotFound"} 1"#,
            r#"ferry_source_artifact_size_bytes{namespace="ns",name="app",format="tar"} 10240"#,
            "ferry_source_last_success_timestamp_seconds{",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    /// Issue 12: the series of a removed source stayed forever.
    #[test]
    fn forgetting_a_source_removes_every_one_of_its_series() {
        let m = Metrics::new();
        let gone = SourceKey::new("ns", "gone");
        let kept = SourceKey::new("ns", "kept");
        for key in [&gone, &kept] {
            m.observe_reconcile(key, 0.01, true);
            m.observe_reconcile(key, 0.01, false);
            m.failure(key, "RefNotFound");
            m.failure(key, "Timeout");
            m.artifact(key, 10, 5);
        }
        m.forget(&gone);
        let text = m.render();
        assert!(!text.contains(r#"name="gone""#), "{text}");
        assert!(text.contains(r#"name="kept",reason="Timeout""#), "{text}");
    }
}
