//! Legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`), `/version`, and the minimal
//! OpenAPI v3 documents kubectl (strict field validation, edit) and helm need: one document per
//! group/version, each item path carrying a `patch` operation with the group-version-kind and
//! the `fieldValidation` parameter. Schemas are empty: the server does not validate fields.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::registry::{Registry, api_resource_json};

/// The Kubernetes version the server claims (what kubectl and helm compare against).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "35";
pub const GIT_VERSION: &str = "v1.35.0-ferry";

pub fn version() -> Value {
    json!({
        "major": MAJOR, "minor": MINOR, "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or_default(),
    })
}

/// Create-only reviews the auth gate answers and never stores, listed in discovery as a real
/// apiserver lists them: without them `kubectl auth can-i create tokenreviews.authentication.k8s.io`
/// cannot resolve the group and asks about a resource named after the whole argument.
const REVIEWS: &[(&str, &str, &str)] = &[
    ("authentication.k8s.io", "tokenreviews", "TokenReview"),
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
];

/// The registry's groups plus the review groups (all at `v1`).
fn groups(reg: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out = reg.groups();
    for (group, _, _) in REVIEWS {
        if !out.iter().any(|(g, _)| g == group) {
            out.push((group.to_string(), vec!["v1".to_string()]));
        }
    }
    out
}

pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = groups(reg)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    groups(reg).iter().find(|(g, _)| g == group).map(|(g, vs)| {
        let mut v = group_json(g, vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

/// `APIResourceList` for one group/version, or `None` when nothing is served there.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = reg
        .all()
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
        .flat_map(api_resource_json)
        .chain(
            REVIEWS
                .iter()
                .filter(|(g, _, _)| *g == group && version == "v1")
                .map(|(_, plural, kind)| {
                    json!({"name": plural, "singularName": "", "namespaced": false,
                           "kind": kind, "verbs": ["create"]})
                }),
        )
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// `api/v1` or `apis/apps/v1`: the OpenAPI v3 path key of a group/version.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group/version, with a content hash so clients cache correctly.
pub fn openapi_root(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in reg.group_versions() {
        let Some(doc) = openapi_gv(reg, &g, &v) else {
            continue;
        };
        let mut h = DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", h.finish())}),
        );
    }
    json!({"paths": paths})
}

/// An empty Swagger 2.0 document: kubectl falls back to it for kinds missing from v3 (and
/// then reports "no matches for kind" itself, as with a real server).
pub fn openapi_v2() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
           "paths": {}, "definitions": {}})
}

/// The OpenAPI v3 document of one group/version (`None` if not served).
pub fn openapi_gv(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = format!("/{}", gv_path(group, version));
    for d in reg
        .all()
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
    {
        let gvk = json!({"group": group, "version": version, "kind": d.kind});
        let item = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{prefix}/{}/{{name}}", d.plural)
        };
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", d.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let schema_name = if group.is_empty() {
            format!("io.k8s.api.core.{version}.{}", d.kind)
        } else {
            format!("{group}.{version}.{}", d.kind)
        };
        schemas.insert(
            schema_name,
            json!({"type": "object", "x-kubernetes-group-version-kind": [gvk],
                   "x-kubernetes-preserve-unknown-fields": true}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_names_every_group_version_and_its_kinds() {
        let reg = Registry::default();
        let root = openapi_root(&reg);
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("apps/v1 listed");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = openapi_gv(&reg, "apps", "v1").expect("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
        let core = resource_list(&reg, "", "v1").expect("core");
        assert!(core["resources"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["name"] == "configmaps" && r["shortNames"][0] == "cm")
        }));
        assert!(resource_list(&reg, "apps", "v9").is_none());
    }
}
