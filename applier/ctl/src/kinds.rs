//! The kinds the CLI names on its command line, and how to reach each: Kustomizations and
//! HelmReleases in the cluster, sources on the source server.

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use crate::Global;

/// An object kind named on the command line (Flux's words and short names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    #[value(alias = "ks", alias = "kustomizations")]
    Kustomization,
    #[value(alias = "hr", alias = "helmreleases")]
    Helmrelease,
    /// A GitRepository on the source server.
    #[value(alias = "gitrepository", alias = "git")]
    Source,
    #[value(alias = "helm")]
    Helmrepository,
}

/// What `get` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    #[value(alias = "source")]
    Sources,
    #[value(alias = "ks", alias = "kustomization")]
    Kustomizations,
    #[value(alias = "hr", alias = "helmrelease")]
    Helmreleases,
    All,
}

/// A kind of object the agents reconcile, in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Kustomization,
    HelmRelease,
}

impl Applied {
    pub fn kind(self) -> &'static str {
        match self {
            Applied::Kustomization => "Kustomization",
            Applied::HelmRelease => "HelmRelease",
        }
    }

    pub fn resource(self) -> ApiResource {
        let (kind, plural) = match self {
            Applied::Kustomization => ("Kustomization", "kustomizations"),
            Applied::HelmRelease => ("HelmRelease", "helmreleases"),
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apply.ferry.dev", "v1", kind),
            plural,
        )
    }
}

impl Target {
    /// The cluster kind, or an error for a source (which lives on the source server).
    pub fn applied(self, verb: &str) -> anyhow::Result<Applied> {
        match self {
            Target::Kustomization => Ok(Applied::Kustomization),
            Target::Helmrelease => Ok(Applied::HelmRelease),
            Target::Source | Target::Helmrepository => {
                anyhow::bail!("{verb} works on kustomization or helmrelease, not on a source")
            }
        }
    }
}

/// The client and the namespace commands act in.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(g: &Global) -> anyhow::Result<Self> {
        let client = ferry_applier::connect::client(g.kubeconfig.as_deref()).await?;
        let namespace = g
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Ok(Self { client, namespace })
    }

    /// The API of `kind` in the namespace, or in all of them.
    pub fn api(&self, kind: Applied, all_namespaces: bool) -> Api<DynamicObject> {
        let ar = kind.resource();
        if all_namespaces {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
        }
    }

    /// One object, with an error naming it when it is not there.
    pub async fn get(&self, kind: Applied, name: &str) -> anyhow::Result<DynamicObject> {
        self.api(kind, false)
            .get(name)
            .await
            .with_context(|| format!("{} {}/{name}", kind.kind(), self.namespace))
    }
}
