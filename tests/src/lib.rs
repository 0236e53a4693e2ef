//! Ferry test harness: end-to-end tests live in `tests/tests/`; this library holds what they
//! share: Git upstreams ([`upstream`]), an S3 server ([`s3`]) and the real tools ([`tools`]).
//! The in-memory Kubernetes API server they run against is its own crate,
//! `ferry-testcluster` (`tests/testcluster/`).

pub mod s3;
pub mod tools;
pub mod upstream;
