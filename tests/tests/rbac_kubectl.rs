//! TLS, tokens and RBAC through the real kubectl: an administrator sets up a tenant
//! ServiceAccount bound to a Role in namespace `a`; with a token from `kubectl create token`
//! the tenant can apply in `a` and is refused — with the apiserver's exact 403 — in `b` and
//! on cluster-scoped kinds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_tests::apiserver::auth::{Authenticator, Gate, TlsListener, TlsMaterial, secure};
use ferry_tests::apiserver::http::{Server, router};
use ferry_tests::tools::Client;
use serde_json::json;

/// An API server behind TLS and the RBAC gate, stopped on drop.
struct SecureServer {
    url: String,
    tls: TlsMaterial,
    admin_token: String,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SecureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SecureServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let tls = TlsMaterial::generate(&["127.0.0.1", "localhost"]).expect("certificates");
        let server = Arc::new(Server::default());
        let mut authn = Authenticator::default();
        let admin_token = authn.add_admin("admin");
        let app = secure(
            router(server.clone()),
            Gate::new(server.store.clone(), authn),
        );
        let listener = TlsListener::new(listener, tls.server_config().expect("TLS config"))
            .expect("TLS listener");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SecureServer {
            url: format!("https://{addr}"),
            tls,
            admin_token,
            dir: tempfile::tempdir().expect("tempdir"),
            task,
        }
    }

    /// A kubeconfig for `token`, trusting the server's CA unless `trust` is false.
    fn kubeconfig(&self, name: &str, token: &str, trust: bool) -> PathBuf {
        let mut cluster = json!({"server": self.url});
        if trust {
            cluster["certificate-authority-data"] = json!(self.tls.ca_data());
        }
        let cfg = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "secure", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "secure", "context": {"cluster": "secure", "user": name}}],
            "current-context": "secure",
        });
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
        path
    }
}

fn kubectl(kubeconfig: &Path) -> Client {
    Client::kubectl(kubeconfig).expect("kubectl installed")
}

fn write(k: &Client, name: &str, text: &str) -> String {
    let p = k.home().join(name);
    std::fs::write(&p, text).expect("write manifest");
    p.to_string_lossy().into_owned()
}

fn configmap(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{mode: a}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_bound_in_a_can_apply_only_in_a() {
    let server = SecureServer::start().await;
    let admin = kubectl(&server.kubeconfig("admin", &server.admin_token, true));
    for ns in ["a", "b"] {
        admin.ok(&["create", "namespace", ns]).await;
    }
    admin
        .ok(&["-n", "a", "create", "serviceaccount", "agent"])
        .await;
    // (kubectl create role/rolebinding would send protobuf, which this server decodes only
    // for a few core kinds; apply sends JSON.)
    let rbac = write(
        &admin,
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

    let agent = kubectl(&server.kubeconfig("agent", token, true));
    // Allowed in its namespace.
    let in_a = write(&agent, "a.yaml", &configmap("a"));
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

    // Refused in another namespace, worded like Kubernetes.
    let in_b = write(&agent, "b.yaml", &configmap("b"));
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
    let role = write(
        &agent,
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
    let server = SecureServer::start().await;
    let stranger = kubectl(&server.kubeconfig("stranger", "not-a-token", true));
    let r = stranger.run(&["get", "namespaces"]).await;
    assert!(!r.success());
    assert!(
        r.stderr.contains(
            "You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{r:?}"
    );
    let untrusting = kubectl(&server.kubeconfig("admin", &server.admin_token, false));
    let r = untrusting.run(&["get", "namespaces"]).await;
    assert!(!r.success());
    assert!(
        r.stderr.contains("certificate signed by unknown authority"),
        "{r:?}"
    );
}
