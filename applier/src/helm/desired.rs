//! What a release should be: the chart's artifact, the merged values, the digest of the
//! release inputs, and the render — `helm template`, taken apart into CRDs, hooks and objects,
//! post-rendered, checked for tenancy (kinds the chart's own `crds/` define are known before
//! those CRDs exist), labelled and digested.

use std::time::Duration;

use ferry_proto::helmrelease::{GIT_REPOSITORY, HELM_REPOSITORY, HelmRelease};
use ferry_proto::{ArtifactRef, Digest, Hasher, SourceKey, SourceKind};
use kube::api::DynamicObject;
use kube::{Api, ResourceExt};
use serde_json::{Map, Value, json};

use super::manifest::{self, Manifest};
use super::release::{HelmContext, ReleaseError, owner};
use super::{postrender, render, values};
use crate::apply::{from_value, set_owner_labels};
use crate::reconcile::Context;
use crate::render::RenderedObject;

/// A render of one release at one set of inputs.
pub(super) struct Rendered {
    pub(super) inputs: Digest,
    pub(super) crds: Vec<DynamicObject>,
    pub(super) manifest: Manifest,
    /// The release's objects, labelled, namespaced, post-rendered.
    pub(super) objects: Vec<DynamicObject>,
    /// Hooks, labelled and namespaced, in the manifest's order.
    pub(super) hook_objects: Vec<DynamicObject>,
    pub(super) digest: Digest,
    pub(super) chart: ChartMeta,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChartMeta {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) version: String,
    #[serde(default)]
    pub(super) app_version: Option<String>,
}

/// Where the chart is inside its artifact: a GitRepository's `chart` path, or the root of a
/// HelmRepository chart artifact (the server strips the top-level `<chart>/` directory).
pub(super) fn chart_dir(hr: &HelmRelease) -> String {
    let spec = &hr.spec.chart.spec;
    if spec.source_ref.kind == HELM_REPOSITORY {
        String::new()
    } else {
        render::chart_dir(&spec.chart)
    }
}

/// The source key whose artifact events concern `hr`'s chart (how the controller matches
/// announcements): the GitRepository, or the `HelmChart` of `(repository, chart, range)` as
/// the source server names it.
pub fn chart_source_key(hr: &HelmRelease, own_namespace: &str) -> Option<SourceKey> {
    let spec = &hr.spec.chart.spec;
    let src = &spec.source_ref;
    let ns = src.namespace.as_deref().unwrap_or(own_namespace);
    match src.kind.as_str() {
        GIT_REPOSITORY => Some(SourceKey::of(SourceKind::GitRepository, ns, &src.name)),
        HELM_REPOSITORY => Some(SourceKey::helm_chart(
            ns,
            &src.name,
            &spec.chart,
            spec.version.as_deref().unwrap_or("*"),
        )),
        _ => None,
    }
}

/// The chart's artifact. GitRepository: the repository's current artifact. HelmRepository:
/// the source server resolves `(repository, chart, version range)` to a chart artifact; while
/// the server is unreachable, the last one resolved is used.
pub(super) async fn chart_artifact(
    hr: &HelmRelease,
    ctx: &Context,
) -> Result<ArtifactRef, ReleaseError> {
    let spec = &hr.spec.chart.spec;
    let src = &spec.source_ref;
    let ns = src
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.namespace.clone());
    match src.kind.as_str() {
        GIT_REPOSITORY => crate::reconcile::current_source(&ns, &src.name, ctx)
            .await
            .map_err(|e| ReleaseError::Artifact(e.to_string())),
        HELM_REPOSITORY => {
            let range = spec.version.as_deref().unwrap_or("*");
            let key = SourceKey::helm_chart(&ns, &src.name, &spec.chart, range);
            match ctx
                .sources
                .resolve_chart(&ns, &src.name, &spec.chart, range)
                .await
            {
                Ok(c) => {
                    let a = ArtifactRef {
                        digest: c.digest,
                        size: c.size,
                        compressed_size: None,
                        revision: c.revision,
                        url: c.url,
                        last_update_time: chrono::Utc::now(),
                    };
                    if let Ok(mut m) = ctx.artifacts.lock() {
                        m.insert(key, a.clone());
                    }
                    Ok(a)
                }
                Err(e) => {
                    let known = ctx.artifacts.lock().ok().and_then(|m| m.get(&key).cloned());
                    match known.filter(|_| !e.is_not_found() && e.status() != Some(422)) {
                        Some(a) => {
                            tracing::warn!(error = %e, "source server unavailable; using the last resolved chart");
                            Ok(a)
                        }
                        None => Err(ReleaseError::Artifact(format!(
                            "chart {} {range:?} of HelmRepository {ns}/{}: {e}",
                            spec.chart, src.name
                        ))),
                    }
                }
            }
        }
        other => Err(ReleaseError::Spec(format!(
            "spec.chart.spec.sourceRef.kind {other:?} is not GitRepository or HelmRepository"
        ))),
    }
}

/// Digest of everything a release depends on (see the module documentation).
pub(super) fn inputs_digest(
    hr: &HelmRelease,
    artifact: &Digest,
    chart_dir: &str,
    config: &Digest,
    release: &str,
) -> Digest {
    let v = json!({
        "artifact": artifact.to_string(),
        "chart": chart_dir,
        "config": config.to_string(),
        "postRenderers": hr.spec.post_renderers,
        "generation": hr.metadata.generation,
        "release": release,
    });
    let mut buf = vec![];
    values::canonical(&v, &mut buf);
    let mut h = Hasher::new();
    h.update(&buf);
    h.finish()
}

pub(super) fn chart_meta(tree: &crate::fetch::ArtifactTree, chart_dir: &str) -> ChartMeta {
    let path = if chart_dir.is_empty() {
        "Chart.yaml".to_string()
    } else {
        format!("{chart_dir}/Chart.yaml")
    };
    tree.get(&path)
        .and_then(|b| serde_yaml::from_slice(b).ok())
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn render_release(
    hr: &HelmRelease,
    ctx: &Context,
    helm: &HelmContext,
    tree: &crate::fetch::ArtifactTree,
    chart_dir: &str,
    release: &str,
    merged: &Map<String, Value>,
    is_upgrade: bool,
    timeout: Duration,
    chart: ChartMeta,
    inputs: Digest,
) -> Result<Rendered, ReleaseError> {
    let name = hr.name_any();
    let what = format!("HelmRelease {}/{name}", ctx.namespace);
    let render_err = |e: String| ReleaseError::Render(format!("{what}: {e}"));
    let (kube_version, api_versions) = capabilities(ctx)
        .await
        .map_err(|e| render_err(format!("API discovery: {e}")))?;
    let text = render::template(
        &helm.config,
        &render::Request {
            tree,
            chart_dir,
            release,
            namespace: &ctx.namespace,
            values: merged,
            kube_version: &kube_version,
            api_versions: &api_versions,
            is_upgrade,
            timeout,
            lookup: hr.spec.lookup,
        },
    )
    .await
    .map_err(|e| render_err(e.to_string()))?;
    let discovery = crate::reconcile::discovery_scopes(ctx)
        .await
        .map_err(|e| render_err(format!("API discovery: {e}")))?;
    let a = assemble(
        &Assemble {
            text: &text,
            tree,
            chart_dir,
            values: merged,
            post_renderers: &hr.spec.post_renderers,
            crds: hr.spec.crds_policy(is_upgrade),
            namespace: &ctx.namespace,
            release,
            owner: &owner(&name),
            cluster_scoped: ClusterScoped::Refuse,
        },
        &discovery,
    )
    .map_err(render_err)?;
    Ok(Rendered {
        inputs,
        crds: a.crds,
        manifest: a.manifest,
        objects: a.objects,
        hook_objects: a.hook_objects,
        digest: a.digest,
        chart,
    })
}

/// What to do with a cluster-scoped object in the render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterScoped {
    /// Refuse the release (the agent: it may only apply objects in its namespace).
    Refuse,
    /// Set it aside in [`Assembled::cluster_scoped`] (`ferry-applier helm-template`, which
    /// shows everything a chart renders).
    SetAside,
}

/// The inputs of [`assemble`].
pub struct Assemble<'a> {
    /// `helm template`'s output.
    pub text: &'a str,
    pub tree: &'a crate::fetch::ArtifactTree,
    pub chart_dir: &'a str,
    /// The release's values (which subcharts a `condition` or `tags` disables).
    pub values: &'a Map<String, Value>,
    pub post_renderers: &'a [ferry_proto::helmrelease::PostRenderer],
    pub crds: ferry_proto::helmrelease::CrdsPolicy,
    pub namespace: &'a str,
    pub release: &'a str,
    /// Value of the owner label (`HelmRelease.<name>`).
    pub owner: &'a str,
    pub cluster_scoped: ClusterScoped,
}

/// A render made into what the agent applies.
pub struct Assembled {
    /// The chart's `crds/` objects per the CRD policy.
    pub crds: Vec<DynamicObject>,
    pub manifest: Manifest,
    /// The release's objects, labelled, namespaced, post-rendered.
    pub objects: Vec<DynamicObject>,
    /// Hooks, namespaced, in the manifest's order.
    pub hook_objects: Vec<DynamicObject>,
    /// Cluster-scoped objects set aside ([`ClusterScoped::SetAside`] only), as rendered.
    pub cluster_scoped: Vec<Value>,
    /// Digest over `objects`.
    pub digest: Digest,
}

/// `helm template`'s output made into the objects the agent applies: hooks split out,
/// post-renderers run, tenancy (namespace defaulting; objects outside the namespace refused),
/// owner labels and Helm's release annotations; the chart's `crds/` per the policy. The one
/// implementation behind the agent and `ferry-applier helm-template`.
pub fn assemble(
    a: &Assemble<'_>,
    discovery: &dyn crate::render::ScopeResolver,
) -> Result<Assembled, String> {
    let (hooks, objects) = manifest::split(a.text).map_err(|e| e.to_string())?;
    let objects = postrender::apply(a.post_renderers, objects).map_err(|e| e.to_string())?;
    let hooks = if a.post_renderers.is_empty() || hooks.is_empty() {
        hooks
    } else {
        postrender::apply_to_hooks(
            a.post_renderers,
            hooks.into_iter().map(|h| h.object).collect(),
        )
        .map_err(|e| format!("hooks: {e}"))?
        .into_iter()
        .map(manifest::hook_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?
    };
    let chart_crds =
        super::chart::crds(a.tree, a.chart_dir, a.values).map_err(|e| e.to_string())?;
    let crds = match a.crds {
        ferry_proto::helmrelease::CrdsPolicy::Skip => vec![],
        _ => chart_crds.clone(),
    };
    let scopes = ChartScopes {
        crds: &chart_crds,
        discovery,
    };
    let mut cluster_scoped = vec![];
    let mut set_aside = |values: Vec<Value>| -> Vec<Value> {
        if a.cluster_scoped == ClusterScoped::Refuse {
            return values;
        }
        let (cluster, rest) = values.into_iter().partition(|v| {
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
            use crate::render::ScopeResolver;
            scopes.scope(s("/apiVersion"), s("/kind")) == Some(crate::render::Scope::Cluster)
        });
        cluster_scoped.extend::<Vec<Value>>(cluster);
        rest
    };
    let objects = set_aside(objects);
    let hook_values = set_aside(hooks.iter().map(|h| h.object.clone()).collect());
    let manifest = Manifest {
        crds: crds.clone(),
        hooks,
        objects,
    };
    let to_objects = |values: Vec<Value>, label: bool| -> Result<Vec<DynamicObject>, String> {
        let mut rendered: Vec<RenderedObject> = values
            .into_iter()
            .map(|object| RenderedObject { object, file: None })
            .collect();
        crate::render::tenancy::enforce(&mut rendered, a.namespace, false, &scopes)
            .map_err(|e| e.to_string())?;
        rendered
            .into_iter()
            .map(|r| {
                let mut obj = from_value(r.object).map_err(|e| e.to_string())?;
                if label {
                    set_owner_labels(&mut obj, a.namespace, a.owner);
                }
                let ann = obj
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default);
                ann.insert("meta.helm.sh/release-name".into(), a.release.to_string());
                ann.insert("meta.helm.sh/release-namespace".into(), a.namespace.into());
                Ok(obj)
            })
            .collect()
    };
    let objects = to_objects(manifest.objects.clone(), true)?;
    let hook_objects = to_objects(hook_values, false)?;
    // CRDs are cluster-scoped: tenancy does not apply them; the agent's RBAC decides. Under
    // `Create` they are created when absent and never updated.
    let crd_objects = crds
        .into_iter()
        .map(|mut v| {
            if a.crds == ferry_proto::helmrelease::CrdsPolicy::Create
                && let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut)
            {
                let ann = m.entry("annotations").or_insert_with(|| json!({}));
                if let Some(a) = ann.as_object_mut() {
                    a.insert(crate::apply::SSA_ANNOTATION.into(), json!("IfNotPresent"));
                }
            }
            from_value(v).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut buf = vec![];
    for o in &objects {
        values::canonical(
            &serde_json::to_value(o).expect("an object serialises"),
            &mut buf,
        );
    }
    let mut h = Hasher::new();
    h.update(&buf);
    Ok(Assembled {
        crds: crd_objects,
        manifest,
        objects,
        hook_objects,
        cluster_scoped,
        digest: h.finish(),
    })
}

/// Scopes for tenancy: kinds the chart's own `crds/` define are known before those CRDs are
/// applied (their `spec.scope`); everything else from API discovery.
struct ChartScopes<'a> {
    crds: &'a [Value],
    discovery: &'a dyn crate::render::ScopeResolver,
}

impl crate::render::ScopeResolver for ChartScopes<'_> {
    fn scope(&self, api_version: &str, kind: &str) -> Option<crate::render::Scope> {
        let group = ferry_proto::GroupVersion::parse(api_version).group;
        let defined = self.crds.iter().find(|c| {
            c.pointer("/spec/group").and_then(Value::as_str) == Some(group)
                && c.pointer("/spec/names/kind").and_then(Value::as_str) == Some(kind)
        });
        match defined
            .and_then(|c| c.pointer("/spec/scope"))
            .and_then(Value::as_str)
        {
            Some("Namespaced") => Some(crate::render::Scope::Namespaced),
            Some("Cluster") => Some(crate::render::Scope::Cluster),
            _ => self.discovery.scope(api_version, kind),
        }
    }
}

/// `--kube-version` and `--api-versions` from the API server (as Argo CD passes them).
async fn capabilities(ctx: &Context) -> Result<(String, Vec<String>), String> {
    let info = ctx
        .client
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?;
    let discovery = ctx
        .applier
        .resolver()
        .snapshot()
        .await
        .map_err(|e| e.to_string())?;
    let mut versions = vec![];
    for group in discovery.groups() {
        for v in group.versions() {
            let gv = if group.name().is_empty() {
                v.to_string()
            } else {
                format!("{}/{v}", group.name())
            };
            for (res, _) in group.versioned_resources(v) {
                versions.push(format!("{gv}/{}", res.kind));
            }
            versions.push(gv);
        }
    }
    versions.sort();
    versions.dedup();
    Ok((info.git_version, versions))
}

/// `valuesFrom` in order, then `values`.
pub(super) async fn merged_values(
    hr: &HelmRelease,
    ctx: &Context,
) -> Result<Map<String, Value>, String> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let mut out = Map::new();
    for r in &hr.spec.values_from {
        let key = r
            .values_key
            .as_deref()
            .unwrap_or(ferry_proto::helmrelease::DEFAULT_VALUES_KEY);
        let what = format!(
            "valuesFrom: {}/{}/{} key {key}",
            r.kind, ctx.namespace, r.name
        );
        let text: Option<String> = match r.kind.as_str() {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(cm)) => cm.data.and_then(|mut d| d.remove(key)),
                    Ok(None) => None,
                    Err(e) => return Err(format!("{what}: {e}")),
                }
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(s)) => match s.data.and_then(|mut d| d.remove(key)) {
                        Some(b) => {
                            Some(String::from_utf8(b.0).map_err(|_| format!("{what}: not UTF-8"))?)
                        }
                        None => s.string_data.and_then(|mut d| d.remove(key)),
                    },
                    Ok(None) => None,
                    Err(e) => return Err(format!("{what}: {e}")),
                }
            }
            other => {
                return Err(format!(
                    "valuesFrom: kind {other:?} is not ConfigMap or Secret"
                ));
            }
        };
        let Some(text) = text else {
            if r.optional {
                continue;
            }
            return Err(format!("{what}: not found"));
        };
        match r.target_path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => values::set_path(&mut out, path, Value::String(text))
                .map_err(|e| format!("{what}: {e}"))?,
            None => values::merge(
                &mut out,
                values::parse_yaml(&what, &text).map_err(|e| e.to_string())?,
            ),
        }
    }
    if let Some(v) = &hr.spec.values {
        match v {
            Value::Object(m) => values::merge(&mut out, m.clone()),
            Value::Null => {}
            _ => return Err("spec.values: must be a mapping".into()),
        }
    }
    Ok(out)
}
