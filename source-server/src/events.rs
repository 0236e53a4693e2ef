//! The artifact event feed behind `GET /v1/events`.
//!
//! Every new artifact gets an [`EventId`] — this run's random epoch and a sequence number — and
//! goes into a bounded in-memory ring and a broadcast channel. A subscriber passes the last id
//! it saw (`Last-Event-ID`): if it is of this run and the ring still holds everything after it,
//! those events are replayed; otherwise — a first connection, an id from before a server
//! restart (another epoch: sequence numbers start again at 1, so the number alone would point
//! into the wrong history), or a gap the ring no longer covers — the subscriber gets a
//! *snapshot*: the current artifact of every source, each stamped with the latest id. An agent therefore never needs a separate "list then watch"
//! step and cannot miss a change between the two.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ferry_proto::api::{ArtifactEvent, EventId};
use tokio::sync::broadcast;

/// Events kept for `Last-Event-ID` resume.
pub const RING_CAPACITY: usize = 1024;

/// An event with its id, and its server-sent-event frame written once for every subscriber
/// (with 10 000 agents connected, encoding per subscriber would be 10 000 encodings per event;
/// the broadcast channel clones this value per subscriber, hence the `Arc`s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// This run's epoch and the event's sequence number.
    pub id: EventId,
    /// What happened.
    pub event: Arc<ArtifactEvent>,
    /// `event: artifact`, `id:` and `data:` lines and the blank line ending the frame.
    pub frame: Arc<str>,
}

/// The server-sent-event frame of `event` with `id`.
pub fn frame(id: EventId, event: &ArtifactEvent) -> String {
    let data = serde_json::to_string(event).expect("an ArtifactEvent serializes");
    format!(
        "event: {}\nid: {id}\ndata: {data}\n\n",
        ferry_proto::api::ARTIFACT_EVENT
    )
}

struct Ring {
    next_id: u64,
    events: VecDeque<Sequenced>,
}

/// Publishes artifact events and lets subscribers resume.
pub struct EventHub {
    /// Random per hub (one hub per server run).
    epoch: u64,
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
    Snapshot {
        /// The latest id (sequence 0 before any event).
        id: EventId,
    },
}

pub struct Subscription {
    pub backlog: Backlog,
    pub live: broadcast::Receiver<Sequenced>,
}

impl EventHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(RING_CAPACITY);
        Self {
            epoch: rand::random(),
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

    /// Announces `event`; returns its id.
    pub fn publish(&self, event: ArtifactEvent) -> EventId {
        let mut ring = self.lock();
        let id = self.id(ring.next_id);
        ring.next_id += 1;
        let frame = frame(id, &event).into();
        let ev = Sequenced {
            id,
            event: Arc::new(event),
            frame,
        };
        if ring.events.len() == RING_CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(ev.clone());
        // Sent under the lock so a subscriber's backlog and live stream neither overlap nor gap.
        let _ = self.tx.send(ev);
        id
    }

    fn id(&self, seq: u64) -> EventId {
        EventId {
            epoch: self.epoch,
            seq,
        }
    }

    /// The id of the newest event (sequence 0 before any).
    pub fn latest_id(&self) -> EventId {
        self.id(self.lock().next_id - 1)
    }

    /// Subscribes a client that last saw `last_event_id`.
    pub fn subscribe(&self, last_event_id: Option<EventId>) -> Subscription {
        let ring = self.lock();
        let live = self.tx.subscribe();
        let latest = ring.next_id - 1;
        let oldest = ring.events.front().map_or(ring.next_id, |e| e.id.seq);
        let backlog = match last_event_id {
            // Resumable when the id is of this run, nothing after it has fallen out of the
            // ring, and it is not from the future.
            Some(last)
                if last.epoch == self.epoch && last.seq <= latest && last.seq + 1 >= oldest =>
            {
                Backlog::Replay(
                    ring.events
                        .iter()
                        .filter(|e| e.id.seq > last.seq)
                        .cloned()
                        .collect(),
                )
            }
            _ => Backlog::Snapshot {
                id: self.id(latest),
            },
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
            kind: Default::default(),
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
        match hub.subscribe(Some(hub.id(1))).backlog {
            Backlog::Replay(evs) => {
                assert_eq!(evs.iter().map(|e| e.id.seq).collect::<Vec<_>>(), vec![2, 3]);
            }
            Backlog::Snapshot { .. } => panic!("id 1 is resumable"),
        }
        assert!(
            matches!(hub.subscribe(Some(hub.id(3))).backlog, Backlog::Replay(v) if v.is_empty())
        );
        // From the future.
        assert!(matches!(
            hub.subscribe(Some(hub.id(99))).backlog,
            Backlog::Snapshot { id } if id == hub.id(3)
        ));
        assert!(matches!(
            hub.subscribe(None).backlog,
            Backlog::Snapshot { id } if id == hub.id(3)
        ));
    }

    /// Issue 12, defect 9: ids restarted at 1 with the server, so an agent that had seen event
    /// 2 of the previous run was replayed only events 3.. of the new run — missing whatever the
    /// new run announced as 1 and 2. An id of another epoch now gets a snapshot.
    #[test]
    fn an_id_from_a_previous_server_run_gets_a_snapshot_not_a_replay() {
        let before_restart = EventHub::new();
        for n in 1..=5 {
            before_restart.publish(event(n));
        }
        let seen = before_restart.latest_id();
        let after_restart = EventHub::new();
        for n in 1..=7 {
            after_restart.publish(event(n));
        }
        assert_eq!(seen.seq, 5, "a position the new run also has");
        assert!(matches!(
            after_restart.subscribe(Some(seen)).backlog,
            Backlog::Snapshot { id } if id == after_restart.latest_id()
        ));
    }

    #[test]
    fn events_that_fell_out_of_the_ring_force_a_snapshot() {
        let hub = EventHub::new();
        for n in 0..(RING_CAPACITY as u64 + 5) {
            hub.publish(event((n % 250) as u8));
        }
        assert!(matches!(
            hub.subscribe(Some(hub.id(2))).backlog,
            Backlog::Snapshot { .. }
        ));
        assert!(matches!(
            hub.subscribe(Some(hub.id(10))).backlog,
            Backlog::Replay(v) if v.len() == RING_CAPACITY - 5
        ));
    }

    #[tokio::test]
    async fn live_events_follow_the_backlog() {
        let hub = EventHub::new();
        hub.publish(event(1));
        let mut sub = hub.subscribe(Some(hub.id(1)));
        hub.publish(event(2));
        let ev = sub.live.recv().await.expect("live event");
        assert_eq!(ev.id, hub.id(2));
    }
}
