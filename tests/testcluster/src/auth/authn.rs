//! Authentication: bearer tokens → users.
//!
//! Two kinds of tokens, as in a real cluster: static ones from a users file (the format of
//! kube-apiserver's `--token-auth-file`) and ServiceAccount tokens this server issues through
//! the TokenRequest API (`kubectl create token SA`). A request without a token is
//! `system:anonymous`; an unknown or expired token is a 401.
//!
//! Users file: one user per line, `token,user,uid[,groups]`, where groups is one group or a
//! double-quoted comma-separated list: `s3cret,alice,u-1,"devs,system:masters"`. Blank lines
//! and lines starting with `#` are ignored.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::{Value, json};

use super::AuthError;

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".to_string(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".to_string()],
        }
    }

    /// The identity of a ServiceAccount's tokens.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_string(),
            ],
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The ServiceAccount behind this user, if it is one: `(namespace, name)`.
    pub fn service_account_ref(&self) -> Option<(&str, &str)> {
        self.name
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')
    }
}

/// Parses a users file; errors name the line.
pub fn parse_users_file(text: &str) -> Result<Vec<(String, UserInfo)>, AuthError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| AuthError::UsersFile {
            line: i + 1,
            message: why.to_string(),
        };
        let fields = split_csv(line).map_err(|e| bad(&e))?;
        if fields.len() < 3 {
            return Err(bad("expected token,user,uid[,groups]"));
        }
        if fields.len() > 4 {
            return Err(bad("too many fields: quote a list of groups (\"a,b\")"));
        }
        let (token, name, uid) = (&fields[0], &fields[1], &fields[2]);
        if token.is_empty() || name.is_empty() {
            return Err(bad("token and user must not be empty"));
        }
        let mut groups: Vec<String> = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".to_string());
        }
        out.push((
            token.clone(),
            UserInfo {
                name: name.clone(),
                uid: uid.clone(),
                groups,
            },
        ));
    }
    Ok(out)
}

/// Splits one CSV line with `"…"` quoting (`""` inside quotes is a quote).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut cur).trim().to_string()),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".to_string());
    }
    fields.push(cur.trim().to_string());
    Ok(fields)
}

#[derive(Debug, Clone)]
struct IssuedToken {
    namespace: String,
    name: String,
    uid: String,
    expires: DateTime<Utc>,
    /// `spec.audiences` of the TokenRequest (the API server's own when it named none).
    audiences: Vec<String>,
}

/// The audience of tokens minted without one, and of static tokens: the API server's own.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Maps bearer tokens to users.
#[derive(Debug, Default)]
pub struct Authenticator {
    static_tokens: HashMap<String, UserInfo>,
    issued: Mutex<HashMap<String, IssuedToken>>,
}

/// Default and bounds of `spec.expirationSeconds` (the apiserver's: 1h default, ≥ 10 min).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 48 * 3600;

impl Authenticator {
    pub fn new(static_tokens: Vec<(String, UserInfo)>) -> Self {
        Authenticator {
            static_tokens: static_tokens.into_iter().collect(),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a random token for an administrator (`system:masters`) and returns it.
    pub fn add_admin(&mut self, name: &str) -> String {
        let token = random_token("admin");
        self.static_tokens.insert(
            token.clone(),
            UserInfo {
                name: name.to_string(),
                uid: format!("{name}-uid"),
                groups: vec![
                    "system:masters".to_string(),
                    "system:authenticated".to_string(),
                ],
            },
        );
        token
    }

    /// Resolves the `Authorization` header. `sa_uid` looks up a ServiceAccount's current uid
    /// (`None` if it no longer exists), so a token dies with its ServiceAccount.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: DateTime<Utc>,
        sa_uid: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Result<UserInfo, AuthError> {
        let Some(header) = authorization else {
            return Ok(UserInfo::anonymous());
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(AuthError::Unauthorized)?;
        if let Some(user) = self.static_tokens.get(token) {
            return Ok(user.clone());
        }
        let issued = self
            .issued
            .lock()
            .expect("token table lock poisoned")
            .get(token)
            .cloned()
            .ok_or(AuthError::Unauthorized)?;
        if issued.expires <= now
            || sa_uid(&issued.namespace, &issued.name) != Some(issued.uid.clone())
        {
            return Err(AuthError::Unauthorized);
        }
        Ok(UserInfo::service_account(
            &issued.namespace,
            &issued.name,
            &issued.uid,
        ))
    }

    /// Serves a `TokenReview` (`spec.token`, `spec.audiences`): the user when the token is
    /// live and minted for one of the audiences asked for (default: the API server's), as the
    /// real API server answers (`status.authenticated`, `user`, `audiences`, `error`).
    pub fn token_review(
        &self,
        review: &Value,
        now: DateTime<Utc>,
        sa_uid: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Value {
        let token = review
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or("");
        let wanted: Vec<String> = review
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| vec![API_AUDIENCE.to_string()]);
        let token_audiences = match self
            .issued
            .lock()
            .expect("token table lock poisoned")
            .get(token)
        {
            Some(t) => t.audiences.clone(),
            None => vec![API_AUDIENCE.to_string()],
        };
        let common: Vec<String> = wanted
            .iter()
            .filter(|a| token_audiences.contains(a))
            .cloned()
            .collect();
        let user = self
            .authenticate(Some(&format!("Bearer {token}")), now, sa_uid)
            .ok()
            .filter(|u| u.name != "system:anonymous");
        let status = match user {
            Some(u) if !common.is_empty() => json!({
                "authenticated": true,
                "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
                "audiences": common,
            }),
            Some(_) => json!({
                "user": {},
                "error": "token audiences is invalid for the target audiences",
            }),
            None => json!({"user": {}, "error": "invalid bearer token"}),
        };
        json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": review.pointer("/spec/audiences").cloned().unwrap_or(Value::Null)},
            "status": status,
        })
    }

    /// Serves `POST …/serviceaccounts/{name}/token`: `request` is the (decoded) TokenRequest
    /// the client sent, `service_account` the live ServiceAccount object. Returns the TokenRequest with
    /// `status.token` and `status.expirationTimestamp` filled in.
    pub fn token_request(
        &self,
        service_account: &Value,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Value, AuthError> {
        let meta = |f: &str| {
            service_account
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (namespace, name, uid) = (meta("namespace"), meta("name"), meta("uid"));
        let seconds = match request.pointer("/spec/expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
            Some(v) => v.as_i64().ok_or_else(|| {
                AuthError::BadTokenRequest("spec.expirationSeconds: must be an integer".to_string())
            })?,
        };
        if seconds < MIN_EXPIRATION_SECONDS {
            return Err(AuthError::BadTokenRequest(format!(
                "TokenRequest.authentication.k8s.io {name:?} is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            )));
        }
        let seconds = seconds.min(MAX_EXPIRATION_SECONDS);
        let expires = now + Duration::seconds(seconds);
        let token = random_token("sa");
        let audiences = request
            .pointer("/spec/audiences")
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
            .unwrap_or_else(|| json!([API_AUDIENCE]));
        let audience_list: Vec<String> = audiences
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        {
            let mut issued = self.issued.lock().expect("token table lock poisoned");
            // Expired tokens are useless: drop them so the table holds only live ones.
            issued.retain(|_, t| t.expires > now);
            issued.insert(
                token.clone(),
                IssuedToken {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid,
                    expires,
                    audiences: audience_list,
                },
            );
        }
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null),
            },
            "status": {
                "token": token,
                "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }
        }))
    }
}

fn random_token(kind: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ferry-{kind}.{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn no_sa(_: &str, _: &str) -> Option<String> {
        None
    }

    #[test]
    fn users_file_is_parsed_like_the_token_auth_file() {
        let users = parse_users_file(
            "# comment\n\nt1,alice,u1,\"devs, ops\"\nt2,bob,u2\nt3,carol,u3,system:masters\n",
        )
        .expect("valid");
        assert_eq!(users.len(), 3);
        assert_eq!(users[0].0, "t1");
        assert_eq!(users[0].1.name, "alice");
        assert_eq!(users[0].1.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(users[1].1.groups, ["system:authenticated"]);
        assert!(users[2].1.in_group("system:masters"));
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let err = parse_users_file("t1,alice,u1\nonly-token\n").expect_err("short line");
        assert_eq!(
            err.to_string(),
            "users file line 2: expected token,user,uid[,groups]"
        );
        let err = parse_users_file("t,a,u,\"g1,g2\n").expect_err("quote");
        assert!(
            err.to_string().contains("line 1: unterminated quote"),
            "{err}"
        );
        let err = parse_users_file("t,a,u,g1,g2\n").expect_err("unquoted groups");
        assert!(err.to_string().contains("quote a list of groups"), "{err}");
    }

    #[test]
    fn static_tokens_anonymous_and_unknown() {
        let auth = Authenticator::new(parse_users_file("t1,alice,u1,devs").expect("valid"));
        let alice = auth
            .authenticate(Some("Bearer t1"), now(), &no_sa)
            .expect("known token");
        assert_eq!(alice.name, "alice");
        assert_eq!(
            auth.authenticate(None, now(), &no_sa).expect("anonymous"),
            UserInfo::anonymous()
        );
        assert!(matches!(
            auth.authenticate(Some("Bearer nope"), now(), &no_sa),
            Err(AuthError::Unauthorized)
        ));
        assert!(matches!(
            auth.authenticate(Some("Basic dTpw"), now(), &no_sa),
            Err(AuthError::Unauthorized)
        ));
    }

    #[test]
    fn admin_tokens_are_masters() {
        let mut auth = Authenticator::default();
        let token = auth.add_admin("admin");
        let user = auth
            .authenticate(Some(&format!("Bearer {token}")), now(), &no_sa)
            .expect("admin");
        assert!(user.in_group("system:masters"));
    }

    #[test]
    fn service_account_tokens_live_as_long_as_their_account_and_expiry() {
        let auth = Authenticator::default();
        let sa = json!({"metadata": {"name": "agent", "namespace": "a", "uid": "sa-uid-1"}});
        let resp = auth
            .token_request(
                &sa,
                &json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {}}),
                now(),
            )
            .expect("token");
        assert_eq!(resp["kind"], "TokenRequest");
        assert_eq!(resp["spec"]["expirationSeconds"], 3600);
        assert_eq!(
            resp["status"]["expirationTimestamp"],
            "2026-11-24T13:00:00Z"
        );
        let token = resp["status"]["token"].as_str().expect("token").to_string();
        let header = format!("Bearer {token}");
        let exists =
            |ns: &str, name: &str| (ns == "a" && name == "agent").then(|| "sa-uid-1".to_string());
        let user = auth
            .authenticate(Some(&header), now(), &exists)
            .expect("valid SA token");
        assert_eq!(user.name, "system:serviceaccount:a:agent");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:a",
                "system:authenticated"
            ]
        );
        assert_eq!(user.service_account_ref(), Some(("a", "agent")));
        // Recreated ServiceAccount (new uid), deleted one, expired token: all refused.
        let recreated = |_: &str, _: &str| Some("sa-uid-2".to_string());
        assert!(auth.authenticate(Some(&header), now(), &recreated).is_err());
        assert!(auth.authenticate(Some(&header), now(), &no_sa).is_err());
        let later = now() + Duration::seconds(3601);
        assert!(auth.authenticate(Some(&header), later, &exists).is_err());
    }

    #[test]
    fn token_request_validates_expiration() {
        let auth = Authenticator::default();
        let sa = json!({"metadata": {"name": "agent", "namespace": "a", "uid": "u"}});
        let err = auth
            .token_request(&sa, &json!({"spec": {"expirationSeconds": 60}}), now())
            .expect_err("too short");
        assert!(err.to_string().contains("less than 10 minutes"), "{err}");
        let resp = auth
            .token_request(
                &sa,
                &json!({"spec": {"expirationSeconds": 7200, "audiences": ["x"]}}),
                now(),
            )
            .expect("ok");
        assert_eq!(resp["spec"]["expirationSeconds"], 7200);
        assert_eq!(resp["spec"]["audiences"], json!(["x"]));
        let err = auth
            .token_request(&sa, &json!({"spec": {"expirationSeconds": "1h"}}), now())
            .expect_err("not a number");
        assert!(err.to_string().contains("spec.expirationSeconds"), "{err}");
    }

    #[test]
    fn token_reviews_check_liveness_and_audience() {
        let auth = Authenticator::default();
        let sa = json!({"metadata": {"name": "agent", "namespace": "a", "uid": "sa-uid-1"}});
        let minted = auth
            .token_request(&sa, &json!({"spec": {"audiences": ["ferry"]}}), now())
            .expect("token");
        let token = minted["status"]["token"].as_str().expect("token");
        let live =
            |ns: &str, name: &str| (ns == "a" && name == "agent").then(|| "sa-uid-1".to_string());
        let review = |aud: Value, at| {
            auth.token_review(
                &json!({"spec": {"token": token, "audiences": aud}}),
                at,
                &live,
            )
        };
        let ok = review(json!(["ferry"]), now());
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(
            ok["status"]["user"]["username"],
            "system:serviceaccount:a:agent"
        );
        assert_eq!(ok["status"]["audiences"], json!(["ferry"]));
        // Another audience, the API server's default, or after expiry: not authenticated.
        assert_ne!(
            review(json!(["other"]), now())["status"]["authenticated"],
            true
        );
        assert_ne!(review(Value::Null, now())["status"]["authenticated"], true);
        let later = now() + Duration::hours(2);
        assert_ne!(
            review(json!(["ferry"]), later)["status"]["authenticated"],
            true
        );
    }
}
