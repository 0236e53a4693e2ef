//! The agent's one way to wait for something the API server reports: call a step every
//! `interval` until it is done, fails, or `timeout` has passed. Used for CRDs becoming
//! established, objects being deleted before re-creation, and health checks.
//!
//! The step gets the state the previous step left (what is still pending, say) and returns
//! either the result or the new state, so callers carry what they learnt from one poll to the
//! next without shared mutable state; on timeout the last state is handed back to word the
//! error. The step always runs at least once, and once more at the deadline.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

/// Runs `step` from `state` until it breaks with a value (`Ok(Ok(value))`), fails
/// (`Err(error)`), or `timeout` passes (`Ok(Err(last_state))`), sleeping `interval` between
/// steps (less before the deadline).
pub async fn until<S, T, E, F, Fut>(
    timeout: Duration,
    interval: Duration,
    mut state: S,
    mut step: F,
) -> Result<Result<T, S>, E>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<ControlFlow<T, S>, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        state = match step(state).await? {
            ControlFlow::Break(done) => return Ok(Ok(done)),
            ControlFlow::Continue(pending) => pending,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Err(state));
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn carries_state_until_done() {
        let out: Result<Result<u32, u32>, ()> =
            until(Duration::from_secs(5), MS, 0, |n| async move {
                Ok(if n == 3 {
                    ControlFlow::Break(n * 10)
                } else {
                    ControlFlow::Continue(n + 1)
                })
            })
            .await;
        assert_eq!(out, Ok(Ok(30)));
    }

    #[tokio::test]
    async fn times_out_with_the_last_state_after_a_last_step_at_the_deadline() {
        let started = tokio::time::Instant::now();
        let out: Result<Result<(), u32>, ()> = until(50 * MS, 1000 * MS, 0, |n| async move {
            Ok(ControlFlow::Continue(n + 1))
        })
        .await;
        assert_eq!(
            out,
            Ok(Err(2)),
            "one step at the start, one at the deadline"
        );
        let took = started.elapsed();
        assert!(took >= 50 * MS && took < 900 * MS, "{took:?}");
    }

    #[tokio::test]
    async fn a_failing_step_ends_the_wait() {
        let mut calls = 0;
        let out: Result<Result<(), ()>, &str> = until(Duration::from_secs(5), MS, (), |()| {
            calls += 1;
            async { Err("gone") }
        })
        .await;
        assert_eq!(out, Err("gone"));
        assert_eq!(calls, 1);
    }
}
