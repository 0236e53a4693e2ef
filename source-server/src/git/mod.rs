//! Git mirroring: one bare gix repository per source under the cache directory.
//!
//! The reconciler drives two blocking calls (run them in `spawn_blocking`): [`Mirror::check`]
//! lists the remote's refs (no pack transfer) and returns the revision the spec's ref points at
//! now — when it equals the last observed revision nothing else happens; [`Mirror::fetch`] then
//! shallow-fetches exactly that one ref (depth 1; full history only for `ref.commit`). The
//! mirror never holds credentials on disk: they are applied to an in-memory configuration of
//! each call, and every error message names the URL with any userinfo removed.

mod auth;
mod error;
mod mirror;
mod refs;
mod watchdog;

use std::time::Duration;

pub use error::{GitError, redact_credentials, redact_url};
pub use mirror::Mirror;
pub use refs::{DEFAULT_BRANCH, Target};

/// What to mirror: the spec fields that matter to Git, plus resolved credentials.
#[derive(Clone)]
pub struct GitSource {
    pub url: String,
    pub reference: Option<ferry_proto::GitRepositoryRef>,
    pub auth: Option<Credentials>,
    /// Deadline for one `check` or `fetch` call.
    pub timeout: Duration,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &redact_url(&self.url))
            .field("reference", &self.reference)
            .field("auth", &self.auth.as_ref().map(Credentials::kind))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Credentials from a source's `secretRef` (Flux's key names: `username`/`password`,
/// `bearerToken`, `identity` + `known_hosts`). `Debug` never prints the secret parts.
#[derive(Clone)]
pub enum Credentials {
    /// HTTP basic auth, offered when the server answers 401.
    Basic { username: String, password: String },
    /// Sent as `Authorization: Bearer <token>` on every HTTP request to the source URL.
    Bearer(String),
    /// An SSH private key (PEM/OpenSSH) and the `known_hosts` lines to verify the server with.
    Ssh {
        identity: Vec<u8>,
        known_hosts: Vec<u8>,
    },
}

impl Credentials {
    /// `basic`, `bearer` or `ssh`: safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Basic { .. } => "basic",
            Credentials::Bearer(_) => "bearer",
            Credentials::Ssh { .. } => "ssh",
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials::{}(<redacted>)", self.kind())
    }
}
