//! The artifact store: its layout, and how a `--storage`/`--artifact-store` value opens it.
//! Source servers write it; agents may read artifacts and pointers straight from it.
//!
//! Layout under the store's root (a directory, or `s3://bucket/prefix`):
//! - `artifacts/sha256/<hex>.tar.gz` — content-addressed, written create-only: two writers of
//!   the same digest write the same content, so an existing object is success.
//! - `pointers/<gitrepositories|buckets>/<namespace>/<name>.json` — a source's current artifact
//!   ([`ArtifactEvent`](ferry_proto::api::ArtifactEvent), the record the event stream
//!   announces), written only after its artifact is stored, so a reader never sees a pointer to
//!   a missing artifact. It is small and replaced whole, so a reader polls it with a
//!   conditional GET (`If-None-Match`: an unchanged pointer costs a `304`). See [`pointer`].
//! - `state/…` — the source server's own records (`source-server/src/storage.rs`).

mod location;
pub mod pointer;

pub use location::{LocationError, StorageLocation, open};
pub use object_store;

use ferry_proto::Digest;
use object_store::path::Path;

/// Where the artifact of `digest` is stored.
pub fn artifact_path(digest: &Digest) -> Path {
    Path::from(format!("artifacts/sha256/{}.tar.gz", digest.hex()))
}
