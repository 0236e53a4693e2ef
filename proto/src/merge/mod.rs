//! Merging Kubernetes objects: strategic merge patch ([`strategic`]), JSON patch (RFC 6902,
//! [`json_patch`]), JSON merge patch (RFC 7386, [`merge_patch`]), and the per-type knowledge
//! ([`schema`]) that strategic merge and server-side apply share.

mod error;
pub mod json_patch;
mod kyaml_lists;
pub mod merge_patch;
pub mod schema;
pub mod strategic;
