//! Git failures, classified so the reconciler can set `Ready=False` with a precise reason.
//!
//! gix reports failures as `gix::Error` trees carrying semantic classes (unauthenticated, not
//! found, cancelled) and wrapped `io::Error`s; [`classify`] maps those onto the handful of reasons
//! a user can act on. Messages name the (credential-free) URL and the ref, never a secret.

use std::time::Duration;

use ferry_proto::condition::reason;

/// Why a Git operation failed. Every variant names the source URL with credentials removed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The host could not be reached (DNS, connection refused, TLS).
    #[error("{url}: host unreachable: {detail}")]
    Unreachable {
        /// The URL, credentials removed.
        url: String,
        /// The transport's complaint.
        detail: String,
    },
    /// The server refused the credentials (or asked for some and none were given).
    #[error("{url}: authentication failed: {detail}")]
    AuthFailed {
        /// The URL, credentials removed.
        url: String,
        /// The server's or transport's complaint.
        detail: String,
    },
    /// The ref to follow does not exist on the remote.
    #[error("{url}: {reference} not found{}", fmt_detail(.detail))]
    RefNotFound {
        /// The URL, credentials removed.
        url: String,
        /// Which ref, e.g. `branch "main"`.
        reference: String,
        /// More context, possibly empty.
        detail: String,
    },
    /// The operation ran past `spec.timeout`.
    #[error("{url}: timed out after {after:?} while {operation}")]
    Timeout {
        /// The URL, credentials removed.
        url: String,
        /// What was being done.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The operation was interrupted (the source changed or was removed).
    #[error("{url}: interrupted while {operation}")]
    Interrupted {
        /// The URL, credentials removed.
        url: String,
        /// What was being done.
        operation: &'static str,
    },
    /// The URL or settings cannot work (unsupported scheme, unusable credentials).
    #[error("{url}: invalid source: {detail}")]
    Invalid {
        /// The URL, credentials removed.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The local mirror is unusable.
    #[error("mirror {path}: {detail}")]
    Mirror {
        /// The mirror's directory.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Any other failure of a Git operation.
    #[error("{url}: {operation} failed: {detail}")]
    Other {
        /// The URL, credentials removed.
        url: String,
        /// What was being done.
        operation: &'static str,
        /// gix's error.
        detail: String,
    },
}

fn fmt_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl GitError {
    /// A `Ready=False` condition reason (CamelCase, as Kubernetes conditions want).
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::Unreachable { .. } => reason::UNREACHABLE_HOST,
            GitError::AuthFailed { .. } => reason::AUTHENTICATION_FAILED,
            GitError::RefNotFound { .. } => reason::REF_NOT_FOUND,
            GitError::Timeout { .. } => reason::TIMEOUT,
            GitError::Interrupted { .. } => reason::INTERRUPTED,
            GitError::Invalid { .. } => reason::INVALID_SOURCE,
            GitError::Mirror { .. } | GitError::Other { .. } => reason::GIT_OPERATION_FAILED,
        }
    }

    /// Whether retrying later (with backoff) may help; invalid specs and refs that are not
    /// there are retried too, because a push can fix them, but auth failures and bad specs are
    /// worth surfacing as stalled to a user.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitError::Unreachable { .. }
                | GitError::Timeout { .. }
                | GitError::Other { .. }
                | GitError::Interrupted { .. }
        )
    }
}

/// Maps a gix failure during `operation` on `url` (already redacted) onto a [`GitError`].
pub(crate) fn classify(
    url: &str,
    operation: &'static str,
    err: &gix::Error,
    timeout: Duration,
) -> GitError {
    let detail = render_chain(err);
    let url = url.to_string();
    let lower = detail.to_ascii_lowercase();
    if err.is_unauthenticated()
        || err.is_permission_denied()
        || lower.contains("authentication")
        || lower.contains(" 401")
        || lower.contains(" 403")
    {
        return GitError::AuthFailed { url, detail };
    }
    let io_kinds: Vec<std::io::ErrorKind> = err
        .iter_errors()
        .filter_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
        .collect();
    use std::io::ErrorKind as K;
    let unreachable_kind = io_kinds.iter().any(|k| {
        matches!(
            k,
            K::ConnectionRefused
                | K::ConnectionReset
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::AddrNotAvailable
        )
    });
    if unreachable_kind
        || lower.contains("connection refused")
        || lower.contains("failed to lookup address")
        || lower.contains("dns error")
        || lower.contains("error trying to connect")
        || lower.contains("could not resolve")
        || lower.contains("no route to host")
        || lower.contains("does not appear to be a git repository")
        || lower.contains("not a git repository")
        || lower.contains("repository not found")
        || lower.contains("no such file or directory")
    {
        return GitError::Unreachable { url, detail };
    }
    if io_kinds.iter().any(|k| matches!(k, K::TimedOut)) {
        return GitError::Timeout {
            url,
            operation,
            after: timeout,
        };
    }
    GitError::Other {
        url,
        operation,
        detail,
    }
}

/// The messages of an error tree, de-duplicated, joined with ": ".
fn render_chain(err: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.iter_errors() {
        let s = e.to_string();
        if s.is_empty() || parts.iter().any(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// `url` with any `user:password@` part removed, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{path}", &authority[at + 1..]),
        None => url.to_string(),
    }
}

/// `text` with the credentials of `url` (its `user:password@` part, and the password alone)
/// removed: for messages built from errors of libraries that may quote the URL they were given.
pub fn redact_credentials(text: &str, url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return text.to_string();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return text.to_string();
    };
    let userinfo = &authority[..=at];
    let mut out = text.replace(userinfo, "");
    if let Some((_, password)) = authority[..at].split_once(':')
        && !password.is_empty()
    {
        out = out.replace(password, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_only() {
        assert_eq!(
            redact_url("https://bob:s3cret@example.com/x.git"),
            "https://example.com/x.git"
        );
        assert_eq!(redact_url("file:///tmp/a@b/repo"), "file:///tmp/a@b/repo");
        assert_eq!(redact_url("git://h:9418/r"), "git://h:9418/r");
    }

    #[test]
    fn credentials_quoted_in_messages_are_removed() {
        let url = "https://bob:s3cret@example.com/x.git";
        let msg = "connect to https://bob:s3cret@example.com/x.git: refused (password s3cret)";
        let clean = redact_credentials(msg, url);
        assert!(
            !clean.contains("s3cret") && !clean.contains("bob:"),
            "{clean}"
        );
        assert!(clean.contains("https://example.com/x.git"), "{clean}");
        assert_eq!(redact_credentials("plain", "file:///a@b/r"), "plain");
    }

    #[test]
    fn reasons_are_condition_friendly() {
        let e = GitError::RefNotFound {
            url: "file:///r".into(),
            reference: "branch \"x\"".into(),
            detail: String::new(),
        };
        assert_eq!(e.reason(), "RefNotFound");
        assert_eq!(e.to_string(), "file:///r: branch \"x\" not found");
    }
}
