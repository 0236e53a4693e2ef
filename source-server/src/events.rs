//! The artifact event feed behind `GET /v1/events`.
//!
//! Every new artifact gets a sequence number and goes into a bounded in-memory ring and a
//! broadcast channel. A subscriber passes the last sequence number it saw (`Last-Event-ID`):
//! if the ring still holds everything after it, those events are replayed; otherwise — a first
//! connection, a server restart (numbers start again at 1), or a gap the ring no longer covers —
//! the subscriber gets a *snapshot*: the current artifact of every source, each stamped with
//! the latest sequence number. An agent therefore never needs a separate "list then watch"
//! step and cannot miss a change between the two.

use std::collections::VecDeque;
use std::sync::Mutex;

use ferry_proto::api::ArtifactEvent;
use tokio::sync::broadcast;

/// Events kept for `Last-Event-ID` resume.
pub const RING_CAPACITY: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    pub id: u64,
    pub event: ArtifactEvent,
}

struct Ring {
    next_id: u64,
    events: VecDeque<Sequenced>,
}

/// Publishes artifact events and lets subscribers resume.
pub struct EventHub {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Sequenced>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

/// What a new subscriber gets first, before live events.
pub enum Backlog {
    /// Events after the subscriber's `Last-Event-ID`, in order.
    Replay(Vec<Sequenced>),
    /// The subscriber's position is unknown: send every source's current artifact, with this id.
    Snapshot { id: u64 },
}

pub struct Subscription {
    pub backlog: Backlog,
    pub live: broadcast::Receiver<Sequenced>,
}

impl EventHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(RING_CAPACITY);
        Self {
            ring: Mutex::new(Ring {
                next_id: 1,
                events: VecDeque::with_capacity(RING_CAPACITY),
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, event: ArtifactEvent) -> u64 {
        let mut ring = self.lock();
        let id = ring.next_id;
        ring.next_id += 1;
        let ev = Sequenced { id, event };
        if ring.events.len() == RING_CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(ev.clone());
        // Sent under the lock so a subscriber's backlog and live stream neither overlap nor gap.
        let _ = self.tx.send(ev);
        id
    }

    /// The id of the newest event (0 before any).
    pub fn latest_id(&self) -> u64 {
        self.lock().next_id - 1
    }

    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let ring = self.lock();
        let live = self.tx.subscribe();
        let latest = ring.next_id - 1;
        let oldest = ring.events.front().map_or(ring.next_id, |e| e.id);
        let backlog = match last_event_id {
            // Resumable when nothing after `last` has fallen out of the ring, and `last` is
            // not from the future (an id from before a server restart).
            Some(last) if last <= latest && last + 1 >= oldest => Backlog::Replay(
                ring.events
                    .iter()
                    .filter(|e| e.id > last)
                    .cloned()
                    .collect(),
            ),
            _ => Backlog::Snapshot { id: latest },
        };
        Subscription { backlog, live }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::{Digest, Revision};

    fn event(n: u8) -> ArtifactEvent {
        ArtifactEvent {
            namespace: "ns".into(),
            name: format!("s{n}"),
            revision: Revision::new(Some("main".into()), "a".repeat(40)).expect("valid"),
            digest: Digest::of(&[n]),
            size: 1,
            url: "http://x".into(),
        }
    }

    #[test]
    fn resume_replays_only_newer_events_and_unknown_positions_get_a_snapshot() {
        let hub = EventHub::new();
        for n in 1..=3 {
            hub.publish(event(n));
        }
        match hub.subscribe(Some(1)).backlog {
            Backlog::Replay(evs) => {
                assert_eq!(evs.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 3]);
            }
            Backlog::Snapshot { .. } => panic!("id 1 is resumable"),
        }
        assert!(matches!(hub.subscribe(Some(3)).backlog, Backlog::Replay(v) if v.is_empty()));
        // From a previous server life.
        assert!(matches!(
            hub.subscribe(Some(99)).backlog,
            Backlog::Snapshot { id: 3 }
        ));
        assert!(matches!(
            hub.subscribe(None).backlog,
            Backlog::Snapshot { id: 3 }
        ));
    }

    #[test]
    fn events_that_fell_out_of_the_ring_force_a_snapshot() {
        let hub = EventHub::new();
        for n in 0..(RING_CAPACITY as u64 + 5) {
            hub.publish(event((n % 250) as u8));
        }
        assert!(matches!(
            hub.subscribe(Some(2)).backlog,
            Backlog::Snapshot { .. }
        ));
        assert!(matches!(
            hub.subscribe(Some(10)).backlog,
            Backlog::Replay(v) if v.len() == RING_CAPACITY - 5
        ));
    }

    #[tokio::test]
    async fn live_events_follow_the_backlog() {
        let hub = EventHub::new();
        hub.publish(event(1));
        let mut sub = hub.subscribe(Some(1));
        hub.publish(event(2));
        let ev = sub.live.recv().await.expect("live event");
        assert_eq!(ev.id, 2);
    }
}
