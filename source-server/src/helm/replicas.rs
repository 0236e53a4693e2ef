//! HelmRepositories with replicas (`--lease-namespace`): one replica — the holder of the
//! repository's Lease — fetches and parses the index; the others follow its record in the store
//! and forward chart resolves to it.
//!
//! Design. Only the holder has the parsed chart table (an index can be 50 MiB; parsing it N
//! times is what the Lease saves), so a resolve reaching another replica is forwarded to the
//! holder at the URL its heartbeat Lease advertises (`--replica-url`), with the caller's
//! `Authorization` header, so the holder checks the same access. The holder packs the chart if
//! needed and records the resolution in the repository's state record before it answers; the
//! forwarding replica then reads that record at once, so it serves the chart's artifact (and
//! announces it on its event stream) like one it packed. Packing locally instead would be safe
//! (chart artifacts are content-addressed) but needs the table. When the holder cannot be
//! reached (it died; its Lease has not expired yet), a resolution already registered is
//! answered from the record, anything else is 503 naming the holder, and the agent retries.
//! A forwarded request is never forwarded again.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::api::HelmChartArtifact;
use ferry_proto::condition::{Progress, reason};
use ferry_proto::{SourceKey, SourceKind};

use crate::config::DesiredHelmRepository;
use crate::reconcile::{Controller, Inner};
use crate::storage::SourceState;

/// Header on a forwarded resolve: the forwarding replica's identity.
pub const FORWARDED_HEADER: &str = "x-ferry-forwarded-by";

/// How long a forwarded resolve may take (the holder may download and pack the chart).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest answer read from the holder (a resolve answer is well under 1 KiB).
const MAX_ANSWER: usize = 64 << 10;

/// Writes the repository's record (after an index change), one writer at a time.
pub(super) async fn save_record(inner: &Arc<Inner>, key: &SourceKey) {
    let Some(pack) = inner.helm.read().get(key).map(|s| s.pack.clone()) else {
        return;
    };
    let _one_at_a_time = pack.lock().await;
    let _guard = inner.storage_lock.lock().await;
    let Some(state) = inner.helm.read().get(key).map(super::record) else {
        return;
    };
    if let Err(e) = inner.storage.save_state(key, &state).await {
        tracing::warn!(repository = %key, error = %e, "saving the HelmRepository's record");
        return;
    }
    if let Some(leases) = &inner.opts.leases {
        leases.recorded(key).await;
    }
}

/// A replica that does not poll `d` serves what its poller recorded: the index it fetched and
/// the registered resolutions; a resolution whose artifact changed is announced.
pub(super) async fn follow(inner: &Arc<Inner>, d: &DesiredHelmRepository) {
    match inner.storage.load_state(&d.key).await {
        Ok(Some(state)) => apply_record(inner, d, state),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(repository = %d.key, error = %e, "reading the poller's record");
        }
    }
}

fn apply_record(inner: &Arc<Inner>, d: &DesiredHelmRepository, mut state: SourceState) {
    let key = &d.key;
    for c in &mut state.charts {
        c.artifact.url = crate::reconcile::artifact_url(&inner.opts.public_url, &c.artifact.digest);
    }
    let mut announce = Vec::new();
    let index = state.index.clone();
    inner.helm.update(key, |slot| {
        for c in &state.charts {
            let known = slot
                .charts
                .iter()
                .find(|o| o.chart == c.chart && o.range == c.range);
            if known.is_none_or(|o| o.artifact.digest != c.artifact.digest) {
                announce.push(c.clone());
            }
        }
        slot.charts = state.charts;
        if index.is_some() {
            slot.status.artifact = index.clone();
        }
    });
    if let Some(index) = &index {
        let message = format!("stored index for revision '{}'", index.revision);
        super::repo::set(
            inner,
            d,
            Progress::Succeeded {
                reason: reason::SUCCEEDED,
                message: &message,
            },
        );
    }
    for c in announce {
        tracing::info!(repository = %key, chart = %c.chart, range = %c.range, digest = %c.artifact.digest, "chart resolution recorded in the store by another replica");
        inner.events.publish(super::chart_event(key, &c));
    }
}

/// What a forwarded resolve got.
pub enum Forwarded {
    /// The holder's answer (any status), to pass on as is.
    Answer(u16, bytes::Bytes),
    /// The holder could not be asked; the message says why and names it.
    Unreachable(String),
}

impl Controller {
    /// The replica to forward a resolve of `repo` to: its Lease's live holder when that is not
    /// this replica, with the URL it advertises.
    pub fn helm_holder(&self, repo: &SourceKey) -> Option<(String, String)> {
        let leases = self.inner.opts.leases.as_ref()?;
        if !self.inner.helm.polled(repo) {
            return None;
        }
        leases.holder_url(repo)
    }

    /// Where this replica serves the artifact `digest`.
    pub fn artifact_url(&self, digest: &ferry_proto::Digest) -> String {
        crate::reconcile::artifact_url(&self.inner.opts.public_url, digest)
    }

    /// Reads `repo`'s record now (a forwarded resolve registered something there).
    pub async fn follow_helm(&self, repo: &SourceKey) {
        let desired = self.inner.helm.read().get(repo).map(|s| s.desired.clone());
        if let Some(d) = desired {
            follow(&self.inner, &d).await;
        }
    }

    /// A registered resolution of `(chart, range)` from the record, when the holder cannot
    /// answer.
    pub fn registered_chart(
        &self,
        repo: &SourceKey,
        chart: &str,
        range: Option<&str>,
    ) -> Option<HelmChartArtifact> {
        let range = super::resolve::normalize(range);
        let slots = self.inner.helm.read();
        let slot = slots.get(repo)?;
        let c = slot
            .charts
            .iter()
            .find(|c| c.chart == chart && c.range == range)?;
        Some(HelmChartArtifact {
            chart: c.chart.clone(),
            version: c.version.clone(),
            revision: c.artifact.revision.clone(),
            digest: c.artifact.digest,
            size: c.artifact.size,
            url: c.artifact.url.clone(),
            index_revision: slot.status.artifact.as_ref()?.revision.clone(),
        })
    }

    /// Asks `holder_url` to resolve `chart` in `repo`, as the caller (its `Authorization`).
    pub async fn forward_resolve(
        &self,
        (holder, holder_url): (&str, &str),
        repo: &SourceKey,
        chart: &str,
        range: Option<&str>,
        authorization: Option<&str>,
    ) -> Forwarded {
        static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let client = CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(FORWARD_TIMEOUT)
                .build()
                .unwrap_or_default()
        });
        let Ok(mut url) = reqwest::Url::parse(holder_url.trim_end_matches('/')) else {
            return Forwarded::Unreachable(format!(
                "{} {repo} is polled by replica {holder}, whose URL {holder_url:?} is not a URL",
                SourceKind::HelmRepository
            ));
        };
        url.path_segments_mut()
            .map(|mut p| {
                p.extend([
                    "v1",
                    "helmrepositories",
                    &repo.namespace,
                    &repo.name,
                    "charts",
                    chart,
                ]);
            })
            .ok();
        if let Some(r) = range {
            url.query_pairs_mut().append_pair("version", r);
        }
        let identity = self.inner.opts.leases.as_ref().map_or("", |l| l.identity());
        let mut req = client.get(url).header(FORWARDED_HEADER, identity);
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let unreachable = |e: &dyn std::fmt::Display| {
            Forwarded::Unreachable(format!(
                "{} {repo} is polled by replica {holder} ({holder_url}), which did not answer: {e}",
                SourceKind::HelmRepository
            ))
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return unreachable(&e),
        };
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return unreachable(&"answer too large");
        }
        match resp.bytes().await {
            Ok(b) if b.len() <= MAX_ANSWER => Forwarded::Answer(status, b),
            Ok(_) => unreachable(&"answer too large"),
            Err(e) => unreachable(&e),
        }
    }
}
