//! TLS, authentication and authorization for `--tls` mode.
//!
//! [`tls`] makes a fresh CA and serving certificate per start and the rustls configuration;
//! [`authn`] turns a bearer token into a user (static tokens from a users file, ServiceAccount
//! tokens issued through TokenRequest, anonymous without a token); [`rbac`] decides with the
//! RBAC objects from the store and words the 403 like the apiserver; [`gate`] is the axum
//! middleware doing both per request (and answering TokenRequests), and [`listener`] the
//! TLS listener to serve it with. Without `--tls` the
//! server skips all of this and everyone is an administrator (kubectl sends no token over
//! plain HTTP).

pub mod authn;
pub mod gate;
pub mod listener;
pub mod rbac;
pub mod tls;

pub use authn::{Authenticator, UserInfo, parse_users_file};
pub use gate::{Gate, secure};
pub use listener::TlsListener;
pub use rbac::{Policy, RequestAttributes, authorize, forbidden, unauthorized};
pub use tls::TlsMaterial;

/// Why TLS setup, a users file or a token request failed, or a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("users file line {line}: {message}")]
    UsersFile { line: usize, message: String },
    /// 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// 400/422 for a malformed TokenRequest.
    #[error("{0}")]
    BadTokenRequest(String),
}
