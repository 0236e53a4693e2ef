//! Removing a HelmRelease is `helm uninstall`: the chart's pre-delete hook Jobs run in
//! `helm.sh/hook-weight` order (each waited for, `hook-delete-policy` honoured), then the
//! release's objects are deleted, then the post-delete hook Jobs run — the order is read from
//! a watch on Jobs, as the API server recorded it. A pre-delete hook that fails fails the
//! uninstall: nothing is deleted, `Ready=False` (UninstallFailed) and a Warning event say why,
//! also when the agent restarted in between (the hooks then come from a new render), and
//! `spec.uninstall.disableHooks` lets the removal go on without hooks. Runs on the real
//! control plane with `FERRY_CLUSTER=real`.

mod e2e_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS};
use ferry_proto::helmrelease::HelmRelease;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

const CHART: &str = "apiVersion: v2\nname: hooked\nversion: 0.1.0\n";
const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  a: b\n";

/// A Job; `hook` and `extra` are annotations, `spec` extra Job spec lines.
fn job(name: &str, annotations: &[(&str, &str)], spec: &str) -> String {
    let mut ann = String::new();
    for (k, v) in annotations {
        ann.push_str(&format!("\n    {k}: {v:?}"));
    }
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("\n  annotations:{ann}")
    };
    format!(
        "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}{ann}\n\
         spec:{spec}\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: run\n        image: registry.example/{name}:1.0\n"
    )
}

/// The chart at `charts/hooked`: a ConfigMap and a Job (release objects); pre-delete hooks
/// `snapshot` (weight -5, deleted when it succeeded) and `drain` (weight 5, Helm's default
/// policy: kept), named so that name order would run them the other way round; post-delete
/// hook `cleanup`.
fn write_hooked(env: &Env) -> Result<()> {
    let up = &env.upstream;
    up.write("charts/hooked/Chart.yaml", CHART)?;
    up.write("charts/hooked/templates/configmap.yaml", CONFIGMAP)?;
    up.write(
        "charts/hooked/templates/worker.yaml",
        job("worker", &[], ""),
    )?;
    let hooks = [
        job(
            "snapshot",
            &[
                ("helm.sh/hook", "pre-delete"),
                ("helm.sh/hook-weight", "-5"),
                ("helm.sh/hook-delete-policy", "hook-succeeded"),
            ],
            "",
        ),
        job(
            "drain",
            &[("helm.sh/hook", "pre-delete"), ("helm.sh/hook-weight", "5")],
            "",
        ),
        job("cleanup", &[("helm.sh/hook", "post-delete")], ""),
    ]
    .concat();
    up.write("charts/hooked/templates/hooks.yaml", hooks)?;
    Ok(())
}

/// The chart at `charts/stuck`: a ConfigMap and a pre-delete hook Job that never completes
/// (suspended on the real control plane; the test server's stand-in leaves it active).
fn write_stuck(env: &Env) -> Result<()> {
    let up = &env.upstream;
    up.write("charts/stuck/Chart.yaml", CHART.replace("hooked", "stuck"))?;
    up.write("charts/stuck/templates/configmap.yaml", CONFIGMAP)?;
    up.write(
        "charts/stuck/templates/hold.yaml",
        job(
            "hold",
            &[
                ("helm.sh/hook", "pre-delete"),
                ("ferry.dev/test-never-ready", "true"),
            ],
            "\n  suspend: true",
        ),
    )?;
    Ok(())
}

async fn apply_release(env: &Env, name: &str, chart: &str, timeout: &str) -> Result<()> {
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    let obj = json!({"apiVersion": "apply.ferry.dev/v1", "kind": "HelmRelease",
    "metadata": {"name": name, "namespace": NS},
    "spec": {
        "chart": {"spec": {"chart": chart, "sourceRef": {"kind": "GitRepository", "name": "app"}}},
        "interval": "2s",
        "timeout": timeout,
    }});
    api.patch(
        name,
        &PatchParams::apply("e2e-test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("applying HelmRelease {name}"))?;
    Ok(())
}

async fn release(env: &Env, name: &str) -> Result<Option<HelmRelease>> {
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    Ok(api.get_opt(name).await?)
}

/// Waits for `Ready` of `name` with `status` and `reason`; returns its message.
async fn wait_ready(env: &Env, name: &str, status: &str, reason: &str) -> Result<String> {
    env.wait_for(
        &format!("HelmRelease {name} Ready={status} {reason}"),
        LIMIT,
        || async {
            let Some(hr) = release(env, name).await? else {
                return Ok(None);
            };
            Ok(hr.status.and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| {
                        c.type_ == "Ready"
                            && format!("{:?}", c.status) == status
                            && c.reason == reason
                    })
                    .map(|c| c.message)
            }))
        },
    )
    .await
}

async fn wait_gone(env: &Env, name: &str) -> Result<()> {
    env.wait_for(&format!("HelmRelease {name} gone"), LIMIT, || async {
        Ok(release(env, name).await?.is_none().then_some(()))
    })
    .await
}

fn complete(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        })
}

/// Records `ADDED name` / `DELETED name` for every Job of the namespace from now on, in the
/// order the API server sends them.
async fn watch_jobs(env: &Env) -> Result<Arc<Mutex<Vec<String>>>> {
    let api: Api<Job> = Api::namespaced(env.client.clone(), NS);
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("list resourceVersion")?;
    let mut stream = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?
        .boxed();
    let seen = Arc::new(Mutex::new(vec![]));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            let line = match ev {
                WatchEvent::Added(j) => format!("ADDED {}", j.metadata.name.unwrap_or_default()),
                WatchEvent::Deleted(j) => {
                    format!("DELETED {}", j.metadata.name.unwrap_or_default())
                }
                _ => continue,
            };
            out.lock().expect("not poisoned").push(line);
        }
    });
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_helmrelease_runs_its_delete_hooks_around_deleting_its_objects() -> Result<()> {
    let mut env = Env::new().await?;
    write_hooked(&env)?;
    write_stuck(&env)?;
    env.upstream.commit_push("charts hooked and stuck")?;
    env.start_source()?;
    env.start_agent()?;

    apply_release(&env, "hooked", "./charts/hooked", "45s").await?;
    wait_ready(&env, "hooked", "True", "InstallSucceeded").await?;
    assert!(env.get("v1", "ConfigMap", "hooked-config").await?.is_some());
    for hook in ["hooked-snapshot", "hooked-drain", "hooked-cleanup"] {
        assert!(
            env.get("batch/v1", "Job", hook).await?.is_none(),
            "{hook}: delete hooks do not run on install"
        );
    }

    // Removal: snapshot (-5) before drain (5), both before the release's objects go; cleanup
    // after they are gone.
    let jobs = watch_jobs(&env).await?;
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    api.delete("hooked", &Default::default()).await?;
    wait_gone(&env, "hooked").await?;
    env.wait_for("the post-delete Job recorded", LIMIT, || async {
        let seen = jobs.lock().expect("not poisoned").clone();
        Ok(seen
            .iter()
            .any(|l| l == "ADDED hooked-cleanup")
            .then_some(()))
    })
    .await?;
    let seen = jobs.lock().expect("not poisoned").clone();
    assert_eq!(
        seen,
        [
            "ADDED hooked-snapshot",
            "DELETED hooked-snapshot",
            "ADDED hooked-drain",
            "DELETED hooked-worker",
            "ADDED hooked-cleanup",
        ],
        "pre-delete hooks by weight (snapshot deleted as it succeeded), the release's Job, then the post-delete hook"
    );
    assert!(env.get("v1", "ConfigMap", "hooked-config").await?.is_none());
    let drain = env
        .get("batch/v1", "Job", "hooked-drain")
        .await?
        .context("the drain hook stays (before-hook-creation)")?;
    assert!(complete(&drain), "{drain}");
    let events = env.events("hooked").await?;
    let done = events
        .iter()
        .find(|(r, _)| r == "UninstallSucceeded")
        .map(|(_, m)| m.clone())
        .with_context(|| format!("an UninstallSucceeded event: {events:?}"))?;
    for line in [
        "Job/team-a/hooked-snapshot hook succeeded",
        "Job/team-a/hooked-drain hook succeeded",
        "ConfigMap/team-a/hooked-config deleted",
        "Job/team-a/hooked-cleanup hook succeeded",
    ] {
        assert!(done.contains(line), "{line:?} in {done}");
    }

    // A pre-delete hook that never completes, with the agent restarted in between (its
    // hooks are then rendered again): the uninstall fails, nothing is deleted.
    apply_release(&env, "stuck", "./charts/stuck", "5s").await?;
    wait_ready(&env, "stuck", "True", "InstallSucceeded").await?;
    env.kill_agent();
    api.delete("stuck", &Default::default()).await?;
    env.start_agent()?;
    let message = wait_ready(&env, "stuck", "False", "UninstallFailed").await?;
    assert!(
        message.contains("pre-delete hook failed, nothing was deleted")
            && message.contains("Job/team-a/stuck-hold"),
        "{message}"
    );
    let hr = release(&env, "stuck").await?.context("still there")?;
    assert!(hr.metadata.deletion_timestamp.is_some());
    assert!(env.get("v1", "ConfigMap", "stuck-config").await?.is_some());
    // The agent writes the status first and records the Warning event after it: wait for it.
    env.wait_for("the UninstallFailed event", LIMIT, || async {
        let events = env.events("stuck").await?;
        Ok(events
            .iter()
            .any(|(r, m)| r == "UninstallFailed" && m.contains("stuck-hold"))
            .then_some(()))
    })
    .await?;

    // spec.uninstall.disableHooks: the removal goes on without hooks.
    api.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"uninstall": {"disableHooks": true}}})),
    )
    .await?;
    wait_gone(&env, "stuck").await?;
    assert!(env.get("v1", "ConfigMap", "stuck-config").await?.is_none());
    Ok(())
}
