//! Ferry's applier agent: one per namespace, it makes the namespace look like Git says.
//!
//! The data path reads top to bottom, one module per stage: a source on the source server
//! publishes an **artifact** (digest + revision) → [`fetch`] downloads it by digest, verifies it
//! and keeps it in a content-addressed cache → [`render`] builds the Kustomization's `path`
//! (native kustomize or a plain directory) and checks tenancy → [`apply`] server-side applies the
//! objects in stages (dry-run first, so unchanged objects are not written) → [`prune`] deletes
//! what the previous revision had and this one has not → [`health`] waits for workloads →
//! [`status`] records conditions, revisions and the inventory on the Kustomization. Alongside:
//! [`drift`] (the dry-run comparison each interval, correct or detect), [`events`] (Kubernetes
//! Events naming each changed object), [`metrics`], and [`controller`], which watches the
//! Kustomizations of the agent's own namespace and runs the path on spec changes, new
//! artifacts, intervals and dependency readiness; [`report`] sends the events and a summary of
//! each object to the source server (alerts, the agent index). [`connect`] wires a client and context for the
//! binaries; [`preview`] computes what a reconcile would change without changing anything.

pub mod apply;
pub mod connect;
pub mod controller;
pub mod drift;
pub mod events;
pub mod fetch;
pub mod health;
pub mod helm;
pub mod metrics;
pub mod poll;
pub mod preview;
pub mod prune;
pub mod reconcile;
pub mod render;
pub mod report;
pub mod source_client;
pub mod status;
