//! Alerts out: which events go to which Provider, and delivering them without ever holding
//! anything else up.
//!
//! **Duplicates.** An event identical to one seen within the rate-limit window (default 5 min,
//! Flux's `--rate-limit-interval`) is dropped before any Alert sees it. Identity is Flux's
//! event key: sha256 over the object's name, namespace and kind, the message, and the
//! `revision` and `token` metadata — so a Kustomization failing every 10 s alerts once per
//! window, while a new revision or a new message alerts at once.
//!
//! **Matching.** An Alert (not suspended) takes an event when the severity passes
//! (`eventSeverity: info` takes all, `error` only errors), one `eventSources` entry matches
//! (kind; name or `*`; namespace, default the Alert's; every `matchLabels` entry among the
//! object's labels), the message matches an `inclusionList` pattern (when there is one) and no
//! `exclusionList` pattern (exclusion wins). The Alert's `eventMetadata` (and `summary`) is
//! added to the event's metadata; a key the event already has keeps the event's value.
//!
//! **Delivery.** Each Provider has its own queue (at most [`MAX_QUEUED`] alerts; when full the
//! oldest is dropped) and its own task, so a Provider that hangs or fails delays no other
//! Provider, no request and no reconcile: dispatching only pushes onto queues. The task posts
//! one alert at a time within the Provider's `timeout`; an attempt that gets no answer, a 5xx,
//! 408 or 429 is retried with the project's [`Backoff`] (1 s doubling to 1 min) for up to
//! [`GIVE_UP_AFTER`]; other answers fail the alert at once. Counted in
//! `ferry_source_alerts_total{provider, result=sent|retried|failed|dropped}`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferry_proto::Backoff;
use ferry_proto::api::{Event, META_REVISION, META_TOKEN, ReportedEvent, Severity};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::deliver;
use crate::SourceKey;
use crate::config::alerts::{Alerting, DesiredAlert, DesiredProvider, ObjectKey};
use crate::tenancy::{Identity, Policy};
use ferry_proto::SourceKind;

/// Alerts waiting per Provider; beyond this the oldest are dropped.
pub const MAX_QUEUED: usize = 256;
/// An alert still failing this long after it was first tried is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);
/// Flux's default `--rate-limit-interval`.
pub const DEFAULT_RATE_LIMIT: Duration = Duration::from_secs(300);
/// Event keys remembered for de-duplication; beyond this the oldest are forgotten.
const MAX_REMEMBERED: usize = 10_000;

const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

type Labels = Vec<(String, String)>;

/// Counters of alert outcomes and duplicates.
#[derive(Clone, Default)]
pub struct Counters {
    /// `provider`, `result`.
    pub alerts: Family<Labels, Counter>,
    /// `result`: `accepted` or `duplicate`.
    pub events: Family<Labels, Counter>,
}

impl Counters {
    fn alert(&self, provider: &ObjectKey, result: &str) {
        self.alerts
            .get_or_create(&vec![
                ("provider".into(), provider.to_string()),
                ("result".into(), result.into()),
            ])
            .inc();
    }

    fn event(&self, result: &str) {
        self.events
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }
}

/// One Provider's queue.
struct Queue {
    items: Mutex<VecDeque<Event>>,
    ready: Notify,
}

impl Queue {
    /// Appends; returns whether the oldest had to be dropped.
    fn push(&self, event: Event) -> bool {
        let dropped = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let full = items.len() >= MAX_QUEUED;
            if full {
                items.pop_front();
            }
            items.push_back(event);
            full
        };
        self.ready.notify_one();
        dropped
    }

    async fn pop(&self) -> Event {
        loop {
            if let Some(e) = self
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return e;
            }
            self.ready.notified().await;
        }
    }
}

struct Worker {
    settings: watch::Sender<DesiredProvider>,
    queue: Arc<Queue>,
    task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Routing {
    alerts: Vec<DesiredAlert>,
    workers: BTreeMap<ObjectKey, Worker>,
}

/// Routes events to Providers; cheap to share behind an `Arc`.
pub struct Dispatcher {
    http: reqwest::Client,
    window: Duration,
    routing: Mutex<Routing>,
    seen: Mutex<HashMap<[u8; 32], Instant>>,
    counters: Counters,
    /// Tenancy (cluster mode): who may see which source.
    policy: OnceLock<Arc<Policy>>,
}

impl Dispatcher {
    /// Duplicates within `window` are dropped.
    pub fn new(window: Duration, counters: Counters) -> Self {
        Self {
            http: deliver::client(),
            window,
            routing: Mutex::default(),
            seen: Mutex::default(),
            counters,
            policy: OnceLock::new(),
        }
    }

    /// Puts `alerting` in force: new Providers get a task, changed ones keep their queue and
    /// use the new settings from the next attempt, removed ones stop.
    pub fn configure(&self, alerting: &Alerting) {
        let mut routing = self.routing.lock().unwrap_or_else(|p| p.into_inner());
        routing
            .workers
            .retain(|key, _| alerting.providers.contains_key(key));
        for (key, p) in &alerting.providers {
            match routing.workers.get(key) {
                Some(w) => {
                    w.settings.send_if_modified(|old| {
                        let changed = old != p;
                        *old = p.clone();
                        changed
                    });
                }
                None => {
                    let (settings, rx) = watch::channel(p.clone());
                    let queue = Arc::new(Queue {
                        items: Mutex::default(),
                        ready: Notify::new(),
                    });
                    let task = tokio::spawn(deliver_loop(
                        queue.clone(),
                        rx,
                        self.http.clone(),
                        self.counters.clone(),
                    ));
                    routing.workers.insert(
                        key.clone(),
                        Worker {
                            settings,
                            queue,
                            task,
                        },
                    );
                }
            }
        }
        routing.alerts = alerting.alerts.values().cloned().collect();
    }

    /// From now on an Alert takes events of other namespaces only as `policy` allows.
    pub fn set_policy(&self, policy: Arc<Policy>) {
        let _ = self.policy.set(policy);
    }

    /// Queues `ev` for every Alert that takes it, unless it is a recent duplicate. Never waits.
    pub fn dispatch(&self, ev: &ReportedEvent) {
        if self.duplicate(&ev.event) {
            self.counters.event("duplicate");
            return;
        }
        self.counters.event("accepted");
        let routing = self.routing.lock().unwrap_or_else(|p| p.into_inner());
        let policy = self.policy.get().map(Arc::as_ref);
        for alert in routing
            .alerts
            .iter()
            .filter(|a| takes(a, ev) && permitted(a, ev, policy))
        {
            let Some(worker) = routing.workers.get(&alert.provider) else {
                continue;
            };
            if worker.settings.borrow().suspend {
                self.counters.alert(&alert.provider, "dropped");
                continue;
            }
            if worker.queue.push(with_metadata(&ev.event, alert)) {
                self.counters.alert(&alert.provider, "dropped");
            }
        }
    }

    /// Whether an identical event was seen within the window (and remembers this one).
    fn duplicate(&self, event: &Event) -> bool {
        let key = event_key(event);
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < self.window)
        {
            return true;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| now.duration_since(*at) < self.window);
            if seen.len() >= MAX_REMEMBERED
                && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(key, now);
        false
    }
}

/// Flux's event key: what makes two events the same.
pub fn event_key(event: &Event) -> [u8; 32] {
    let obj = &event.involved_object;
    let mut parts = vec![
        "event".to_string(),
        format!("name={}", obj.name),
        format!("namespace={}", obj.namespace),
        format!("kind={}", obj.kind),
        format!("message={}", event.message),
    ];
    for (key, label) in [(META_REVISION, "revision"), (META_TOKEN, "token")] {
        if let Some(v) = event.metadata.get(key) {
            parts.push(format!("{label}={v}"));
        }
    }
    Sha256::digest(parts.join("/").as_bytes()).into()
}

/// Whether `alert` takes `ev` (see the module docs).
fn takes(alert: &DesiredAlert, ev: &ReportedEvent) -> bool {
    let event = &ev.event;
    let obj = &event.involved_object;
    !alert.suspend
        && (alert.severity == Severity::Info || event.severity == Severity::Error)
        && alert.sources.iter().any(|s| {
            s.kind == obj.kind
                && s.namespace == obj.namespace
                && s.name.as_ref().is_none_or(|n| *n == obj.name)
                && s.match_labels
                    .iter()
                    .all(|(k, v)| ev.labels.get(k) == Some(v))
        })
        && (alert.inclusion.is_empty()
            || alert.inclusion.iter().any(|p| p.0.is_match(&event.message)))
        && !alert.exclusion.iter().any(|p| p.0.is_match(&event.message))
}

/// Tenancy: an event of another namespace reaches an Alert only when it is about a source
/// `policy` shows to the Alert's namespace (the config file, without a policy, allows any).
fn permitted(alert: &DesiredAlert, ev: &ReportedEvent, policy: Option<&Policy>) -> bool {
    let obj = &ev.event.involved_object;
    let Some(policy) = policy else { return true };
    if obj.namespace == alert.key.namespace {
        return true;
    }
    obj.kind.parse::<SourceKind>().is_ok_and(|kind| {
        policy.visible(
            &Identity::Tenant(alert.key.namespace.clone()),
            &SourceKey::of(kind, &obj.namespace, &obj.name),
        )
    })
}

/// The event with the Alert's metadata added (the event's own values win).
fn with_metadata(event: &Event, alert: &DesiredAlert) -> Event {
    let mut out = event.clone();
    for (k, v) in &alert.metadata {
        out.metadata.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

/// One Provider's task: posts its queue in order, retrying what may succeed later.
async fn deliver_loop(
    queue: Arc<Queue>,
    settings: watch::Receiver<DesiredProvider>,
    http: reqwest::Client,
    counters: Counters,
) {
    loop {
        let event = queue.pop().await;
        let first = Instant::now();
        let mut failures = 0u32;
        loop {
            let p = settings.borrow().clone();
            if p.suspend {
                counters.alert(&p.key, "dropped");
                break;
            }
            match deliver::send(&http, &p, &event).await {
                Ok(()) => {
                    counters.alert(&p.key, "sent");
                    break;
                }
                Err(e) if e.retryable() && first.elapsed() < GIVE_UP_AFTER => {
                    failures = failures.saturating_add(1);
                    let delay = RETRY.delay(failures);
                    counters.alert(&p.key, "retried");
                    tracing::warn!(error = %e, retry_in = ?delay, "alert not delivered; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    counters.alert(&p.key, "failed");
                    tracing::warn!(error = %e, "alert not delivered; given up");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
