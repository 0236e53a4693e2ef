//! Git upstreams for tests, made with the real `git` CLI: a bare repository plus a work tree
//! to commit, tag, push, force-push and delete refs from ([`Upstream`]), served over `file://`
//! ([`Upstream::file_url`]), `git daemon` ([`GitDaemon`]) or smart HTTP ([`SmartHttp`]:
//! `git http-backend` as a CGI behind a small axum server, optionally requiring basic or
//! bearer auth) or ssh ([`SshServer`]: a private `sshd` accepting one generated key). Servers bind 127.0.0.1 on a free port and stop when dropped.

pub mod charts;
mod daemon;
mod http;
mod repo;
mod ssh;

pub use charts::ChartServer;
pub use daemon::GitDaemon;
pub use http::{HttpAuth, SmartHttp};
pub use repo::{Upstream, git};
pub use ssh::SshServer;
