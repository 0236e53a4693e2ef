//! A Kubernetes API server for tests, faithful where Ferry, kubectl, helm and kube-rs depend on
//! it (see `tests/README.md` for what it does not do).
//!
//! Layers, innermost first: [`registry`] (which kinds are served), [`store`] (objects, one global
//! resourceVersion, an event log for watch resume — pure and synchronous), [`verbs`] (the
//! semantics of get/list/create/update/delete on the store), [`lifecycle`] (finalizers,
//! ownerReferences GC, namespace deletion, CRD registration), [`workloads`] (a controller that
//! gives Deployments & co. a realistic status), and finally [`http`] (axum wiring, content
//! negotiation, watch streaming, fault injection; [`patching`], [`scale`], [`shape`] and [`table`] help
//! it) and [`cluster`] (start/stop, TLS, kubeconfig, `kube::Client`). Server-side apply, the
//! PATCH formats and TLS/auth/RBAC live in `ssa`, `patch` and `auth`.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod crd;
pub mod discovery;
pub mod faults;
pub mod http;
pub mod lifecycle;
pub mod patch;
pub mod patching;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod selector;
pub mod shape;
pub mod ssa;
pub mod status;
pub mod store;
pub mod table;
pub mod verbs;
pub mod watch;
pub mod workloads;

pub use cluster::{ClusterOptions, TestCluster};
pub use faults::{FaultAction, FaultRule};
