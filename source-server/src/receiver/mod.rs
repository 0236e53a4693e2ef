//! Webhook receivers: an in-memory index from hook path to receiver, rebuilt whenever the
//! desired state changes, so a call costs no Kubernetes API call and no disk read — the config
//! feeder (today the file, later a cluster watch) has already resolved the token and the target
//! sources. Per receiver, the index keeps a token bucket (rate limit) and a replay window of
//! delivery ids, both surviving rebuilds while the receiver exists.
//!
//! The HTTP side is [`crate::http`]'s `hooks` module; signatures are checked in [`verify`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferry_proto::api::ReceiverView;
use ferry_proto::condition::{Progress, reason, record};
use ferry_proto::{ObjectRef, ReceiverStatus};

use crate::config::{DesiredReceiver, DesiredState};

pub mod verify;

/// Bounds on webhook calls (shared by every receiver).
#[derive(Clone, Debug)]
pub struct HookLimits {
    /// Largest body (Flux's 3 MiB); more is answered 413.
    pub max_body: usize,
    /// Largest sum of header names and values; more is answered 431.
    pub max_header_bytes: usize,
    /// Time allowed to receive the body; then 408.
    pub read_timeout: Duration,
    /// Calls a receiver may take at once (the token bucket's size).
    pub burst: u32,
    /// Calls per second a receiver takes in the long run (the bucket's refill rate).
    pub per_second: f64,
    /// How long a delivery id is remembered: a repeat within it triggers nothing.
    pub replay_window: Duration,
}

impl Default for HookLimits {
    fn default() -> Self {
        Self {
            max_body: 3 << 20,
            max_header_bytes: 64 << 10,
            read_timeout: Duration::from_secs(30),
            burst: 20,
            per_second: 2.0,
            replay_window: Duration::from_secs(600),
        }
    }
}

/// Delivery ids remembered per receiver at most (the oldest is forgotten first).
const MAX_DELIVERIES: usize = 10_000;
/// A delivery id longer than this is not a delivery id (answered 400).
pub const MAX_DELIVERY_ID: usize = 256;

/// A token bucket. Hand-written: a dozen lines under the receiver's lock already held for the
/// replay window, and it yields the `Retry-After` directly.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one token, or says how long until one is there.
    fn take(&mut self, now: Instant, limits: &HookLimits) -> Result<(), Duration> {
        let burst = f64::from(limits.burst.max(1));
        let rate = limits.per_second.max(1e-3);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

#[derive(Debug)]
struct State {
    bucket: Bucket,
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

/// What the receiver's state says about a call that is authentic and wanted.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (the delivery id, if any, is now remembered).
    Admitted,
    /// The delivery id was seen this long ago, within the replay window.
    Duplicate(Duration),
    /// Over the rate: come back after this long.
    Limited(Duration),
}

/// One receiver in the index.
pub struct Entry {
    pub desired: DesiredReceiver,
    state: Arc<Mutex<State>>,
}

impl Entry {
    /// Checks the replay window, then the rate; on admission remembers `delivery`.
    pub fn admit(&self, delivery: Option<&str>, limits: &HookLimits) -> Admission {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, id)) = s.order.front() {
            if now.duration_since(*at) < limits.replay_window {
                break;
            }
            let id = id.clone();
            s.order.pop_front();
            s.seen.remove(&id);
        }
        if let Some(at) = delivery.and_then(|d| s.seen.get(d)) {
            return Admission::Duplicate(now.duration_since(*at));
        }
        if let Err(wait) = s.bucket.take(now, limits) {
            return Admission::Limited(wait);
        }
        if let Some(d) = delivery {
            s.seen.insert(d.to_string(), now);
            s.order.push_back((now, d.to_string()));
            if s.order.len() > MAX_DELIVERIES
                && let Some((_, old)) = s.order.pop_front()
            {
                s.seen.remove(&old);
            }
        }
        Admission::Admitted
    }
}

/// Every receiver: the hook-path index and the status views.
pub struct Receivers {
    pub limits: HookLimits,
    index: RwLock<Arc<HashMap<String, Arc<Entry>>>>,
    views: RwLock<Vec<ReceiverView>>,
}

impl Receivers {
    pub fn new(limits: HookLimits) -> Self {
        Self {
            limits,
            index: RwLock::new(Arc::default()),
            views: RwLock::new(Vec::new()),
        }
    }

    /// The receiver whose hook path is `path` (`/hook/<hex>`).
    pub fn lookup(&self, path: &str) -> Option<Arc<Entry>> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
    }

    /// Every receiver, valid or refused, in key order.
    pub fn views(&self) -> Vec<ReceiverView> {
        self.views.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the index from `desired`; returns the receivers that are gone.
    pub fn apply(&self, desired: &DesiredState) -> Vec<ObjectRef> {
        let old = self.index.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut states: BTreeMap<&ObjectRef, Arc<Mutex<State>>> = old
            .values()
            .map(|e| (&e.desired.key, e.state.clone()))
            .collect();
        let mut index = HashMap::new();
        for (key, r) in &desired.receivers {
            let state = states.remove(key).unwrap_or_else(|| {
                Arc::new(Mutex::new(State {
                    bucket: Bucket {
                        tokens: f64::from(self.limits.burst.max(1)),
                        at: Instant::now(),
                    },
                    seen: HashMap::new(),
                    order: VecDeque::new(),
                }))
            });
            let entry = Entry {
                desired: r.clone(),
                state,
            };
            index.insert(r.webhook_path.clone(), Arc::new(entry));
        }
        let gone: Vec<ObjectRef> = states.into_keys().cloned().collect();
        // Conditions start from the last view, so a transition time moves only on a transition
        // (and the cluster's status writer has nothing to write for an unchanged receiver).
        let mut earlier: BTreeMap<(String, String), Vec<ferry_proto::Condition>> = self
            .views()
            .into_iter()
            .map(|v| ((v.namespace, v.name), v.status.conditions))
            .collect();
        let mut conditions = |key: &ObjectRef| {
            earlier
                .remove(&(key.namespace_or_empty().to_string(), key.name.clone()))
                .unwrap_or_default()
        };
        let mut views: BTreeMap<ObjectRef, ReceiverView> = BTreeMap::new();
        for (key, r) in &desired.receivers {
            let mut status = ReceiverStatus {
                observed_generation: r.generation,
                webhook_path: Some(r.webhook_path.clone()),
                conditions: conditions(key),
            };
            let targets: Vec<String> = r
                .targets
                .iter()
                .map(|k| format!("{}/{k}", k.kind))
                .collect();
            let message = format!(
                "Receiver {}/{}: {} calls to {} fetch {}",
                key.namespace_or_empty(),
                key.name,
                r.spec.type_.as_str(),
                r.webhook_path,
                if targets.is_empty() {
                    "nothing (no source matches spec.resources)".to_string()
                } else {
                    targets.join(", ")
                }
            );
            let progress = if r.spec.suspend {
                Progress::Suspended { message: &message }
            } else {
                Progress::Succeeded {
                    reason: reason::SUCCEEDED,
                    message: &message,
                }
            };
            record(&mut status.conditions, r.generation, progress);
            views.insert(key.clone(), view(key, r.spec.clone(), status));
        }
        for (key, invalid) in &desired.invalid_receivers {
            let mut status = ReceiverStatus {
                observed_generation: invalid.generation,
                conditions: conditions(key),
                ..Default::default()
            };
            let e = &invalid.error;
            let message = format!(
                "Receiver {}/{}: invalid spec: {}: {} ({}, document {})",
                key.namespace_or_empty(),
                key.name,
                e.field,
                e.message,
                e.file,
                e.document
            );
            record(
                &mut status.conditions,
                invalid.generation,
                Progress::Stalled {
                    reason: reason::INVALID_SPEC,
                    message: &message,
                },
            );
            views.insert(key.clone(), view(key, invalid.spec.clone(), status));
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        *self.views.write().unwrap_or_else(|p| p.into_inner()) = views.into_values().collect();
        gone
    }
}

fn view(key: &ObjectRef, spec: ferry_proto::ReceiverSpec, status: ReceiverStatus) -> ReceiverView {
    ReceiverView {
        namespace: key.namespace_or_empty().to_string(),
        name: key.name.clone(),
        kind: "Receiver".into(),
        spec,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            desired: DesiredReceiver {
                key: crate::config::receiver_ref("ns", "r"),
                spec: Default::default(),
                generation: None,
                token: crate::config::Token(b"t".to_vec()),
                webhook_path: "/hook/x".into(),
                targets: vec![],
            },
            state: Arc::new(Mutex::new(State {
                bucket: Bucket {
                    tokens: 2.0,
                    at: Instant::now(),
                },
                seen: HashMap::new(),
                order: VecDeque::new(),
            })),
        }
    }

    #[test]
    fn a_repeated_delivery_is_a_duplicate_and_costs_no_token() {
        let limits = HookLimits {
            burst: 2,
            per_second: 0.001,
            ..Default::default()
        };
        let e = entry();
        assert_eq!(e.admit(Some("a"), &limits), Admission::Admitted);
        assert!(matches!(
            e.admit(Some("a"), &limits),
            Admission::Duplicate(_)
        ));
        assert_eq!(e.admit(Some("b"), &limits), Admission::Admitted);
        assert!(
            matches!(e.admit(Some("c"), &limits), Admission::Limited(d) if d > Duration::from_secs(100))
        );
        // A limited delivery is not remembered: its retry is not a duplicate.
        assert!(matches!(e.admit(Some("c"), &limits), Admission::Limited(_)));
    }

    #[test]
    fn deliveries_are_forgotten_after_the_window() {
        let limits = HookLimits {
            replay_window: Duration::ZERO,
            ..Default::default()
        };
        let e = entry();
        assert_eq!(e.admit(Some("a"), &limits), Admission::Admitted);
        assert_eq!(e.admit(Some("a"), &limits), Admission::Admitted);
    }

    #[test]
    fn an_unchanged_receiver_keeps_its_view_across_rebuilds() {
        let docs = "apiVersion: v1\nkind: Secret\nmetadata: {name: t, namespace: ns}\n\
                    stringData: {token: x}\n---\napiVersion: notification.ferry.dev/v1\n\
                    kind: Receiver\nmetadata: {name: r, namespace: ns}\nspec: {type: generic, \
                    secretRef: {name: t}, resources: [{kind: Bucket, name: b}]}\n";
        let state = crate::config::parse("f", docs, &DesiredState::default()).expect("parses");
        let receivers = Receivers::new(HookLimits::default());
        receivers.apply(&state);
        let first = receivers.views();
        assert_eq!(first.len(), 1);
        std::thread::sleep(Duration::from_millis(1100));
        receivers.apply(&state);
        assert_eq!(
            receivers.views(),
            first,
            "same conditions, same transition time"
        );
    }
}
