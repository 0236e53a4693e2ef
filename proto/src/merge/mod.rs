//! Merging Kubernetes objects: strategic merge patch, JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386), and the per-type knowledge ([`schema`]) strategic merge and server-side apply
//! share.

pub mod schema;
