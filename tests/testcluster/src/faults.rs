//! Fault injection for reliability tests: per-verb/per-resource latency, error responses
//! (500, 429 with Retry-After, 409, …) and watch connections dropped after a while. Rules are
//! consulted for every resource request; a rule may fire a limited number of times.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a matching rule does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Wait before handling the request.
    Delay(Duration),
    /// Answer with this HTTP code and a matching Status (`Retry-After` for 429 if set).
    Error { code: u16, retry_after: Option<u64> },
    /// Watches: end the stream after this long (no error event, the connection just closes).
    DropWatchAfter(Duration),
}

/// One rule: which requests (verb, resource plural; `None` = any) and what happens.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub action: FaultAction,
    /// How many more times the rule fires; `None` = forever.
    pub remaining: Option<usize>,
}

impl FaultRule {
    pub fn new(action: FaultAction) -> Self {
        Self {
            verb: None,
            resource: None,
            action,
            remaining: None,
        }
    }

    pub fn error(code: u16) -> Self {
        Self::new(FaultAction::Error {
            code,
            retry_after: None,
        })
    }

    /// 429 Too Many Requests with `Retry-After: secs`.
    pub fn throttle(secs: u64) -> Self {
        Self::new(FaultAction::Error {
            code: 429,
            retry_after: Some(secs),
        })
    }

    pub fn delay(d: Duration) -> Self {
        Self::new(FaultAction::Delay(d))
    }

    pub fn drop_watch_after(d: Duration) -> Self {
        Self::new(FaultAction::DropWatchAfter(d)).verb("watch")
    }

    /// Only for this verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }

    /// Only for this resource (plural, e.g. `configmaps`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    pub fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }
}

/// The active rules, shared by the server and the test that controls it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actions that apply to a request, consuming one use of each limited rule.
    pub fn take(&self, verb: &str, resource: &str) -> Vec<FaultAction> {
        let mut rules = self.lock();
        let mut out = Vec::new();
        for r in rules.iter_mut() {
            let hit = r.verb.as_deref().is_none_or(|v| v == verb)
                && r.resource.as_deref().is_none_or(|x| x == resource)
                && r.remaining != Some(0);
            if hit {
                out.push(r.action.clone());
                if let Some(n) = r.remaining.as_mut() {
                    *n -= 1;
                }
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_verb_and_resource_and_run_out() {
        let f = Faults::default();
        f.add(
            FaultRule::error(500)
                .verb("list")
                .resource("configmaps")
                .times(1),
        );
        f.add(FaultRule::delay(Duration::from_millis(5)).resource("secrets"));
        assert!(f.take("get", "configmaps").is_empty());
        assert_eq!(
            f.take("list", "configmaps"),
            vec![FaultAction::Error {
                code: 500,
                retry_after: None
            }]
        );
        assert!(f.take("list", "configmaps").is_empty());
        assert_eq!(f.take("get", "secrets").len(), 1);
        assert_eq!(f.take("get", "secrets").len(), 1);
        f.clear();
        assert!(f.take("get", "secrets").is_empty());
    }
}
