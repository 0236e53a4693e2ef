//! TLS, tokens and RBAC through the real kubectl: an administrator sets up a tenant
//! ServiceAccount bound to a Role in namespace `a`; with a token from `kubectl create token`
//! the tenant can apply in `a` and is refused — with the apiserver's exact 403 — in `b` and
//! on cluster-scoped kinds. Users from a users file get what their groups are bound to;
//! unknown tokens get 401 and a client without the CA refuses the server.

use std::path::{Path, PathBuf};

use ferry_testcluster::{ClusterOptions, TestCluster};
use ferry_tests::tools::Client;
use serde_json::{Value, json};

async fn secure_cluster() -> TestCluster {
    TestCluster::start(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    })
    .await
    .expect("test cluster starts with TLS")
}

/// The administrator's kubeconfig with another token (and without the CA unless `trust`).
fn kubeconfig_for(cluster: &TestCluster, dir: &Path, token: &str, trust: bool) -> PathBuf {
    let text = std::fs::read_to_string(cluster.kubeconfig_path()).expect("read kubeconfig");
    let mut cfg: Value = serde_yaml::from_str(&text).expect("kubeconfig is YAML");
    cfg["users"][0]["user"] = json!({"token": token});
    if !trust {
        cfg["clusters"][0]["cluster"]
            .as_object_mut()
            .expect("cluster entry")
            .remove("certificate-authority-data");
    }
    let path = dir.join(format!(
        "{}.kubeconfig",
        if trust { token } else { "untrusting" }
    ));
    std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
    path
}

fn kubectl(kubeconfig: &Path) -> Client {
    Client::kubectl(kubeconfig).expect("kubectl installed")
}

fn configmap(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{mode: a}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_bound_in_a_can_apply_only_in_a() {
    let cluster = secure_cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = kubectl(cluster.kubeconfig_path());
    for ns in ["a", "b"] {
        admin.ok(&["create", "namespace", ns]).await;
    }
    admin
        .ok(&["-n", "a", "create", "serviceaccount", "agent"])
        .await;
    // (kubectl create role/rolebinding would send protobuf, which this server decodes only
    // for a few core kinds; apply sends JSON.)
    let rbac = admin.write_manifest(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: a}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [\"*\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agent, namespace: a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: ServiceAccount, name: agent, namespace: a}
",
    );
    admin.ok(&["apply", "--server-side", "-f", &rbac]).await;
    let token = admin.ok(&["-n", "a", "create", "token", "agent"]).await;
    let token = token.trim();
    assert!(!token.is_empty());

    let agent = kubectl(&kubeconfig_for(&cluster, dir.path(), token, true));
    let who = agent
        .ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(who, "system:serviceaccount:a:agent");
    for (args, expected) in [
        (
            &["auth", "can-i", "patch", "deployments", "-n", "a"][..],
            "yes",
        ),
        (&["auth", "can-i", "patch", "deployments", "-n", "b"], "no"),
        (
            &["auth", "can-i", "delete", "configmaps/anything", "-n", "a"],
            "yes",
        ),
        (&["auth", "can-i", "create", "namespaces"], "no"),
    ] {
        let r = agent.run(args).await;
        assert_eq!(r.stdout.trim(), expected, "{args:?}: {r:?}");
        assert_eq!(
            r.code,
            Some(if expected == "yes" { 0 } else { 1 }),
            "{args:?}"
        );
    }
    // Allowed in its namespace.
    let in_a = agent.write_manifest("a.yaml", &configmap("a"));
    let out = agent.ok(&["apply", "--server-side", "-f", &in_a]).await;
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let got = admin
        .ok(&[
            "-n",
            "a",
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.mode}",
        ])
        .await;
    assert_eq!(got, "a");

    let deploy = agent.write_manifest(
        "deploy.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
",
    );
    let out = agent.ok(&["apply", "--server-side", "-f", &deploy]).await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );

    // Refused in another namespace, worded like Kubernetes.
    let in_b = agent.write_manifest("b.yaml", &configmap("b"));
    let r = agent.run(&["apply", "--server-side", "-f", &in_b]).await;
    assert!(!r.success(), "{r:?}");
    assert!(
        r.stderr.contains(
            "configmaps \"settings\" is forbidden: User \"system:serviceaccount:a:agent\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"b\""
        ),
        "{}",
        r.stderr
    );
    let r = agent.run(&["-n", "b", "get", "configmaps"]).await;
    assert!(
        r.stderr.contains(
            "cannot list resource \"configmaps\" in API group \"\" in the namespace \"b\""
        ),
        "{r:?}"
    );

    // Refused on cluster-scoped kinds.
    let role = agent.write_manifest(
        "clusterrole.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: escalate}\nrules: []\n",
    );
    let r = agent.run(&["apply", "--server-side", "-f", &role]).await;
    assert!(
        r.stderr.contains(
            "clusterroles.rbac.authorization.k8s.io \"escalate\" is forbidden: User \"system:serviceaccount:a:agent\" cannot patch resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
        ),
        "{r:?}"
    );
    let r = agent.run(&["create", "namespace", "c"]).await;
    assert!(
        r.stderr.contains(
            "cannot create resource \"namespaces\" in API group \"\" at the cluster scope"
        ),
        "{r:?}"
    );

    // Deleting the ServiceAccount kills its tokens.
    admin
        .ok(&["-n", "a", "delete", "serviceaccount", "agent"])
        .await;
    let r = agent.run(&["-n", "a", "get", "configmaps"]).await;
    assert!(
        r.stderr.contains("You must be logged in to the server"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_and_untrusted_servers_are_refused() {
    let cluster = secure_cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stranger = kubectl(&kubeconfig_for(&cluster, dir.path(), "not-a-token", true));
    let r = stranger.run(&["get", "namespaces"]).await;
    assert!(!r.success());
    assert!(
        r.stderr.contains(
            "You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{r:?}"
    );
    let untrusting = kubectl(&kubeconfig_for(
        &cluster,
        dir.path(),
        cluster.admin_token(),
        false,
    ));
    let r = untrusting.run(&["get", "namespaces"]).await;
    assert!(!r.success());
    assert!(
        r.stderr.contains("certificate signed by unknown authority"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_from_the_users_file_get_what_their_groups_are_bound_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        "# token,user,uid,groups\nalice-token,alice,u-1,\"devs,readers\"\nbob-token,bob,u-2\n",
    )
    .expect("write users file");
    let cluster = TestCluster::start(ClusterOptions {
        tls: true,
        users_file: Some(users),
        ..ClusterOptions::default()
    })
    .await
    .expect("test cluster starts with TLS");
    let admin = kubectl(cluster.kubeconfig_path());
    let rbac = admin.write_manifest(
        "rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ns-reader}
rules:
- apiGroups: [\"\"]
  resources: [namespaces]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ns-reader}
subjects:
- {kind: Group, name: readers, apiGroup: rbac.authorization.k8s.io}
",
    );
    admin.ok(&["apply", "--server-side", "-f", &rbac]).await;

    let alice = kubectl(&kubeconfig_for(&cluster, dir.path(), "alice-token", true));
    let out = alice.ok(&["get", "namespaces", "-o", "name"]).await;
    assert!(out.contains("namespace/default"), "{out}");
    let r = alice.run(&["delete", "namespace", "default"]).await;
    assert!(
        r.stderr.contains(
            "namespaces \"default\" is forbidden: User \"alice\" cannot delete resource \"namespaces\" in API group \"\" in the namespace \"default\""
        ),
        "{r:?}"
    );
    let bob = kubectl(&kubeconfig_for(&cluster, dir.path(), "bob-token", true));
    let r = bob.run(&["get", "namespaces"]).await;
    assert!(
        r.stderr
            .contains("User \"bob\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"),
        "{r:?}"
    );
}
