//! Authorization: Kubernetes RBAC over the Role/ClusterRole/RoleBinding/ClusterRoleBinding
//! objects in the store, with the request attributes derived from the URL exactly like the
//! apiserver's `RequestInfoFactory`, and the 403 worded like the real one.
//!
//! Built in, because a fresh cluster has them through its bootstrap roles: `system:masters`
//! may do anything; authenticated users may read discovery, OpenAPI and `/version` and create
//! self-reviews; everyone may read `/version` and the health endpoints. Aggregated
//! ClusterRoles and impersonation are not supported.

use serde_json::{Value, json};

use super::authn::UserInfo;
use crate::status::ApiError;

/// What a request asks to do (the apiserver's `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// get, list, watch, create, update, patch, delete, deletecollection; for non-resource
    /// requests the lower-cased HTTP method.
    pub verb: String,
    pub resource_request: bool,
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
}

fn query_flag(query: Option<&str>, key: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            k == key && (v == "true" || v == "1")
        })
    })
}

impl RequestAttributes {
    /// Derives the attributes from the HTTP method, path and query string.
    pub fn from_request(method: &str, path: &str, query: Option<&str>) -> Self {
        let mut attrs = RequestAttributes {
            path: path.to_string(),
            verb: method.to_ascii_lowercase(),
            ..Default::default()
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (group, version, mut rest) = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => return attrs,
        };
        attrs.resource_request = true;
        attrs.api_group = group.to_string();
        attrs.api_version = version.to_string();
        attrs.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
        // The deprecated /watch/ prefix.
        if rest.first() == Some(&"watch") {
            attrs.verb = "watch".to_string();
            rest = &rest[1..];
        }
        if let ["namespaces", ns, after @ ..] = rest {
            attrs.namespace = (*ns).to_string();
            if !after.is_empty() && !matches!(after[0], "status" | "finalize") {
                rest = after;
            }
        }
        attrs.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        attrs.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        attrs.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        if attrs.name.is_empty() {
            match attrs.verb.as_str() {
                "get" if query_flag(query, "watch") => attrs.verb = "watch".to_string(),
                "get" => attrs.verb = "list".to_string(),
                "delete" => attrs.verb = "deletecollection".to_string(),
                _ => {}
            }
        } else if attrs.verb == "get" && query_flag(query, "watch") {
            attrs.verb = "watch".to_string();
        }
        attrs
    }

    /// `deployments.apps`, `configmaps`.
    fn group_resource(&self) -> String {
        if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        }
    }
}

/// The RBAC objects to evaluate (as stored: JSON objects).
#[derive(Debug, Default, Clone, Copy)]
pub struct Policy<'a> {
    pub roles: &'a [Value],
    pub role_bindings: &'a [Value],
    pub cluster_roles: &'a [Value],
    pub cluster_role_bindings: &'a [Value],
}

const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];
const PUBLIC_PATHS: &[&str] = &["/version", "/version/", "/healthz", "/livez", "/readyz"];

/// Whether `user` may do what `attrs` describes.
pub fn authorize(user: &UserInfo, attrs: &RequestAttributes, policy: &Policy) -> bool {
    if user.in_group("system:masters") || bootstrap_allows(user, attrs) {
        return true;
    }
    let str_of = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // ClusterRoleBindings grant everywhere.
    for binding in policy.cluster_role_bindings {
        if binds(binding, user, "") && role_allows(binding, "", policy, attrs) {
            return true;
        }
    }
    // RoleBindings grant in their own namespace only.
    if attrs.resource_request && !attrs.namespace.is_empty() {
        for binding in policy.role_bindings {
            let ns = str_of(binding, "/metadata/namespace");
            if ns == attrs.namespace
                && binds(binding, user, &ns)
                && role_allows(binding, &ns, policy, attrs)
            {
                return true;
            }
        }
    }
    false
}

fn bootstrap_allows(user: &UserInfo, attrs: &RequestAttributes) -> bool {
    let authenticated = user.in_group("system:authenticated");
    if !attrs.resource_request {
        let paths = if authenticated {
            DISCOVERY_PATHS
        } else {
            PUBLIC_PATHS
        };
        return attrs.verb == "get" && url_matches(paths.iter().copied(), &attrs.path);
    }
    authenticated
        && attrs.verb == "create"
        && matches!(
            (attrs.api_group.as_str(), attrs.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        )
}

/// Whether a binding's subjects include the user. `binding_ns` defaults a ServiceAccount
/// subject's namespace.
fn binds(binding: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let field = |f: &str| s.get(f).and_then(Value::as_str).unwrap_or("");
        match field("kind") {
            "User" => field("name") == user.name,
            "Group" => user.in_group(field("name")),
            "ServiceAccount" => {
                let ns = if field("namespace").is_empty() {
                    binding_ns
                } else {
                    field("namespace")
                };
                user.service_account_ref() == Some((ns, field("name")))
            }
            _ => false,
        }
    })
}

/// Whether the role a binding refers to has a rule allowing the request.
fn role_allows(
    binding: &Value,
    binding_ns: &str,
    policy: &Policy,
    attrs: &RequestAttributes,
) -> bool {
    let kind = binding
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let named = |v: &&Value, ns: Option<&str>| {
        v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
            && ns.is_none_or(|ns| {
                v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            })
    };
    let role = match kind {
        "ClusterRole" => policy.cluster_roles.iter().find(|v| named(v, None)),
        // A Role can only be referenced from a RoleBinding in its namespace.
        "Role" if !binding_ns.is_empty() => {
            policy.roles.iter().find(|v| named(v, Some(binding_ns)))
        }
        _ => None,
    };
    let Some(rules) = role.and_then(|r| r.get("rules")).and_then(Value::as_array) else {
        return false;
    };
    rules.iter().any(|rule| rule_allows(rule, attrs))
}

fn strings<'v>(rule: &'v Value, field: &str) -> Vec<&'v str> {
    rule.get(field)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// rbac/v1 `RuleAllows`.
fn rule_allows(rule: &Value, attrs: &RequestAttributes) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return url_matches(strings(rule, "nonResourceURLs").into_iter(), &attrs.path);
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| *g == "*" || *g == attrs.api_group) {
        return false;
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.contains(&attrs.name.as_str())
}

fn url_matches<'p>(mut patterns: impl Iterator<Item = &'p str>, path: &str) -> bool {
    patterns.any(|p| {
        p == "*"
            || p == path
            || p.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// The 403 the apiserver sends when authorization fails.
pub fn forbidden(user: &UserInfo, attrs: &RequestAttributes) -> ApiError {
    let why = if !attrs.resource_request {
        format!(
            "User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        )
    } else {
        let resource = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", attrs.namespace)
        };
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name, attrs.verb, resource, attrs.api_group
        )
    };
    let message = if !attrs.resource_request || attrs.resource.is_empty() {
        format!("forbidden: {why}")
    } else if attrs.name.is_empty() {
        format!("{} is forbidden: {why}", attrs.group_resource())
    } else {
        format!(
            "{} {:?} is forbidden: {why}",
            attrs.group_resource(),
            attrs.name
        )
    };
    let mut details = serde_json::Map::new();
    if !attrs.name.is_empty() {
        details.insert("name".into(), json!(attrs.name));
    }
    if !attrs.api_group.is_empty() {
        details.insert("group".into(), json!(attrs.api_group));
    }
    if !attrs.resource.is_empty() {
        details.insert("kind".into(), json!(attrs.resource));
    }
    ApiError::new(403, "Forbidden", message).with_details(Value::Object(details))
}

/// The 401 for an unknown or expired token.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests;
