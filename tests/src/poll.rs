//! The tests' one way to wait for something to become true: [`until`] calls a check every
//! `interval` until it yields a value, and fails after `limit` naming what was awaited and the
//! check's last error; [`until_blocking`] is the same wait for the synchronous harness code
//! (servers started before any runtime exists), and [`listening`] is the one wait for a child
//! process to accept connections on its port. (The agent has its own, `ferry_applier::poll`,
//! whose errors end the wait: here an error is just "not yet", since a server that is still
//! starting answers with one.)

use std::future::Future;
use std::net::TcpStream;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// The deadline and last error of one wait, shared by both forms so they agree on what
/// counts as "not yet" and on the timeout message.
struct Wait<'a> {
    what: &'a str,
    limit: Duration,
    deadline: Instant,
    last_err: String,
}

impl<'a> Wait<'a> {
    fn new(what: &'a str, limit: Duration) -> Self {
        Self {
            what,
            limit,
            deadline: Instant::now() + limit,
            last_err: String::from("none"),
        }
    }

    /// `Ok(Some)` ends the wait with the value, `Ok(None)` sleeps for the returned time (or
    /// fails after the deadline).
    fn step<T>(&mut self, result: Result<Option<T>>, interval: Duration) -> Result<Step<T>> {
        match result {
            Ok(Some(v)) => return Ok(Step::Done(v)),
            Ok(None) => {}
            Err(e) => self.last_err = format!("{e:#}"),
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(anyhow!(
                "timed out after {:?} waiting for {} (last error: {})",
                self.limit,
                self.what,
                self.last_err
            ));
        }
        Ok(Step::Sleep(interval.min(self.deadline - now)))
    }
}

enum Step<T> {
    Done(T),
    Sleep(Duration),
}

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
    let mut wait = Wait::new(what, limit);
    loop {
        match wait.step(check().await, interval)? {
            Step::Done(v) => return Ok(v),
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
}

/// [`until`] for synchronous code: the same semantics, sleeping the thread.
pub fn until_blocking<T>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut wait = Wait::new(what, limit);
    loop {
        match wait.step(check(), interval)? {
            Step::Done(v) => return Ok(v),
            Step::Sleep(d) => std::thread::sleep(d),
        }
    }
}

/// How a started server's wait for its port ended.
#[derive(Debug)]
pub enum Started {
    /// It accepts connections on the port.
    Listening,
    /// It exited first (e.g. the port was taken meanwhile: the caller may retry on another).
    Exited(ExitStatus),
}

/// Waits until `child` accepts connections on `127.0.0.1:port`, or exits, for at most
/// `limit`; `what` names the server in the timeout error.
pub fn listening(child: &mut Child, port: u16, what: &str, limit: Duration) -> Result<Started> {
    until_blocking(
        &format!("{what} to listen on 127.0.0.1:{port}"),
        limit,
        Duration::from_millis(20),
        || {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Some(Started::Listening));
            }
            Ok(child.try_wait()?.map(Started::Exited))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_wait_returns_the_value_and_times_out_naming_the_last_error() {
        let mut n = 0;
        let v = until_blocking(
            "three calls",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                if n < 3 {
                    Err(anyhow!("not yet {n}"))
                } else {
                    Ok(Some(n))
                }
            },
        )
        .expect("third call succeeds");
        assert_eq!(v, 3);

        let err = until_blocking::<()>(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Err(anyhow!("still starting")),
        )
        .expect_err("times out");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("waiting for never") && msg.contains("still starting"),
            "{msg}"
        );
    }
}
