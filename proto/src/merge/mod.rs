//! Merging Kubernetes objects: strategic merge patch ([`strategic`]), JSON patch (RFC 6902,
//! [`json_patch`]), and the per-type knowledge ([`schema`]) that strategic merge and
//! server-side apply share. JSON merge patch (RFC 7386), which only the API test server
//! applies, is the `json-patch` crate's `merge`, called there.

mod error;
pub mod json_patch;
mod kyaml_lists;
pub mod schema;
pub mod strategic;
