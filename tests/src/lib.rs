//! Ferry test harness: end-to-end tests live in `tests/tests/`; this library holds what they
//! share, chiefly [`apiserver`], an in-memory Kubernetes API server that the real kubectl, helm
//! and kube-rs accept, so the applier can be tested without a cluster.

pub mod apiserver;
pub mod s3;
pub mod tools;
pub mod upstream;
