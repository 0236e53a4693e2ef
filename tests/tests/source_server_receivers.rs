//! Webhook receivers, end to end on the real `ferry-source-server` binary: each Flux receiver
//! type accepts a valid call and the pushed revision reaches the event stream (sources poll
//! every 10 minutes, so only the hook explains it); bad signatures and tokens, unwanted events,
//! big bodies, replays and bursts are refused as documented; calls during a slow fetch coalesce
//! into at most one more fetch; the hook path is Flux's formula, checked with `sha256sum`.

mod e2e_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use e2e_support::{Proc, bin, free_port};
use ferry_proto::api::{ArtifactEvent, HookOutcome, HookReply, ReceiverList, SourceView};
use ferry_tests::upstream::{HttpAuth, SmartHttp, Upstream};
use hmac::{Hmac, KeyInit, Mac};

const NS: &str = "team-a";
const TOKEN: &str = "s3cret-token";
const WAIT: Duration = Duration::from_secs(60);

/// The config: GitRepository `app` (polling every 10 minutes), the token Secret, and one
/// Receiver per type plus a suspended one, all naming `app`.
fn config(url: &str) -> String {
    let mut docs = vec![
        format!(
            "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {{name: app, namespace: {NS}}}\n\
             spec: {{url: '{url}', interval: 10m, timeout: 60s}}\n"
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: hook-token, namespace: {NS}}}\n\
             stringData: {{token: {TOKEN}}}\n"
        ),
    ];
    for (name, ty, extra) in [
        ("gen", "generic", ""),
        ("hmac", "generic-hmac", ""),
        ("gh", "github", "  events: [push]\n"),
        ("gl", "gitlab", "  events: [Push Hook]\n"),
        ("off", "generic", "  suspend: true\n"),
    ] {
        docs.push(format!(
            "apiVersion: notification.ferry.dev/v1\nkind: Receiver\nmetadata: {{name: {name}, namespace: {NS}}}\n\
             spec:\n  type: {ty}\n  secretRef: {{name: hook-token}}\n  resources:\n  - {{kind: GitRepository, name: app}}\n{extra}"
        ));
    }
    docs.join("---\n")
}

/// Flux's path, computed by coreutils rather than by Ferry's code.
fn flux_path(name: &str) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{TOKEN}{name}{NS}").as_bytes())?;
    let out = child.wait_with_output()?;
    let hex = String::from_utf8(out.stdout)?;
    Ok(format!(
        "/hook/{}",
        hex.split_whitespace().next().context("digest")?
    ))
}

fn hmac256(body: &[u8]) -> String {
    let mut m =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(TOKEN.as_bytes()).expect("any key length");
    m.update(body);
    hex_of(&m.finalize().into_bytes())
}

fn hmac512(body: &[u8]) -> String {
    let mut m =
        <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(TOKEN.as_bytes()).expect("any key length");
    m.update(body);
    hex_of(&m.finalize().into_bytes())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The real binary on a free port, with its config in a temp dir.
struct Server {
    _dir: tempfile::TempDir,
    base: String,
    proc: Proc,
    http: reqwest::Client,
}

impl Server {
    async fn start(config: &str, args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        std::fs::write(dir.path().join("sources.yaml"), config)?;
        let mut cmd = Command::new(bin("ferry-source-server")?);
        cmd.args(["serve", "--config"])
            .arg(dir.path().join("sources.yaml"))
            .arg("--storage")
            .arg(dir.path().join("storage"))
            .arg("--cache")
            .arg(dir.path().join("mirrors"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args);
        let proc = Proc::spawn(
            "ferry-source-server",
            &mut cmd,
            dir.path().join("server.log"),
        )?;
        let s = Self {
            _dir: dir,
            base: format!("http://127.0.0.1:{port}"),
            proc,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        ferry_tests::poll::until(
            "the source server ready",
            WAIT,
            Duration::from_millis(50),
            || async {
                let r = s.http.get(format!("{}/readyz", s.base)).send().await?;
                Ok(r.status().is_success().then_some(()))
            },
        )
        .await
        .with_context(|| s.proc.log_text())?;
        Ok(s)
    }

    async fn hook(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, String)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        Ok((status, headers, resp.text().await?))
    }

    /// A call on a known path: its status and reply.
    async fn call(
        &self,
        receiver: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, HookReply)> {
        let (status, _, text) = self
            .hook(&flux_path(receiver)?, headers, body.to_vec())
            .await?;
        let reply = serde_json::from_str(&text).with_context(|| format!("{status}: {text}"))?;
        Ok((status.as_u16(), reply))
    }

    async fn metric(&self, series: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse())
            .transpose()?
            .unwrap_or(0.0))
    }

    async fn hooks(&self, receiver: &str, outcome: &str) -> Result<f64> {
        self.metric(&format!(
            "ferry_source_receiver_requests_total{{namespace=\"{NS}\",name=\"{receiver}\",outcome=\"{outcome}\"}}"
        ))
        .await
    }

    /// Reconciles of `app` so far, successful or not.
    async fn fetches(&self) -> Result<f64> {
        let mut n = 0.0;
        for result in ["success", "failure"] {
            n += self
                .metric(&format!(
                    "ferry_source_reconcile_duration_seconds_count{{namespace=\"{NS}\",name=\"app\",result=\"{result}\"}}"
                ))
                .await?;
        }
        Ok(n)
    }

    async fn source(&self) -> Result<SourceView> {
        Ok(self
            .http
            .get(format!("{}/v1/sources/{NS}/app", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn wait_source(
        &self,
        what: &str,
        ok: impl Fn(&SourceView) -> bool,
    ) -> Result<SourceView> {
        ferry_tests::poll::until(what, WAIT, Duration::from_millis(20), || async {
            let v = self.source().await?;
            Ok(ok(&v).then_some(v))
        })
        .await
        .with_context(|| self.proc.log_text())
    }

    async fn wait_commit(&self, commit: &str) -> Result<SourceView> {
        self.wait_source(&format!("app at {commit}"), |v| {
            v.status
                .artifact
                .as_ref()
                .is_some_and(|a| a.revision.commit() == commit)
        })
        .await
    }
}

/// `artifact` events from `/v1/events`.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn connect(s: &Server) -> Result<Self> {
        let resp = s
            .http
            .get(format!("{}/v1/events", s.base))
            .timeout(Duration::from_secs(3600))
            .send()
            .await?;
        ensure!(
            resp.status().is_success(),
            "GET /v1/events: {}",
            resp.status()
        );
        Ok(Self {
            resp,
            buf: String::new(),
        })
    }

    /// Reads events until one announces `commit`.
    async fn wait_commit(&mut self, commit: &str) -> Result<ArtifactEvent> {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if !block.lines().any(|l| l == "event: artifact") {
                    continue;
                }
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let ev: ArtifactEvent = serde_json::from_str(&data)?;
                if ev.revision.commit() == commit {
                    return Ok(ev);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.resp.chunk())
                .await
                .with_context(|| format!("no event for {commit} in time"))??
                .context("event stream ended")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_accepts_a_valid_call_and_the_push_reaches_the_event_stream() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "v: 0\n")?;
    let c0 = up.commit_push("c0")?;
    let s = Server::start(&config(&up.file_url()), &[]).await?;
    s.wait_commit(&c0).await?;

    let list: ReceiverList = s
        .http
        .get(format!("{}/v1/receivers", s.base))
        .send()
        .await?
        .json()
        .await?;
    ensure!(list.receivers.len() == 5, "{list:#?}");
    for r in &list.receivers {
        let path = r.status.webhook_path.as_deref().context("webhookPath")?;
        assert_eq!(path, flux_path(&r.name)?, "Flux's formula for {}", r.name);
        let ready = r.status.conditions.iter().find(|c| c.type_ == "Ready");
        let reason = ready.map(|c| c.reason.as_str());
        let expected = if r.name == "off" {
            "Suspended"
        } else {
            "Succeeded"
        };
        assert_eq!(reason, Some(expected), "{}: {:?}", r.name, r.status);
    }
    let raw = s
        .http
        .get(format!("{}/v1/receivers", s.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(!raw.contains(TOKEN), "the token is never shown: {raw}");

    let mut events = Events::connect(&s).await?;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig256 = format!("sha256={}", hmac256(body));
    let sig512 = format!("sha512={}", hmac512(body));
    let calls: [(&str, Vec<(&str, &str)>); 5] = [
        ("gen", vec![]),
        ("hmac", vec![("X-Signature", &sig256)]),
        ("hmac", vec![("X-Signature", &sig512)]),
        (
            "gh",
            vec![("X-Hub-Signature-256", &sig256), ("X-GitHub-Event", "push")],
        ),
        (
            "gl",
            vec![("X-Gitlab-Token", TOKEN), ("X-Gitlab-Event", "Push Hook")],
        ),
    ];
    for (i, (receiver, headers)) in calls.iter().enumerate() {
        up.write("a.yaml", format!("v: {}\n", i + 1))?;
        let commit = up.commit_push(&format!("c{}", i + 1))?;
        let (status, reply) = s.call(receiver, headers, body).await?;
        assert_eq!(status, 200, "{receiver}: {reply:?}");
        assert_eq!(
            reply.outcome,
            HookOutcome::Accepted,
            "{receiver}: {reply:?}"
        );
        assert_eq!(reply.triggered, [format!("GitRepository/{NS}/app")]);
        let ev = events
            .wait_commit(&commit)
            .await
            .with_context(|| format!("after a {receiver} call; {}", s.proc.log_text()))?;
        assert_eq!(ev.name, "app");
    }
    assert_eq!(s.hooks("hmac", "accepted").await?, 2.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unwanted_oversized_and_replayed_calls_fetch_nothing() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "v: 0\n")?;
    let c0 = up.commit_push("c0")?;
    let s = Server::start(&config(&up.file_url()), &[]).await?;
    s.wait_commit(&c0).await?;
    let body = b"{}".as_slice();
    let good = format!("sha256={}", hmac256(body));
    let wrong = format!("sha256={}", hmac256(b"another body"));

    // Forged: 401, as the outcome says; Flux answers 400 to all of these.
    let forged: [(&str, Vec<(&str, &str)>); 5] = [
        ("hmac", vec![]),
        ("hmac", vec![("X-Signature", &wrong)]),
        ("hmac", vec![("X-Signature", "md5=00")]),
        (
            "gh",
            vec![("X-Hub-Signature-256", &wrong), ("X-GitHub-Event", "push")],
        ),
        (
            "gl",
            vec![
                ("X-Gitlab-Token", "s3cret-tokeN"),
                ("X-Gitlab-Event", "Push Hook"),
            ],
        ),
    ];
    for (receiver, headers) in &forged {
        let (status, reply) = s.call(receiver, headers, body).await?;
        assert_eq!(
            (status, reply.outcome),
            (401, HookOutcome::Unauthorized),
            "{receiver} {headers:?}: {reply:?}"
        );
        assert!(
            reply.message.contains(&format!("Receiver {NS}/{receiver}")),
            "{reply:?}"
        );
    }

    // Unknown paths: 404, the same body whatever the path.
    let mut bodies = vec![];
    for path in ["/hook/0000", &format!("/hook/{}", "f".repeat(64))] {
        let (status, _, text) = s.hook(path, &[], "{}").await?;
        assert_eq!(status, 404);
        bodies.push(text);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(
        s.metric("ferry_source_receiver_unknown_path_requests_total")
            .await?,
        2.0
    );

    // Suspended: 503.
    let (status, reply) = s.call("off", &[], body).await?;
    assert_eq!((status, reply.outcome), (503, HookOutcome::Suspended));

    // Unwanted events and GitHub's ping: 200, ignored, nothing asked to fetch.
    let unwanted: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "gh",
            vec![("X-Hub-Signature-256", &good), ("X-GitHub-Event", "issues")],
        ),
        (
            "gh",
            vec![("X-Hub-Signature-256", &good), ("X-GitHub-Event", "ping")],
        ),
        (
            "gl",
            vec![
                ("X-Gitlab-Token", TOKEN),
                ("X-Gitlab-Event", "Tag Push Hook"),
            ],
        ),
    ];
    for (receiver, headers) in &unwanted {
        let (status, reply) = s.call(receiver, headers, body).await?;
        assert_eq!(
            (status, reply.outcome),
            (200, HookOutcome::Ignored),
            "{headers:?}: {reply:?}"
        );
        assert!(reply.triggered.is_empty() && reply.requested_at.is_none());
    }
    assert_eq!(s.hooks("gh", "ignored").await?, 2.0);

    // Over 3 MiB: 413, whether the length is declared or the body is streamed.
    let big = vec![b'x'; (3 << 20) + 1];
    let (status, _, _) = s.hook(&flux_path("gen")?, &[], big.clone()).await?;
    assert_eq!(status, 413);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, _, _) = s.hook(&flux_path("gen")?, &[], streamed).await?;
    assert_eq!(status, 413);
    assert_eq!(s.hooks("gen", "too_large").await?, 2.0);

    // None of the above asked for a fetch: every trigger happens before the answer.
    for r in ["gen", "hmac", "gh", "gl", "off"] {
        assert_eq!(s.hooks(r, "accepted").await?, 0.0, "{r}");
    }

    // A redelivery (same X-GitHub-Delivery) is answered without fetching again.
    let headers = [
        ("X-Hub-Signature-256", good.as_str()),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let (status, first) = s.call("gh", &headers, body).await?;
    assert_eq!(
        (status, first.outcome),
        (200, HookOutcome::Accepted),
        "{first:?}"
    );
    let (status, again) = s.call("gh", &headers, body).await?;
    assert_eq!(
        (status, again.outcome),
        (200, HookOutcome::Duplicate),
        "{again:?}"
    );
    assert!(
        again.message.contains("already handled") && again.triggered.is_empty(),
        "{again:?}"
    );
    assert_eq!(s.hooks("gh", "accepted").await?, 1.0);
    assert_eq!(s.hooks("gh", "duplicate").await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_is_answered_429_per_receiver() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "v: 0\n")?;
    up.commit_push("c0")?;
    let args = ["--receiver-burst", "3", "--receiver-rate", "0.05"];
    let s = Server::start(&config(&up.file_url()), &args).await?;
    for i in 0..3 {
        let (status, reply) = s.call("gen", &[], b"").await?;
        assert_eq!(status, 200, "call {i}: {reply:?}");
    }
    let (status, headers, text) = s.hook(&flux_path("gen")?, &[], "").await?;
    assert_eq!(status, 429, "{text}");
    let retry: u64 = headers
        .get("retry-after")
        .context("Retry-After")?
        .to_str()?
        .parse()?;
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    let reply: HookReply = serde_json::from_str(&text)?;
    assert_eq!(reply.outcome, HookOutcome::RateLimited);
    // Another receiver has its own bucket.
    let sig = format!("sha256={}", hmac256(b""));
    let (status, reply) = s.call("hmac", &[("X-Signature", &sig)], b"").await?;
    assert_eq!((status, reply.outcome), (200, HookOutcome::Accepted));
    assert_eq!(s.hooks("gen", "rate_limited").await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_slow_fetch_coalesce_into_one_more_fetch() -> Result<()> {
    let up = Upstream::new()?;
    up.write("a.yaml", "v: 0\n")?;
    let c0 = up.commit_push("c0")?;
    let git = SmartHttp::start(up.root(), HttpAuth::None)?;
    let args = ["--receiver-burst", "100"];
    let s = Server::start(&config(&git.url("repo.git")), &args).await?;
    s.wait_commit(&c0).await?;
    // The server publishes c0 before it counts that reconcile: read the count once the
    // first success is in it (the interval is 10m, so nothing else runs meanwhile), or a late
    // count of c0 would be taken for a fetch of the calls below.
    let success = format!(
        "ferry_source_reconcile_duration_seconds_count{{namespace=\"{NS}\",name=\"app\",result=\"success\"}}"
    );
    ferry_tests::poll::until(
        "the first reconcile counted",
        WAIT,
        Duration::from_millis(20),
        || async { Ok((s.metric(&success).await? >= 1.0).then_some(())) },
    )
    .await?;
    let before = s.fetches().await?;

    // Every request to the Git host now takes 300 ms: a fetch takes about a second.
    git.set_delay(Duration::from_millis(300));
    up.write("a.yaml", "v: 1\n")?;
    let c1 = up.commit_push("c1")?;
    let mut last = None;
    for _ in 0..20 {
        let (status, reply) = s.call("gen", &[], b"").await?;
        ensure!(status == 200, "{reply:?}");
        last = reply.requested_at;
    }
    let last = last.context("requestedAt in the reply")?;
    // Done once a fetch that started after the last call has finished.
    let view = s
        .wait_source("the last call handled", |v| {
            v.status.last_handled_reconcile_at.as_deref() == Some(last.as_str())
        })
        .await?;
    let artifact = view.status.artifact.context("artifact")?;
    assert_eq!(artifact.revision.commit(), c1);
    let fetches = s.fetches().await? - before;
    if !(1.0..=2.0).contains(&fetches) {
        bail!("20 calls during a slow fetch made {fetches} fetches (at most 2 expected)");
    }
    Ok(())
}
