//! The source server's status page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by tests/scripts/test.sh), driven over WebDriver: the page
//! loads, shows a new revision without a reload once a push is fetched, and shows why a
//! source fails. The last screenshot is kept in `target/test-artifacts/status-page.png`.

mod source_server_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder};
use ferry_tests::upstream::Upstream;
use serde_json::json;
use source_server_support::*;

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(var: &str, default: &str) -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
    if !path.exists() {
        bail!(
            "{} not found (set {var}; tests/scripts/test.sh installs Debian's chromium and chromium-driver)",
            path.display()
        );
    }
    Ok(path)
}

async fn start_driver() -> Result<Driver> {
    let bin = tool("FERRY_CHROMEDRIVER", "/usr/bin/chromedriver")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if ready.is_some() {
            return Ok(driver);
        }
        if Instant::now() > deadline {
            bail!("chromedriver did not answer on {} within 20 s", driver.url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver) -> Result<Client> {
    ferry_testcluster::cluster::install_crypto_provider();
    let chromium = tool("FERRY_CHROMIUM", "/usr/bin/chromium")?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,900"],
        }),
    );
    ClientBuilder::rustls()?
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("opening a Chromium session")
}

/// The text of the first element matching `css`, or "" when there is none.
async fn text(c: &Client, css: &str) -> Result<String> {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(css)],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

/// Waits until the element's text contains `want`; returns how long that took.
async fn wait_text(c: &Client, css: &str, want: &str, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let got = text(c, css).await?;
        if got.contains(want) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("{css}: waited {within:?} for {want:?}, the page shows {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn screenshot(c: &Client, name: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, c.screenshot().await?)?;
    Ok(path)
}

fn row(kind: &str, ns: &str, name: &str, cell: &str) -> String {
    format!("tr[data-source=\"{kind}/{ns}/{name}\"] td.{cell}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_sources_and_updates_live_in_chromium() -> Result<()> {
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "kind: ConfigMap\n")?;
    up.commit_push("first")?;
    let first = up.head()?;
    // The harness sets a poll interval of an hour: only the reconcile request below explains
    // a new revision.
    let config = join_docs(&[
        repo_doc("team-a", "app", &up.file_url(), ""),
        repo_doc(
            "team-b",
            "broken",
            "file:///nonexistent/ferry-status-page.git",
            "",
        ),
    ]);
    let mut h = Harness::new(&config)?;
    h.start().await?;
    h.wait_commit("team-a", "app", &first).await?;

    let driver = start_driver().await?;
    let c = browser(&driver).await?;
    let result = async {
        c.goto(&format!("{}/", h.base())).await?;
        assert_eq!(c.title().await?, "Ferry source server");
        wait_text(
            &c,
            &row("GitRepository", "team-a", "app", "revision"),
            &first,
            Duration::from_secs(10),
        )
        .await?;
        wait_text(
            &c,
            &row("GitRepository", "team-a", "app", "ready"),
            "True",
            Duration::from_secs(10),
        )
        .await?;
        // A source that cannot be fetched shows False and the error naming it.
        wait_text(
            &c,
            &row("GitRepository", "team-b", "broken", "ready"),
            "False",
            Duration::from_secs(30),
        )
        .await?;
        let message = text(&c, &row("GitRepository", "team-b", "broken", "message")).await?;
        assert!(
            message.contains("ferry-status-page"),
            "message: {message:?}"
        );
        // The script has connected to the event stream.
        wait_text(&c, "#live", "live", Duration::from_secs(10)).await?;

        // A marker that a reload would wipe.
        c.execute("window.ferryNoReload = 42;", vec![]).await?;
        up.write(
            "deploy/app.yaml",
            "kind: ConfigMap\nmetadata: {name: two}\n",
        )?;
        up.commit_push("second")?;
        let second = up.head()?;
        h.reconcile("team-a", "app").await?;
        let took = wait_text(
            &c,
            &row("GitRepository", "team-a", "app", "revision"),
            &second,
            Duration::from_secs(10),
        )
        .await?;
        eprintln!("status page showed the new revision {took:?} after the reconcile request");
        // The same update carries the status that goes with the artifact (it is recorded
        // before the artifact is announced).
        let message = text(&c, &row("GitRepository", "team-a", "app", "message")).await?;
        assert!(message.contains(&second), "message: {message:?}");
        let marker = c.execute("return window.ferryNoReload;", vec![]).await?;
        assert_eq!(
            marker,
            json!(42),
            "the page was reloaded instead of updated"
        );
        let shot = screenshot(&c, "status-page.png").await?;
        eprintln!("screenshot: {}", shot.display());
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    h.stop().await;
    result
}
