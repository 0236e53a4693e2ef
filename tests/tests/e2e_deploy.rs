//! `deploy/` as shipped is accepted by the cluster — with `FERRY_CLUSTER=real` the real
//! kube-apiserver, the judge: the CRDs are created (it refuses a non-structural schema) and
//! Established, the source server's and an agent's kustomizations apply (server-side dry-run
//! first, then for real), and both Deployments become Available (real admission refuses Pods
//! whose ServiceAccount does not exist, and the real controllers report availability). Then
//! each ServiceAccount's tokens may do exactly what its binary needs (`kubectl auth can-i`, on
//! a cluster that enforces RBAC): the source server reads the source kinds everywhere, writes
//! only their status and `get`s Secrets; the agent does anything in its namespace and nothing
//! outside it.

mod e2e_support;

use anyhow::Result;
use e2e_support::{Env, NS};
use ferry_tests::tools::{Client, repo_root};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_are_accepted_and_become_available() -> Result<()> {
    let env = Env::with_rbac().await?;
    let kubectl = Client::kubectl(env.cluster.kubeconfig_path())?;
    let deploy = repo_root().join("deploy");
    let path = |p: &str| deploy.join(p).to_string_lossy().into_owned();

    // `kubectl apply -k deploy/` as the README says: the CRDs and the source server. The harness
    // created the Kustomization CRD from the Rust type; the shipped YAML takes it over (same
    // generator, so only ownership moves).
    kubectl
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            &path(""),
        ])
        .await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/gitrepositories.source.ferry.dev",
            "crd/kustomizations.apply.ferry.dev",
            "crd/receivers.notification.ferry.dev",
        ])
        .await;

    // An agent for NS (which exists): a server-side dry-run first — the whole admission chain,
    // nothing stored.
    let agent = path("agent");
    let dry = kubectl
        .ok(&["apply", "--server-side", "--dry-run=server", "-k", &agent])
        .await;
    assert!(
        dry.contains("deployment.apps/ferry-agent serverside-applied (server dry run)"),
        "{dry}"
    );
    let absent = kubectl
        .run(&["-n", NS, "get", "deployment", "ferry-agent"])
        .await;
    assert!(!absent.success(), "a dry-run stores nothing: {absent:?}");
    kubectl.ok(&["apply", "--server-side", "-k", &agent]).await;

    for (ns, name) in [(NS, "ferry-agent"), ("ferry-system", "ferry-source-server")] {
        kubectl
            .ok(&[
                "-n",
                ns,
                "wait",
                "--for=condition=Available",
                "--timeout=60s",
                &format!("deployment/{name}"),
            ])
            .await;
    }

    kubectl.ok(&["create", "namespace", "ferry-other"]).await;
    let as_sa = |ns: &str, sa: &str| {
        let kubectl = &kubectl;
        let env = &env;
        let (ns, sa) = (ns.to_string(), sa.to_string());
        async move {
            let token = kubectl.ok(&["-n", &ns, "create", "token", &sa]).await;
            let text = std::fs::read_to_string(env.cluster.kubeconfig_path())?;
            let mut cfg: Value = serde_yaml::from_str(&text)?;
            cfg["users"][0]["user"] = json!({"token": token.trim()});
            let path = env.work.path().join(format!("{sa}.kubeconfig"));
            std::fs::write(&path, serde_yaml::to_string(&cfg)?)?;
            anyhow::Ok(Client::kubectl(&path)?)
        }
    };
    let server = as_sa("ferry-system", "ferry-source-server").await?;
    let agent = as_sa(NS, "ferry-agent").await?;
    let matrix: &[(&Client, &[&str], &str)] = &[
        (
            &server,
            &["list", "gitrepositories.source.ferry.dev", "-A"],
            "yes",
        ),
        (
            &server,
            &["watch", "helmrepositories.source.ferry.dev", "-A"],
            "yes",
        ),
        (
            &server,
            &[
                "patch",
                "gitrepositories.source.ferry.dev",
                "--subresource=status",
                "-n",
                NS,
            ],
            "yes",
        ),
        (&server, &["watch", "buckets.source.ferry.dev", "-A"], "yes"),
        (
            &server,
            &[
                "patch",
                "buckets.source.ferry.dev",
                "--subresource=status",
                "-n",
                NS,
            ],
            "yes",
        ),
        (
            &server,
            &["patch", "buckets.source.ferry.dev", "-n", NS],
            "no",
        ),
        (
            &server,
            &["list", "receivers.notification.ferry.dev", "-A"],
            "yes",
        ),
        (
            &server,
            &["watch", "providers.notification.ferry.dev", "-A"],
            "yes",
        ),
        (
            &server,
            &["watch", "alerts.notification.ferry.dev", "-A"],
            "yes",
        ),
        (
            &server,
            &[
                "patch",
                "receivers.notification.ferry.dev",
                "--subresource=status",
                "-n",
                NS,
            ],
            "yes",
        ),
        (
            &server,
            &["patch", "alerts.notification.ferry.dev", "-n", NS],
            "no",
        ),
        (
            &server,
            &["patch", "gitrepositories.source.ferry.dev", "-n", NS],
            "no",
        ),
        (
            &server,
            &["delete", "gitrepositories.source.ferry.dev", "-n", NS],
            "no",
        ),
        // Replicas' Leases: in the server's namespace only (watched; gone replicas'
        // heartbeats deleted).
        (
            &server,
            &["update", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["watch", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["patch", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["create", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["get", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["delete", "leases.coordination.k8s.io", "-n", "ferry-system"],
            "yes",
        ),
        (
            &server,
            &["list", "leases.coordination.k8s.io", "-n", NS],
            "no",
        ),
        (
            &server,
            &["create", "leases.coordination.k8s.io", "-n", NS],
            "no",
        ),
        (&server, &["get", "secrets", "-n", NS], "yes"),
        (&server, &["list", "secrets", "-n", NS], "no"),
        (&server, &["create", "secrets", "-n", NS], "no"),
        (&server, &["create", "deployments.apps", "-n", NS], "no"),
        (
            &server,
            &["patch", "kustomizations.apply.ferry.dev", "-n", NS],
            "no",
        ),
        (
            &server,
            &["create", "tokenreviews.authentication.k8s.io"],
            "yes",
        ),
        (&agent, &["create", "deployments.apps", "-n", NS], "yes"),
        (
            &agent,
            &[
                "patch",
                "kustomizations.apply.ferry.dev",
                "--subresource=status",
                "-n",
                NS,
            ],
            "yes",
        ),
        (&agent, &["delete", "configmaps", "-n", NS], "yes"),
        (&agent, &["get", "secrets", "-n", "ferry-other"], "no"),
        (
            &agent,
            &["create", "deployments.apps", "-n", "ferry-other"],
            "no",
        ),
        (
            &agent,
            &["list", "gitrepositories.source.ferry.dev", "-A"],
            "no",
        ),
        (&agent, &["create", "namespaces"], "no"),
        (
            &agent,
            &["create", "tokenreviews.authentication.k8s.io"],
            "no",
        ),
        (
            &agent,
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            "no",
        ),
    ];
    let mut wrong = Vec::new();
    for (client, args, want) in matrix {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        let got = client.run(&full).await.stdout.trim().to_string();
        if got != *want {
            let who = if std::ptr::eq(*client, &server) {
                "source server"
            } else {
                "agent"
            };
            wrong.push(format!(
                "{who}: can-i {} → {got:?}, want {want:?}",
                args.join(" ")
            ));
        }
    }
    assert!(wrong.is_empty(), "RBAC as shipped:\n{}", wrong.join("\n"));
    Ok(())
}
