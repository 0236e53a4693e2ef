//! The fetch and render stages: from an artifact to the objects to apply. The build runs on the
//! blocking pool — a slow or deep kustomize build must not hold one of the agent's two async
//! workers, which also drive the watch and the event stream. Tenancy asks API discovery whether
//! each kind is namespaced; a kind discovery does not know makes it look again (at most every
//! [`DISCOVERY_MIN_AGE`]), so a CRD the cluster admin installs after the agent started is
//! served without a restart.

use ferry_proto::GroupVersion;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_proto::ArtifactRef;
use ferry_proto::kustomization::{Kustomization, KustomizationStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope as KubeScope};

use super::Context;
use crate::apply::{ApplyError, from_value, set_owner_labels};
use crate::fetch::{ArtifactTree, FetchError};
use crate::render::{RenderError, RenderedObject, Scope, ScopeResolver};

/// How old the discovery snapshot must be before a kind it does not know makes the agent run
/// discovery again: a tenant whose CRD never comes costs one discovery per this period, not one
/// per reconcile.
pub const DISCOVERY_MIN_AGE: Duration = Duration::from_secs(5);

/// Why the artifact could not be turned into objects. Nothing is applied or pruned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `postBuild.substituteFrom` ConfigMap or Secret is missing or unreadable.
    #[error("{0}")]
    Variables(String),
    /// API discovery (which kinds are namespaced) failed.
    #[error("API discovery: {0}")]
    Discovery(#[source] ApplyError),
    /// The build or tenancy refused the revision.
    #[error("Kustomization {kustomization}: {source}")]
    Render {
        kustomization: String,
        #[source]
        source: RenderError,
    },
    /// A rendered object is not a Kubernetes object.
    #[error("Kustomization {kustomization}: {source}")]
    Object {
        kustomization: String,
        #[source]
        source: ApplyError,
    },
    /// The build stopped without an answer (it panicked).
    #[error("Kustomization {kustomization}: the build stopped: {why}")]
    Aborted { kustomization: String, why: String },
}

/// A failure of the fetch or render stage, with the revision it was for.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The artifact is unknown, unreachable or refused.
    #[error(transparent)]
    Artifact(#[from] super::artifact::ArtifactError),
    /// The artifact could not be downloaded or failed verification.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The artifact did not render.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The desired state of one Kustomization at one artifact.
pub struct Desired {
    pub artifact: ArtifactRef,
    pub objects: Vec<DynamicObject>,
}

/// Fetches and renders `ks`: the objects to apply, owner-labelled, with their artifact. On
/// failure, the revision attempted when it is known.
pub async fn desired(
    ks: &Kustomization,
    ctx: &Context,
    st: &KustomizationStatus,
) -> Result<Desired, (DesiredError, Option<String>)> {
    let artifact = super::artifact::current(ks, ctx, st)
        .await
        .map_err(|e| (e.into(), None))?;
    let revision = Some(artifact.revision.to_string());
    let fail = |e: DesiredError| (e, revision.clone());
    let tree = ctx
        .fetcher
        .get(&artifact)
        .await
        .map_err(|e| fail(e.into()))?;
    let objects = build(ks, ctx, tree).await.map_err(|e| fail(e.into()))?;
    Ok(Desired { artifact, objects })
}

async fn build(
    ks: &Kustomization,
    ctx: &Context,
    tree: Arc<ArtifactTree>,
) -> Result<Vec<DynamicObject>, BuildError> {
    let name = ks.name_any();
    let vars = substitute_from(ks, ctx)
        .await
        .map_err(BuildError::Variables)?;
    let resolver = ctx.applier.resolver();
    let discovery = resolver.snapshot().await.map_err(BuildError::Discovery)?;
    let started = std::time::Instant::now();
    let mut rendered = render(ks, ctx, &tree, &vars, discovery).await?;
    if let Err(e) = &rendered.0
        && rendered.1
        && let Some(fresh) = resolver
            .refresh_if_older(DISCOVERY_MIN_AGE)
            .await
            .map_err(BuildError::Discovery)?
    {
        tracing::info!(error = %e, "a kind is not served; ran API discovery again");
        rendered = render(ks, ctx, &tree, &vars, fresh).await?;
    }
    let rendered = rendered.0.map_err(|source| BuildError::Render {
        kustomization: format!("{}/{}", ctx.namespace, name),
        source,
    })?;
    let mut objects = Vec::with_capacity(rendered.len());
    for r in rendered.iter() {
        let mut obj = from_value(r.object.clone()).map_err(|source| BuildError::Object {
            kustomization: format!("{}/{}", ctx.namespace, name),
            source,
        })?;
        set_owner_labels(&mut obj, &ctx.namespace, &name);
        objects.push(obj);
    }
    tracing::debug!(
        objects = objects.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rendered"
    );
    Ok(objects)
}

type Rendered = Result<Arc<Vec<RenderedObject>>, RenderError>;

/// One render on the blocking pool; also says whether a kind was missing from `discovery`.
async fn render(
    ks: &Kustomization,
    ctx: &Context,
    tree: &Arc<ArtifactTree>,
    vars: &BTreeMap<String, String>,
    discovery: Arc<Discovery>,
) -> Result<(Rendered, bool), BuildError> {
    let (memo, tree, spec, vars, namespace) = (
        ctx.renders.clone(),
        tree.clone(),
        ks.spec.clone(),
        vars.clone(),
        ctx.namespace.clone(),
    );
    let scopes = DiscoveryScopes {
        discovery,
        missed: AtomicBool::new(false),
    };
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _span = span.enter();
        let out = memo.render(&tree, &spec, &vars, &namespace, &scopes);
        (out, scopes.missed.load(Ordering::Relaxed))
    })
    .await
    .map_err(|e| BuildError::Aborted {
        kustomization: format!("{}/{}", ctx.namespace, ks.name_any()),
        why: e.to_string(),
    })
}

/// Variables from `postBuild.substituteFrom`, later entries winning.
async fn substitute_from(
    ks: &Kustomization,
    ctx: &Context,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    let Some(pb) = &ks.spec.post_build else {
        return Ok(vars);
    };
    for r in &pb.substitute_from {
        let what = format!(
            "postBuild.substituteFrom: {}/{}/{}",
            r.kind, ctx.namespace, r.name
        );
        match r.kind.as_str() {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(cm)) => vars.extend(cm.data.unwrap_or_default()),
                    Ok(None) if r.optional => {}
                    Ok(None) => return Err(format!("{what} not found")),
                    Err(e) => return Err(format!("{what}: {e}")),
                }
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(s)) => {
                        for (k, v) in s.data.unwrap_or_default() {
                            let v = String::from_utf8(v.0)
                                .map_err(|_| format!("{what} key {k} is not UTF-8"))?;
                            vars.insert(k, v);
                        }
                        vars.extend(s.string_data.unwrap_or_default());
                    }
                    Ok(None) if r.optional => {}
                    Ok(None) => return Err(format!("{what} not found")),
                    Err(e) => return Err(format!("{what}: {e}")),
                }
            }
            other => {
                return Err(format!(
                    "postBuild.substituteFrom: kind {other:?} is not ConfigMap or Secret"
                ));
            }
        }
    }
    Ok(vars)
}

/// Tenancy's scope answers from the agent's current discovery snapshot.
pub async fn discovery_scopes(ctx: &Context) -> Result<DiscoveryScopes, ApplyError> {
    Ok(DiscoveryScopes {
        discovery: ctx.applier.resolver().snapshot().await?,
        missed: AtomicBool::new(false),
    })
}

/// Tenancy asks whether a kind is namespaced; the API server's discovery knows. Remembers
/// whether it was asked about a kind discovery does not know.
pub struct DiscoveryScopes {
    discovery: Arc<Discovery>,
    missed: AtomicBool,
}

impl ScopeResolver for DiscoveryScopes {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        let GroupVersion { group, version } = GroupVersion::parse(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((_, caps)) = self.discovery.resolve_gvk(&gvk) else {
            self.missed.store(true, Ordering::Relaxed);
            return None;
        };
        Some(match caps.scope {
            KubeScope::Namespaced => Scope::Namespaced,
            KubeScope::Cluster => Scope::Cluster,
        })
    }
}
