//! Agents report to the source server, and alerts go out: the agent index behind
//! `GET /v1/agents`, and Providers/Alerts delivering the events of the server and the agents to
//! real HTTP receivers started by the test.

mod e2e_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use e2e_support::{Env, NS, deployment_yaml, seed_spec};
use ferry_proto::ConditionStatus;
use ferry_proto::api::{AgentList, AgentView, Event, ObjectSummary, Severity};
use hmac::{Hmac, KeyInit, Mac};

const LIMIT: Duration = Duration::from_secs(30);
/// Retries back off from 1 s doubling; a recovery is seen within a few of them.
const RETRY_LIMIT: Duration = Duration::from_secs(120);

/// How the test receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// Answered 200.
    ok: bool,
}

impl Hit {
    fn event(&self) -> Event {
        serde_json::from_slice(&self.body).expect("the generic providers post Flux's event")
    }
}

/// A real HTTP server on a loopback port recording what it gets.
#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
    url: String,
}

impl Receiver {
    async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let r = Self {
            hits: Default::default(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            url: format!("http://{}", listener.local_addr()?),
        };
        let app = axum::Router::new().fallback(receive).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(r)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    /// Requests on `path`, in arrival order.
    fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.hits.lock().expect("lock");
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mode = *r.mode.lock().expect("lock");
    r.hits.lock().expect("lock").push(Hit {
        path: uri.path().to_string(),
        headers,
        body,
        ok: mode == Mode::Ok,
    });
    match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => std::future::pending().await,
    }
}

/// A Provider document.
fn provider(name: &str, type_: &str, address: &str, extra: &str) -> String {
    format!(
        "apiVersion: notification.ferry.dev/v1\nkind: Provider\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  type: {type_}\n  address: {address}\n{extra}"
    )
}

/// An Alert document; `spec` is the YAML after `providerRef`, indented two spaces.
fn alert(name: &str, provider: &str, spec: &str) -> String {
    format!(
        "apiVersion: notification.ferry.dev/v1\nkind: Alert\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  providerRef: {{name: {provider}}}\n{spec}"
    )
}

/// Waits until `path` got at least `n` requests; returns them.
async fn wait_hits(
    env: &Env,
    r: &Receiver,
    path: &str,
    n: usize,
    limit: Duration,
) -> Result<Vec<Hit>> {
    env.wait_for(&format!("{n} alert(s) on {path}"), limit, || async {
        let hits = r.hits(path);
        Ok((hits.len() >= n).then_some(hits))
    })
    .await
}

/// `GET /v1/agents/{NS}`, `None` until the agent reported.
async fn agent_view(env: &Env) -> Result<Option<AgentView>> {
    let resp = reqwest::get(format!("{}/v1/agents/{NS}", env.source_url())).await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    Ok(Some(resp.error_for_status()?.json().await?))
}

/// Waits until the index shows an object `kind/name` for which `check` holds.
async fn wait_summary(
    env: &Env,
    what: &str,
    kind: &str,
    name: &str,
    check: impl Fn(&ObjectSummary) -> bool,
) -> Result<ObjectSummary> {
    env.wait_for(what, LIMIT, || async {
        Ok(agent_view(env).await?.and_then(|v| {
            v.objects
                .into_iter()
                .find(|o| o.kind == kind && o.name == name && check(o))
        }))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_report_every_object_of_their_namespace() -> Result<()> {
    let mut env = Env::new().await?;
    let first = env.seeded(seed_spec("./app")).await?;
    let applied = format!("main@sha1:{first}");
    let ok = wait_summary(
        &env,
        "app Ready in the index",
        "Kustomization",
        "app",
        |o| o.ready == ConditionStatus::True,
    )
    .await?;
    assert_eq!(ok.last_applied_revision.as_deref(), Some(applied.as_str()));
    assert_eq!(ok.reason, "ReconciliationSucceeded");
    let inventory: Vec<String> = ok
        .inventory
        .objects(NS)
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        inventory
            .iter()
            .any(|i| i.contains("Deployment") && i.contains("my-app")),
        "the inventory is reported: {inventory:?}"
    );

    // A failure shows with its message; the applied revision stays.
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v2.0.0") + "  broken: [unclosed\n",
    )?;
    let bad = env.upstream.commit_push("broken yaml")?;
    let failed = wait_summary(
        &env,
        "app failing in the index",
        "Kustomization",
        "app",
        |o| o.ready == ConditionStatus::False && o.reason == "BuildFailed",
    )
    .await?;
    assert!(
        failed.message.contains("deployment.yaml"),
        "{}",
        failed.message
    );
    assert_eq!(
        failed.last_applied_revision.as_deref(),
        Some(applied.as_str())
    );
    assert_eq!(
        failed.last_attempted_revision,
        Some(format!("main@sha1:{bad}"))
    );

    // The list has the namespace; a second Kustomization appears, a deleted one goes.
    let list: AgentList = reqwest::get(format!("{}/v1/agents", env.source_url()))
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(list.agents.iter().any(|a| a.namespace == NS), "{list:?}");
    // (A path the artifact lacks: it fails, and is reported all the same.)
    env.apply_kustomization("other", seed_spec("./missing"))
        .await?;
    wait_summary(&env, "other in the index", "Kustomization", "other", |_| {
        true
    })
    .await?;
    env.delete_kustomization("other").await?;
    env.wait_for("other gone from the index", LIMIT, || async {
        Ok(agent_view(&env)
            .await?
            .filter(|v| !v.objects.iter().any(|o| o.name == "other"))
            .map(|_| ()))
    })
    .await?;
    let view = agent_view(&env).await?.context("reported")?;
    assert_eq!(view.namespace, NS);
    Ok(())
}

/// The index is in memory: a restarted server has it again from the agent's periodic full
/// report (at least every minute), without any object changing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_learns_the_namespace_again() -> Result<()> {
    let mut env = Env::new().await?;
    let first = env.seeded(seed_spec("./app")).await?;
    wait_summary(&env, "app in the index", "Kustomization", "app", |_| true).await?;
    env.stop_source();
    env.start_source()?;
    env.wait_for("the restarted server to answer", LIMIT, || async {
        Ok(reqwest::get(format!("{}/healthz", env.source_url()))
            .await
            .ok()
            .map(|_| ()))
    })
    .await?;
    let again = env
        .wait_for("app back in the index", Duration::from_secs(90), || async {
            Ok(agent_view(&env)
                .await?
                .and_then(|v| v.objects.into_iter().find(|o| o.name == "app")))
        })
        .await?;
    assert_eq!(again.ready, ConditionStatus::True);
    assert_eq!(
        again.last_applied_revision,
        Some(format!("main@sha1:{first}"))
    );
    Ok(())
}

/// A failing Kustomization alerts once, as an error with its message and revision, signed
/// with the Provider's token; the repeats of the same failure within the window are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_alerts_once_signed_with_its_message() -> Result<()> {
    let r = Receiver::start().await?;
    let mut env = Env::new().await?;
    env.extra_sources.push(format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hmac, namespace: {NS}}}\nstringData:\n  token: test-key\n"
    ));
    env.extra_sources.push(provider(
        "signed",
        "generic-hmac",
        &format!("{}/signed", r.url),
        "  secretRef: {name: hmac}\n",
    ));
    env.extra_sources.push(alert(
        "errors",
        "signed",
        "  eventSeverity: error\n  eventSources:\n  - {kind: Kustomization, name: '*'}\n",
    ));
    env.seeded(seed_spec("./app")).await?;
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v2.0.0") + "  broken: [unclosed\n",
    )?;
    let bad = env.upstream.commit_push("broken yaml")?;
    let hit = env
        .wait_for("the BuildFailed alert", LIMIT, || async {
            Ok(r.hits("/signed")
                .into_iter()
                .find(|h| h.event().reason == "BuildFailed"))
        })
        .await?;
    // Events arrive in order, so an info event passing the filter would be here already (an
    // agent that started before the first artifact may have alerted ArtifactFailed too).
    let all: Vec<Event> = r.hits("/signed").iter().map(Hit::event).collect();
    assert!(
        all.iter().all(|e| e.severity == Severity::Error),
        "only errors: {all:#?}"
    );
    let ev = hit.event();
    assert_eq!(ev.severity, Severity::Error);
    assert_eq!(ev.reason, "BuildFailed");
    assert_eq!(ev.involved_object.kind, "Kustomization");
    assert_eq!(ev.involved_object.name, "app");
    assert!(ev.message.contains("deployment.yaml"), "{}", ev.message);
    assert_eq!(
        ev.metadata.get("revision"),
        Some(&format!("main@sha1:{bad}"))
    );
    assert_eq!(ev.reporting_controller, "ferry-applier");
    assert_eq!(hit.headers["gotk-component"], "ferry-applier");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"test-key")?;
    mac.update(&hit.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.headers["x-signature"], expected.as_str());

    // The failure repeats every second; the server drops the repeats as duplicates. Counted
    // from here: repeats of an ArtifactFailed from before the seed's artifact existed are
    // duplicates too, and would satisfy an absolute threshold at once.
    let duplicates = || async {
        env.source_metric(
            "ferry_source_notification_events_total",
            &[("result", "duplicate")],
        )
        .await
    };
    let before = duplicates().await?;
    env.wait_for("3 more duplicate events dropped", LIMIT, || async {
        Ok((duplicates().await? >= before + 3.0).then_some(()))
    })
    .await?;
    let all: Vec<Event> = r.hits("/signed").iter().map(Hit::event).collect();
    let build_failed = all.iter().filter(|e| e.reason == "BuildFailed").count();
    assert_eq!(
        build_failed, 1,
        "one alert for the repeated failure: {all:#?}"
    );
    assert_eq!(
        env.source_metric("ferry_source_alerts_total", &[("result", "sent")])
            .await?,
        all.len() as f64
    );
    Ok(())
}

/// `eventSeverity`, `inclusionList` and `exclusionList` (which wins) select what each Provider
/// gets; Slack gets its message shape; the server's own events (a new artifact) reach Alerts on
/// GitRepositories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severity_inclusion_and_exclusion_select_alerts() -> Result<()> {
    let r = Receiver::start().await?;
    let mut env = Env::new().await?;
    for (name, spec) in [
        (
            "configured",
            "  eventSources:\n  - {kind: Kustomization, name: app}\n  inclusionList: ['configured']\n",
        ),
        (
            "deployments",
            "  eventSources:\n  - {kind: Kustomization, name: app}\n  inclusionList: ['Deployment/']\n  exclusionList: ['created']\n",
        ),
        (
            "errors",
            "  eventSeverity: error\n  eventSources:\n  - {kind: Kustomization, name: '*'}\n",
        ),
        (
            "slack",
            "  eventSeverity: error\n  eventSources:\n  - {kind: Kustomization, name: app}\n",
        ),
        (
            "sources",
            "  eventSources:\n  - {kind: GitRepository, name: app}\n  eventMetadata: {cluster: test}\n",
        ),
    ] {
        let type_ = if name == "slack" { "slack" } else { "generic" };
        env.extra_sources.push(provider(
            name,
            type_,
            &format!("{}/{name}", r.url),
            "  channel: ops\n",
        ));
        env.extra_sources.push(alert(name, name, spec));
    }
    env.seeded(seed_spec("./app")).await?; // created
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v2.0.0"))?;
    env.upstream.commit_push("v2")?; // configured
    env.wait_image("my-registry/my-app:v2.0.0", LIMIT).await?;
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v3.0.0") + "  broken: [unclosed\n",
    )?;
    env.upstream.commit_push("broken")?; // error
    env.wait_for("the BuildFailed alert", LIMIT, || async {
        Ok(r.hits("/errors")
            .iter()
            .any(|h| h.event().reason == "BuildFailed")
            .then_some(()))
    })
    .await?;
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v4.0.0"))?;
    let last = env.upstream.commit_push("v4")?; // configured
    env.wait_image("my-registry/my-app:v4.0.0", LIMIT).await?;

    // Each queue is in order: once the last change arrived, everything before it has.
    for path in ["/configured", "/deployments"] {
        let hits = wait_hits(&env, &r, path, 2, LIMIT).await?;
        let events: Vec<Event> = hits.iter().map(Hit::event).collect();
        assert_eq!(events.len(), 2, "{path}: v2 and v4 only: {events:#?}");
        for ev in &events {
            assert_eq!(ev.severity, Severity::Info, "{path}");
            assert!(
                ev.message.contains("Deployment/team-a/my-app configured"),
                "{path}: {}",
                ev.message
            );
        }
        assert_eq!(
            events[1].metadata.get("revision"),
            Some(&format!("main@sha1:{last}"))
        );
    }
    let errors: Vec<Event> = r.hits("/errors").iter().map(Hit::event).collect();
    assert!(
        errors.iter().all(|e| e.severity == Severity::Error),
        "{errors:#?}"
    );
    // Slack gets Flux's message: one attachment, coloured by severity.
    let slack = wait_hits(&env, &r, "/slack", 1, LIMIT).await?;
    let msg: serde_json::Value = serde_json::from_slice(&slack[0].body)?;
    assert_eq!(msg["channel"], "ops");
    assert_eq!(msg["username"], "ferry-applier");
    let attachment = &msg["attachments"][0];
    assert_eq!(attachment["color"], "danger", "{msg}");
    assert_eq!(
        attachment["author_name"], "kustomization/app.team-a",
        "{msg}"
    );
    // The source server's own event: the v4 artifact.
    let sources = env
        .wait_for("the v4 artifact alert", LIMIT, || async {
            Ok(r.hits("/sources")
                .iter()
                .map(Hit::event)
                .find(|e| e.metadata.get("revision") == Some(&format!("main@sha1:{last}"))))
        })
        .await?;
    assert_eq!(sources.reason, "NewArtifact");
    assert_eq!(sources.involved_object.kind, "GitRepository");
    assert_eq!(sources.reporting_controller, "ferry-source-server");
    assert_eq!(
        sources.metadata.get("cluster").map(String::as_str),
        Some("test")
    );
    Ok(())
}

/// A Provider whose receiver hangs, then fails, delays neither reconciles nor another
/// Provider, and gets its alerts once it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_receiver_delays_nothing_and_is_retried() -> Result<()> {
    let stuck = Receiver::start().await?;
    stuck.set(Mode::Hang);
    let healthy = Receiver::start().await?;
    let mut env = Env::new().await?;
    let every_change = "  eventSources:\n  - {kind: Kustomization, name: app}\n";
    env.extra_sources.push(provider(
        "stuck",
        "generic",
        &format!("{}/stuck", stuck.url),
        "  timeout: 1s\n",
    ));
    env.extra_sources
        .push(alert("stuck", "stuck", every_change));
    env.extra_sources.push(provider(
        "healthy",
        "generic",
        &format!("{}/healthy", healthy.url),
        "",
    ));
    env.extra_sources
        .push(alert("healthy", "healthy", every_change));
    env.seeded(seed_spec("./app")).await?;
    wait_hits(&env, &stuck, "/stuck", 1, LIMIT).await?;

    // While the receiver hangs: a new revision is applied, and the other Provider delivers it.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v2.0.0"))?;
    let v2 = env.upstream.commit_push("v2")?;
    env.wait_image("my-registry/my-app:v2.0.0", LIMIT).await?;
    let v2_rev = format!("main@sha1:{v2}");
    env.wait_for("v2 on the healthy receiver", LIMIT, || async {
        Ok(healthy
            .hits("/healthy")
            .iter()
            .any(|h| h.event().metadata.get("revision") == Some(&v2_rev))
            .then_some(()))
    })
    .await?;
    assert!(
        stuck.hits("/stuck").iter().all(|h| !h.ok),
        "nothing answered yet"
    );

    // Failing with 500: retried, and still nothing waits for it.
    stuck.set(Mode::Fail);
    let retried = env
        .source_metric(
            "ferry_source_alerts_total",
            &[("provider", "team-a/stuck"), ("result", "retried")],
        )
        .await?;
    env.wait_for("a retry answered 500", RETRY_LIMIT, || async {
        let now = env
            .source_metric(
                "ferry_source_alerts_total",
                &[("provider", "team-a/stuck"), ("result", "retried")],
            )
            .await?;
        Ok((now > retried && stuck.hits("/stuck").len() >= 2).then_some(()))
    })
    .await?;
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v3.0.0"))?;
    env.upstream.commit_push("v3")?;
    env.wait_image("my-registry/my-app:v3.0.0", LIMIT).await?;

    // Recovered: the queue drains, in order, the seed's changes first.
    stuck.set(Mode::Ok);
    let delivered = env
        .wait_for("alerts delivered after recovery", RETRY_LIMIT, || async {
            let ok: Vec<Event> = stuck
                .hits("/stuck")
                .iter()
                .filter(|h| h.ok)
                .map(Hit::event)
                .filter(|e| e.reason == "Progressing")
                .collect();
            Ok((ok.len() >= 3).then_some(ok))
        })
        .await?;
    assert!(
        delivered[0].message.contains("created"),
        "the first alert first: {delivered:#?}"
    );
    assert_eq!(delivered[1].metadata.get("revision"), Some(&v2_rev));
    // The receiver records a request before it answers; the server counts it as sent once the
    // answer is in: wait for the count.
    env.wait_for("3 alerts counted as sent to stuck", LIMIT, || async {
        let sent = env
            .source_metric(
                "ferry_source_alerts_total",
                &[("provider", "team-a/stuck"), ("result", "sent")],
            )
            .await?;
        Ok((sent >= 3.0).then_some(()))
    })
    .await?;
    Ok(())
}
