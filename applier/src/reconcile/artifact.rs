//! The artifact stage: which artifact a Kustomization's source serves now. The source server
//! answers; while it is unreachable, the source's pointer record in the artifact store
//! (`--artifact-store`, polled with a conditional GET on each reconcile) answers instead, and
//! without one the last artifact seen for the source (or, after a restart, the one the status
//! says was applied) keeps reconciles working from the cache. Without a source server the
//! store's pointer alone answers.

use ferry_proto::kustomization::{Kustomization, KustomizationStatus};
use ferry_proto::{ArtifactRef, Digest, SourceKind};

use super::Context;
use crate::source_client::SourceClientError;

/// Why the source's artifact is not known.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `sourceRef.kind` names a kind of source the agent does not support.
    #[error("sourceRef.kind {kind:?} is not supported for a Kustomization (GitRepository, Bucket)")]
    UnsupportedKind { kind: String },
    /// The source exists but has not produced an artifact yet.
    #[error("source {kind}/{namespace}/{name} has no artifact yet")]
    NotReady {
        kind: SourceKind,
        namespace: String,
        name: String,
    },
    /// The artifact store (the agent's only source) could not say, and no earlier artifact is
    /// known.
    #[error("source {kind}/{namespace}/{name}: artifact store {store}: {source}")]
    Store {
        kind: SourceKind,
        namespace: String,
        name: String,
        /// The `--artifact-store` value.
        store: String,
        #[source]
        source: ferry_store::pointer::PointerError,
    },
    /// The source server could not say, and no earlier artifact is known.
    #[error("source {kind}/{namespace}/{name}: {source}")]
    Source {
        kind: SourceKind,
        namespace: String,
        name: String,
        #[source]
        source: SourceClientError,
    },
}

/// The source's current artifact, or the last one known when the source server is unreachable.
pub async fn current(
    ks: &Kustomization,
    ctx: &Context,
    st: &KustomizationStatus,
) -> Result<ArtifactRef, ArtifactError> {
    let src = &ks.spec.source_ref;
    // A Kustomization builds from a GitRepository's tree or a Bucket's objects; other kinds of
    // source (a HelmRepository) have no tree to build, and an unknown kind is refused the
    // same way.
    let key = match src.key(&ctx.namespace) {
        Ok(k) if matches!(k.kind, SourceKind::GitRepository | SourceKind::Bucket) => k,
        _ => {
            return Err(ArtifactError::UnsupportedKind {
                kind: src.kind.clone(),
            });
        }
    };
    current_or(key, ctx, || from_status(st, ctx)).await
}

/// The current artifact of GitRepository `namespace/name`, or the last one seen while the
/// source server is unreachable (a HelmRelease's chart from Git).
pub async fn current_source(
    namespace: &str,
    name: &str,
    ctx: &Context,
) -> Result<ArtifactRef, ArtifactError> {
    let key = ferry_proto::SourceKey::of(SourceKind::GitRepository, namespace, name);
    current_or(key, ctx, || None).await
}

async fn current_or(
    key: ferry_proto::SourceKey,
    ctx: &Context,
    fallback: impl FnOnce() -> Option<ArtifactRef>,
) -> Result<ArtifactRef, ArtifactError> {
    let (kind, ns, src_name) = (key.kind, key.namespace.clone(), key.name.clone());
    match ctx.sources.current_artifact_of(&key).await {
        Ok(Some(a)) => {
            if let Ok(mut m) = ctx.artifacts.lock() {
                m.insert(key, a.clone());
            }
            Ok(a)
        }
        Ok(None) => Err(ArtifactError::NotReady {
            kind,
            namespace: ns,
            name: src_name,
        }),
        Err(e) => {
            // Only when the server could not answer: a 403 or 404 is its verdict on this
            // source (tenancy), which the bucket must not override.
            if e.status().is_none_or(|s| s >= 500 || s == 429)
                && let Some(store) = ctx.fetcher.store()
            {
                match store.current(&key).await {
                    Ok(Some(ev)) => {
                        let a = from_pointer(ev, ctx);
                        if let Ok(mut m) = ctx.artifacts.lock() {
                            m.insert(key, a.clone());
                        }
                        tracing::debug!(error = %e, revision = %a.revision, "source server unavailable; revision from the artifact store");
                        return Ok(a);
                    }
                    // Store only: the store's word is final.
                    Ok(None) if !ctx.sources.is_configured() => {
                        return Err(ArtifactError::NotReady {
                            kind,
                            namespace: ns,
                            name: src_name,
                        });
                    }
                    Ok(None) => {
                        tracing::warn!(error = %e, store = %store.describe(), "source server unavailable and no pointer in the artifact store")
                    }
                    Err(pe) if !ctx.sources.is_configured() => {
                        let known = ctx.artifacts.lock().ok().and_then(|m| m.get(&key).cloned());
                        if let Some(a) = known.or_else(fallback) {
                            tracing::warn!(error = %pe, store = %store.describe(), "artifact store unavailable; using the last known artifact");
                            return Ok(a);
                        }
                        return Err(ArtifactError::Store {
                            kind,
                            namespace: ns,
                            name: src_name,
                            store: store.describe().to_string(),
                            source: pe,
                        });
                    }
                    Err(pe) => {
                        tracing::warn!(error = %e, store = %store.describe(), store_error = %pe, "source server and artifact store unavailable")
                    }
                }
            }
            let known = ctx.artifacts.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(a) = known.filter(|_| !e.is_not_found()) {
                tracing::warn!(error = %e, "source server unavailable; using the last known artifact");
                return Ok(a);
            }
            if !e.is_not_found()
                && let Some(a) = fallback()
            {
                tracing::warn!(error = %e, "source server unavailable; using the last applied artifact");
                return Ok(a);
            }
            Err(ArtifactError::Source {
                kind,
                namespace: ns,
                name: src_name,
                source: e,
            })
        }
    }
}

/// A pointer record as an artifact reference; only its digest, size and revision are used
/// (the fetcher builds every location from the digest).
fn from_pointer(ev: ferry_proto::api::ArtifactEvent, ctx: &Context) -> ArtifactRef {
    ArtifactRef {
        digest: ev.digest,
        size: ev.size,
        compressed_size: None,
        revision: ev.revision,
        url: format!(
            "{}{}",
            ctx.sources.base_url(),
            ferry_proto::artifact_path(&ev.digest)
        ),
        last_update_time: chrono::Utc::now(),
    }
}

/// After a restart with the source server down, the status still says which artifact was
/// applied; the fetcher's cache may have it.
fn from_status(st: &KustomizationStatus, ctx: &Context) -> Option<ArtifactRef> {
    let digest: Digest = st.last_applied_digest?;
    let revision = st.last_applied_revision.as_deref()?.parse().ok()?;
    Some(ArtifactRef {
        digest,
        size: ctx.fetcher.config().limits.max_total_size,
        compressed_size: None,
        revision,
        url: format!(
            "{}{}",
            ctx.sources.base_url(),
            ferry_proto::artifact_path(&digest)
        ),
        last_update_time: chrono::Utc::now(),
    })
}
