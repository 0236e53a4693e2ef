//! Ferry source server: mirrors Git repositories and serves each tracked revision as a
//! content-addressed tarball.
//!
//! Design. Desired state (which sources, with which settings) arrives on one seam, a `watch`
//! channel of [`config::DesiredState`] fed by the YAML config file watcher
//! ([`config::watch_file`]) or, in cluster mode, by watches of the source objects
//! ([`cluster`]), which also writes their status back. The [`reconcile::Controller`] runs
//! one task per source: on its interval (with jitter), on demand, or after a backoff, it asks a
//! [`backend::SourceBackend`] — the Git mirror ([`git`]) plus the canonical-tar builder
//! ([`artifact`]) — for the remote revision, and only when the ref moved or the ignore rules
//! changed does it fetch and build. Artifacts are stored create-only under their digest in
//! [`storage`] (a directory or S3), next to a small per-source state record, so a restart serves
//! the same artifacts without refetching; [`gc`] keeps each source's current artifact plus the
//! last N. New artifacts are announced on an in-memory feed ([`events`]) that the HTTP API
//! ([`http`]) streams as server-sent events; [`metrics`] counts what happened. Webhook [`receiver`]s ask sources to fetch now, answered from an
//! in-memory index of hook paths. A failure never
//! replaces a good artifact: the source keeps serving the last one and reports why in its
//! conditions. [`notification`] takes the events of the server and its agents, and keeps the
//! index of what every agent reported about its namespace. [`bundle`] carries a store's
//! sources and artifacts to an air-gapped site (`export` / `import`).

pub mod artifact;
pub mod backend;
pub mod bucket;
pub mod bundle;
pub mod cluster;
pub mod config;
pub mod events;
pub mod gc;
pub mod git;
pub mod helm;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod mirror;
pub mod notification;
pub mod receiver;
pub mod reconcile;
pub mod server;
pub mod serving;
pub mod storage;
pub mod tenancy;

/// A source's identity: `namespace/name` (defined in proto, shared with the API and agents).
pub use ferry_proto::SourceKey;
