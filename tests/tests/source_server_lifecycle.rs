//! Source server over time: refs that disappear, restarts, garbage collection, config edits.

mod source_server_support;

use std::time::Duration;

use anyhow::{Context, Result};
use ferry_proto::condition;
use ferry_tests::upstream::{GitDaemon, Upstream};
use source_server_support::*;

fn ready_reason(v: &ferry_proto::api::SourceView) -> Option<(String, String)> {
    v.status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_ref_is_ref_not_found_and_the_last_artifact_stays_served() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "a: 1\n")?;
    up.commit_push("first")?;
    up.branch("release")?;
    up.git(&["push", "origin", "release"])?;
    let commit = up.head()?;
    let daemon = GitDaemon::start(up.root())?;
    let mut h = Harness::new(&repo_doc(
        "team-a",
        "rel",
        &daemon.url("repo.git"),
        "ref: {branch: release}",
    ))?;
    h.start().await?;
    let view = h.wait_commit("team-a", "rel", &commit).await?;
    let artifact = view.status.artifact.expect("artifact");
    assert_eq!(
        artifact.revision.to_string(),
        format!("release@sha1:{commit}")
    );

    up.delete_remote_ref("refs/heads/release")?;
    h.reconcile("team-a", "rel").await?;
    let view = h
        .wait_source("team-a", "rel", "RefNotFound", |v| {
            ready_reason(v).is_some_and(|(r, _)| r == "RefNotFound")
        })
        .await?;
    let (_, message) = ready_reason(&view).expect("Ready");
    assert!(
        message.contains("team-a/rel") && message.contains("release"),
        "message names the source and the ref: {message}"
    );
    assert!(!is_ready(&view));
    assert_eq!(
        view.status.artifact.as_ref(),
        Some(&artifact),
        "last good artifact kept"
    );
    let gz = h.download(&artifact.url).await?;
    assert_eq!(digest_of(&gz)?, artifact.digest);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_serve_stored_artifacts_and_fresh_storage_rebuilds_the_same_digest() -> Result<()>
{
    let up = Upstream::new()?;
    up.write("deploy/a.yaml", "a: 1\n")?;
    up.write_exec("bin/tool", "#!/bin/sh\n")?;
    up.write("deep/er/still/b.txt", "b\n")?;
    let commit = up.commit_push("first")?;
    let config = repo_doc("team-a", "app", &up.file_url(), "");

    let mut first = Harness::new(&config)?;
    first.start().await?;
    let a1 = first
        .wait_commit("team-a", "app", &commit)
        .await?
        .status
        .artifact
        .expect("artifact");
    first.stop().await;

    // Same storage, upstream gone: the stored artifact is served from the persisted state.
    let moved = up.root().with_extension("moved");
    std::fs::rename(up.root(), &moved)?;
    first.start().await?;
    let view = first.source("team-a", "app").await?;
    let restored = view
        .status
        .artifact
        .expect("artifact restored from storage");
    assert_eq!(restored.digest, a1.digest);
    assert_eq!(digest_of(&first.download(&restored.url).await?)?, a1.digest);
    first.stop().await;
    std::fs::rename(&moved, up.root())?;

    // Fresh storage and a fresh mirror cache: byte-identical tar, same digest.
    let mut second = Harness::new(&config)?;
    second.start().await?;
    let a2 = second
        .wait_commit("team-a", "app", &commit)
        .await?
        .status
        .artifact
        .expect("artifact");
    assert_eq!(a2.digest, a1.digest);
    assert_eq!(a2.size, a1.size);
    second.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_the_current_artifact_plus_the_last_n() -> Result<()> {
    let up = Upstream::new()?;
    up.write("v.txt", "0\n")?;
    let c0 = up.commit_push("c0")?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.keep = 1;
    h.start().await?;
    let mut digests = vec![
        h.wait_commit("team-a", "app", &c0)
            .await?
            .status
            .artifact
            .expect("artifact")
            .digest,
    ];
    for i in 1..=3 {
        up.write("v.txt", format!("{i}\n"))?;
        let c = up.commit_push(&format!("c{i}"))?;
        h.reconcile("team-a", "app").await?;
        let a = h
            .wait_commit("team-a", "app", &c)
            .await?
            .status
            .artifact
            .expect("artifact");
        digests.push(a.digest);
    }
    // GC runs after each new artifact: current (3) and one previous (2) remain. The status
    // that `wait_commit` saw is written before the collection runs, so poll for it.
    let want: Vec<String> = {
        let mut w: Vec<String> = digests[2..]
            .iter()
            .map(|d| format!("{}.tar.gz", d.hex()))
            .collect();
        w.sort();
        w
    };
    let gc = ferry_tests::poll::until("GC", WAIT, Duration::from_millis(50), || async {
        Ok((stored_artifacts(h.storage_dir())? == want).then_some(()))
    })
    .await;
    gc.with_context(|| format!("GC kept {:?}", stored_artifacts(h.storage_dir())))?;
    for (i, d) in digests.iter().enumerate() {
        let url = format!("{}/v1/artifacts/sha256/{}", h.base(), d.hex());
        let status = h.http.get(&url).send().await?.status();
        assert_eq!(status == 200, i >= 2, "artifact {i}: {status}");
    }
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_apply_live_and_invalid_documents_are_reported() -> Result<()> {
    let up = Upstream::new()?;
    up.write("app.yaml", "a: 1\n")?;
    up.write("docs/guide.md", "# guide\n")?;
    let commit = up.commit_push("first")?;
    let app = repo_doc("team-a", "app", &up.file_url(), "");
    let mut h = Harness::new(&app)?;
    h.start().await?;
    let a1 = h
        .wait_commit("team-a", "app", &commit)
        .await?
        .status
        .artifact
        .expect("artifact");
    assert!(
        files_of(&h.download(&a1.url).await?)?
            .iter()
            .any(|(p, _)| p == "docs/guide.md")
    );

    // Add a second source, an invalid one, and an ignore rule on the first.
    let app_ignoring = repo_doc("team-a", "app", &up.file_url(), "ignore: \"docs/\"");
    let other = repo_doc("team-b", "other", &up.file_url(), "");
    let broken = repo_doc("team-b", "broken", &up.file_url(), "interval: 0s");
    h.write_config(&join_docs(&[app_ignoring, other, broken]))?;

    h.wait_commit("team-b", "other", &commit).await?;
    let a2 = h
        .wait_source("team-a", "app", "rebuilt without docs/", |v| {
            is_ready(v)
                && v.status
                    .artifact
                    .as_ref()
                    .is_some_and(|a| a.digest != a1.digest)
        })
        .await?
        .status
        .artifact
        .expect("artifact");
    assert_eq!(
        a2.revision, a1.revision,
        "same commit, new ignore rules, new digest"
    );
    let files = files_of(&h.download(&a2.url).await?)?;
    assert!(
        files.iter().all(|(p, _)| !p.starts_with("docs/")),
        "{files:?}"
    );
    assert!(files.iter().any(|(p, _)| p == "app.yaml"));

    let errors: serde_json::Value = h.get_json("/v1/config").await?;
    let errors = errors["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["document"], 2);
    assert_eq!(errors[0]["object"], "GitRepository/team-b/broken");
    assert_eq!(errors[0]["field"], "spec.interval");
    let names: Vec<String> = h
        .sources()
        .await?
        .sources
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    assert_eq!(names, vec!["team-a/app", "team-b/broken", "team-b/other"]);
    // Issue 12, defect 2: a zero interval (a hot loop) is refused, and the source shows it as
    // Stalled naming the field — retrying cannot fix it, an edit can.
    let broken = h.source("team-b", "broken").await?;
    let stalled = broken
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled condition");
    assert!(stalled.is_true());
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("team-b/broken") && stalled.message.contains("spec.interval"),
        "{}",
        stalled.message
    );
    assert!(!is_ready(&broken));
    let url = format!("{}/v1/sources/team-b/broken/reconcile", h.base());
    assert_eq!(h.http.post(&url).send().await?.status(), 409);

    // Issue 12: a bad edit of a source that already runs keeps its last valid settings served
    // and says so on the source itself, not only in /v1/config and a metric.
    let app_broken = repo_doc(
        "team-a",
        "app",
        &up.file_url(),
        "ignore: \"docs/\"\ninterval: 5mins",
    );
    let other = repo_doc("team-b", "other", &up.file_url(), "");
    h.write_config(&join_docs(&[app_broken, other.clone()]))?;
    let app = h
        .wait_source(
            "team-a",
            "app",
            "the refused edit shown on the source",
            |v| condition::is_stalled(&v.status.conditions),
        )
        .await?;
    let stalled = condition::find_condition(&app.status.conditions, condition::STALLED)
        .expect("Stalled condition");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("spec.interval")
            && stalled.message.contains("5mins")
            && stalled.message.contains("still served"),
        "{}",
        stalled.message
    );
    assert!(!is_ready(&app), "Ready=False while the edit is refused");
    let served = app.status.artifact.as_ref().expect("artifact still served");
    assert_eq!(served.digest, a2.digest);
    assert_eq!(h.http.get(&served.url).send().await?.status(), 200);
    let listed = h.sources().await?;
    let in_list = listed
        .sources
        .iter()
        .find(|s| s.name == "app")
        .expect("listed");
    assert!(condition::is_stalled(&in_list.status.conditions));
    // Fixing the document clears it.
    let app_fixed = repo_doc("team-a", "app", &up.file_url(), "ignore: \"docs/\"");
    h.write_config(&join_docs(&[app_fixed, other]))?;
    h.wait_source("team-a", "app", "the fixed edit clears Stalled", |v| {
        !condition::is_stalled(&v.status.conditions) && is_ready(v)
    })
    .await?;

    // Removing a source stops serving it.
    h.write_config(&repo_doc("team-b", "other", &up.file_url(), ""))?;
    ferry_tests::poll::until(
        "the source removed",
        WAIT,
        Duration::from_millis(50),
        || async { Ok((h.sources().await?.sources.len() == 1).then_some(())) },
    )
    .await?;
    let url = format!("{}/v1/sources/team-a/app", h.base());
    assert_eq!(h.http.get(&url).send().await?.status(), 404);
    // ... and reporting it: its metrics series went with it (issue 12).
    let metrics = h
        .http
        .get(format!("{}/metrics", h.base()))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !metrics.contains(r#"namespace="team-a",name="app""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"namespace="team-b",name="other""#));
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_source_keeps_its_artifact_and_refuses_reconcile_requests() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "a: 1\n")?;
    let first = up.commit_push("first")?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    let artifact = h
        .wait_commit("team-a", "app", &first)
        .await?
        .status
        .artifact
        .expect("artifact");

    h.write_config(&repo_doc("team-a", "app", &up.file_url(), "suspend: true"))?;
    h.wait_source("team-a", "app", "suspended", |v| {
        ready_reason(v).is_some_and(|(r, _)| r == "Suspended")
    })
    .await?;
    up.write("a.yaml", "a: 2\n")?;
    up.commit_push("second")?;
    let url = format!("{}/v1/sources/team-a/app/reconcile", h.base());
    assert_eq!(h.http.post(&url).send().await?.status(), 409);
    let view = h.source("team-a", "app").await?;
    assert_eq!(
        view.status.artifact.as_ref(),
        Some(&artifact),
        "no new artifact while suspended"
    );
    assert_eq!(h.http.get(&artifact.url).send().await?.status(), 200);

    // Resuming picks up the push.
    h.write_config(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.wait_commit("team-a", "app", &up.head()?).await?;
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_removed_while_down_are_collected_at_start_but_invalid_ones_are_kept() -> Result<()>
{
    let up = Upstream::new()?;
    up.write("a.yaml", "a: 1\n")?;
    up.write("b.yaml", "b: 1\n")?;
    up.write("c.yaml", "c: 1\n")?;
    let commit = up.commit_push("first")?;
    // Distinct ignore rules give each source its own artifact.
    let doc = |name: &str, ignore: &str| {
        repo_doc(
            "team-a",
            name,
            &up.file_url(),
            &format!("ignore: \"{ignore}\""),
        )
    };
    let mut h = Harness::new(&join_docs(&[
        doc("a", "b.yaml"),
        doc("b", "c.yaml"),
        doc("c", "a.yaml"),
    ]))?;
    h.start().await?;
    let mut digests = Vec::new();
    for name in ["a", "b", "c"] {
        let a = h
            .wait_commit("team-a", name, &commit)
            .await?
            .status
            .artifact;
        digests.push(a.expect("artifact").digest);
    }
    h.stop().await;

    // While down: "a" is removed, "c" gets a typo.
    let broken_c = repo_doc("team-a", "c", &up.file_url(), "interval: whenever");
    h.write_config(&join_docs(&[doc("b", "c.yaml"), broken_c]))?;
    h.start().await?;
    let stored = stored_artifacts(h.storage_dir())?;
    let has = |i: usize| stored.contains(&format!("{}.tar.gz", digests[i].hex()));
    assert!(!has(0), "removed source's artifact collected: {stored:?}");
    assert!(has(1), "configured source's artifact kept");
    assert!(has(2), "invalid-but-present source's artifact kept");
    h.stop().await;
    Ok(())
}

/// Every shallow fetch adds a pack to the mirror; with gix's fixed 32 index slots the 32nd new
/// revision failed ("too few index slots"), and kept failing after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_keeps_fetching_past_32_new_revisions_and_after_a_restart() -> Result<()> {
    let up = Upstream::new()?;
    up.write("v.txt", "0\n")?;
    up.commit_push("c0")?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    for i in 1..=40 {
        up.write("v.txt", format!("{i}\n"))?;
        let commit = up.commit_push(&format!("c{i}"))?;
        h.reconcile("team-a", "app").await?;
        h.wait_commit("team-a", "app", &commit)
            .await
            .with_context(|| format!("revision {i}"))?;
    }
    h.stop().await;
    h.start().await?;
    up.write("v.txt", "41\n")?;
    let commit = up.commit_push("c41")?;
    h.reconcile("team-a", "app").await?;
    h.wait_commit("team-a", "app", &commit).await?;
    h.stop().await;
    Ok(())
}
