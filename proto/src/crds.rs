//! CRD manifests generated from the Rust types. `deploy/crds/` holds the checked-in YAML; the
//! `crds_are_up_to_date` test fails when it is stale (`FERRY_UPDATE_CRDS=1` rewrites it).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt;

/// Every CRD Ferry installs, with the file name it has under `deploy/crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "source.ferry.dev_gitrepositories.yaml",
            crate::GitRepository::crd(),
        ),
        (
            "source.ferry.dev_helmrepositories.yaml",
            crate::HelmRepository::crd(),
        ),
        ("source.ferry.dev_buckets.yaml", crate::Bucket::crd()),
        (
            "apply.ferry.dev_kustomizations.yaml",
            crate::Kustomization::crd(),
        ),
        (
            "apply.ferry.dev_helmreleases.yaml",
            crate::HelmRelease::crd(),
        ),
        (
            "notification.ferry.dev_providers.yaml",
            crate::Provider::crd(),
        ),
        ("notification.ferry.dev_alerts.yaml", crate::Alert::crd()),
        (
            "notification.ferry.dev_receivers.yaml",
            crate::Receiver::crd(),
        ),
    ]
}
