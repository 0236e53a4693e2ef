//! A deadline and the caller's interrupt flag folded into the one flag gix polls.
//!
//! gix's blocking client checks an `AtomicBool` between packets; a scoped watcher thread sets
//! it when the deadline passes or the caller asks to stop, and ends as soon as the operation
//! returns, so a fast poll is not delayed by the watcher's tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How an operation under a watchdog ended, besides its own result.
pub(crate) struct Outcome<T> {
    pub result: T,
    pub timed_out: bool,
    pub interrupted: bool,
}

/// Runs `op` with a flag that becomes true when `timeout` passes or `interrupt` is set.
pub(crate) fn run<T>(
    timeout: Duration,
    interrupt: &AtomicBool,
    op: impl FnOnce(&AtomicBool) -> T,
) -> Outcome<T> {
    let flag = AtomicBool::new(interrupt.load(Ordering::Relaxed));
    let timed_out = AtomicBool::new(false);
    let deadline = Instant::now() + timeout;
    let result = std::thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (flag, timed_out) = (&flag, &timed_out);
        s.spawn(move || {
            loop {
                match done_rx.recv_timeout(Duration::from_millis(10)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                if interrupt.load(Ordering::Relaxed) {
                    flag.store(true, Ordering::Relaxed);
                }
                if Instant::now() >= deadline {
                    timed_out.store(true, Ordering::Relaxed);
                    flag.store(true, Ordering::Relaxed);
                }
            }
        });
        let result = op(flag);
        // The receiver may be gone already only if the watcher panicked; nothing to do then.
        let _ = done_tx.send(());
        result
    });
    Outcome {
        result,
        timed_out: timed_out.load(Ordering::Relaxed),
        interrupted: interrupt.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_flag_at_the_deadline_and_reports_it() {
        let caller = AtomicBool::new(false);
        let out = run(Duration::from_millis(30), &caller, |flag| {
            let start = Instant::now();
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(2));
            }
            flag.load(Ordering::Relaxed)
        });
        assert!(out.result && out.timed_out && !out.interrupted);
    }

    #[test]
    fn fast_operations_are_not_flagged() {
        let caller = AtomicBool::new(false);
        let start = Instant::now();
        let out = run(Duration::from_secs(10), &caller, |_| 7);
        assert_eq!(out.result, 7);
        assert!(!out.timed_out);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
