//! `ferry-source-server serve --cluster` follows Buckets, Receivers, Providers and Alerts as
//! objects in the cluster (the real kube-apiserver with `FERRY_CLUSTER=real`), with tenancy on:
//! a Bucket (moto) gets Ready and its revision written; a Receiver gets Flux's webhook path in
//! its status and a call on it fetches its sources (a GitRepository picked by labels and the
//! Bucket); an Alert with `matchLabels` delivers the source events of labelled sources through
//! its Provider to an HTTP receiver of the test; a Receiver naming another namespace is
//! refused; another namespace's Alert gets the events of a source shared with it and not of
//! the others; a tenant lists only its own namespace's receivers.

mod e2e_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use e2e_support::sources::*;
use e2e_support::{Env, NS};
use ferry_proto::api::{Event, HookOutcome, HookReply, ReceiverList};
use ferry_proto::receiver::webhook_path;
use ferry_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use ferry_tests::tools::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);
const AUDIENCE: &str = "ferry-source-server";
const TOKEN: &str = "hook-s3cret";

/// Objects of kind `K` in namespace `ns`.
fn api<K: kube::Resource<DynamicType = ()>>(env: &Env, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(env.client.clone(), ns, &ApiResource::erase::<K>(&()))
}

async fn create(api: &Api<DynamicObject>, object: Value) -> Result<()> {
    let name = object["metadata"]["name"].clone();
    api.create(&PostParams::default(), &serde_json::from_value(object)?)
        .await
        .with_context(|| format!("creating {name}"))?;
    Ok(())
}

async fn status(api: &Api<DynamicObject>, name: &str) -> Result<Value> {
    let o = api.get(name).await?;
    Ok(o.data.get("status").cloned().unwrap_or(Value::Null))
}

/// `data` as given as base64 (the API test server does not turn `stringData` into it).
fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            let v = base64::engine::general_purpose::STANDARD.encode(v);
            (k.to_string(), Value::String(v))
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": ns}, "data": data})
}

fn receiver(ns: &str, name: &str, resources: Value) -> Value {
    json!({"apiVersion": "notification.ferry.dev/v1", "kind": "Receiver",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"type": "generic", "secretRef": {"name": "hook-token"}, "resources": resources}})
}

/// Events the test's HTTP receiver got, with their path, in arrival order.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, Event)>>>);

impl Inbox {
    /// Starts listening; returns the base URL.
    async fn start(&self) -> Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(
                |State(i): State<Inbox>, uri: axum::http::Uri, body: Bytes| async move {
                    if let Ok(e) = serde_json::from_slice::<Event>(&body) {
                        i.0.lock().expect("lock").push((uri.path().to_string(), e));
                    }
                },
            )
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    /// The events posted to `path`.
    fn events(&self, path: &str) -> Vec<Event> {
        let all = self.0.lock().expect("lock");
        all.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_receivers_and_alerts_follow_the_cluster() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("manifests")?;
    s3.put_object("manifests", "app/cm.yaml", b"kind: ConfigMap\n")?;
    let endpoint = s3.endpoint().trim_start_matches("http://").to_string();
    let inbox = Inbox::default();
    let alert_url = inbox.start().await?;

    let env = Env::with_rbac().await?;
    install_source_crds(&env).await?;
    let admin = Client::kubectl(env.cluster.kubeconfig_path())?;
    let other = "team-b";
    admin.ok(&["create", "namespace", other]).await;
    for ns in [NS, other] {
        admin
            .ok(&["-n", ns, "create", "serviceaccount", "ferry-agent"])
            .await;
    }
    env.upstream.write("deploy/cm.yaml", "kind: ConfigMap\n")?;
    env.upstream.commit_push("first")?;
    let first = env.upstream.head()?;

    let secrets = |ns| api::<k8s_openapi::api::core::v1::Secret>(&env, ns);
    let git = git_api(&env, NS);
    let buckets = api::<ferry_proto::Bucket>(&env, NS);
    let receivers = api::<ferry_proto::Receiver>(&env, NS);
    let mut app = git_repository(&env, NS, "app", json!({}), json!({}))?;
    app.metadata.labels = Some([("tier".to_string(), "web".to_string())].into());
    git.create(&PostParams::default(), &app).await?;
    // Unlabelled: neither the Receiver's `*` nor the Alert's matchLabels pick it; shared
    // with the other namespace, whose Alert sees its events (and not app's).
    git.create(
        &PostParams::default(),
        &git_repository(
            &env,
            NS,
            "base",
            json!({}),
            json!({"source.ferry.dev/shared-with": other}),
        )?,
    )
    .await?;
    create(
        &secrets(NS),
        secret(
            NS,
            "s3",
            &[("accesskey", ACCESS_KEY), ("secretkey", SECRET_KEY)],
        ),
    )
    .await?;
    create(
        &buckets,
        json!({"apiVersion": "source.ferry.dev/v1", "kind": "Bucket",
               "metadata": {"name": "manifests", "namespace": NS},
               "spec": {"bucketName": "manifests", "endpoint": endpoint, "insecure": true,
                        "interval": "1h", "secretRef": {"name": "s3"}}}),
    )
    .await?;
    for ns in [NS, other] {
        create(&secrets(ns), secret(ns, "hook-token", &[("token", TOKEN)])).await?;
    }
    create(
        &receivers,
        receiver(
            NS,
            "push",
            json!([{"kind": "GitRepository", "name": "*", "matchLabels": {"tier": "web"}},
                   {"kind": "Bucket", "name": "manifests"}]),
        ),
    )
    .await?;
    // Tenancy: a Receiver may not fetch another namespace's sources.
    create(
        &receivers,
        receiver(
            NS,
            "cross",
            json!([{"kind": "GitRepository", "name": "x", "namespace": other}]),
        ),
    )
    .await?;
    create(
        &api::<ferry_proto::Receiver>(&env, other),
        receiver(
            other,
            "b-hook",
            json!([{"kind": "GitRepository", "name": "b"}]),
        ),
    )
    .await?;
    let alerting = |ns: &str, selector: Value| {
        let env = &env;
        let (ns, url) = (ns.to_string(), format!("{alert_url}/{ns}"));
        async move {
            create(
                &api::<ferry_proto::Provider>(env, &ns),
                json!({"apiVersion": "notification.ferry.dev/v1", "kind": "Provider",
                       "metadata": {"name": "inbox", "namespace": ns},
                       "spec": {"type": "generic", "address": url}}),
            )
            .await?;
            create(
                &api::<ferry_proto::Alert>(env, &ns),
                json!({"apiVersion": "notification.ferry.dev/v1", "kind": "Alert",
                       "metadata": {"name": "sources", "namespace": ns},
                       "spec": {"providerRef": {"name": "inbox"}, "eventSources": [selector]}}),
            )
            .await
        }
    };
    alerting(
        NS,
        json!({"kind": "GitRepository", "name": "*", "matchLabels": {"tier": "web"}}),
    )
    .await?;
    // Every GitRepository of NS: only the shared one reaches the other tenant.
    alerting(
        other,
        json!({"kind": "GitRepository", "name": "*", "namespace": NS}),
    )
    .await?;
    let (inbox_a, inbox_b) = (format!("/{NS}"), format!("/{other}"));

    let server = start_cluster_server(&env, &[])?;
    let base = env.source_url();

    // The Bucket: Ready, Flux's revision, written back.
    let bucket_revision = |s: &Value| s["artifact"]["revision"].as_str().map(String::from);
    let st = env
        .wait_for("Bucket manifests Ready", LIMIT, || async {
            let s = status(&buckets, "manifests").await?;
            Ok((ready(&s).is_some_and(|(r, _)| r == "True")).then_some(s))
        })
        .await
        .with_context(|| server.log_text())?;
    let rev1 = bucket_revision(&st).context("a revision")?;
    assert!(rev1.starts_with("sha256:"), "{st}");
    assert_eq!(
        st["observedGeneration"].as_i64(),
        buckets.get("manifests").await?.metadata.generation
    );

    // The Receiver: Flux's webhook path in its status; the cross-namespace one refused.
    let path = webhook_path(TOKEN.as_bytes(), "push", NS);
    let st = env
        .wait_for("Receiver push Ready with its path", LIMIT, || async {
            let s = status(&receivers, "push").await?;
            Ok((ready(&s).is_some_and(|(r, _)| r == "True")).then_some(s))
        })
        .await
        .with_context(|| server.log_text())?;
    assert_eq!(st["webhookPath"], path.as_str(), "{st}");
    let (r, message) = env
        .wait_for("Receiver cross refused", LIMIT, || async {
            Ok(ready(&status(&receivers, "cross").await?).filter(|(r, _)| r == "False"))
        })
        .await?;
    assert!(
        message.contains("spec.resources[0].namespace") && message.contains("own namespace"),
        "{r}: {message}"
    );

    // The Alert delivers app's artifact event (its labels match), never base's.
    let first_rev = format!("main@sha1:{first}");
    env.wait_for("app and base Ready", LIMIT, || async {
        let s = git_status(&env, NS, "app").await?;
        let o = git_status(&env, NS, "base").await?;
        Ok((s["artifact"]["revision"] == first_rev.as_str()
            && ready(&o).is_some_and(|(r, _)| r == "True"))
        .then_some(()))
    })
    .await?;
    let is_app = |e: &Event, rev: &str| {
        e.involved_object.name == "app"
            && e.reason == "NewArtifact"
            && e.metadata.get("revision").map(String::as_str) == Some(rev)
    };
    env.wait_for("the alert for app's first artifact", LIMIT, || async {
        Ok(inbox
            .events(&inbox_a)
            .iter()
            .any(|e| is_app(e, &first_rev))
            .then_some(()))
    })
    .await
    .with_context(|| server.log_text())?;

    // A hook call fetches the labelled GitRepository and the Bucket now (intervals are 1h).
    env.upstream
        .write("deploy/cm.yaml", "kind: ConfigMap\n# two\n")?;
    env.upstream.commit_push("second")?;
    let second = format!("main@sha1:{}", env.upstream.head()?);
    s3.put_object("manifests", "app/cm.yaml", b"kind: ConfigMap\n# two\n")?;
    let http = reqwest::Client::new();
    let resp = http.post(format!("{base}{path}")).send().await?;
    assert_eq!(resp.status(), 200);
    let reply: HookReply = resp.json().await?;
    assert_eq!(reply.outcome, HookOutcome::Accepted, "{reply:?}");
    assert_eq!(
        reply.triggered,
        [
            format!("GitRepository/{NS}/app"),
            format!("Bucket/{NS}/manifests")
        ],
        "{reply:?}"
    );
    env.wait_for(
        "app and the Bucket at their new revisions",
        LIMIT,
        || async {
            let g = git_status(&env, NS, "app").await?;
            let b = status(&buckets, "manifests").await?;
            Ok((g["artifact"]["revision"] == second.as_str()
                && bucket_revision(&b).is_some_and(|r| r != rev1))
            .then_some(()))
        },
    )
    .await
    .with_context(|| server.log_text())?;
    env.wait_for("the alert for app's second artifact", LIMIT, || async {
        Ok(inbox
            .events(&inbox_a)
            .iter()
            .any(|e| is_app(e, &second))
            .then_some(()))
    })
    .await?;
    // One Provider queue delivers in order: base's artifact event (stored before app's
    // second) would have arrived before it.
    let names = |path: &str| -> Vec<String> {
        inbox
            .events(path)
            .iter()
            .map(|e| format!("{}/{}", e.involved_object.kind, e.involved_object.name))
            .collect()
    };
    let a = names(&inbox_a);
    assert!(
        a.iter().all(|n| n == "GitRepository/app"),
        "only the labelled source alerts: {a:?}"
    );

    // The other namespace's Alert: base (shared with it) fetched now, its event arrives —
    // after any of app's, which are older.
    git.patch(
        "base",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "reconcile.fluxcd.io/requestedAt": "2026-12-05T12:00:00Z"}}})),
    )
    .await?;
    env.wait_for(
        "the shared source's alert in the other namespace",
        LIMIT,
        || async {
            Ok(inbox
                .events(&inbox_b)
                .iter()
                .any(|e| {
                    e.involved_object.name == "base"
                        && e.metadata.get("revision").map(String::as_str) == Some(&second)
                })
                .then_some(()))
        },
    )
    .await
    .with_context(|| server.log_text())?;
    let b = names(&inbox_b);
    assert!(
        b.iter().all(|n| n == "GitRepository/base"),
        "only the shared source alerts the other tenant: {b:?}"
    );

    // Tenants list their own namespace's receivers only.
    let token = |ns: &'static str| {
        let admin = &admin;
        async move {
            let args = [
                "-n",
                ns,
                "create",
                "token",
                "ferry-agent",
                "--audience",
                AUDIENCE,
            ];
            admin.ok(&args).await.trim().to_string()
        }
    };
    let list = |t: String| {
        let http = &http;
        let url = format!("{base}/v1/receivers");
        async move {
            let resp = http.get(url).bearer_auth(t).send().await?;
            anyhow::ensure!(resp.status() == 200, "{}", resp.status());
            let l: ReceiverList = resp.json().await?;
            let mut names: Vec<String> = l
                .receivers
                .iter()
                .map(|r| format!("{}/{}", r.namespace, r.name))
                .collect();
            names.sort();
            anyhow::Ok(names)
        }
    };
    assert_eq!(
        list(token(NS).await).await?,
        [format!("{NS}/cross"), format!("{NS}/push")]
    );
    assert_eq!(list(token(other).await).await?, [format!("{other}/b-hook")]);
    let anonymous = http.get(format!("{base}/v1/receivers")).send().await?;
    assert_eq!(anonymous.status(), 401);
    drop(server);
    Ok(())
}
