//! The tests' one way to wait for something to become true: [`until`] calls a check every
//! `interval` until it yields a value, and fails after `limit` naming what was awaited and the
//! check's last error. (The agent has its own, `ferry_applier::poll`, whose errors end the wait:
//! here an error is just "not yet", since a server that is still starting answers with one.)

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};

/// Polls `check` every `interval` until it returns `Ok(Some(value))`; an `Err` counts as "not
/// yet". Fails after `limit` with `what` and the last error.
pub async fn until<T, F, Fut>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_err = String::from("none");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = format!("{e:#}"),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            bail!("timed out after {limit:?} waiting for {what} (last error: {last_err})");
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}
