//! Single flight: concurrent requests for one artifact share one load.
//!
//! The load runs in its own task, so a requester that disconnects does not cancel it for the
//! others. It stores its result in the cache before it leaves the map of flights, and callers
//! check the cache under the map's lock: a request that finds no flight therefore finds the
//! result in the cache, and nothing is loaded twice. A failed load leaves nothing behind:
//! every request that joined it gets the error, the next one starts a new load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use ferry_proto::Digest;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::ServeError;

pub(super) type Outcome<T> = Result<T, Arc<ServeError>>;

type Map<T> = Arc<Mutex<HashMap<Digest, Shared<BoxFuture<'static, Outcome<T>>>>>>;

pub(super) struct Flights<T: Clone> {
    map: Map<T>,
}

/// How a request got its value.
pub(super) enum Joined<T> {
    /// Already cached.
    Cached(T),
    /// This request started the load.
    Started(Outcome<T>),
    /// This request waited for a load another one started.
    Waited(Outcome<T>),
}

/// Removes the flight when its task ends, however it ends.
struct Landing<T: Clone> {
    map: Map<T>,
    digest: Digest,
}

impl<T: Clone> Drop for Landing<T> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.digest);
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    pub(super) fn new() -> Self {
        Self {
            map: Arc::default(),
        }
    }

    /// `cached()` (checked under the flights' lock), else the running load of `digest`, else
    /// a new one from `load()`, which must put its result where `cached` finds it. `joined`
    /// is told whether this request started the load, before it waits for it (so a waiting
    /// request is counted while it waits).
    pub(super) async fn join<F>(
        &self,
        digest: &Digest,
        cached: impl FnOnce() -> Option<T>,
        load: impl FnOnce() -> F,
        joined: impl FnOnce(bool),
    ) -> Joined<T>
    where
        F: Future<Output = Outcome<T>> + Send + 'static,
    {
        let (flight, started) = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(value) = cached() {
                return Joined::Cached(value);
            }
            match map.get(digest) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let landing = Landing {
                        map: self.map.clone(),
                        digest: *digest,
                    };
                    let task = tokio::spawn(load().map(move |outcome| {
                        drop(landing);
                        outcome
                    }));
                    let flight = async move {
                        task.await
                            .unwrap_or_else(|e| Err(Arc::new(ServeError::Task(e.to_string()))))
                    }
                    .boxed()
                    .shared();
                    map.insert(*digest, flight.clone());
                    (flight, true)
                }
            }
        };
        joined(started);
        let outcome = flight.await;
        if started {
            Joined::Started(outcome)
        } else {
            Joined::Waited(outcome)
        }
    }
}
