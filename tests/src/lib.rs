//! Ferry test harness: end-to-end tests live in `tests/tests/`; this library holds what they
//! share: Git upstreams ([`upstream`]), waiting ([`poll`]), an S3 server ([`s3`]), the real tools ([`tools`]) and
//! [`realcluster`], the real control plane (kube-apiserver, kube-controller-manager, etcd) with a
//! node stand-in, the judge of everything cluster-facing. The in-memory Kubernetes API server
//! they usually run against is its own crate, `ferry-testcluster` (`tests/testcluster/`).

pub mod poll;
pub mod realcluster;
pub mod s3;
pub mod tools;
pub mod upstream;
