//! HelmRelease end to end with the real helm v4.1.4 rendering charts from a GitRepository:
//! a chart of our own (a pre-install/pre-upgrade Job hook, a CRD in `crds/` with an instance in
//! the templates, a library chart vendored in `charts/`) installed, upgraded by a values
//! change, drift corrected, drift only reported in `warn` mode, a chart change by Git commit
//! rolled back by `git revert` (its object pruned), a broken template refused with helm's error
//! and nothing touched, and removal uninstalling; a `helm create` chart installed after a
//! Kustomization it depends on, with a Kustomization depending on it in turn. Conformance: each
//! object the agent applied carries every field `helm template` renders for the same values.
//! A chart from a HelmRepository (a real chart repository: `helm package` + `helm repo index`
//! served over HTTP) installs and follows new versions matching its range. Runs on the real
//! control plane with `FERRY_CLUSTER=real`.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e_support::{Env, NS, seed_spec, write_seed};
use ferry_proto::helmrelease::HelmRelease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

const CHART: &str = "apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: \"1.0\"\ndependencies:\n- name: lib\n  version: 0.1.0\n";
const VALUES: &str = "greeting: hello\nreplicas: 1\nimage: registry.example/app:1.0\n";
const LIB_CHART: &str = "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n";
const LIB_HELPERS: &str = "{{- define \"lib.labels\" -}}\napp.kubernetes.io/instance: {{ .Release.Name }}\nexample.com/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n{{- end -}}\n";
const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  labels:\n    {{- include \"lib.labels\" . | nindent 4 }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  upgrade: {{ .Release.IsUpgrade | quote }}\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels:\n    {{- include \"lib.labels\" . | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels:\n      app: {{ .Release.Name }}\n  template:\n    metadata:\n      labels:\n        app: {{ .Release.Name }}\n    spec:\n      containers:\n      - name: app\n        image: {{ .Values.image }}\n";
const HOOK: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-1\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: registry.example/migrate:1.0\n";
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names:\n    kind: Widget\n    plural: widgets\n    singular: widget\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n";
const WIDGET: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}-widget\nspec:\n  size: {{ .Values.replicas }}\n";

/// Our chart at `charts/app` of the upstream work tree.
fn write_chart(env: &Env) -> Result<()> {
    let up = &env.upstream;
    up.write("charts/app/Chart.yaml", CHART)?;
    up.write("charts/app/values.yaml", VALUES)?;
    up.write("charts/app/charts/lib/Chart.yaml", LIB_CHART)?;
    up.write("charts/app/charts/lib/templates/_helpers.tpl", LIB_HELPERS)?;
    up.write("charts/app/crds/widgets.yaml", CRD)?;
    up.write("charts/app/templates/configmap.yaml", CONFIGMAP)?;
    up.write("charts/app/templates/deployment.yaml", DEPLOYMENT)?;
    up.write("charts/app/templates/migrate-job.yaml", HOOK)?;
    up.write("charts/app/templates/widget.yaml", WIDGET)?;
    Ok(())
}

fn release_spec(chart: &str, values: Value) -> Value {
    json!({
        "chart": {"spec": {"chart": chart, "sourceRef": {"kind": "GitRepository", "name": "app"}}},
        "interval": "2s",
        "timeout": "45s",
        "values": values,
    })
}

async fn apply_release(env: &Env, name: &str, spec: Value) -> Result<()> {
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    let obj = json!({"apiVersion": "apply.ferry.dev/v1", "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": NS}, "spec": spec});
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

/// Waits for condition `type_` of HelmRelease `name` at its current generation to have
/// `status` and `reason`.
async fn wait_condition(
    env: &Env,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<HelmRelease> {
    wait_condition_within(env, name, type_, status, reason, LIMIT).await
}

/// [`wait_condition`] with a limit of its own.
async fn wait_condition_within(
    env: &Env,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    limit: Duration,
) -> Result<HelmRelease> {
    env.wait_for(
        &format!("HelmRelease {name} {type_}={status} {reason}"),
        limit,
        || async {
            let Some(hr) = release(env, name).await? else {
                return Ok(None);
            };
            let ok = hr.status.as_ref().is_some_and(|s| {
                s.observed_generation == hr.metadata.generation
                    && s.conditions.iter().any(|c| {
                        c.type_ == type_
                            && format!("{:?}", c.status) == status
                            && c.reason == reason
                    })
            });
            Ok(ok.then_some(hr))
        },
    )
    .await
}

/// Every field of `want` is in `got` with the same value (maps compared key by key, lists and
/// scalars exactly): what `helm template` rendered is what the cluster holds.
fn contains(got: &Value, want: &Value, path: &str) -> Result<()> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or(&Value::Null);
                contains(gv, wv, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                contains(gv, wv, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if got == want => Ok(()),
        _ => bail!("{path}: applied {got}, helm template renders {want}"),
    }
}

/// Renders `chart_dir` with the real `helm template` and checks that every non-hook object is
/// in the cluster with every rendered field; returns how many objects were compared.
async fn conformance(
    env: &Env,
    release: &str,
    chart_dir: &std::path::Path,
    values: &Value,
    is_upgrade: bool,
) -> Result<usize> {
    let helm = ferry_tests::tools::helm().context("helm installed")?;
    let dir = tempfile::tempdir()?;
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(values)?)?;
    let out = tokio::process::Command::new(helm)
        .args(["template", release])
        .arg(chart_dir)
        .args(["--namespace", NS, "--values"])
        .arg(&values_file)
        .args(is_upgrade.then_some("--is-upgrade"))
        .env("HOME", dir.path())
        .output()
        .await?;
    if !out.status.success() {
        bail!("helm template: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut n = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let want: Value = serde::Deserialize::deserialize(doc)?;
        if want.is_null()
            || want
                .pointer("/metadata/annotations/helm.sh~1hook")
                .is_some()
        {
            continue;
        }
        let (api, kind, name) = (
            want["apiVersion"].as_str().unwrap_or_default(),
            want["kind"].as_str().unwrap_or_default(),
            want["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let got = env
            .get(api, kind, name)
            .await?
            .with_context(|| format!("{kind}/{name} rendered by helm but not applied"))?;
        contains(&got, &want, &format!("{kind}/{name}"))?;
        n += 1;
    }
    Ok(n)
}

fn data(cm: &Option<Value>, key: &str) -> String {
    cm.as_ref()
        .and_then(|c| c.pointer(&format!("/data/{key}")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_from_git_installs_upgrades_corrects_drift_rolls_back_and_uninstalls() -> Result<()>
{
    let mut env = Env::new().await?;
    write_chart(&env)?;
    env.upstream.commit_push("chart app 0.1.0")?;
    env.start_source()?;
    env.start_agent()?;

    // Install: the CRD from crds/ first (the Widget needs it), the pre-install Job hook
    // completed, the release's objects applied with the inline values over values.yaml.
    apply_release(
        &env,
        "app",
        release_spec("./charts/app", json!({"greeting": "hi"})),
    )
    .await?;
    let hr = wait_condition(&env, "app", "Ready", "True", "InstallSucceeded").await?;
    let st = hr.status.clone().context("status")?;
    assert_eq!(st.history.len(), 1);
    assert_eq!(st.history[0].chart_version, "0.1.0");
    assert_eq!(st.history[0].status, "deployed");
    let cm = env.get("v1", "ConfigMap", "app-config").await?;
    assert_eq!(data(&cm, "greeting"), "hi");
    assert_eq!(
        data(&cm, "upgrade"),
        "false",
        ".Release.IsUpgrade on install"
    );
    let job = env
        .get("batch/v1", "Job", "app-migrate")
        .await?
        .context("hook Job")?;
    assert!(
        job.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Complete")),
        "the pre-install hook ran to completion: {job}"
    );
    assert!(
        env.get("example.com/v1", "Widget", "app-widget")
            .await?
            .is_some()
    );
    let inventory = serde_json::to_string(&st.inventory)?;
    assert!(
        !inventory.contains("app-migrate"),
        "hooks are not release objects: {inventory}"
    );
    let n = conformance(
        &env,
        "app",
        &env.upstream.work().join("charts/app"),
        &json!({"greeting": "hi"}),
        false,
    )
    .await?;
    assert_eq!(n, 3, "ConfigMap, Deployment, Widget");

    // A values change upgrades: release 2, the hook re-created (before-hook-creation).
    let job_uid = job["metadata"]["uid"].clone();
    apply_release(
        &env,
        "app",
        release_spec("./charts/app", json!({"greeting": "hey"})),
    )
    .await?;
    let hr = wait_condition(&env, "app", "Ready", "True", "UpgradeSucceeded").await?;
    let st = hr.status.clone().context("status")?;
    assert_eq!(st.history.len(), 2);
    assert_eq!(st.history[0].version, 2);
    assert_eq!(st.history[1].status, "superseded");
    assert_ne!(st.history[0].config_digest, st.history[1].config_digest);
    let cm = env.get("v1", "ConfigMap", "app-config").await?;
    assert_eq!(data(&cm, "greeting"), "hey");
    let job = env
        .get("batch/v1", "Job", "app-migrate")
        .await?
        .context("hook Job")?;
    assert_ne!(
        job["metadata"]["uid"], job_uid,
        "the hook ran again as a new Job"
    );
    assert_eq!(
        data(&cm, "upgrade"),
        "true",
        ".Release.IsUpgrade on upgrade"
    );
    let n = conformance(
        &env,
        "app",
        &env.upstream.work().join("charts/app"),
        &json!({"greeting": "hey"}),
        true,
    )
    .await?;
    assert_eq!(n, 3);

    // Drift is corrected (driftDetection enabled by default).
    env.drift_replicas("app", 4).await?;
    env.wait_for("replicas corrected to 1", LIMIT, || async {
        let d = env.get("apps/v1", "Deployment", "app").await?;
        Ok(d.filter(|d| d["spec"]["replicas"] == 1))
    })
    .await?;

    // warn: drift is reported on the Drifted condition and left alone.
    let mut spec = release_spec("./charts/app", json!({"greeting": "hey"}));
    spec["driftDetection"] = json!({"mode": "warn"});
    apply_release(&env, "app", spec).await?;
    wait_condition(&env, "app", "Ready", "True", "UpgradeSucceeded").await?;
    env.drift_replicas("app", 3).await?;
    let hr = wait_condition(&env, "app", "Drifted", "True", "DriftDetected").await?;
    let drifted = hr.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Drifted")
            .map(|c| c.message.clone())
    });
    assert!(
        drifted
            .as_deref()
            .is_some_and(|m| m.contains("Deployment/team-a/app") && m.contains(".spec.replicas")),
        "{drifted:?}"
    );
    let d = env
        .get("apps/v1", "Deployment", "app")
        .await?
        .context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 3, "warn mode leaves the drift");

    // A chart change by Git commit (new template, new version) then `git revert`: the
    // rollback prunes the object the reverted chart no longer renders.
    env.upstream.write(
        "charts/app/templates/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\ndata: {}\n",
    )?;
    env.upstream.write(
        "charts/app/Chart.yaml",
        CHART.replace("0.1.0\nappVersion", "0.2.0\nappVersion"),
    )?;
    env.upstream.commit_push("chart app 0.2.0")?;
    env.wait_for("ConfigMap app-extra", LIMIT, || async {
        env.get("v1", "ConfigMap", "app-extra").await
    })
    .await?;
    env.upstream.git(&["revert", "--no-edit", "HEAD"])?;
    env.upstream.push()?;
    env.wait_for("ConfigMap app-extra pruned", LIMIT, || async {
        Ok(env
            .get("v1", "ConfigMap", "app-extra")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    // The prune lands before the status write, and Ready=True UpgradeSucceeded was already
    // there from 0.2.0: wait for the release record of the revert itself.
    let hr = env
        .wait_for(
            "HelmRelease app upgraded to 0.1.0 by the revert",
            LIMIT,
            || async {
                let Some(hr) = release(&env, "app").await? else {
                    return Ok(None);
                };
                let reverted = hr.status.as_ref().is_some_and(|s| {
                    s.history
                        .first()
                        .is_some_and(|h| h.chart_version == "0.1.0")
                        && s.conditions.iter().any(|c| {
                            c.type_ == "Ready"
                                && format!("{:?}", c.status) == "True"
                                && c.reason == "UpgradeSucceeded"
                        })
                });
                Ok(reverted.then_some(hr))
            },
        )
        .await?;
    let st = hr.status.context("status")?;
    assert_eq!(
        st.history[1].chart_version, "0.2.0",
        "rolled back by Git revert"
    );

    // A template error: Ready=False with helm's message; nothing is touched.
    let before = env
        .get("v1", "ConfigMap", "app-config")
        .await?
        .context("cm")?;
    env.upstream.write(
        "charts/app/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  x: {{ .Values.missing.deeper }}\n",
    )?;
    env.upstream.commit_push("a broken template")?;
    let hr = wait_condition(&env, "app", "Ready", "False", "UpgradeFailed").await?;
    let ready = hr
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        ready.contains("helm template failed") && ready.contains("broken.yaml"),
        "{ready}"
    );
    let after = env
        .get("v1", "ConfigMap", "app-config")
        .await?
        .context("cm")?;
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "a failed render touches nothing"
    );
    assert!(env.get("v1", "ConfigMap", "broken").await?.is_none());

    // Removal uninstalls: the release's objects are pruned, then the HelmRelease goes.
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    api.delete("app", &Default::default()).await?;
    env.wait_for("HelmRelease app gone with its objects", LIMIT, || async {
        let gone = release(&env, "app").await?.is_none()
            && env.get("v1", "ConfigMap", "app-config").await?.is_none()
            && env.get("apps/v1", "Deployment", "app").await?.is_none();
        Ok(gone.then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_create_chart_waits_for_a_kustomization_and_is_waited_for() -> Result<()> {
    let mut env = Env::new().await?;
    let helm = ferry_tests::tools::helm().context("helm installed")?;
    let made = tokio::process::Command::new(helm)
        .args(["create", "demo"])
        .current_dir(env.upstream.work().join("."))
        .env("HOME", env.work.path())
        .output()
        .await?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::create_dir_all(env.upstream.work().join("charts"))?;
    std::fs::rename(
        env.upstream.work().join("demo"),
        env.upstream.work().join("charts/demo"),
    )?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("helm create demo, and app")?;
    env.start_source()?;
    env.start_agent()?;

    // The HelmRelease waits for Kustomization infra (failing at first: its path is missing).
    env.apply_kustomization("infra", seed_spec("./missing"))
        .await?;
    let mut spec = release_spec("./charts/demo", json!({"replicaCount": 2}));
    spec["dependsOn"] = json!([{"kind": "Kustomization", "name": "infra"}]);
    // A long interval: the release must still notice its dependency becoming ready soon (it
    // looks again after 30 s, as helm-controller's --requeue-dependency).
    spec["interval"] = json!("10m");
    apply_release(&env, "demo", spec).await?;
    // And a Kustomization waits for the HelmRelease.
    let mut after = seed_spec("./app");
    after["dependsOn"] = json!([{"kind": "HelmRelease", "name": "demo"}]);
    env.apply_kustomization("after", after).await?;
    wait_condition(&env, "demo", "Ready", "False", "DependencyNotReady").await?;
    env.wait_ready("after", "False", "DependencyNotReady", LIMIT)
        .await?;
    assert!(env.get("apps/v1", "Deployment", "demo").await?.is_none());

    env.apply_kustomization("infra", seed_spec("./app")).await?;
    // Up to REQUEUE_DEPENDENCY (30 s) pass before the release looks at its dependency again,
    // then it installs (the Deployment's two replicas must become available): LIMIT on top.
    let hr = wait_condition_within(
        &env,
        "demo",
        "Ready",
        "True",
        "InstallSucceeded",
        LIMIT + Duration::from_secs(30),
    )
    .await?;
    env.wait_ready("after", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    let d = env
        .get("apps/v1", "Deployment", "demo")
        .await?
        .context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        d["metadata"]["annotations"]["meta.helm.sh/release-name"], "demo",
        "helm's release annotations, as helm install writes them"
    );
    let st = hr.status.context("status")?;
    assert_eq!(st.history[0].chart_name, "demo");
    // Conformance: helm create's chart (ServiceAccount, Service, Deployment; the test Pod is
    // a hook and not applied without test.enable).
    let n = conformance(
        &env,
        "demo",
        &env.upstream.work().join("charts/demo"),
        &json!({"replicaCount": 2}),
        false,
    )
    .await?;
    assert_eq!(n, 3);
    assert!(
        env.get("v1", "Pod", "demo-test-connection")
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_from_a_helm_repository_installs_and_follows_its_version_range() -> Result<()> {
    use ferry_tests::upstream::ChartServer;
    use ferry_tests::upstream::charts::{create_and_package, index};
    let work = tempfile::tempdir()?;
    let repo = work.path().join("repo");
    create_and_package(work.path(), &repo, "app", "1.0.0")?;
    index(work.path(), &repo, None)?;
    let server = ChartServer::start(&repo, None).await?;
    let mut env = Env::new().await?;
    env.extra_sources.push(format!(
        "apiVersion: source.ferry.dev/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  \
         namespace: {NS}\nspec:\n  url: {}\n  interval: 1s\n  timeout: 30s\n",
        server.url()
    ));
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("seed")?;
    env.start_source()?;
    env.start_agent()?;

    let spec = json!({
        "chart": {"spec": {"chart": "app", "version": "^1.0.0",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
        "interval": "1m",
        "timeout": "45s",
        "values": {"replicaCount": 2},
    });
    apply_release(&env, "web", spec).await?;
    let hr = wait_condition(&env, "web", "Ready", "True", "InstallSucceeded").await?;
    let st = hr.status.context("status")?;
    assert_eq!(st.history[0].chart_version, "1.0.0");
    let revision = st.last_attempted_revision.unwrap_or_default();
    assert!(revision.starts_with("1.0.0@sha256:"), "{revision}");
    let d = env
        .get("apps/v1", "Deployment", "web-app")
        .await?
        .context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 2);
    let chart = work.path().join("app-1.0.0/app");
    let n = conformance(&env, "web", &chart, &json!({"replicaCount": 2}), false).await?;
    assert_eq!(n, 3, "ServiceAccount, Service, Deployment");

    // New versions: 1.1.0 matches ^1.0.0, 2.0.0 does not. The source server announces the new
    // resolution; the agent upgrades without a change to the HelmRelease (interval 1m).
    create_and_package(work.path(), &repo, "app", "1.1.0")?;
    create_and_package(work.path(), &repo, "app", "2.0.0")?;
    index(work.path(), &repo, None)?;
    let hr = env
        .wait_for("web upgraded to chart 1.1.0", LIMIT, || async {
            let hr = release(&env, "web").await?;
            Ok(hr.filter(|h| {
                h.status.as_ref().is_some_and(|s| {
                    s.history
                        .first()
                        .is_some_and(|r| r.chart_version == "1.1.0")
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.reason == "UpgradeSucceeded")
                })
            }))
        })
        .await?;
    assert_eq!(hr.status.context("status")?.history.len(), 2);
    Ok(())
}

const RAND_CHART: &str = "apiVersion: v2\nname: rand\nversion: 0.1.0\n";
const RAND_TOKEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-token\ndata:\n  token: {{ randAlphaNum 16 | quote }}\n";
const RAND_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {{ .Release.Name }}\n  template:\n    metadata:\n      labels:\n        app: {{ .Release.Name }}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n";
const RAND_TEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\n    helm.sh/hook-delete-policy: hook-succeeded\nspec:\n  restartPolicy: Never\n  containers:\n  - name: test\n    image: busybox\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_installed_release_is_adopted_and_random_values_do_not_upgrade_every_interval()
-> Result<()> {
    let mut env = Env::new().await?;
    let up = &env.upstream;
    up.write("charts/rand/Chart.yaml", RAND_CHART)?;
    up.write("charts/rand/templates/token.yaml", RAND_TOKEN)?;
    up.write("charts/rand/templates/deployment.yaml", RAND_DEPLOYMENT)?;
    up.write("charts/rand/templates/tests/test.yaml", RAND_TEST)?;
    up.commit_push("chart rand")?;

    // First installed by helm itself.
    let helm = ferry_tests::tools::Client::helm(env.cluster.kubeconfig_path())
        .context("helm installed")?;
    let chart = env.upstream.work().join("charts/rand");
    helm.ok(&[
        "install",
        "rand",
        &chart.display().to_string(),
        "--namespace",
        NS,
    ])
    .await;
    let cm = env
        .get("v1", "ConfigMap", "rand-token")
        .await?
        .context("helm's ConfigMap")?;
    let managers = |o: &Value| -> Vec<String> {
        o["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        managers(&cm).contains(&"helm".to_string()),
        "{:?}",
        managers(&cm)
    );

    env.start_source()?;
    env.start_agent()?;
    let mut spec = release_spec("./charts/rand", json!({}));
    spec["test"] = json!({"enable": true});
    spec["postRenderers"] =
        json!([{"kustomize": {"images": [{"name": "nginx", "newTag": "1.27"}]}}]);
    apply_release(&env, "rand", spec).await?;
    let hr = wait_condition(&env, "rand", "Ready", "True", "InstallSucceeded").await?;

    // Adopted: helm's field manager entries became Ferry's.
    let cm = env
        .get("v1", "ConfigMap", "rand-token")
        .await?
        .context("cm")?;
    let m = managers(&cm);
    assert!(
        m.contains(&"ferry".to_string()) && !m.contains(&"helm".to_string()),
        "{m:?}"
    );
    // The post-renderer's image, and the test hook ran and was deleted (hook-succeeded).
    let d = env
        .get("apps/v1", "Deployment", "rand")
        .await?
        .context("deployment")?;
    assert_eq!(e2e_support::image(&d), "nginx:1.27");
    let events = env.events("rand").await?;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Pod/team-a/rand-test hook succeeded")),
        "{events:?}"
    );
    assert!(env.get("v1", "Pod", "rand-test").await?.is_none());

    // randAlphaNum: nothing is rendered again while the inputs stay the same, so the token and
    // the release stay as they are over several reconciles.
    let token = cm["data"]["token"].clone();
    let version = cm["metadata"]["resourceVersion"].clone();
    let series = [("kustomization", "HelmRelease/rand"), ("result", "success")];
    let before = env
        .agent_metric("ferry_applier_reconciles_total", &series)
        .await?;
    env.wait_agent_metric(
        "ferry_applier_reconciles_total",
        &series,
        before + 3.0,
        LIMIT,
    )
    .await?;
    let cm = env
        .get("v1", "ConfigMap", "rand-token")
        .await?
        .context("cm")?;
    assert_eq!(cm["data"]["token"], token);
    assert_eq!(cm["metadata"]["resourceVersion"], version);
    let now = release(&env, "rand").await?.context("hr")?;
    assert_eq!(
        now.status.as_ref().map(|s| s.history.len()),
        hr.status.as_ref().map(|s| s.history.len()),
        "no upgrade without a changed input"
    );
    Ok(())
}
