//! Tenant-scoped access to the source server in cluster mode, on a cluster that authenticates
//! (the real control plane with `FERRY_CLUSTER=real`): each tenant presents its ServiceAccount
//! token minted for the source server's audience; the server reviews it (`TokenReview`) and
//! serves the tenant only its own namespace's sources, their artifacts and events, plus what is
//! shared with it. Everything else is 403 with an empty body, even a digest the tenant knows.
//! A tenant's agent, with its token in a file, applies its own source.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::sources::*;
use e2e_support::{Env, NS, seed_spec, write_seed};
use ferry_proto::api::{ArtifactEvent, SourceList};
use ferry_tests::tools::Client;
use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);
const AUDIENCE: &str = "ferry-source-server";

/// `(status, body)` of a GET with `token`.
async fn get(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<(u16, String)> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Reads the event stream until `until` matches an event; returns every event seen.
async fn events_until(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    until: impl Fn(&ArtifactEvent) -> bool,
) -> Result<Vec<ArtifactEvent>> {
    let resp = http.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(resp.status() == 200, "events: {}", resp.status());
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut seen = Vec::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let ev: ArtifactEvent = serde_json::from_str(data.trim())?;
                        let done = until(&ev);
                        seen.push(ev);
                        if done {
                            return anyhow::Ok(());
                        }
                    }
                }
            }
        }
        anyhow::bail!("event stream ended")
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .context("waiting for an event")??;
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_and_shared_sources() -> Result<()> {
    let mut env = Env::with_rbac().await?;
    install_source_crds(&env).await?;
    let admin = Client::kubectl(env.cluster.kubeconfig_path())?;
    let (a, b, c) = (NS, "team-b", "team-c");
    for ns in [b, c, "ferry-ops"] {
        admin.ok(&["create", "namespace", ns]).await;
    }
    for ns in [a, b, c, "ferry-ops"] {
        admin
            .ok(&["-n", ns, "create", "serviceaccount", "ferry-agent"])
            .await;
    }
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("seed")?;
    let post = PostParams::default();
    git_api(&env, a)
        .create(
            &post,
            &git_repository(&env, a, "app", json!({}), json!({}))?,
        )
        .await?;
    // Other content than a's (a digest of the same bytes would be a's own artifact too).
    let private = json!({"ignore": "app/service.yaml\n"});
    git_api(&env, b)
        .create(
            &post,
            &git_repository(&env, b, "private", private, json!({}))?,
        )
        .await?;
    let shared_with = json!({"source.ferry.dev/shared-with": a});
    git_api(&env, b)
        .create(
            &post,
            &git_repository(&env, b, "base", json!({}), shared_with)?,
        )
        .await?;

    // Operators: the ServiceAccounts of namespace ferry-ops.
    let server = start_cluster_server(
        &env,
        &["--operator-group", "system:serviceaccounts:ferry-ops"],
    )?;
    let base = env.source_url();
    let token = |ns: &'static str, audience: &'static str| {
        let admin = &admin;
        async move {
            let t = admin
                .ok(&[
                    "-n",
                    ns,
                    "create",
                    "token",
                    "ferry-agent",
                    "--audience",
                    audience,
                ])
                .await;
            t.trim().to_string()
        }
    };
    let (ta, tb, tc, ops) = (
        token(a, AUDIENCE).await,
        token(b, AUDIENCE).await,
        token(c, AUDIENCE).await,
        token("ferry-ops", AUDIENCE).await,
    );
    let http = reqwest::Client::new();
    // Every source has its artifact (an operator sees them all).
    let all: SourceList = env
        .wait_for("every source has an artifact", LIMIT, || async {
            let (code, body) = get(&http, &format!("{base}/v1/sources"), Some(&ops)).await?;
            if code != 200 {
                return Ok(None);
            }
            let list: SourceList = serde_json::from_str(&body)?;
            let ready =
                list.sources.len() == 3 && list.sources.iter().all(|s| s.status.artifact.is_some());
            Ok(ready.then_some(list))
        })
        .await
        .with_context(|| server.log_text())?;
    let digest = |ns: &str, name: &str| {
        all.sources
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .and_then(|s| s.status.artifact.as_ref())
            .map(|a| a.digest.hex().to_string())
            .context("artifact")
    };

    // Tenant a lists its own source and the one shared with it, nothing else.
    let (code, body) = get(&http, &format!("{base}/v1/sources"), Some(&ta)).await?;
    assert_eq!(code, 200, "{body}");
    let mut names: Vec<String> = serde_json::from_str::<SourceList>(&body)?
        .sources
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    names.sort();
    assert_eq!(names, [format!("{a}/app"), format!("{b}/base")]);
    // Another tenant's source, by name or by a digest it learned elsewhere: 403, empty body —
    // and the same for a name that does not exist, so names cannot be probed.
    for path in [
        format!("/v1/sources/{b}/private"),
        format!("/v1/sources/{b}/does-not-exist"),
        format!("/v1/artifacts/sha256/{}", digest(b, "private")?),
    ] {
        let (code, body) = get(&http, &format!("{base}{path}"), Some(&ta)).await?;
        assert_eq!((code, body.as_str()), (403, ""), "{path}");
    }
    for path in [
        format!("/v1/artifacts/sha256/{}", digest(a, "app")?),
        format!("/v1/artifacts/sha256/{}", digest(b, "base")?),
    ] {
        assert_eq!(
            get(&http, &format!("{base}{path}"), Some(&ta)).await?.0,
            200,
            "{path}"
        );
    }
    // Shared with exactly the namespaces named: team-c sees nothing of team-b.
    let (_, body) = get(&http, &format!("{base}/v1/sources"), Some(&tc)).await?;
    assert!(
        serde_json::from_str::<SourceList>(&body)?
            .sources
            .is_empty(),
        "{body}"
    );
    let (code, _) = get(&http, &format!("{base}/v1/sources/{b}/base"), Some(&tc)).await?;
    assert_eq!(code, 403);
    // The owner sees both of its own.
    let (_, body) = get(&http, &format!("{base}/v1/sources"), Some(&tb)).await?;
    assert_eq!(
        serde_json::from_str::<SourceList>(&body)?.sources.len(),
        2,
        "{body}"
    );

    // The status page shows a viewer what its token may see: without one, a form asking
    // for it; with a's (kept in the page's cookie), a's and the shared source only.
    let (code, body) = get(&http, &format!("{base}/"), None).await?;
    assert_eq!(code, 401);
    assert!(body.contains("id=\"login\""), "{body}");
    let page = http
        .get(format!("{base}/"))
        .header("cookie", format!("ferry_token={ta}"))
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    let page = page.text().await?;
    assert!(page.contains(&format!("GitRepository/{a}/app")), "{page}");
    assert!(page.contains(&format!("GitRepository/{b}/base")), "{page}");
    assert!(!page.contains("private"), "{page}");

    // No token, a token for another audience (the API server's own), a token of a deleted
    // ServiceAccount: 401. (The revoked one is new to the server: an accepted token is
    // trusted for up to a minute without asking again, never past its own expiry.)
    let other_audience = token(a, "https://kubernetes.default.svc.cluster.local").await;
    let revoked = token(c, AUDIENCE).await;
    // The real API server's authenticator finds ServiceAccounts in an informer cache, which
    // learns of the deletion a moment after kubectl returns. A second token of the same
    // ServiceAccount tells when it has (reviewing `revoked` itself would cache its answer).
    let probe = token(c, AUDIENCE).await;
    admin
        .ok(&["-n", c, "delete", "serviceaccount", "ferry-agent"])
        .await;
    env.wait_for(
        "the API server to refuse the deleted ServiceAccount's tokens",
        LIMIT,
        || async {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(probe.clone()),
                    audiences: Some(vec![AUDIENCE.to_string()]),
                },
                ..Default::default()
            };
            let status = Api::<TokenReview>::all(env.client.clone())
                .create(&PostParams::default(), &review)
                .await?
                .status
                .unwrap_or_default();
            Ok((status.authenticated != Some(true)).then_some(()))
        },
    )
    .await?;
    for (what, t) in [
        ("none", None),
        ("audience", Some(other_audience.as_str())),
        ("revoked", Some(revoked.as_str())),
        ("garbage", Some("not-a-token")),
    ] {
        let (code, _) = get(&http, &format!("{base}/v1/sources"), t).await?;
        assert_eq!(code, 401, "{what} token");
    }

    // The event stream: a's snapshot holds a's and the shared source, never team-b/private;
    // then a new artifact of team-b/private, announced before one of a/app, never reaches a.
    let events = format!("{base}/v1/events");
    let snapshot = events_until(&http, &events, &ta, |e| e.namespace == a).await?;
    assert!(snapshot.iter().all(|e| e.name != "private"), "{snapshot:?}");
    write_seed(&env.upstream, "app", "v2.0.0")?;
    env.upstream.commit_push("second")?;
    let second = env.upstream.head()?;
    let stream = tokio::spawn({
        let (http, events, ta) = (http.clone(), events.clone(), ta.clone());
        let second = second.clone();
        async move {
            events_until(&http, &events, &ta, move |e| {
                e.name == "app" && e.revision.to_string().contains(&second)
            })
            .await
        }
    });
    for (ns, name, at) in [(b, "private", "t1"), (a, "app", "t2")] {
        git_api(&env, ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": at}}}),
                ),
            )
            .await?;
        env.wait_for("the reconcile handled", LIMIT, || async {
            Ok((git_status(&env, ns, name).await?["lastHandledReconcileAt"] == at).then_some(()))
        })
        .await?;
    }
    let seen = stream.await??;
    assert!(seen.iter().all(|e| e.name != "private"), "{seen:?}");

    // Tenant a's agent, with its token in a file, applies its own source.
    let token_file = env.work.path().join("source-token");
    std::fs::write(&token_file, &ta)?;
    env.agent_args = vec![
        "--source-token-file".into(),
        token_file.display().to_string(),
    ];
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    env.wait_image("my-registry/my-app:v2.0.0", LIMIT).await?;
    drop(server);
    Ok(())
}
