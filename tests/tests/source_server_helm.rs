//! HelmRepository end to end: a real chart repository (`helm create` + `helm package` +
//! `helm repo index`, served by a static file server that answers conditional GETs), the
//! source server resolving ranges to packed chart artifacts, and agents' view of it: the
//! resolve API, the artifact bytes, and `HelmChart` events.

mod source_server_support;

use anyhow::{Context, Result, bail};
use ferry_proto::api::{ArtifactEvent, HelmChartArtifact, HelmRepositoryView};
use ferry_proto::condition::{READY, find_condition};
use ferry_proto::{ConditionStatus, SourceKey, SourceKind};
use ferry_tests::upstream::ChartServer;
use ferry_tests::upstream::charts::{create_and_package, index};
use source_server_support::*;

/// A `HelmRepository` document (no polling during a test: reconciles on request).
pub fn helm_repo_doc(ns: &str, name: &str, url: &str, extra_spec: &str) -> String {
    let mut doc = format!(
        "apiVersion: source.ferry.dev/v1\nkind: HelmRepository\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\nspec:\n  url: {url}\n  interval: 1h\n  timeout: 30s\n"
    );
    for line in extra_spec.lines().filter(|l| !l.trim().is_empty()) {
        doc.push_str("  ");
        doc.push_str(line);
        doc.push('\n');
    }
    doc
}

fn index_series(ns: &str, name: &str, result: &str) -> String {
    format!(
        "ferry_source_helm_index_fetches_total{{namespace=\"{ns}\",name=\"{name}\",kind=\"HelmRepository\",result=\"{result}\"}}"
    )
}

fn packed_series(ns: &str, name: &str) -> String {
    format!(
        "ferry_source_helm_charts_packed_total{{namespace=\"{ns}\",name=\"{name}\",kind=\"HelmRepository\"}}"
    )
}

async fn repository(h: &Harness, ns: &str, name: &str) -> Result<HelmRepositoryView> {
    h.get_json(&format!("/v1/helmrepositories/{ns}/{name}"))
        .await
}

async fn wait_index(h: &Harness, ns: &str, name: &str) -> Result<HelmRepositoryView> {
    let what = format!("HelmRepository {ns}/{name} to have an index");
    ferry_tests::poll::until(
        &what,
        WAIT,
        std::time::Duration::from_millis(20),
        || async {
            let v = repository(h, ns, name).await?;
            Ok(v.status.artifact.is_some().then_some(v))
        },
    )
    .await
}

/// `GET …/charts/{chart}?version=`: the status and the JSON body.
async fn resolve(
    h: &Harness,
    ns: &str,
    repo: &str,
    chart: &str,
    range: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let mut req = h.http.get(format!(
        "{}/v1/helmrepositories/{ns}/{repo}/charts/{chart}",
        h.base()
    ));
    if let Some(r) = range {
        req = req.query(&[("version", r)]);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

async fn resolve_ok(
    h: &Harness,
    ns: &str,
    repo: &str,
    chart: &str,
    range: Option<&str>,
) -> Result<HelmChartArtifact> {
    let (status, body) = resolve(h, ns, repo, chart, range).await?;
    if status != 200 {
        bail!("resolve {chart} {range:?}: {status} {body}");
    }
    Ok(serde_json::from_value(body)?)
}

struct Repo {
    work: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Repo {
    fn new(charts: &[(&str, &str)]) -> Result<Self> {
        let work = tempfile::tempdir()?;
        let dir = work.path().join("repo");
        for (name, version) in charts {
            create_and_package(work.path(), &dir, name, version)?;
        }
        index(work.path(), &dir, None)?;
        Ok(Self { work, dir })
    }

    fn add(&self, name: &str, version: &str) -> Result<()> {
        create_and_package(self.work.path(), &self.dir, name, version)?;
        index(self.work.path(), &self.dir, None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_parsed_once_chart_packed_once_new_version_announced() -> Result<()> {
    let repo = Repo::new(&[("app", "1.0.0"), ("app", "1.1.0"), ("app", "2.0.0-rc.1")])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let mut h = Harness::new(&helm_repo_doc("team-a", "charts", &server.url(), ""))?;
    h.start().await?;
    let view = wait_index(&h, "team-a", "charts").await?;
    let ready = find_condition(&view.status.conditions, READY).context("Ready")?;
    assert_eq!(ready.status, ConditionStatus::True, "{ready:?}");
    let idx = view.status.artifact.context("index artifact")?;
    let index_bytes = std::fs::read(repo.dir.join("index.yaml"))?;
    assert_eq!(
        idx.revision.to_string(),
        format!("sha256:{}", ferry_proto::Digest::of(&index_bytes).hex()),
        "the repository's revision is the sha256 of the index bytes"
    );
    assert_eq!((idx.charts, idx.versions), (1, 3));
    // The new index is also an event for alerting (the server's own, as for Git sources).
    let running = h.server.as_ref().context("running")?;
    let ev = ferry_tests::poll::until(
        "a NewArtifact event of the HelmRepository",
        WAIT,
        std::time::Duration::from_millis(20),
        || async {
            Ok(running
                .controller
                .notifications()
                .recent()
                .into_iter()
                .find(|e| e.event.involved_object.kind == "HelmRepository"))
        },
    )
    .await?;
    assert_eq!(ev.event.reason, "NewArtifact");
    assert_eq!(ev.event.involved_object.name, "charts");
    assert_eq!(
        ev.event.metadata.get("revision"),
        Some(&idx.revision.to_string())
    );

    // The highest release matching the range; the artifact is the chart's files with
    // Chart.yaml at the root, its digest the tar's.
    let a = resolve_ok(&h, "team-a", "charts", "app", Some("^1")).await?;
    assert_eq!(a.version, "1.1.0");
    assert_eq!(a.revision.to_string(), format!("1.1.0@{}", a.digest));
    let gz = h.download(&a.url).await?;
    assert_eq!(digest_of(&gz)?, a.digest);
    let files = files_of(&gz)?;
    let chart_yaml = files
        .iter()
        .find(|(p, _)| p == "Chart.yaml")
        .context("Chart.yaml at the artifact's root")?;
    assert!(String::from_utf8_lossy(&chart_yaml.1).contains("version: 1.1.0"));
    assert!(files.iter().any(|(p, _)| p == "templates/deployment.yaml"));
    assert!(
        !files.iter().any(|(p, _)| p.starts_with("app/")),
        "{files:?}"
    );

    // An unchanged index: a 304, and nothing parsed.
    let parsed = index_series("team-a", "charts", "parsed");
    assert_eq!(h.metric(&parsed).await?, 1.0);
    h.http
        .post(format!(
            "{}/v1/helmrepositories/team-a/charts/reconcile",
            h.base()
        ))
        .send()
        .await?
        .error_for_status()?;
    h.wait_metric(&index_series("team-a", "charts", "not_modified"), |v| {
        v >= 1.0
    })
    .await?;
    assert_eq!(h.metric(&parsed).await?, 1.0, "a 304 must not parse");
    assert_eq!(server.count("/index.yaml", 304), 1);

    // Asking again costs no download.
    let again = resolve_ok(&h, "team-a", "charts", "app", Some("^1")).await?;
    assert_eq!(again.digest, a.digest);
    assert_eq!(server.count("/app-1.1.0.tgz", 200), 1);
    assert_eq!(h.metric(&packed_series("team-a", "charts")).await?, 1.0);

    // A new version matching the registered range is packed and announced.
    let mut events = SseReader::connect(&h, None).await?;
    repo.add("app", "1.2.0")?;
    h.http
        .post(format!(
            "{}/v1/helmrepositories/team-a/charts/reconcile",
            h.base()
        ))
        .send()
        .await?
        .error_for_status()?;
    let want = SourceKey::helm_chart("team-a", "charts", "app", "^1");
    let ev = loop {
        let sse = events.next().await?;
        if sse.event != "artifact" {
            continue;
        }
        let ev: ArtifactEvent = serde_json::from_str(&sse.data)?;
        if ev.source() == want && ev.revision.name() == Some("1.2.0") {
            break ev;
        }
    };
    assert_eq!(ev.kind, SourceKind::HelmChart);
    assert_eq!(ev.name, "charts/app@^1");
    assert_eq!(digest_of(&h.download(&ev.url).await?)?, ev.digest);
    assert_eq!(h.metric(&parsed).await?, 2.0);
    let now = resolve_ok(&h, "team-a", "charts", "app", Some("^1")).await?;
    assert_eq!((now.version.as_str(), now.digest), ("1.2.0", ev.digest));
    assert_eq!(
        server.count("/app-1.2.0.tgz", 200),
        1,
        "packed once, for the event"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_resolve_as_helm_reads_them_and_failures_name_repository_chart_and_range()
-> Result<()> {
    let repo = Repo::new(&[
        ("app", "1.0.0"),
        ("app", "1.0.5"),
        ("app", "1.4.0"),
        ("app", "2.0.0"),
        ("app", "3.0.0-beta.1"),
    ])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let mut h = Harness::new(&helm_repo_doc("ns", "r", &server.url(), ""))?;
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    for (range, want) in [
        (None, "2.0.0"),
        (Some("*"), "2.0.0"),
        (Some("1.x"), "1.4.0"),
        (Some("~1.0"), "1.0.5"),
        (Some("1.0"), "1.0.5"),
        (Some(">=1.0 <1.4"), "1.0.5"),
        (Some(">=1.0, <2.0"), "1.4.0"),
        (Some("^1.0.1"), "1.4.0"),
        (Some("1.0.0 - 1.3"), "1.0.5"),
        (Some("<1.0.5 || >=2.0.0 <3"), "2.0.0"),
        (Some(">=3.0.0-0"), "3.0.0-beta.1"),
        (Some("=1.0.0"), "1.0.0"),
    ] {
        let a = resolve_ok(&h, "ns", "r", "app", range).await?;
        assert_eq!(a.version, want, "range {range:?}");
    }
    let (status, body) = resolve(&h, "ns", "r", "app", Some("4.x")).await?;
    assert_eq!(status, 404, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("HelmRepository ns/r") && msg.contains("\"app\"") && msg.contains("\"4.x\""),
        "{msg}"
    );
    let (status, body) = resolve(&h, "ns", "r", "app", Some(">= one")).await?;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("\">= one\""),
        "{body}"
    );
    let (status, body) = resolve(&h, "ns", "r", "nope", None).await?;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no chart \"nope\"")
    );
    let (status, _) = resolve(&h, "ns", "missing", "app", None).await?;
    assert_eq!(status, 404);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_naming_the_repository_and_the_chart() -> Result<()> {
    let repo = Repo::new(&[("app", "1.0.0")])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let docs = join_docs(&[helm_repo_doc("ns", "r", &server.url(), "")]);
    let mut h = Harness::new(&docs)?;
    h.helm.max_chart_size = 1024;
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    let (status, body) = resolve(&h, "ns", "r", "app", None).await?;
    assert_eq!(status, 502, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("HelmRepository ns/r")
            && msg.contains("\"app\"")
            && msg.contains("--helm-chart-max-size"),
        "{msg}"
    );
    h.stop().await;

    // An index over its limit: the repository is not Ready, and says why.
    let mut h = Harness::new(&helm_repo_doc("ns", "r", &server.url(), ""))?;
    h.helm.max_index_size = 200;
    h.start().await?;
    let what = "the repository to report the index limit";
    let msg =
        ferry_tests::poll::until(what, WAIT, std::time::Duration::from_millis(20), || async {
            let v = repository(&h, "ns", "r").await?;
            Ok(find_condition(&v.status.conditions, READY)
                .filter(|c| c.status == ConditionStatus::False)
                .map(|c| c.message.clone()))
        })
        .await?;
    assert!(
        msg.contains("HelmRepository ns/r") && msg.contains("--helm-index-max-size"),
        "{msg}"
    );
    let (status, body) = resolve(&h, "ns", "r", "app", None).await?;
    assert_eq!(status, 503, "{body}");
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_the_repository_host_unless_pass_credentials() -> Result<()> {
    // The index is on an authenticated host; the charts on another origin (a CDN).
    let work = tempfile::tempdir()?;
    let charts = work.path().join("cdn");
    let index_dir = work.path().join("index");
    create_and_package(work.path(), &charts, "app", "1.0.0")?;
    let cdn = ChartServer::start(&charts, None).await?;
    index(work.path(), &charts, Some(&cdn.url()))?;
    std::fs::create_dir_all(&index_dir)?;
    std::fs::copy(charts.join("index.yaml"), index_dir.join("index.yaml"))?;
    let repo = ChartServer::start(&index_dir, Some(("user", "s3cret"))).await?;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\n\
                  stringData: {username: user, password: s3cret}\n"
        .to_string();
    let docs = join_docs(&[
        helm_repo_doc("ns", "own", &repo.url(), "secretRef: {name: creds}"),
        helm_repo_doc(
            "ns",
            "pass",
            &repo.url(),
            "secretRef: {name: creds}\npassCredentials: true",
        ),
        secret,
    ]);
    let mut h = Harness::new(&docs)?;
    h.start().await?;
    wait_index(&h, "ns", "own").await?;
    wait_index(&h, "ns", "pass").await?;
    assert!(
        repo.seen()
            .iter()
            .all(|s| s.status == 200 && s.authorization.is_some()),
        "the repository host gets the credentials: {:?}",
        repo.seen()
    );
    resolve_ok(&h, "ns", "own", "app", None).await?;
    let seen = cdn.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].authorization, None,
        "credentials leaked to another host"
    );
    // The chart cache is per repository: `pass` downloads too, and sends the credentials.
    resolve_ok(&h, "ns", "pass", "app", None).await?;
    let seen = cdn.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_is_refused_and_the_digest_does_not_depend_on_packing() -> Result<()> {
    let repo = Repo::new(&[("app", "1.0.0")])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let mut h = Harness::new(&helm_repo_doc("ns", "r", &server.url(), ""))?;
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    let first = resolve_ok(&h, "ns", "r", "app", None).await?;

    // Re-pack the same files: other gzip level, other entry order, other mtimes and tar
    // dialect; the index gets the new file's digest.
    let tgz_path = repo.dir.join("app-1.0.0.tgz");
    let original = std::fs::read(&tgz_path)?;
    let mut entries = Vec::new();
    {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(original.as_slice()));
        for e in ar.entries()? {
            let mut e = e?;
            let path = e.path()?.display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data)?;
            entries.push((path, data));
        }
    }
    entries.reverse();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::new(1),
    ));
    for (path, data) in &entries {
        let mut hd = tar::Header::new_ustar();
        hd.set_size(data.len() as u64);
        hd.set_mode(0o644);
        hd.set_mtime(42);
        hd.set_cksum();
        b.append_data(&mut hd, path, data.as_slice())?;
    }
    let repacked = b.into_inner()?.finish()?;
    assert_ne!(repacked, original);
    let index_path = repo.dir.join("index.yaml");
    let old_digest = ferry_proto::Digest::of(&original).hex();
    let new_digest = ferry_proto::Digest::of(&repacked).hex();
    std::fs::write(&tgz_path, &repacked)?;
    let text = std::fs::read_to_string(&index_path)?;
    assert!(text.contains(&old_digest));
    std::fs::write(&index_path, text.replace(&old_digest, &new_digest))?;
    let packed = packed_series("ns", "r");
    h.http
        .post(format!("{}/v1/helmrepositories/ns/r/reconcile", h.base()))
        .send()
        .await?
        .error_for_status()?;
    // The new bytes are downloaded and packed again, to the same artifact.
    h.wait_metric(&packed, |v| v >= 2.0).await?;
    let second = resolve_ok(&h, "ns", "r", "app", None).await?;
    assert_eq!(second.digest, first.digest);

    // A digest the file does not have: refused, naming repository, chart and version.
    let text = std::fs::read_to_string(&index_path)?;
    std::fs::write(&index_path, text.replace(&new_digest, &"0".repeat(64)))?;
    let before = h.metric(&index_series("ns", "r", "parsed")).await?;
    h.http
        .post(format!("{}/v1/helmrepositories/ns/r/reconcile", h.base()))
        .send()
        .await?
        .error_for_status()?;
    h.wait_metric(&index_series("ns", "r", "parsed"), |v| v > before)
        .await?;
    let (status, body) = resolve(&h, "ns", "r", "app", Some("1.0.0")).await?;
    assert_eq!(status, 502, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("HelmRepository ns/r")
            && msg.contains("\"app\"")
            && msg.contains("1.0.0")
            && msg.contains("digest mismatch"),
        "{msg}"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_artifacts_survive_a_restart_and_go_with_their_repository() -> Result<()> {
    let repo = Repo::new(&[("app", "1.0.0")])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let mut h = Harness::new(&helm_repo_doc("ns", "r", &server.url(), ""))?;
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    let a = resolve_ok(&h, "ns", "r", "app", Some("1.x")).await?;
    let stored = format!("{}.tar.gz", a.digest.hex());
    assert_eq!(stored_artifacts(h.storage_dir())?, vec![stored.clone()]);

    // A restart keeps the registration: the artifact is not collected, not downloaded again,
    // and is announced in the event stream's snapshot.
    h.stop().await;
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    assert_eq!(stored_artifacts(h.storage_dir())?, vec![stored]);
    let again = resolve_ok(&h, "ns", "r", "app", Some("1.x")).await?;
    assert_eq!(again.digest, a.digest);
    assert_eq!(server.count("/app-1.0.0.tgz", 200), 1);
    let mut events = SseReader::connect(&h, None).await?;
    let want = SourceKey::helm_chart("ns", "r", "app", "1.x");
    loop {
        let sse = events.next().await?;
        if sse.event == "artifact"
            && serde_json::from_str::<ArtifactEvent>(&sse.data)?.source() == want
        {
            break;
        }
    }

    // The repository leaves the config: its chart artifacts are collected.
    h.write_config("")?;
    let what = "the chart artifact to be collected";
    ferry_tests::poll::until(what, WAIT, std::time::Duration::from_millis(50), || async {
        Ok(stored_artifacts(h.storage_dir())?.is_empty().then_some(()))
    })
    .await?;
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolutions_no_agent_asks_for_expire_and_their_artifacts_are_collected() -> Result<()> {
    let repo = Repo::new(&[("app", "1.0.0")])?;
    let server = ChartServer::start(&repo.dir, None).await?;
    let mut h = Harness::new(&helm_repo_doc("ns", "r", &server.url(), ""))?;
    h.helm.registration_ttl = std::time::Duration::from_secs(1);
    h.start().await?;
    wait_index(&h, "ns", "r").await?;
    let a = resolve_ok(&h, "ns", "r", "app", None).await?;
    assert_eq!(
        stored_artifacts(h.storage_dir())?,
        vec![format!("{}.tar.gz", a.digest.hex())]
    );
    // Past the TTL without a resolve (a precondition, not a proof), the next index fetch
    // drops the registration and GC collects its artifact.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    h.http
        .post(format!("{}/v1/helmrepositories/ns/r/reconcile", h.base()))
        .send()
        .await?
        .error_for_status()?;
    let what = "the expired resolution's artifact to be collected";
    ferry_tests::poll::until(what, WAIT, std::time::Duration::from_millis(50), || async {
        Ok(stored_artifacts(h.storage_dir())?.is_empty().then_some(()))
    })
    .await?;
    // Asking again packs it again.
    let again = resolve_ok(&h, "ns", "r", "app", None).await?;
    assert_eq!(again.digest, a.digest);
    assert_eq!(server.count("/app-1.0.0.tgz", 200), 2);
    h.stop().await;
    Ok(())
}
