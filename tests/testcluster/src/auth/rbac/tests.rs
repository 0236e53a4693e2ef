use serde_json::{Value, json};

use super::super::authn::UserInfo;
use super::{Policy, RequestAttributes, authorize, forbidden};

fn attrs(method: &str, path: &str, query: Option<&str>) -> RequestAttributes {
    RequestAttributes::from_request(method, path, query)
}

#[test]
fn request_attributes_follow_the_apiserver() {
    let a = attrs("PATCH", "/apis/apps/v1/namespaces/b/deployments/x", None);
    assert!(a.resource_request);
    assert_eq!(
        (
            a.verb.as_str(),
            a.api_group.as_str(),
            a.resource.as_str(),
            a.name.as_str(),
            a.namespace.as_str()
        ),
        ("patch", "apps", "deployments", "x", "b")
    );
    let a = attrs(
        "GET",
        "/api/v1/namespaces/a/configmaps",
        Some("labelSelector=x&watch=true"),
    );
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str()),
        ("watch", "configmaps")
    );
    let a = attrs("GET", "/api/v1/namespaces/a/configmaps", Some("limit=500"));
    assert_eq!(a.verb, "list");
    let a = attrs("DELETE", "/api/v1/namespaces/a/configmaps", None);
    assert_eq!(a.verb, "deletecollection");
    let a = attrs(
        "PUT",
        "/apis/apps/v1/namespaces/a/deployments/x/status",
        None,
    );
    assert_eq!(
        (a.verb.as_str(), a.subresource.as_str()),
        ("update", "status")
    );
    let a = attrs(
        "POST",
        "/api/v1/namespaces/a/serviceaccounts/agent/token",
        None,
    );
    assert_eq!(
        (
            a.verb.as_str(),
            a.resource.as_str(),
            a.name.as_str(),
            a.subresource.as_str()
        ),
        ("create", "serviceaccounts", "agent", "token")
    );
    // A namespace is its own namespace; its status is a subresource.
    let a = attrs("GET", "/api/v1/namespaces/a", None);
    assert_eq!(
        (
            a.verb.as_str(),
            a.resource.as_str(),
            a.name.as_str(),
            a.namespace.as_str()
        ),
        ("get", "namespaces", "a", "a")
    );
    let a = attrs("PUT", "/api/v1/namespaces/a/finalize", None);
    assert_eq!(
        (a.resource.as_str(), a.subresource.as_str()),
        ("namespaces", "finalize")
    );
    let a = attrs(
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        None,
    );
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
    let a = attrs("GET", "/api/v1/watch/namespaces/a/pods", None);
    assert_eq!((a.verb.as_str(), a.resource.as_str()), ("watch", "pods"));
    for discovery in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
    ] {
        let a = attrs("GET", discovery, None);
        assert!(!a.resource_request, "{discovery}");
        assert_eq!(a.verb, "get");
    }
}

fn agent() -> UserInfo {
    UserInfo::service_account("a", "agent", "uid-1")
}

struct Objects {
    roles: Vec<Value>,
    role_bindings: Vec<Value>,
    cluster_roles: Vec<Value>,
    cluster_role_bindings: Vec<Value>,
}

impl Objects {
    fn policy(&self) -> Policy<'_> {
        Policy {
            roles: &self.roles,
            role_bindings: &self.role_bindings,
            cluster_roles: &self.cluster_roles,
            cluster_role_bindings: &self.cluster_role_bindings,
        }
    }
}

/// The agent's Role in `a`, as `kubectl create role/rolebinding` would make it.
fn tenant() -> Objects {
    Objects {
        roles: vec![
            json!({"metadata": {"name": "deployer", "namespace": "a"}, "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["only-this"]},
                {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}
            ]}),
            // Same name in another namespace: must not leak into `a`.
            json!({"metadata": {"name": "deployer", "namespace": "b"}, "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
            ]}),
        ],
        role_bindings: vec![json!({
            "metadata": {"name": "agent", "namespace": "a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "a"}]
        })],
        cluster_roles: vec![json!({"metadata": {"name": "view"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
        ]})],
        cluster_role_bindings: vec![],
    }
}

#[test]
fn a_role_grants_in_its_namespace_only() {
    let objs = tenant();
    let p = objs.policy();
    let user = agent();
    let ok = |m: &str, path: &str| authorize(&user, &attrs(m, path, None), &p);
    assert!(ok("PATCH", "/apis/apps/v1/namespaces/a/deployments/web"));
    assert!(ok("GET", "/apis/apps/v1/namespaces/a/deployments"));
    assert!(!ok("PATCH", "/apis/apps/v1/namespaces/b/deployments/web"));
    assert!(
        !ok("PATCH", "/apis/apps/v1/namespaces/a/deployments/web/status"),
        "subresource needs its own rule"
    );
    assert!(
        ok("PUT", "/apis/apps/v1/namespaces/a/deployments/web/scale"),
        "*/scale"
    );
    assert!(
        !ok("PUT", "/apis/apps/v1/namespaces/a/deployments/web"),
        "verb not granted"
    );
    assert!(ok("DELETE", "/api/v1/namespaces/a/configmaps/only-this"));
    assert!(
        !ok("DELETE", "/api/v1/namespaces/a/configmaps/other"),
        "resourceNames"
    );
    assert!(
        !ok("GET", "/api/v1/namespaces/a/configmaps"),
        "a list has no name to match resourceNames"
    );
    assert!(!ok("POST", "/api/v1/namespaces"), "cluster-scoped");
    assert!(!ok(
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/view"
    ));
    // Discovery and OpenAPI are open to every authenticated user.
    assert!(ok("GET", "/apis/apps/v1"));
    assert!(ok("GET", "/openapi/v3/apis/apps/v1"));
    assert!(!ok("GET", "/metrics"));
}

#[test]
fn cluster_roles_through_role_bindings_and_cluster_role_bindings() {
    let mut objs = tenant();
    objs.role_bindings.push(json!({
        "metadata": {"name": "viewers", "namespace": "a"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts:a"}]
    }));
    {
        let p = objs.policy();
        let user = agent();
        assert!(authorize(
            &user,
            &attrs("GET", "/api/v1/namespaces/a/secrets/s", None),
            &p
        ));
        assert!(!authorize(
            &user,
            &attrs("GET", "/api/v1/namespaces/b/secrets/s", None),
            &p
        ));
        assert!(authorize(
            &user,
            &attrs(
                "GET",
                "/apis/apps/v1/namespaces/a/deployments/x/status",
                None
            ),
            &p
        ));
        assert!(
            !authorize(&user, &attrs("GET", "/metrics", None), &p),
            "non-resource URLs need a cluster binding"
        );
    }
    objs.cluster_role_bindings.push(json!({
        "metadata": {"name": "alice-view"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}]
    }));
    let p = objs.policy();
    let alice = UserInfo {
        name: "alice".into(),
        uid: "u".into(),
        groups: vec!["system:authenticated".into()],
    };
    assert!(authorize(
        &alice,
        &attrs("GET", "/api/v1/namespaces/zzz/secrets/s", None),
        &p
    ));
    assert!(authorize(&alice, &attrs("GET", "/metrics", None), &p));
    assert!(!authorize(
        &alice,
        &attrs("DELETE", "/api/v1/namespaces/zzz/secrets/s", None),
        &p
    ));
    assert!(!authorize(
        &agent(),
        &attrs("GET", "/api/v1/namespaces/zzz/secrets/s", None),
        &p
    ));
}

#[test]
fn masters_and_anonymous() {
    let objs = tenant();
    let p = objs.policy();
    let admin = UserInfo {
        name: "admin".into(),
        uid: "u".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    };
    assert!(authorize(
        &admin,
        &attrs("DELETE", "/api/v1/namespaces/kube-system", None),
        &p
    ));
    let anon = UserInfo::anonymous();
    assert!(authorize(&anon, &attrs("GET", "/version", None), &p));
    assert!(!authorize(&anon, &attrs("GET", "/api", None), &p));
    assert!(!authorize(
        &anon,
        &attrs("GET", "/api/v1/namespaces/a/configmaps", None),
        &p
    ));
}

#[test]
fn forbidden_is_worded_like_kubernetes() {
    let user = agent();
    let e = forbidden(
        &user,
        &attrs("PATCH", "/apis/apps/v1/namespaces/b/deployments/x", None),
    );
    let status = e.to_status();
    assert_eq!(status["code"], 403);
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "deployments.apps \"x\" is forbidden: User \"system:serviceaccount:a:agent\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"b\""
    );
    assert_eq!(
        status["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );
    let e = forbidden(
        &user,
        &attrs(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            None,
        ),
    );
    assert_eq!(
        e.message,
        "clusterroles.rbac.authorization.k8s.io is forbidden: User \"system:serviceaccount:a:agent\" cannot list resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
    );
    let e = forbidden(
        &user,
        &attrs("GET", "/api/v1/namespaces/b/configmaps/c", None),
    );
    assert_eq!(
        e.message,
        "configmaps \"c\" is forbidden: User \"system:serviceaccount:a:agent\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"b\""
    );
    let e = forbidden(
        &user,
        &attrs(
            "PUT",
            "/apis/apps/v1/namespaces/b/deployments/x/status",
            None,
        ),
    );
    assert!(
        e.message
            .contains("cannot update resource \"deployments/status\""),
        "{}",
        e.message
    );
    let e = forbidden(&UserInfo::anonymous(), &attrs("GET", "/metrics", None));
    assert_eq!(
        e.message,
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
}
