//! Bearer token → [`Identity`], by `TokenReview`, cached.
//!
//! The cache is keyed by the token's sha256 (tokens are not kept), holds an answer at most
//! [`TTL`] and never past the `exp` the token itself carries, so an expired token is refused
//! at most a second after it expires even if it was accepted a moment before. Refusals are
//! cached for [`DENIED_TTL`] so a client retrying a bad token costs the API server little; a
//! review that could not be made at all (API server unreachable) is not cached.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest as _, Sha256};

use super::Identity;

/// How long an accepted token is trusted without asking again.
pub const TTL: Duration = Duration::from_secs(60);
/// How long a refused token stays refused without asking again.
pub const DENIED_TTL: Duration = Duration::from_secs(10);
/// Tokens longer than this are refused unread (a JWT of a ServiceAccount is ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 << 10;
/// Cached answers at most; beyond, expired ones go first, then everything.
const MAX_ENTRIES: usize = 10_000;

/// Why a request is not served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization: Bearer` token.
    #[error("a bearer token is required")]
    Missing,
    /// The API server did not authenticate the token (expired, another audience, revoked).
    #[error("the token is not valid for this server")]
    Unauthenticated,
    /// Authenticated, but neither a ServiceAccount nor in an operator group.
    #[error("{user} is neither a ServiceAccount nor in an operator group")]
    NoTenant {
        /// The authenticated user name.
        user: String,
    },
    /// The review could not be made (the API server is unreachable); not cached.
    #[error("cannot review the token: {0}")]
    Unavailable(String),
}

struct Cached {
    answer: Result<Identity, Denied>,
    until: Instant,
}

/// Reviews tokens for one audience.
pub struct Reviewer {
    client: kube::Client,
    audience: String,
    operator_groups: BTreeSet<String>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Reviewer {
    pub fn new(
        client: kube::Client,
        audience: impl Into<String>,
        operator_groups: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            client,
            audience: audience.into(),
            operator_groups: operator_groups.into_iter().collect(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who `token` is.
    pub async fn identify(&self, token: &str) -> Result<Identity, Denied> {
        if token.is_empty() {
            return Err(Denied::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denied::Unauthenticated);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(c) = self.lock().get(&key).filter(|c| c.until > now) {
            return c.answer.clone();
        }
        let answer = self.review(token).await;
        let until = match &answer {
            Err(Denied::Unavailable(_)) => return answer,
            Ok(_) => now + TTL.min(remaining_life(token).unwrap_or(TTL)),
            Err(_) => now + DENIED_TTL,
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                answer: answer.clone(),
                until,
            },
        );
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn review(&self, token: &str) -> Result<Identity, Denied> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let status = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .status
            .unwrap_or_default();
        // The API server answers `authenticated: true` only when the token is valid for one
        // of the audiences asked for; `audiences` says which.
        let audience_ok = status
            .audiences
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == &self.audience));
        let user = status.user.unwrap_or_default();
        if status.authenticated != Some(true) || !audience_ok {
            return Err(Denied::Unauthenticated);
        }
        let name = user.username.unwrap_or_default();
        if user
            .groups
            .iter()
            .flatten()
            .any(|g| self.operator_groups.contains(g))
        {
            return Ok(Identity::Operator(name));
        }
        match name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        {
            Some((ns, _)) if !ns.is_empty() => Ok(Identity::Tenant(ns.to_string())),
            _ => Err(Denied::NoTenant { user: name }),
        }
    }
}

/// How long the JWT says it is valid for (its `exp` claim, read without verifying: the API
/// server verified it). `None` when it carries no readable `exp`.
fn remaining_life(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()?;
    let left = exp - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn cached_answers_never_outlive_the_token() {
        let soon = chrono::Utc::now().timestamp() + 5;
        let left = remaining_life(&jwt(serde_json::json!({ "exp": soon }))).expect("exp");
        assert!(left <= Duration::from_secs(5), "{left:?}");
        let past = remaining_life(&jwt(serde_json::json!({ "exp": 1 }))).expect("exp");
        assert_eq!(past, Duration::ZERO);
        assert_eq!(remaining_life("not-a-jwt"), None);
        assert_eq!(
            remaining_life(&jwt(serde_json::json!({ "sub": "x" }))),
            None
        );
    }
}
