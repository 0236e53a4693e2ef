//! Scale-out on one bucket: several replicas share the store, and each source is polled by one
//! replica at a time, the holder of its `coordination.k8s.io` Lease.
//!
//! Design. Each replica renews one Lease of its own, its **heartbeat**
//! (`ferry-replica-<hash of its identity>`, annotated with the URL other replicas reach it at),
//! every third of `--lease-duration`. A source's Lease (`ferry-source-<hash>`) names its holder
//! and changes only when it changes hands: a replica holds a source while the source's Lease
//! names it and its heartbeat is renewed. Every replica lists and watches the Leases of the
//! namespace once ([`watch`]) and decides from memory: a source whose Lease is missing is taken
//! by creating it; one whose holder's heartbeat (or the source Lease itself) was not seen
//! renewed for `leaseDurationSeconds` is taken by replacing it through its `resourceVersion`,
//! so of two replicas racing for it one wins and the other gets a conflict. A replica whose own
//! heartbeat was not renewed for `duration - period/2` polls nothing (the others may think it
//! dead). Failover: a holder killed right after a renewal is seen dead `duration` later and
//! replaced within one more period — `duration + period` at most (20 s with the default 15 s).
//!
//! The others follow the store: the holder stamps the source's Lease ([`RECORD_ANNOTATION`])
//! after it writes the source's state record, the others read the record when they see the
//! stamp change (and every [`FOLLOW_EVERY`] periods regardless), and a new artifact there is
//! served and announced on their event streams too, so every replica serves every artifact and
//! the stream. A reconcile request (API, webhook) that
//! reaches a replica not holding the Lease is passed on through it: the replica stamps the
//! Lease's [`REQUEST_ANNOTATION`], and the holder sees the stamp change in its watch.
//!
//! Requests: per replica one heartbeat update per period and one watch; per source one create,
//! one update per failover or passed-on request, and one patch per new artifact. Before this design each replica read every
//! source's Lease every period and its holder renewed it (300 sources at 15 s: 60 GETs/s per
//! replica, 60 updates/s in all); the figures are in docs/artifact-store.md.

mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest as _, Sha256};

use crate::SourceKey;

/// Annotation on a Lease naming the source it coordinates (its name is a hash).
pub const SOURCE_ANNOTATION: &str = "source.ferry.dev/source";

/// Annotation on a Lease a replica stamps (with the time) to ask the holder for a reconcile.
pub const REQUEST_ANNOTATION: &str = "source.ferry.dev/requested-at";

/// Annotation on a source's Lease its holder stamps (with the time) after it wrote the
/// source's state record: the other replicas read the record when the stamp changes.
pub const RECORD_ANNOTATION: &str = "source.ferry.dev/recorded-at";

/// A follower reads a source's record at least this many periods apart even when no stamp
/// changed (a stamp the holder failed to write).
const FOLLOW_EVERY: u32 = 12;

/// Annotation on a replica's heartbeat Lease: the URL other replicas reach it at
/// (`--replica-url`), where a follower forwards what only the holder can answer.
pub const HOLDER_URL_ANNOTATION: &str = "source.ferry.dev/holder-url";

/// Annotation on a replica's heartbeat Lease: its identity (the name is a hash).
pub const REPLICA_ANNOTATION: &str = "source.ferry.dev/replica";

/// A heartbeat Lease not seen renewed for this many lease durations is deleted: replica
/// identities (Pod names) change with every rollout.
const FORGET_AFTER: u32 = 10;

/// What [`Leases::try_hold`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Another live replica holds the Lease.
    Elsewhere,
    /// This replica holds it.
    Held,
    /// This replica holds it, and another replica asked for a reconcile since the last look.
    Requested,
}

/// How replicas coordinate.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Namespace the Leases live in.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`), unique among the replicas.
    pub identity: String,
    /// How long a Lease stays held without renewal.
    pub duration: Duration,
    /// The URL other replicas reach this one at (`--replica-url`); default its public URL.
    pub url: Option<String>,
}

/// Why a Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("Lease {namespace}/{name} of {source_key}: {source}")]
pub struct LeaseError {
    /// The Lease's namespace.
    namespace: String,
    /// The Lease's name.
    name: String,
    /// The source it coordinates.
    source_key: String,
    /// The API server's answer.
    source: kube::Error,
}

/// Requests to the API server about Leases, by verb (`ferry_source_lease_requests_total`).
#[derive(Clone, Default)]
pub(crate) struct LeaseMetrics(Family<Vec<(String, String)>, Counter>);

impl LeaseMetrics {
    fn request(&self, verb: &str) {
        self.0
            .get_or_create(&vec![("verb".to_string(), verb.to_string())])
            .inc();
    }
}

/// When a follower last read a source's record, and the holder's stamp then.
#[derive(Debug)]
pub struct Followed {
    stamp: Option<String>,
    at: Instant,
}

/// A Lease this replica wrote, until the watch shows it.
struct Written {
    /// The `resourceVersion` it replaced (`None`: created).
    replaced: Option<String>,
    lease: Arc<Lease>,
}

/// The Leases of one replica.
pub struct Leases {
    api: Api<Lease>,
    opts: LeaseOptions,
    metrics: LeaseMetrics,
    view: OnceLock<Arc<watch::View>>,
    url: OnceLock<String>,
    /// When this replica's heartbeat was last renewed (the time the request was sent).
    beat: Mutex<Option<Instant>>,
    /// Set once the first heartbeat was tried.
    started: tokio::sync::watch::Sender<bool>,
    written: Mutex<HashMap<String, Written>>,
    /// Per Lease held: the request stamp seen last (`None`: none yet), so each request is
    /// acted on once.
    seen: Mutex<HashMap<String, Option<String>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("opts", &self.opts).finish()
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().unwrap_or_else(|p| p.into_inner()) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn annotation<'a>(lease: &'a Lease, key: &str) -> Option<&'a String> {
    lease.metadata.annotations.as_ref()?.get(key)
}

impl Leases {
    pub fn new(client: kube::Client, opts: LeaseOptions) -> Self {
        Self {
            api: Api::namespaced(client, &opts.namespace),
            opts,
            metrics: LeaseMetrics::default(),
            view: OnceLock::new(),
            url: OnceLock::new(),
            beat: Mutex::new(None),
            started: tokio::sync::watch::Sender::new(false),
            written: Mutex::default(),
            seen: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// Starts the watch of the Leases and the heartbeat (once), registers the metrics, and
    /// advertises `public_url` unless `--replica-url` said otherwise.
    pub(crate) fn start(self: &Arc<Self>, public_url: &str, metrics: &crate::metrics::Metrics) {
        if self.view.get().is_some() {
            return;
        }
        metrics.register(
            "lease_requests",
            "Requests this replica made to the API server about Leases, by verb (list: the \
             watch's (re)lists; create, update, patch, get, delete; watch_error)",
            self.metrics.0.clone(),
        );
        let _ = self.url.set(
            self.opts
                .url
                .clone()
                .unwrap_or_else(|| public_url.to_string()),
        );
        let (view, watching) =
            watch::View::start(self.api.clone(), &self.opts.namespace, self.metrics.clone());
        let _ = self.view.set(view);
        let beating = tokio::spawn(heartbeat(Arc::downgrade(self)));
        lock(&self.tasks).extend([watching, beating]);
    }

    fn view(&self) -> &watch::View {
        self.view
            .get()
            .expect("Leases::start runs before the controller's tasks")
    }

    pub fn identity(&self) -> &str {
        &self.opts.identity
    }

    /// How often the heartbeat is renewed, and the holder looks for requests.
    pub fn period(&self) -> Duration {
        self.opts.duration / 3
    }

    /// The Lease name of `key`: a hash, so any namespace and name fit a DNS label.
    pub fn name(key: &SourceKey) -> String {
        let h = Sha256::digest(format!("{}/{}/{}", key.kind, key.namespace, key.name));
        format!("ferry-source-{}", &hex::encode(h)[..20])
    }

    /// The heartbeat Lease name of the replica `identity`.
    pub fn heartbeat_name(identity: &str) -> String {
        let h = Sha256::digest(identity);
        format!("ferry-replica-{}", &hex::encode(h)[..20])
    }

    fn error(&self, name: &str, key: &str, source: kube::Error) -> LeaseError {
        LeaseError {
            namespace: self.opts.namespace.clone(),
            name: name.to_string(),
            source_key: key.to_string(),
            source,
        }
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.opts.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Whether this replica's heartbeat is fresh enough for the others to think it alive.
    fn self_alive(&self) -> bool {
        let window = self.opts.duration.saturating_sub(self.period() / 2);
        lock(&self.beat).is_some_and(|t| t.elapsed() < window)
    }

    /// Whether `identity`, named holder of the Lease `name`, is seen renewing.
    fn alive(&self, identity: &str, name: &str) -> bool {
        let view = self.view();
        view.fresh(&Self::heartbeat_name(identity), self.opts.duration)
            || view.fresh(name, self.opts.duration)
    }

    /// The Lease `name` as this replica knows it: the watch's copy, or what it wrote itself
    /// when the watch has not shown that yet.
    fn current(&self, name: &str) -> Option<Arc<Lease>> {
        let stored = self.view().get(name);
        let mut written = lock(&self.written);
        let Some(w) = written.get(name) else {
            return stored;
        };
        let stored_rv = stored
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        if stored_rv == w.replaced {
            return Some(w.lease.clone());
        }
        written.remove(name);
        stored
    }

    /// Whether this replica holds `key`'s Lease now (from memory: no request).
    pub fn holds(&self, key: &SourceKey) -> bool {
        self.view.get().is_some()
            && self.self_alive()
            && self
                .current(&Self::name(key))
                .is_some_and(|l| holder(&l) == Some(self.identity()))
    }

    /// Whether a live replica other than this one holds `key`'s Lease (from memory).
    pub fn held_elsewhere(&self, key: &SourceKey) -> bool {
        let name = Self::name(key);
        self.view.get().is_some()
            && self.current(&name).is_some_and(|l| {
                holder(&l).is_some_and(|h| h != self.identity() && self.alive(h, &name))
            })
    }

    /// The live holder of `key`'s Lease other than this replica, and the URL it advertises.
    pub fn holder_url(&self, key: &SourceKey) -> Option<(String, String)> {
        let name = Self::name(key);
        let lease = self.current(&name)?;
        let h = holder(&lease).filter(|h| *h != self.identity() && self.alive(h, &name))?;
        let beat = self.view().get(&Self::heartbeat_name(h))?;
        let url = annotation(&beat, HOLDER_URL_ANNOTATION)?;
        Some((h.to_string(), url.clone()))
    }

    /// Waits for the first list of the Leases and the first heartbeat.
    async fn ready(&self) {
        self.view().ready().await;
        let mut rx = self.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Takes `key`'s Lease when it is free or its holder is gone; says whether this replica
    /// holds it. Costs a request only when the Lease is created or changes hands.
    pub async fn try_hold(&self, key: &SourceKey) -> Result<Hold, LeaseError> {
        self.ready().await;
        if !self.self_alive() {
            return Ok(Hold::Elsewhere);
        }
        let name = Self::name(key);
        let Some(lease) = self.current(&name) else {
            return self.create(key, &name).await;
        };
        let stamp = annotation(&lease, REQUEST_ANNOTATION).cloned();
        match holder(&lease) {
            Some(h) if h == self.identity() => {
                // First look (a restart that finds its own Lease): it reconciles at once anyway.
                let previous = lock(&self.seen).insert(name, stamp.clone());
                Ok(if previous.is_some_and(|p| p != stamp) {
                    Hold::Requested
                } else {
                    Hold::Held
                })
            }
            Some(h) if self.alive(h, &name) => Ok(Hold::Elsewhere),
            _ => self.take(key, &name, &lease, stamp).await,
        }
    }

    async fn create(&self, key: &SourceKey, name: &str) -> Result<Hold, LeaseError> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                annotations: Some(
                    [(SOURCE_ANNOTATION.to_string(), format!("{} {key}", key.kind))].into(),
                ),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.opts.identity.clone()),
                lease_duration_seconds: Some(self.seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        self.metrics.request("create");
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.wrote(name, None, created);
                lock(&self.seen).insert(name.to_string(), None);
                tracing::info!(source = %key, lease = %name, identity = %self.opts.identity, "took the source's lease");
                Ok(Hold::Held)
            }
            // Created by another replica meanwhile: the watch brings it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Hold::Elsewhere),
            Err(e) => Err(self.error(name, &format!("{} {key}", key.kind), e)),
        }
    }

    async fn take(
        &self,
        key: &SourceKey,
        name: &str,
        lease: &Lease,
        stamp: Option<String>,
    ) -> Result<Hold, LeaseError> {
        let mut lease = lease.clone();
        let replaced = lease.metadata.resource_version.clone();
        let now = MicroTime(Timestamp::now());
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        spec.holder_identity = Some(self.opts.identity.clone());
        spec.lease_duration_seconds = Some(self.seconds());
        lease
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SOURCE_ANNOTATION.to_string(), format!("{} {key}", key.kind));
        self.metrics.request("update");
        // `replace` carries the resourceVersion seen: a racing writer gets 409.
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(taken) => {
                self.wrote(name, replaced, taken);
                // A new holder reconciles at once anyway: earlier stamps count as seen.
                lock(&self.seen).insert(name.to_string(), stamp);
                tracing::info!(source = %key, lease = %name, identity = %self.opts.identity, "took the source's lease");
                Ok(Hold::Held)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Hold::Elsewhere),
            Err(e) => Err(self.error(name, &format!("{} {key}", key.kind), e)),
        }
    }

    fn wrote(&self, name: &str, replaced: Option<String>, lease: Lease) {
        lock(&self.written).insert(
            name.to_string(),
            Written {
                replaced,
                lease: Arc::new(lease),
            },
        );
    }

    /// Asks the holder of `key`'s Lease for a reconcile (this replica does not hold it). A
    /// missing Lease needs no request: whoever takes it reconciles at once.
    pub async fn request(&self, key: &SourceKey) -> Result<(), LeaseError> {
        let name = Self::name(key);
        let err = |e| self.error(&name, &format!("{} {key}", key.kind), e);
        let mut lease = self.current(&name).map(|l| (*l).clone());
        // Two tries: a change between the watch's copy and the write is a conflict.
        for _ in 0..2 {
            let Some(mut l) = lease.take() else {
                return Ok(());
            };
            l.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REQUEST_ANNOTATION.to_string(), Timestamp::now().to_string());
            self.metrics.request("update");
            match self.api.replace(&name, &PostParams::default(), &l).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    self.metrics.request("get");
                    lease = self.api.get_opt(&name).await.map_err(err)?;
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// Tells the other replicas that `key`'s state record changed: a merge patch of the
    /// Lease's [`RECORD_ANNOTATION`] (one request per new artifact or resolution).
    pub async fn recorded(&self, key: &SourceKey) {
        let name = Self::name(key);
        let patch = serde_json::json!({"metadata": {"annotations": {
            RECORD_ANNOTATION: Timestamp::now().to_string(),
        }}});
        self.metrics.request("patch");
        if let Err(e) = self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(source = %key, lease = %name, error = %e, "record stamp not written; the other replicas read the record later");
        }
    }

    /// Whether a follower should read `key`'s record now: the first time, when the holder's
    /// stamp changed since `last`, or [`FOLLOW_EVERY`] periods (at most `interval`) after the
    /// last read.
    pub fn follow_due(&self, key: &SourceKey, last: &Option<Followed>, interval: Duration) -> bool {
        let stamp = self.record_stamp(key);
        last.as_ref().is_none_or(|f| {
            f.stamp != stamp || f.at.elapsed() >= (self.period() * FOLLOW_EVERY).min(interval)
        })
    }

    /// What a follower saw when it read `key`'s record.
    pub fn followed(&self, key: &SourceKey) -> Followed {
        Followed {
            stamp: self.record_stamp(key),
            at: Instant::now(),
        }
    }

    fn record_stamp(&self, key: &SourceKey) -> Option<String> {
        self.current(&Self::name(key))
            .and_then(|l| annotation(&l, RECORD_ANNOTATION).cloned())
    }

    /// Renews this replica's heartbeat Lease (creating it when missing).
    async fn renew(&self) -> Result<(), kube::Error> {
        let name = Self::heartbeat_name(self.identity());
        let url = self.url.get().cloned().unwrap_or_default();
        let now = MicroTime(Timestamp::now());
        let patch = serde_json::json!({
            "metadata": {"annotations": {
                REPLICA_ANNOTATION: self.identity(),
                HOLDER_URL_ANNOTATION: url,
            }},
            "spec": {
                "holderIdentity": self.identity(),
                "leaseDurationSeconds": self.seconds(),
                "renewTime": now,
            },
        });
        self.metrics.request("patch");
        match self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        annotations: Some(
                            [
                                (REPLICA_ANNOTATION.to_string(), self.identity().to_string()),
                                (HOLDER_URL_ANNOTATION.to_string(), url),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity().to_string()),
                        lease_duration_seconds: Some(self.seconds()),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                self.metrics.request("create");
                self.api.create(&PostParams::default(), &lease).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the heartbeat Leases of replicas gone for [`FORGET_AFTER`] lease durations
    /// (only if unchanged since seen: `resourceVersion` precondition).
    async fn forget_gone(&self) {
        let mine = Self::heartbeat_name(self.identity());
        let after = self.opts.duration * FORGET_AFTER;
        for lease in self.view().all() {
            let (Some(name), Some(rv)) = (&lease.metadata.name, &lease.metadata.resource_version)
            else {
                continue;
            };
            if *name == mine
                || annotation(&lease, REPLICA_ANNOTATION).is_none()
                || self.view().age(name).is_none_or(|age| age < after)
            {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(rv.clone()),
                    uid: None,
                }),
                ..Default::default()
            };
            self.metrics.request("delete");
            match self.api.delete(name, &params).await {
                Ok(_) => tracing::info!(lease = %name, "deleted the heartbeat of a replica gone"),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "deleting a gone replica's heartbeat")
                }
            }
        }
    }
}

/// Renews the heartbeat every period while the replica runs.
async fn heartbeat(leases: Weak<Leases>) {
    loop {
        let Some(l) = leases.upgrade() else { return };
        let sent = Instant::now();
        match l.renew().await {
            Ok(()) => *lock(&l.beat) = Some(sent),
            Err(e) => {
                tracing::warn!(identity = %l.identity(), error = %e, "heartbeat lease not renewed")
            }
        }
        l.started.send_replace(true);
        if l.view()
            .fresh(&Leases::heartbeat_name(l.identity()), l.opts.duration)
        {
            l.forget_gone().await;
        }
        let period = l.period();
        drop(l);
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_labels_per_source() {
        let a = Leases::name(&SourceKey::new("team-a", "app"));
        let b = Leases::name(&SourceKey::of(
            ferry_proto::SourceKind::Bucket,
            "team-a",
            "app",
        ));
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.starts_with("ferry-source-"), "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }
}
