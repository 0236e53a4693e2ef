//! Ferry's shared vocabulary.
//!
//! Everything the source server and the agents must agree on is defined here, once: the
//! identity of an artifact ([`Digest`], the sha256 of its canonical uncompressed tar), the
//! revision it was built from ([`Revision`], in Flux's `main@sha1:<commit>` notation), the
//! record that points at it ([`ArtifactRef`]), status [`Condition`]s, the custom resources
//! (`GitRepository`, `HelmRepository`, `Bucket`, `Kustomization`, `HelmRelease`, and the `Provider`
//! and `Alert` of [`alert`], and the `Receiver` of [`receiver`]) whose CRDs are generated
//! from these types into `deploy/crds/`, the JSON of the HTTP API between server and agents ([`api`]), and the
//! merge machinery (strategic merge, JSON patches, per-type merge keys) that both the
//! kustomize engine and the Kubernetes API test server need, and the check of compressed
//! artifact bytes against their digest ([`verify`]). No I/O lives here.

pub mod alert;
pub mod api;
pub mod artifact;
pub mod backoff;
pub mod bucket;
pub mod condition;
pub mod crds;
pub mod digest;
pub mod duration;
pub mod gvk;
pub mod helm_repository;
pub mod helmrelease;
pub mod kustomization;
pub mod limits;
pub mod merge;
pub mod object;
pub mod receiver;
pub mod revision;
pub mod selector;
pub mod source;
pub mod verify;

pub use alert::{Alert, AlertSpec, EventSource, Provider, ProviderSpec, ProviderType};
pub use artifact::{ArtifactRef, artifact_path};
pub use backoff::Backoff;
pub use bucket::{Bucket, BucketProvider, BucketSpec, BucketStatus, bucket_revision};
pub use condition::{Condition, ConditionStatus};
pub use digest::{Digest, DigestError, Hasher};
pub use duration::{DurationError, FieldError, GoDuration, format_duration, parse_duration};
pub use gvk::{GroupVersion, Scope};
pub use helm_repository::{
    HelmIndexArtifact, HelmRepository, HelmRepositorySpec, HelmRepositoryStatus,
};
pub use helmrelease::{HelmRelease, HelmReleaseSpec, HelmReleaseStatus};
pub use kustomization::{
    CrossNamespaceSourceReference, DependencyReference, DriftMode, DriftReport, DriftedObject,
    Inventory, InventoryGroup, Kustomization, KustomizationSpec, KustomizationStatus,
    NamespacedObjectKindReference, PostBuild, SubstituteReference,
};
pub use limits::{ArtifactLimits, LimitError};
pub use object::ObjectRef;
pub use receiver::{
    Receiver, ReceiverResource, ReceiverResourceKind, ReceiverSpec, ReceiverStatus, ReceiverType,
};
pub use revision::{Revision, RevisionError};
pub use source::{
    GitRepository, GitRepositoryRef, GitRepositorySpec, GitRepositoryStatus, LocalObjectReference,
    SkippedEntry, SourceKey, SourceKind, UnknownSourceKind,
};
