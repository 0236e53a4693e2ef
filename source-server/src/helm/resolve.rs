//! Resolving `(repository, chart, range)` to a chart version's artifact, packing it on first
//! use, and registering the resolution so index changes re-resolve it.

use std::sync::Arc;

use chrono::Utc;
use ferry_proto::api::HelmChartArtifact;
use ferry_proto::{ArtifactRef, Revision, SourceKey};

use super::chart;
use super::constraint::{Constraint, ConstraintError};
use super::index::{ChartVersion, Resolution};
use crate::reconcile::Inner;
use crate::storage::ChartRecord;

/// Why a chart could not be resolved. Every message names the repository, and the chart and
/// range where they matter.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such HelmRepository.
    #[error("HelmRepository {repository} not found")]
    NotFound {
        /// The repository.
        repository: SourceKey,
    },
    /// The range is not a valid constraint.
    #[error("HelmRepository {repository}: chart {chart:?}: {source}")]
    InvalidRange {
        /// The repository.
        repository: SourceKey,
        /// The chart.
        chart: String,
        /// The parse failure (it quotes the range).
        source: ConstraintError,
    },
    /// The repository has no index yet (first fetch pending or failing).
    #[error("HelmRepository {repository} has no index yet: {why}")]
    NoIndex {
        /// The repository.
        repository: SourceKey,
        /// Its Ready condition's message.
        why: String,
    },
    /// The index has no chart of that name.
    #[error("HelmRepository {repository}: no chart {chart:?} in the index ({revision})")]
    NoChart {
        /// The repository.
        repository: SourceKey,
        /// The chart.
        chart: String,
        /// The index revision.
        revision: Revision,
    },
    /// No version of the chart satisfies the range.
    #[error(
        "HelmRepository {repository}: chart {chart:?}: no version matches {range:?} (latest: {})",
        latest.as_deref().unwrap_or("none")
    )]
    NoMatch {
        /// The repository.
        repository: SourceKey,
        /// The chart.
        chart: String,
        /// The range.
        range: String,
        /// The chart's highest version.
        latest: Option<String>,
    },
    /// The chart version could not be downloaded, verified or packed.
    #[error("HelmRepository {repository}: chart {chart:?} version {version}: {message}")]
    Chart {
        /// The repository.
        repository: SourceKey,
        /// The chart.
        chart: String,
        /// The version.
        version: String,
        /// Why.
        message: String,
    },
}

impl ResolveError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::NoChart { .. } | Self::NoMatch { .. } => 404,
            Self::InvalidRange { .. } => 422,
            Self::NoIndex { .. } => 503,
            Self::Chart { .. } => 502,
        }
    }
}

/// `range` as registered: trimmed, `*` when empty.
pub(crate) fn normalize(range: Option<&str>) -> String {
    match range.map(str::trim) {
        None | Some("") => "*".to_string(),
        Some(r) => r.to_string(),
    }
}

/// What identifies the bytes of a version: the index's digest, else its first URL.
pub(super) fn source_id(v: &ChartVersion) -> String {
    match (&v.digest, v.urls.first()) {
        (Some(d), _) => format!("sha256:{}", d.to_ascii_lowercase()),
        (None, Some(u)) => u.to_string(),
        (None, None) => String::new(),
    }
}

/// Resolves `range` (default `*`) for `chart` in the repository `repo`, packing the version
/// on first use, and registers the resolution.
pub(crate) async fn resolve(
    inner: &Arc<Inner>,
    repo: &SourceKey,
    chart: &str,
    range: Option<&str>,
) -> Result<HelmChartArtifact, ResolveError> {
    let range = normalize(range);
    let constraint = Constraint::parse(&range).map_err(|source| ResolveError::InvalidRange {
        repository: repo.clone(),
        chart: chart.to_string(),
        source,
    })?;
    let index = {
        let slots = inner.helm.read();
        let slot = slots.get(repo).ok_or_else(|| ResolveError::NotFound {
            repository: repo.clone(),
        })?;
        slot.index.clone().ok_or_else(|| ResolveError::NoIndex {
            repository: repo.clone(),
            why: ferry_proto::condition::find_condition(
                &slot.status.conditions,
                ferry_proto::condition::READY,
            )
            .map_or_else(|| "not fetched yet".to_string(), |c| c.message.clone()),
        })?
    };
    let found = match index.table.resolve(chart, &constraint) {
        Resolution::Found(v) => v.clone(),
        Resolution::NoChart => {
            return Err(ResolveError::NoChart {
                repository: repo.clone(),
                chart: chart.to_string(),
                revision: index.revision.clone(),
            });
        }
        Resolution::NoMatch { latest } => {
            return Err(ResolveError::NoMatch {
                repository: repo.clone(),
                chart: chart.to_string(),
                range,
                latest: latest.map(str::to_string),
            });
        }
    };
    let record = ensure(inner, repo, chart, &range, &found, true).await?;
    Ok(HelmChartArtifact {
        chart: chart.to_string(),
        version: record.version,
        revision: record.artifact.revision,
        digest: record.artifact.digest,
        size: record.artifact.size,
        url: record.artifact.url,
        index_revision: index.revision.clone(),
    })
}

/// Makes `(chart, range)` resolve to `found`: packs it unless some registration already has
/// these bytes, records the registration (persisted), and announces it when it changed.
pub(super) async fn ensure(
    inner: &Arc<Inner>,
    repo: &SourceKey,
    chart: &str,
    range: &str,
    found: &ChartVersion,
    asked: bool,
) -> Result<ChartRecord, ResolveError> {
    let failed = |message: String| ResolveError::Chart {
        repository: repo.clone(),
        chart: chart.to_string(),
        version: found.raw.to_string(),
        message,
    };
    let source = source_id(found);
    let lookup = |slot: &super::Slot| {
        slot.charts
            .iter()
            .find(|c| c.chart == chart && c.version == *found.raw && c.source == source)
            .map(|c| c.artifact.clone())
    };
    let (pack, cached, client, timeout) = {
        let slots = inner.helm.read();
        let slot = slots.get(repo).ok_or_else(|| ResolveError::NotFound {
            repository: repo.clone(),
        })?;
        (
            slot.pack.clone(),
            lookup(slot),
            slot.client.clone(),
            slot.desired.timeout,
        )
    };
    let _one_at_a_time = pack.lock().await;
    // Another request may have packed it while this one waited.
    let cached = cached.or_else(|| inner.helm.read().get(repo).and_then(lookup));
    let (artifact, gz) = match cached {
        Some(a) => (a, None),
        None => {
            let client = client.map_err(failed)?;
            let written = found
                .urls
                .first()
                .ok_or_else(|| failed("the index entry has no urls".into()))?;
            let url = client
                .chart_url(written)
                .map_err(|e| failed(e.to_string()))?;
            let limits = inner.opts.helm.clone();
            let tgz = tokio::time::timeout(timeout, client.chart(&url, limits.max_chart_size))
                .await
                .map_err(|_| {
                    failed(format!(
                        "download timed out after {timeout:?} (spec.timeout)"
                    ))
                })?
                .map_err(|e| failed(e.to_string()))?;
            let expected = found.digest.clone();
            let built = tokio::task::spawn_blocking(move || {
                chart::verify_digest(&tgz, expected.as_deref())?;
                chart::pack(&tgz, &limits.artifact, limits.max_chart_file_size)
            })
            .await
            .map_err(|e| failed(format!("packing task failed: {e}")))?
            .map_err(|e| failed(e.to_string()))?;
            inner.metrics.helm_chart_packed(repo);
            let revision = Revision::sha256(Some(found.raw.to_string()), built.digest.hex())
                .map_err(|e| failed(format!("revision: {e}")))?;
            let artifact = ArtifactRef {
                digest: built.digest,
                size: built.tar_size,
                compressed_size: Some(built.gz.len() as u64),
                revision,
                url: crate::reconcile::artifact_url(&inner.opts.public_url, &built.digest),
                last_update_time: Utc::now(),
            };
            (artifact, Some(built.gz))
        }
    };
    let storage_failed = |e: crate::storage::StorageError| failed(e.to_string());
    let (record, changed, saved) = {
        let _guard = inner.storage_lock.lock().await;
        if let Some(gz) = gz {
            inner
                .storage
                .put_artifact(&artifact.digest, gz.into())
                .await
                .map_err(storage_failed)?;
        }
        let keep = inner.opts.keep;
        let mut outcome = None;
        let mut state = None;
        inner.helm.update(repo, |slot| {
            let now = Utc::now();
            let (record, changed, new) = match slot
                .charts
                .iter_mut()
                .find(|c| c.chart == chart && c.range == range)
            {
                Some(c) => {
                    let changed = c.artifact.digest != artifact.digest;
                    if changed {
                        let old = c.artifact.digest;
                        c.history.retain(|d| *d != old && *d != artifact.digest);
                        c.history.insert(0, old);
                        c.history.truncate(keep);
                        c.artifact = artifact.clone();
                        c.version = found.raw.to_string();
                        c.source = source.clone();
                    }
                    if asked {
                        c.last_resolved = now;
                    }
                    (c.clone(), changed, false)
                }
                None => {
                    let c = ChartRecord {
                        chart: chart.to_string(),
                        range: range.to_string(),
                        version: found.raw.to_string(),
                        source: source.clone(),
                        artifact: artifact.clone(),
                        history: Vec::new(),
                        last_resolved: now,
                    };
                    slot.charts.push(c.clone());
                    (c, false, true)
                }
            };
            if changed || new {
                state = Some(super::record(slot));
            }
            outcome = Some((record, changed));
        });
        let (record, changed) = outcome.ok_or_else(|| ResolveError::NotFound {
            repository: repo.clone(),
        })?;
        if let Some(state) = &state {
            inner
                .storage
                .save_state(repo, state)
                .await
                .map_err(storage_failed)?;
        }
        (record, changed, state.is_some())
    };
    if let (true, Some(leases)) = (saved, &inner.opts.leases) {
        leases.recorded(repo).await;
    }
    if changed {
        tracing::info!(repository = %repo, chart, range, version = %record.version, digest = %record.artifact.digest, "chart resolution changed");
        inner.events.publish(super::chart_event(repo, &record));
        inner.collect_garbage().await;
    }
    Ok(record)
}
