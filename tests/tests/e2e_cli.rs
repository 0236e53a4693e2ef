//! The `ferry` CLI against a running agent and source server (the test server, or the real
//! control plane with `FERRY_CLUSTER=real`): the tables users read, the waits `reconcile` and
//! `resume` do, and the exit codes scripts rely on (0 ok, 1 not Ready or differences, 2 error,
//! 3 timed out).

mod e2e_support;

use std::time::Duration;

use anyhow::Result;
use e2e_support::{Env, NS, bin, deployment_yaml, seed_spec};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.out, self.err
        )
    }
}

/// Runs `ferry ARGS` against `env` (namespace, kubeconfig and source server from `env`).
async fn ferry(env: &Env, args: &[&str]) -> Result<Run> {
    let out = tokio::process::Command::new(bin("ferry")?)
        .arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .args(["-n", NS, "--source-server", &env.source_url()])
        .arg("--cache-dir")
        .arg(env.work.path().join("cli-cache"))
        .args(["--timeout", "30s"])
        .args(args)
        .output()
        .await?;
    Ok(Run {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The table row whose first cell is `name`, split into cells.
fn row(table: &str, name: &str) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reconcile_suspend_resume_tree_events_and_exit_codes() -> Result<()> {
    let mut env = Env::new().await?;
    let first = env.seeded(seed_spec("./app")).await?;

    // Tables, Flux's columns.
    let r = ferry(&env, &["get", "kustomizations"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.starts_with("NAME   REVISION"), "header first: {r}");
    let cells = row(&r.out, "app").unwrap_or_default();
    assert_eq!(
        cells.get(1..4).map(|c| c.to_vec()),
        Some(vec![
            format!("main@sha1:{first}"),
            "False".into(),
            "True".into()
        ]),
        "{r}"
    );
    let r = ferry(&env, &["get", "sources"]).await?;
    let cells = row(&r.out, "gitrepository/app").unwrap_or_default();
    assert_eq!(cells.get(1), Some(&format!("main@sha1:{first}")), "{r}");
    assert_eq!(cells.get(3).map(String::as_str), Some("True"), "{r}");
    let r = ferry(&env, &["get", "ks", "-o", "json"]).await?;
    let items: Value = serde_json::from_str(&r.out)?;
    assert_eq!(items[0]["metadata"]["name"], "app", "{r}");

    // The inventory as a tree.
    let r = ferry(&env, &["tree", "ks", "app"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.starts_with("Kustomization/team-a/app\n"), "{r}");
    assert!(r.out.contains("── Deployment/team-a/my-app\n"), "{r}");
    assert!(r.out.contains("└── Service/team-a/my-app"), "{r}");

    // A new commit, reconciled with its source: the command returns once it is applied.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v2.0.0"))?;
    let second = env.upstream.commit_push("v2")?;
    let r = ferry(&env, &["reconcile", "ks", "app", "--with-source"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.err
            .contains(&format!("✔ applied revision main@sha1:{second}")),
        "{r}"
    );
    let d = env.get("apps/v1", "Deployment", "my-app").await?;
    assert_eq!(
        d.as_ref().map(e2e_support::image).as_deref(),
        Some("my-registry/my-app:v2.0.0")
    );
    let r = ferry(&env, &["diff", "ks", "app"]).await?;
    assert_eq!(
        r.code,
        Some(0),
        "nothing to change right after a reconcile: {r}"
    );
    let r = ferry(&env, &["build", "kustomization", "app"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.contains("image: my-registry/my-app:v2.0.0"), "{r}");
    let dir = env.upstream.work().join("app");
    let r = ferry(&env, &["build", dir.to_str().unwrap_or_default()]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.contains("kind: Service"), "{r}");

    // Suspend: shown, and reconcile refuses; resume reconciles and waits.
    let r = ferry(&env, &["suspend", "ks", "app"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    let r = ferry(&env, &["get", "ks"]).await?;
    assert_eq!(
        row(&r.out, "app")
            .unwrap_or_default()
            .get(2)
            .map(String::as_str),
        Some("True"),
        "{r}"
    );
    let r = ferry(&env, &["reconcile", "ks", "app"]).await?;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.err.contains("is suspended"), "{r}");
    let r = ferry(&env, &["resume", "ks", "app"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.err.contains("✔ applied revision"), "{r}");

    // A broken commit: reconcile reports it and exits 1; the table and the events show it.
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v3.0.0") + "  broken: [unclosed\n",
    )?;
    env.upstream.commit_push("broken yaml")?;
    let r = ferry(&env, &["reconcile", "ks", "app", "--with-source"]).await?;
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.err.contains("not Ready") && r.err.contains("deployment.yaml"),
        "{r}"
    );
    let r = ferry(&env, &["get", "ks"]).await?;
    assert_eq!(
        row(&r.out, "app")
            .unwrap_or_default()
            .get(3)
            .map(String::as_str),
        Some("False"),
        "{r}"
    );
    // The agent writes a failure's status before it records its Warning event, so the
    // reconcile above may return before the event exists: ask until it is listed.
    let r = env
        .wait_for(
            "ferry events to list the BuildFailed warning",
            LIMIT,
            || async {
                let r = ferry(&env, &["events", "--for", "Kustomization/app"]).await?;
                let listed = r
                    .out
                    .lines()
                    .any(|l| l.contains("Warning") && l.contains("BuildFailed"));
                Ok(listed.then_some(r))
            },
        )
        .await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.starts_with("LAST SEEN"), "{r}");

    // Errors name the object; a wait that cannot end in time exits 3.
    let r = ferry(&env, &["reconcile", "ks", "nope"]).await?;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.err.contains("Kustomization team-a/nope"), "{r}");
    env.kill_agent();
    let r = ferry(&env, &["reconcile", "ks", "app", "--timeout", "1s"]).await?;
    assert_eq!(r.code, Some(3), "{r}");
    assert!(r.err.contains("timed out"), "{r}");

    let r = ferry(&env, &["completion", "bash"]).await?;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.out.contains("_ferry"), "{r}");
    Ok(())
}
