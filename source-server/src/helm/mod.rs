//! Helm chart repositories: the source server's half of Helm support.
//!
//! Design. Each `HelmRepository` has a task ([`repo`]) that fetches the repository's
//! `index.yaml` with a conditional GET ([`fetch`]) every `interval`; a 304 costs nothing more,
//! a new body is parsed while it streams in ([`index`]) into a compact table of chart versions
//! — the only thing kept of it. Agents never see an index: they ask the server to resolve
//! `(repository, chart, range)` ([`resolve`], ranges in Helm's syntax: [`constraint`]); the
//! first answer for a chart version downloads its `.tgz`, checks the index's digest and packs
//! its files as a canonical artifact ([`chart`]), stored like Git artifacts and served at
//! `/v1/artifacts/sha256/<hex>`. Every resolution asked for is registered in the repository's
//! persisted state; after each index change the task re-resolves them and announces a changed
//! answer as an `artifact` event of kind `HelmChart` (see `ferry_proto::api`). Registered
//! resolutions keep their artifacts (and the last `--keep` ones) from garbage collection.

pub mod chart;
pub mod constraint;
pub mod fetch;
pub mod index;
mod replicas;
mod repo;
mod resolve;
pub mod scan;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ferry_proto::api::{ArtifactEvent, HelmRepositoryView};
use ferry_proto::{ArtifactLimits, HelmRepositoryStatus, Revision, SourceKey, SourceKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::DesiredHelmRepository;
use crate::storage::ChartRecord;
use index::ChartTable;

pub use replicas::{FORWARDED_HEADER, Forwarded};
pub(crate) use repo::apply;
pub use resolve::ResolveError;
pub(crate) use resolve::resolve;

/// Flux's `--helm-index-max-size` default: 50 MiB.
pub const DEFAULT_MAX_INDEX_SIZE: u64 = 50 << 20;
/// Flux's `--helm-chart-max-size` default (the `.tgz`): 10 MiB.
pub const DEFAULT_MAX_CHART_SIZE: u64 = 10 << 20;
/// Flux's `--helm-chart-file-max-size` default (one file in a chart): 5 MiB.
pub const DEFAULT_MAX_CHART_FILE_SIZE: u64 = 5 << 20;

/// Bounds on what a chart repository may send, and how long chart resolutions are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmLimits {
    /// Largest `index.yaml`, in bytes.
    pub max_index_size: u64,
    /// Largest chart `.tgz`, in bytes.
    pub max_chart_size: u64,
    /// Largest file in a chart, in bytes (also bounded by `artifact.max_file_size`).
    pub max_chart_file_size: u64,
    /// The artifact limits every artifact obeys (the agents').
    pub artifact: ArtifactLimits,
    /// A registered chart resolution no agent asked for within this long is dropped (checked
    /// after each index fetch), and its artifacts become collectable.
    pub registration_ttl: std::time::Duration,
    /// Where an index is spooled while the fast scanner reads it, so the general parser can
    /// read it again ([`index::parse`]): the server's `--cache` directory; the system's temp
    /// directory when unset.
    pub spool_dir: Option<std::path::PathBuf>,
}

/// Default of [`HelmLimits::registration_ttl`]: 7 days (agents re-resolve on every reconcile).
pub const DEFAULT_REGISTRATION_TTL: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

impl Default for HelmLimits {
    fn default() -> Self {
        Self {
            max_index_size: DEFAULT_MAX_INDEX_SIZE,
            max_chart_size: DEFAULT_MAX_CHART_SIZE,
            max_chart_file_size: DEFAULT_MAX_CHART_FILE_SIZE,
            artifact: ArtifactLimits::default(),
            registration_ttl: DEFAULT_REGISTRATION_TTL,
            spool_dir: None,
        }
    }
}

/// The parsed index a repository resolves from.
pub(crate) struct Index {
    /// `sha256:<hex>` of the index bytes.
    pub revision: Revision,
    pub table: ChartTable,
}

/// One running repository.
pub(crate) struct Slot {
    desired: DesiredHelmRepository,
    status: HelmRepositoryStatus,
    index: Option<Arc<Index>>,
    validators: fetch::Validators,
    /// The repository's HTTP client, or why the spec/Secrets cannot make one.
    client: Result<fetch::RepoClient, String>,
    /// Registered resolutions (persisted).
    charts: Vec<ChartRecord>,
    trigger: Arc<Notify>,
    task: JoinHandle<()>,
    /// One chart download and state write at a time per repository.
    pack: Arc<tokio::sync::Mutex<()>>,
}

/// Every repository the server follows, and those refused by the config.
#[derive(Default)]
pub(crate) struct Repos {
    slots: RwLock<BTreeMap<SourceKey, Slot>>,
    invalid: RwLock<BTreeMap<SourceKey, HelmRepositoryView>>,
}

impl Repos {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, key: &SourceKey, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.write().get_mut(key) {
            f(slot);
        }
    }

    /// Every repository, running or refused, in key order.
    pub fn views(&self) -> Vec<HelmRepositoryView> {
        let mut all = self
            .invalid
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.extend(self.read().iter().map(|(k, s)| (k.clone(), view(k, s))));
        all.into_values().collect()
    }

    /// One repository, running or refused.
    pub fn view(&self, key: &SourceKey) -> Option<HelmRepositoryView> {
        let running = self.read().get(key).map(|s| view(key, s));
        running.or_else(|| {
            self.invalid
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .cloned()
        })
    }

    /// Asks a repository to fetch its index now; false when there is no such (running,
    /// unsuspended) repository.
    pub fn trigger(&self, key: &SourceKey) -> Result<(), crate::reconcile::TriggerError> {
        use crate::reconcile::TriggerError;
        match self.read().get(key) {
            None => Err(TriggerError::NotFound),
            Some(s) if s.desired.spec.suspend => Err(TriggerError::Suspended),
            Some(s) => {
                s.trigger.notify_one();
                Ok(())
            }
        }
    }

    /// The current artifact of every registered resolution, as events (an SSE snapshot).
    pub fn current_artifacts(&self) -> Vec<ArtifactEvent> {
        self.read()
            .iter()
            .flat_map(|(k, s)| s.charts.iter().map(|c| chart_event(k, c)))
            .collect()
    }

    /// The repositories with a registered resolution serving `digest` (now or kept).
    pub fn owners(&self, digest: &ferry_proto::Digest) -> Vec<SourceKey> {
        self.read()
            .iter()
            .filter(|(_, s)| {
                s.charts
                    .iter()
                    .any(|c| c.artifact.digest == *digest || c.history.contains(digest))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether `key` is running and not suspended (its index is polled by someone).
    pub fn polled(&self, key: &SourceKey) -> bool {
        self.read()
            .get(key)
            .is_some_and(|s| !s.desired.spec.suspend)
    }

    /// Stops every repository task.
    pub fn stop(&self) {
        for slot in self.read().values() {
            slot.task.abort();
        }
    }
}

fn view(key: &SourceKey, slot: &Slot) -> HelmRepositoryView {
    HelmRepositoryView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: SourceKind::HelmRepository.to_string(),
        spec: ferry_proto::HelmRepositorySpec {
            url: crate::git::redact_url(&slot.desired.spec.url),
            ..slot.desired.spec.clone()
        },
        status: slot.status.clone(),
    }
}

/// The repository's persisted record: its registered resolutions and the index they were
/// resolved from.
fn record(slot: &Slot) -> crate::storage::SourceState {
    crate::storage::SourceState {
        charts: slot.charts.clone(),
        index: slot.status.artifact.clone(),
        ..Default::default()
    }
}

/// The event announcing a registered resolution's artifact.
pub(crate) fn chart_event(repo: &SourceKey, c: &ChartRecord) -> ArtifactEvent {
    let key = SourceKey::helm_chart(&repo.namespace, &repo.name, &c.chart, &c.range);
    ArtifactEvent {
        kind: SourceKind::HelmChart,
        namespace: key.namespace,
        name: key.name,
        revision: c.artifact.revision.clone(),
        digest: c.artifact.digest,
        size: c.artifact.size,
        url: c.artifact.url.clone(),
    }
}
